//! Turns index changes into published snapshots: a burst of changes is debounced into one
//! translation and one push (wait until the index has been quiet for `QUIET`, but never
//! longer than `MAX_DELAY` after the first change), except that a config change after a
//! quiet spell is published at once ([`publishes_at_once`]); nothing is published before
//! the index has had its first full sync. When only EndpointSlices changed since the last
//! translation, only the ClusterLoadAssignments are made again; when only GrpcRoutes and
//! FaultInjections changed, only the virtual hosts they touch (`translate::incremental`).
//! The connected proxies (workloads) are an input like the index: each has its own
//! listeners, so a proxy that connects, leaves or changes its node metadata means a new
//! translation (always debounced, so a burst of connecting proxies is translated once).
//! The mesh's members (which endpoints run a proxy) decide only the endpoints' marking: a
//! change of them alone remakes only the ClusterLoadAssignments.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::ads::Snapshot;
use crate::model::{Index, Kind, ObjectKey};
use crate::translate::{self, Enforcing, Members, ResourceReport, Translation, Workloads};

/// How long the index must be quiet before a push.
pub const QUIET: Duration = Duration::from_millis(10);
/// The most a push waits after the first change of a burst.
pub const MAX_DELAY: Duration = Duration::from_millis(100);

/// The latest translation: the snapshot served, a report per user resource, and which
/// connected proxies each MtlsPolicy governs.
#[derive(Debug, Default, Clone)]
pub struct Published {
    pub snapshot: Option<Arc<Snapshot>>,
    pub reports: Arc<BTreeMap<ObjectKey, ResourceReport>>,
    /// Per MtlsPolicy, the node ids of the proxies enforcing it ([`Translation::enforcing`]).
    pub enforcing: Arc<Enforcing>,
}

/// Translates now, then after every (debounced) change of the index revision or of the
/// connected proxies, until the source goes away. Clusters check servers against
/// `trust_domain`; `None` when the mesh runs without mTLS (no proxy authentication).
pub async fn run(
    index: Arc<Mutex<Index>>,
    mut revisions: watch::Receiver<u64>,
    workloads: watch::Receiver<Workloads>,
    members: watch::Receiver<Members>,
    trust_domain: Option<String>,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    published: watch::Sender<Published>,
) {
    let mut last = None;
    let mut proxies = Proxies::new(workloads, members);
    loop {
        proxies.refresh();
        publish(
            &index,
            &proxies,
            trust_domain.as_deref(),
            &mut last,
            &snapshots,
            &published,
        );
        let published_at = Instant::now();
        let config_changed = tokio::select! {
            changed = revisions.changed() => {
                if changed.is_err() {
                    return;
                }
                true
            }
            // A new proxy needs its listeners (and its namespace's `outbound/<ns>`).
            () = proxies.changed() => false,
        };
        if !publishes_at_once(config_changed, published_at.elapsed()) {
            debounce(&mut revisions, &mut proxies).await;
        }
    }
}

/// The connected proxies and the mesh's members (from the registry's channels), as the
/// last translation saw them: copied only when they changed, since with ten thousand
/// proxies a copy took milliseconds and a config change (most publishes) does not change
/// them. Shared, so that comparing a translation's inputs with the last one's is a
/// pointer compare.
struct Proxies {
    workloads_rx: watch::Receiver<Workloads>,
    members_rx: watch::Receiver<Members>,
    workloads: Arc<Workloads>,
    members: Arc<Members>,
    /// Set when [`Proxies::changed`] saw that channel change (which marks its value seen)
    /// and [`Proxies::refresh`] has not copied it yet.
    workloads_changed: bool,
    members_changed: bool,
}

impl Proxies {
    /// Nothing copied yet: the first [`Proxies::refresh`] copies both.
    fn new(workloads_rx: watch::Receiver<Workloads>, members_rx: watch::Receiver<Members>) -> Self {
        Proxies {
            workloads_rx,
            members_rx,
            workloads: Arc::default(),
            members: Arc::default(),
            workloads_changed: true,
            members_changed: true,
        }
    }

    /// Copies what changed since the last copy.
    fn refresh(&mut self) {
        if std::mem::take(&mut self.workloads_changed)
            || self.workloads_rx.has_changed().unwrap_or(false)
        {
            self.workloads = Arc::new(self.workloads_rx.borrow_and_update().clone());
        }
        if std::mem::take(&mut self.members_changed)
            || self.members_rx.has_changed().unwrap_or(false)
        {
            self.members = Arc::new(self.members_rx.borrow_and_update().clone());
        }
    }

