//! Leader election for status writes (Kubernetes mode). Every replica serves xDS and
//! certificates; only the holder of a `coordination.k8s.io` Lease writes resource status,
//! so two replicas never fight over a condition.
//!
//! The rules are client-go's leader election, kept as a pure function ([`decide`]) so they are
//! tested without an apiserver; `lease` is the I/O around it. A replica takes the Lease when
//! nobody holds it or the holder has not renewed it within its duration; the holder renews
//! every retry period and gives up writing as soon as its own renewal is older than the
//! duration (so two replicas never both believe they lead, as long as clocks advance at the
//! same rate — the apiserver's optimistic concurrency on `resourceVersion` settles races).

mod lease;

pub use lease::{Election, LeaderSettings, run};

use std::time::{Duration, SystemTime};

/// What the Lease says now (the fields the decision reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub holder: Option<String>,
    pub renewed: Option<SystemTime>,
    pub duration: Duration,
    pub transitions: i32,
}

/// What this replica does after reading the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nobody holds it (or the Lease does not exist): take it.
    Acquire,
    /// We hold it: write a fresh renew time.
    Renew,
    /// The holder's renewal has expired: take it over (a new transition).
    TakeOver { from: String },
    /// Someone else holds a live Lease: wait and look again.
    Follow { leader: String },
}

/// Decides what `me` does given the Lease as read at `now` (`None`: it does not exist).
pub fn decide(lease: Option<&LeaseView>, me: &str, now: SystemTime) -> Step {
    let Some(lease) = lease else {
        return Step::Acquire;
    };
    let holder = match lease.holder.as_deref() {
        None | Some("") => return Step::Acquire,
        Some(holder) => holder,
    };
    if holder == me {
        return Step::Renew;
    }
    let expired = match lease.renewed {
        // A Lease held but never renewed is as good as expired.
        None => true,
        Some(renewed) => now
            .duration_since(renewed)
            .is_ok_and(|age| age >= lease.duration),
    };
    if expired {
        Step::TakeOver {
            from: holder.to_owned(),
        }
    } else {
        Step::Follow {
            leader: holder.to_owned(),
        }
    }
}

/// Whether a leader that last renewed at `renewed` may still act at `now`: only while its
/// own renewal is younger than the lease duration (after that another replica may take it).
pub fn still_leading(renewed: SystemTime, duration: Duration, now: SystemTime) -> bool {
    now.duration_since(renewed)
        .map_or(true, |age| age < duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn held_by(holder: &str, renewed: SystemTime) -> LeaseView {
        LeaseView {
            holder: Some(holder.into()),
            renewed: Some(renewed),
            duration: 15 * SECOND,
            transitions: 3,
        }
    }

    #[test]
    fn a_missing_or_released_lease_is_acquired() {
        let now = SystemTime::UNIX_EPOCH + 1000 * SECOND;
        assert_eq!(decide(None, "a", now), Step::Acquire);
        let released = LeaseView {
            holder: Some(String::new()),
            ..held_by("x", now)
        };
        assert_eq!(decide(Some(&released), "a", now), Step::Acquire);
    }

    #[test]
    fn the_holder_renews_whatever_the_age() {
        let now = SystemTime::UNIX_EPOCH + 1000 * SECOND;
        assert_eq!(decide(Some(&held_by("a", now)), "a", now), Step::Renew);
        let old = held_by("a", now - 60 * SECOND);
        assert_eq!(decide(Some(&old), "a", now), Step::Renew);
    }

    #[test]
    fn a_live_lease_of_another_replica_is_followed() {
        let now = SystemTime::UNIX_EPOCH + 1000 * SECOND;
        let lease = held_by("b", now - 14 * SECOND);
        assert_eq!(
            decide(Some(&lease), "a", now),
            Step::Follow { leader: "b".into() }
        );
    }

    #[test]
    fn an_expired_lease_is_taken_over() {
        let now = SystemTime::UNIX_EPOCH + 1000 * SECOND;
        let lease = held_by("b", now - 15 * SECOND);
        assert_eq!(
            decide(Some(&lease), "a", now),
            Step::TakeOver { from: "b".into() }
        );
        let never_renewed = LeaseView {
            renewed: None,
            ..held_by("b", now)
        };
        assert_eq!(
            decide(Some(&never_renewed), "a", now),
            Step::TakeOver { from: "b".into() }
        );
    }

    #[test]
    fn a_renewal_from_the_future_counts_as_live() {
        // Clocks disagree a little between nodes: a renew time ahead of ours is fresh.
        let now = SystemTime::UNIX_EPOCH + 1000 * SECOND;
        let lease = held_by("b", now + 2 * SECOND);
        assert!(matches!(
            decide(Some(&lease), "a", now),
            Step::Follow { .. }
        ));
    }

    #[test]
    fn a_leader_stops_acting_once_its_renewal_is_a_duration_old() {
        let renewed = SystemTime::UNIX_EPOCH + 1000 * SECOND;
        assert!(still_leading(renewed, 15 * SECOND, renewed + 14 * SECOND));
        assert!(!still_leading(renewed, 15 * SECOND, renewed + 15 * SECOND));
    }
}
