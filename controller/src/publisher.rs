//! Turns index changes into published snapshots: a burst of changes is debounced into one
//! translation and one push (wait until the index has been quiet for `QUIET`, but never
//! longer than `MAX_DELAY` after the first change), and nothing is published before the
//! index has had its first full sync.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::ads::Snapshot;
use crate::model::Index;
use crate::xds::{self, ResourceReport};

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
    loop {
        let namespaces = client_namespaces.borrow_and_update().clone();
        publish(&index, &namespaces, &snapshots, &published);
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

fn publish(
    index: &Mutex<Index>,
    client_namespaces: &BTreeSet<String>,
    snapshots: &watch::Sender<Option<Arc<Snapshot>>>,
    published: &watch::Sender<Published>,
) {
    let started = std::time::Instant::now();
    let translation = {
        let index = index.lock().unwrap_or_else(|p| p.into_inner());
        if !index.is_synced() {
            return;
        }
        xds::translate_for(&index, client_namespaces.iter().map(String::as_str))
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
        p.reports = Arc::new(translation.reports);
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
