//! Following one config change across every simulated proxy, as plain logic fed with
//! timestamped events: each proxy expects a set of (type, resource name) updates; its
//! completion time is when it ACKed the last of them. Also counts the bytes each proxy
//! was sent from the change until it completed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::sim::XdsKind;

/// One response a simulated proxy received (and ACKed at once).
#[derive(Debug, Clone)]
pub struct Event {
    pub stream: usize,
    pub kind: XdsKind,
    /// Names of the resources it carried, and of those it removed.
    pub names: Vec<String>,
    /// Encoded size of the response message.
    pub bytes: usize,
    pub received: Instant,
    pub acked: Instant,
}

/// What one change came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// From the change until the last proxy ACKed (None if some never did).
    pub convergence: Option<Duration>,
    /// From the change until the first proxy received anything.
    pub first_response: Option<Duration>,
    /// Each completed proxy's time from the change to its ACK of the last expected update.
    pub per_proxy: Vec<Duration>,
    /// Mean bytes sent to a proxy for this change (responses from the change on).
    pub bytes_per_proxy: f64,
    pub incomplete: usize,
}

/// Tracks one change.
#[derive(Debug)]
pub struct ChangeTracker {
    start: Instant,
    pending: Vec<BTreeSet<(XdsKind, String)>>,
    done: Vec<Option<Instant>>,
    bytes: Vec<u64>,
    first: Option<Instant>,
    remaining: usize,
}

impl ChangeTracker {
    /// `expected[i]`: the updates proxy `i` must receive for the change made at `start`.
    pub fn new(start: Instant, expected: Vec<BTreeSet<(XdsKind, String)>>) -> Self {
        let n = expected.len();
        let remaining = expected.iter().filter(|e| !e.is_empty()).count();
        let done = expected
            .iter()
            .map(|e| e.is_empty().then_some(start))
            .collect();
        Self {
            start,
            pending: expected,
            done,
            bytes: vec![0; n],
            first: None,
            remaining,
        }
    }

    pub fn observe(&mut self, event: &Event) {
        if event.received < self.start || event.stream >= self.pending.len() {
            return;
        }
        self.first = Some(self.first.map_or(event.received, |f| f.min(event.received)));
        self.bytes[event.stream] += event.bytes as u64;
        let pending = &mut self.pending[event.stream];
        if pending.is_empty() {
            return;
        }
        for name in &event.names {
            pending.remove(&(event.kind, name.clone()));
        }
        if pending.is_empty() {
            self.done[event.stream] = Some(event.acked);
            self.remaining -= 1;
        }
    }

    pub fn complete(&self) -> bool {
        self.remaining == 0
    }

    pub fn outcome(&self) -> Outcome {
        let per_proxy: Vec<Duration> = self
            .done
            .iter()
            .flatten()
            .map(|at| at.saturating_duration_since(self.start))
            .collect();
        let n = self.bytes.len().max(1) as f64;
        Outcome {
            convergence: self
                .complete()
                .then(|| per_proxy.iter().max().copied().unwrap_or_default()),
            first_response: self.first.map(|f| f.saturating_duration_since(self.start)),
            per_proxy,
            bytes_per_proxy: self.bytes.iter().sum::<u64>() as f64 / n,
            incomplete: self.remaining,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(items: &[(XdsKind, &str)]) -> BTreeSet<(XdsKind, String)> {
        items.iter().map(|(k, n)| (*k, n.to_string())).collect()
    }

    fn event(stream: usize, kind: XdsKind, names: &[&str], at: Instant, ms: u64) -> Event {
        let received = at + Duration::from_millis(ms);
        Event {
            stream,
            kind,
            names: names.iter().map(|n| n.to_string()).collect(),
            bytes: 100,
            received,
            acked: received + Duration::from_millis(1),
        }
    }

    #[test]
    fn completes_when_every_proxy_acked_everything_expected() {
        let t0 = Instant::now();
        let mut tracker = ChangeTracker::new(
            t0,
            vec![
                expect(&[(XdsKind::Cds, "c"), (XdsKind::Rds, "r0")]),
                expect(&[(XdsKind::Rds, "r1")]),
            ],
        );
        tracker.observe(&event(0, XdsKind::Cds, &["c"], t0, 300));
        tracker.observe(&event(1, XdsKind::Rds, &["r0"], t0, 301)); // not what proxy 1 expects
        assert!(!tracker.complete());
        tracker.observe(&event(1, XdsKind::Rds, &["r1"], t0, 310));
        tracker.observe(&event(0, XdsKind::Rds, &["r0"], t0, 320));
        assert!(tracker.complete());
        let outcome = tracker.outcome();
        assert_eq!(outcome.convergence, Some(Duration::from_millis(321)));
        assert_eq!(outcome.first_response, Some(Duration::from_millis(300)));
        assert_eq!(outcome.per_proxy.len(), 2);
        assert_eq!(outcome.bytes_per_proxy, 200.0);
        assert_eq!(outcome.incomplete, 0);
    }

    #[test]
    fn ignores_what_came_before_the_change_and_reports_stragglers() {
        let t0 = Instant::now();
        let earlier = t0.checked_sub(Duration::from_millis(5)).unwrap_or(t0);
        let mut tracker = ChangeTracker::new(t0, vec![expect(&[(XdsKind::Eds, "e")]); 2]);
        if earlier < t0 {
            tracker.observe(&event(0, XdsKind::Eds, &["e"], earlier, 0));
            assert!(tracker.outcome().first_response.is_none());
        }
        tracker.observe(&event(0, XdsKind::Eds, &["e"], t0, 5));
        let outcome = tracker.outcome();
        assert_eq!((outcome.incomplete, outcome.convergence), (1, None));
    }
}
