//! Status: what the controller writes on each weft resource (Kubernetes mode). The pure part
//! (`conditions`) turns a translation report and proxy progress into a status; the writer
//! patches the status subresource when, and only when, the desired status differs from the
//! one last written (or found on the object at start), so writes are idempotent.

mod conditions;

pub use conditions::desired_status;

/// For an MtlsPolicy, the proxies enforcing it (none when it governs none); `None` for
/// every other kind (see [`desired_status`]).
pub fn governed<'a>(
    key: &ObjectKey,
    enforcing: &'a crate::translate::Enforcing,
) -> Option<&'a std::collections::BTreeSet<String>> {
    static NONE: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    (key.kind == crate::model::Kind::MtlsPolicy).then(|| enforcing.get(key).unwrap_or(&NONE))
}

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;

use crate::ads::ProxyRegistry;
use crate::api::{BackendPolicy, FaultInjection, GrpcRoute, MtlsPolicy, ResourceStatus};
use crate::leader::Election;
use crate::model::{Kind, Object, ObjectKey};
use crate::publisher::Published;
use crate::source::SharedIndex;

/// Proxy ACKs change without a new translation; they are looked at this often.
const PROXY_POLL: Duration = Duration::from_secs(1);

/// Writes statuses until the process ends, while this replica leads (`election`).
pub async fn run_writer(
    client: Client,
    index: SharedIndex,
    mut published: watch::Receiver<Published>,
    proxies: Arc<ProxyRegistry>,
    election: Election,
) {
    let Election(mut leading) = election;
    let mut written: BTreeMap<ObjectKey, ResourceStatus> = BTreeMap::new();
    loop {
        if !*leading.borrow_and_update() {
            // Another replica writes meanwhile: what we wrote before may be stale, so
            // compare with what is on the objects once we lead again.
            written.clear();
            if leading.changed().await.is_err() {
                return;
            }
            continue;
        }
        let (reports, enforcing) = {
            let published = published.borrow_and_update();
            (published.reports.clone(), published.enforcing.clone())
        };
        let connected = proxies.snapshot();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        written.retain(|key, _| reports.contains_key(key));
        for (key, report) in reports.iter() {
            let on_object = current_status(&index, key);
            let previous = written.get(key).or(on_object.as_ref());
            let governed = governed(key, &enforcing);
            let desired = desired_status(report, &connected, governed, previous, &now);
            if previous == Some(&desired) {
                continue;
            }
            match patch_status(&client, key, &desired).await {
                Ok(()) => {
                    written.insert(key.clone(), desired);
                }
                Err(err) => {
                    tracing::warn!(resource = %key, %err, "cannot write status; will retry")
                }
            }
        }
        tokio::select! {
            changed = published.changed() => if changed.is_err() { return },
            changed = leading.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(PROXY_POLL) => {}
        }
    }
}

fn current_status(index: &SharedIndex, key: &ObjectKey) -> Option<ResourceStatus> {
    let index = index.lock().unwrap_or_else(PoisonError::into_inner);
    match index.get(key)? {
        Object::GrpcRoute(o) => o.status.clone(),
        Object::FaultInjection(o) => o.status.clone(),
        Object::MtlsPolicy(o) => o.status.clone(),
        Object::BackendPolicy(o) => o.status.clone(),
        _ => None,
    }
}

async fn patch_status(
    client: &Client,
    key: &ObjectKey,
    status: &ResourceStatus,
) -> kube::Result<()> {
    let patch = Patch::Merge(json!({ "status": status }));
    let params = PatchParams::default();
    let (ns, name) = (key.namespace.as_str(), key.name.as_str());
    match key.kind {
        Kind::GrpcRoute => Api::<GrpcRoute>::namespaced(client.clone(), ns)
            .patch_status(name, &params, &patch)
            .await
            .map(drop),
        Kind::FaultInjection => Api::<FaultInjection>::namespaced(client.clone(), ns)
            .patch_status(name, &params, &patch)
            .await
            .map(drop),
        Kind::MtlsPolicy => Api::<MtlsPolicy>::namespaced(client.clone(), ns)
            .patch_status(name, &params, &patch)
            .await
            .map(drop),
        Kind::BackendPolicy => Api::<BackendPolicy>::namespaced(client.clone(), ns)
            .patch_status(name, &params, &patch)
            .await
            .map(drop),
        Kind::Service | Kind::EndpointSlice => Ok(()),
    }
}
