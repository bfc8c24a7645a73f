//! Turns index changes into published snapshots: a burst of changes is debounced into one
//! translation and one push (wait until the index has been quiet for `QUIET`, but never
//! longer than `MAX_DELAY` after the first change), and nothing is published before the
//! index has had its first full sync. When only EndpointSlices changed since the last
//! translation, only the ClusterLoadAssignments are made again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::ads::Snapshot;
use crate::model::{Index, Kind};
use crate::xds::{self, ResourceReport, Translation};

/// How long the index must be quiet before a push.
pub const QUIET: Duration = Duration::from_millis(10);
/// The most a push waits after the first change of a burst.
pub const MAX_DELAY: Duration = Duration::from_millis(100);

/// The latest translation: the snapshot served, and a report per user resource.
#[derive(Debug, Default, Clone)]
pub struct Published {
    pub snapshot: Option<Arc<Snapshot>>,
    pub reports: Arc<std::collections::BTreeMap<crate::model::ObjectKey, ResourceReport>>,
}

/// Translates now, then after every (debounced) change of the index revision or of the
/// set of namespaces proxies connect from, until the source goes away.
pub async fn run(
    index: Arc<Mutex<Index>>,
    mut revisions: watch::Receiver<u64>,
    mut client_namespaces: watch::Receiver<BTreeSet<String>>,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    published: watch::Sender<Published>,
) {
    let mut last = None;
    loop {
        let namespaces = client_namespaces.borrow_and_update().clone();
        publish(&index, &namespaces, &mut last, &snapshots, &published);
        tokio::select! {
            changed = revisions.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            // A namespace's first proxy needs its `outbound/<ns>` route config.
            Ok(()) = client_namespaces.changed() => {}
        }
        debounce(&mut revisions).await;
    }
}

/// The last translation and what it was made from, besides EndpointSlices.
struct LastTranslation {
    inputs: Inputs,
    translation: Translation,
}

/// The inputs of everything but ClusterLoadAssignments: the revisions of every other kind
/// and the namespaces proxies connect from.
#[derive(PartialEq)]
struct Inputs {
    revisions: Vec<u64>,
    client_namespaces: BTreeSet<String>,
}

impl Inputs {
    fn of(index: &Index, client_namespaces: &BTreeSet<String>) -> Self {
        Inputs {
            revisions: Kind::ALL
                .iter()
                .filter(|kind| **kind != Kind::EndpointSlice)
                .map(|kind| index.revision(*kind))
                .collect(),
            client_namespaces: client_namespaces.clone(),
        }
    }
}

/// Translates the index, or when only EndpointSlices changed since the last translation,
/// only remakes its ClusterLoadAssignments.
fn translate(
    index: &Index,
    client_namespaces: &BTreeSet<String>,
    last: &mut Option<LastTranslation>,
) -> Translation {
    let inputs = Inputs::of(index, client_namespaces);
    let translation = match last.take() {
        Some(last) if last.inputs == inputs => xds::retranslate_endpoints(index, &last.translation),
        _ => xds::translate_for(index, client_namespaces.iter().map(String::as_str)),
    };
    *last = Some(LastTranslation {
        inputs,
        translation: translation.clone(),
    });
    translation
}

fn publish(
    index: &Mutex<Index>,
    client_namespaces: &BTreeSet<String>,
    last: &mut Option<LastTranslation>,
    snapshots: &watch::Sender<Option<Arc<Snapshot>>>,
    published: &watch::Sender<Published>,
) {
    let started = std::time::Instant::now();
    let translation = {
        let index = index.lock().unwrap_or_else(|p| p.into_inner());
        if !index.is_synced() {
            return;
        }
        translate(&index, client_namespaces, last)
    };
    let snapshot = Arc::new(translation.snapshot);
    let is_new = !snapshots
        .borrow()
        .as_deref()
        .is_some_and(|current| current.same_content(&snapshot));
    if is_new {
        snapshots.send_replace(Some(snapshot.clone()));
    }
    published.send_modify(|p| {
        p.snapshot = Some(snapshot);
        p.reports = translation.reports;
    });
    tracing::debug!(
        new = is_new,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "translated the index"
    );
}

