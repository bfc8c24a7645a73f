//! Circuit breaking, Envoy's: per cluster, how many attempts are in flight and how many are
//! waiting for a connection, against the cluster's limits ([`CircuitBreakers`]). An attempt
//! past a limit is not sent; the proxy answers the call UNAVAILABLE itself
//! ([`overflow_message`]), and that answer is never retried (Envoy does not retry an
//! overflow).
//!
//! Counters are atomics: taking a slot is one `fetch_add` (and a `fetch_sub` when over the
//! limit), giving it back one `fetch_sub`. Racing attempts never get more slots than the
//! limit; the count read for the message may momentarily exceed it.
//!
//! [`CircuitBreakers`]: crate::config::CircuitBreakers

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Which circuit-breaker limit an attempt ran into (the `limit` label of
/// `weft_proxy_circuit_breaker_overflows_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `maxRequests`: attempts in flight.
    Requests,
    /// `maxPendingRequests`: attempts waiting for a connection.
    Pending,
}

impl Limit {
    pub const ALL: [Limit; 2] = [Limit::Requests, Limit::Pending];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Pending => "pending",
        }
    }
}

/// The user-visible message of an overflow: which cluster, how many were already in use,
/// and the limit by its API name, e.g. `weft-proxy: circuit breaker open for
/// greeter.default.svc.cluster.local:50051: 4 requests already in flight (maxRequests 4)`.
pub fn overflow_message(service: &str, limit: Limit, in_use: u32, max: u32) -> String {
    match limit {
        Limit::Requests => format!(
            "weft-proxy: circuit breaker open for {service}: {in_use} requests already in \
             flight (maxRequests {max})"
        ),
        Limit::Pending => format!(
            "weft-proxy: circuit breaker open for {service}: {in_use} requests already \
             waiting for a connection (maxPendingRequests {max})"
        ),
    }
}

/// How many of one resource are in use.
#[derive(Debug, Default)]
pub struct Resource(AtomicU32);

impl Resource {
    /// Takes one unless `max` or more are in use; `Err(in use)` then.
    pub fn try_acquire(&self, max: u32) -> Result<(), u32> {
        let before = self.0.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            self.0.fetch_sub(1, Ordering::AcqRel);
            return Err(before);
        }
        Ok(())
    }

    /// Gives back one taken with [`try_acquire`](Self::try_acquire).
    pub fn release(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn in_use(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

/// One cluster's circuit-breaker counters. `pool::Upstreams` keeps them by cluster name, so
/// they survive config updates that keep the name.
#[derive(Debug, Default)]
pub struct ClusterBreakers {
    /// Attempts in flight: from an attempt's start until its response stream ends.
    pub requests: Resource,
    /// Attempts waiting for a connection to be established.
    pub pending: Resource,
}

/// One attempt in flight in its cluster's `requests`, until dropped.
#[derive(Debug)]
pub struct RequestSlot(Arc<ClusterBreakers>);

impl RequestSlot {
    /// Takes a request slot of `breakers` unless `max` are in flight; `Err(in flight)`
    /// then.
    pub fn acquire(breakers: &Arc<ClusterBreakers>, max: u32) -> Result<Self, u32> {
        breakers.requests.try_acquire(max)?;
        Ok(Self(breakers.clone()))
    }
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.0.requests.release();
    }
}

/// An attempt's pending limit: its cluster's counter and limit.
#[derive(Debug, Clone, Copy)]
pub struct PendingLimit<'a> {
    pub breakers: &'a ClusterBreakers,
    pub max: u32,
}

/// One attempt waiting for a connection, until dropped.
#[derive(Debug)]
pub struct PendingSlot<'a>(&'a ClusterBreakers);

impl<'a> PendingSlot<'a> {
    /// Takes a pending slot unless the limit is reached; `Err(waiting)` then.
    pub fn acquire(limit: PendingLimit<'a>) -> Result<Self, u32> {
        limit.breakers.pending.try_acquire(limit.max)?;
        Ok(Self(limit.breakers))
    }
}

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        self.0.pending.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_admits_up_to_its_limit() {
        let resource = Resource::default();
        assert_eq!(resource.try_acquire(2), Ok(()));
        assert_eq!(resource.try_acquire(2), Ok(()));
        assert_eq!(resource.try_acquire(2), Err(2));
        assert_eq!(resource.in_use(), 2, "a refusal takes nothing");
        resource.release();
        assert_eq!(resource.try_acquire(2), Ok(()));
        assert_eq!(
            resource.try_acquire(3),
            Ok(()),
            "a raised limit applies at once"
        );
        assert_eq!(resource.in_use(), 3);
    }

    #[test]
    fn a_zero_limit_admits_nothing() {
        let resource = Resource::default();
        assert_eq!(resource.try_acquire(0), Err(0));
        assert_eq!(resource.in_use(), 0);
    }

    #[test]
    fn slots_give_back_when_dropped() {
        let breakers = Arc::new(ClusterBreakers::default());
        let first = RequestSlot::acquire(&breakers, 1).unwrap();
        assert_eq!(RequestSlot::acquire(&breakers, 1).unwrap_err(), 1);
        drop(first);
        assert_eq!(breakers.requests.in_use(), 0);
        let limit = PendingLimit {
            breakers: &breakers,
            max: 1,
        };
        let waiting = PendingSlot::acquire(limit).unwrap();
        assert_eq!(PendingSlot::acquire(limit).unwrap_err(), 1);
        assert_eq!(breakers.requests.in_use(), 0, "separate counters");
        drop(waiting);
        assert_eq!(breakers.pending.in_use(), 0);
    }

    #[test]
    fn racing_acquirers_never_exceed_the_limit() {
        let resource = Resource::default();
        let admitted = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        if resource.try_acquire(3).is_ok() {
                            let now = admitted.fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(now <= 3, "{now} admitted at once");
                            admitted.fetch_sub(1, Ordering::SeqCst);
                            resource.release();
                        }
                    }
                });
            }
        });
        assert_eq!(resource.in_use(), 0);
    }

    #[test]
    fn overflow_messages_name_the_cluster_and_the_limit() {
        let service = "greeter.default.svc.cluster.local:50051";
        assert_eq!(
            overflow_message(service, Limit::Requests, 4, 4),
            "weft-proxy: circuit breaker open for greeter.default.svc.cluster.local:50051: \
             4 requests already in flight (maxRequests 4)"
        );
        assert_eq!(
            overflow_message(service, Limit::Pending, 0, 0),
            "weft-proxy: circuit breaker open for greeter.default.svc.cluster.local:50051: \
             0 requests already waiting for a connection (maxPendingRequests 0)"
        );
        assert_eq!(Limit::Requests.as_str(), "requests");
        assert_eq!(Limit::Pending.as_str(), "pending");
    }
}