    /// Returns when the proxies or the members change; never once the registry is gone (a
    /// closed channel only disables its branch).
    async fn changed(&mut self) {
        tokio::select! {
            Ok(()) = self.workloads_rx.changed() => self.workloads_changed = true,
            Ok(()) = self.members_rx.changed() => self.members_changed = true,
            else => std::future::pending().await,
        }
    }
}

/// Whether a change is published without waiting for the debounce: a config change that
/// comes after a quiet spell (nothing published for `QUIET`) is most often alone (one
/// `kubectl apply`, one saved file), and waiting would only add `QUIET` to every push.
/// Changes that come while the last push was being made, or within `QUIET` of it, are the
/// rest of a burst and wait. Proxies connecting and leaving come in storms (a rollout),
/// so they always wait.
fn publishes_at_once(config_changed: bool, since_last_publish: Duration) -> bool {
    config_changed && since_last_publish >= QUIET
}

/// The last translation and what it was made from.
struct LastTranslation {
    inputs: Inputs,
    translation: Translation,
}

/// What a translation is made from, in three parts: what only routing depends on
/// (GrpcRoutes, FaultInjections), what only ClusterLoadAssignments depend on (EndpointSlices,
/// the mesh's members), and everything else (the revisions of every other kind, the
/// connected proxies and the trust domain).
#[derive(PartialEq)]
struct Inputs {
    routing: [u64; 2],
    endpoints: (u64, Arc<Members>),
    rest: (Vec<u64>, Arc<Workloads>, Option<String>),
}

impl Inputs {
    /// Shares the proxies and members (see [`Proxies`]): unchanged, they compare equal by
    /// pointer.
    fn of(index: &Index, proxies: &Proxies, trust_domain: Option<&str>) -> Self {
        const ROUTING: [Kind; 2] = [Kind::GrpcRoute, Kind::FaultInjection];
        let others = Kind::ALL
            .iter()
            .filter(|kind| !ROUTING.contains(kind) && **kind != Kind::EndpointSlice);
        Inputs {
            routing: ROUTING.map(|kind| index.revision(kind)),
            endpoints: (index.revision(Kind::EndpointSlice), proxies.members.clone()),
            rest: (
                others.map(|kind| index.revision(*kind)).collect(),
                proxies.workloads.clone(),
                trust_domain.map(str::to_owned),
            ),
        }
    }
}

/// Translates the index, or only the part whose inputs changed since the last translation
/// when nothing else did: the routing (only the virtual hosts that changed, see
/// `translate::retranslate_routes`), the ClusterLoadAssignments, or both.
fn translate(
    index: &Index,
    proxies: &Proxies,
    trust_domain: Option<&str>,
    last: &mut Option<LastTranslation>,
) -> Translation {
    let inputs = Inputs::of(index, proxies, trust_domain);
    let (workloads, members) = (&inputs.rest.1, &inputs.endpoints.1);
    let mtls = trust_domain.is_some();
    let partial = |last: &LastTranslation| {
        if last.inputs.rest != inputs.rest {
            return None;
        }
        let mut translation = last.translation.clone();
        if last.inputs.routing != inputs.routing {
            translation = translate::retranslate_routes(index, &translation)?;
        }
        if last.inputs.endpoints != inputs.endpoints {
            translation =
                translate::retranslate_endpoints(index, workloads, members, mtls, &translation);
        }
        Some(translation)
    };
    let previous = last.take();
    let translation = previous.as_ref().and_then(partial).unwrap_or_else(|| {
        translate::translate_after(
            index,
            workloads,
            members,
            trust_domain,
            previous.as_ref().map(|last| &last.translation.snapshot),
        )
    });
    *last = Some(LastTranslation {
        inputs,
        translation: translation.clone(),
    });
    translation
}

fn publish(
    index: &Mutex<Index>,
    proxies: &Proxies,
    trust_domain: Option<&str>,
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
        translate(&index, proxies, trust_domain, last)
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
        p.enforcing = translation.enforcing;
    });
    tracing::debug!(
        new = is_new,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "translated the index"
    );
}

/// Returns once no change (of the index or of the proxies) arrived for `QUIET`, or
/// `MAX_DELAY` after the start.
async fn debounce(revisions: &mut watch::Receiver<u64>, proxies: &mut Proxies) {
    let deadline = Instant::now() + MAX_DELAY;
    loop {
        let quiet_until = (Instant::now() + QUIET).min(deadline);
        tokio::select! {
            changed = revisions.changed() => {
                if changed.is_err() || Instant::now() >= deadline { return; }
            }
            () = proxies.changed() => {
                if Instant::now() >= deadline { return; }
            }
            () = tokio::time::sleep_until(quiet_until) => return,
        }
    }
}

#[cfg(test)]
#[path = "publisher_tests.rs"]
mod tests;