/// Returns once no change arrived for `QUIET`, or `MAX_DELAY` after the start.
async fn debounce(revisions: &mut watch::Receiver<u64>) {
    let deadline = Instant::now() + MAX_DELAY;
    loop {
        let quiet_until = (Instant::now() + QUIET).min(deadline);
        tokio::select! {
            changed = revisions.changed() => {
                if changed.is_err() || Instant::now() >= deadline { return; }
            }
            () = tokio::time::sleep_until(quiet_until) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::xds::testutil::{greeters, index as index_of, objects, service_yaml};

    fn slice(address: &str) -> String {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: greeter-1, namespace: default, labels: {{kubernetes.io/service-name: greeter}}}}\n\
             addressType: IPv4\nports: [{{name: grpc, port: 50051}}]\n\
             endpoints: [{{addresses: [\"{address}\"]}}]\n"
        )
    }

    #[test]
    fn an_endpoint_change_remakes_endpoints_only_and_matches_a_full_translation() {
        let mut index = index_of(&format!("{}---\n{}", greeters(), slice("10.0.0.1")));
        let namespaces = BTreeSet::from(["team-a".to_string()]);
        let mut last = None;
        let first = translate(&index, &namespaces, &mut last);
        for object in objects(&slice("10.0.0.2")) {
            index.apply(object);
        }
        let second = translate(&index, &namespaces, &mut last);
        let full = xds::translate_for(&index, ["team-a"]);
        assert_eq!(second.snapshot, full.snapshot);
        assert_eq!(
            (&second.reports, &second.warnings),
            (&full.reports, &full.warnings)
        );
        for ty in [
            crate::ads::ResourceType::Cluster,
            crate::ads::ResourceType::Route,
        ] {
            assert!(
                Arc::ptr_eq(
                    first.snapshot.shared_resources(ty),
                    second.snapshot.shared_resources(ty)
                ),
                "{ty} reused"
            );
        }
        assert_ne!(
            first
                .snapshot
                .resources(crate::ads::ResourceType::Endpoint)
                .version(),
            second
                .snapshot
                .resources(crate::ads::ResourceType::Endpoint)
                .version()
        );
    }

    #[test]
    fn a_service_change_or_a_new_client_namespace_translates_everything() {
        let mut index = index_of(&greeters());
        let mut last = None;
        let first = translate(&index, &BTreeSet::new(), &mut last);
        let namespaces = BTreeSet::from(["team-a".to_string()]);
        let second = translate(&index, &namespaces, &mut last);
        assert_eq!(
            second.snapshot,
            xds::translate_for(&index, ["team-a"]).snapshot
        );
        assert_ne!(first.snapshot, second.snapshot, "outbound/team-a is new");
        for object in objects(&service_yaml("default", "extra", &[("grpc", 80)])) {
            index.apply(object);
        }
        let third = translate(&index, &namespaces, &mut last);
        assert_eq!(
            third.snapshot,
            xds::translate_for(&index, ["team-a"]).snapshot
        );
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_period_ends_a_debounce() {
        let (_tx, mut rx) = watch::channel(0u64);
        let start = Instant::now();
        debounce(&mut rx).await;
        assert_eq!(start.elapsed(), QUIET);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_of_changes_is_cut_at_max_delay() {
        let (tx, mut rx) = watch::channel(0u64);
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(QUIET / 2).await; // never quiet for long enough
                tx.send_modify(|revision| *revision += 1);
            }
        });
        let start = Instant::now();
        debounce(&mut rx).await;
        ticker.abort();
        let waited = start.elapsed();
        assert!(
            waited >= MAX_DELAY && waited < MAX_DELAY + QUIET,
            "{waited:?}"
        );
    }
}
