//! Outlier detection, Envoy's consecutive-error kind: the state of one endpoint and what
//! each attempt's result does to it. Plain synchronous logic; time and randomness are
//! parameters. `pool` keeps one [`HostState`] per endpoint (behind a lock taken only for
//! clusters with outlier detection) and mirrors the ejection deadline in an atomic that
//! balancing reads; `outbound` says what each attempt came to.
//!
//! With Envoy's semantics (`outlier_detection_impl.cc`, errors not split by origin):
//! - every attempt's result is an HTTP status: the upstream's, or for a gRPC status in the
//!   response headers (Trailers-Only) its HTTP equivalent
//!   (`weft_common::grpc::http_status_for_code`); an answer with a body (HTTP 200, no
//!   `grpc-status` in the headers) is a success, whatever its trailers say. Connect failures,
//!   refused and reset streams count as 503, timeouts as 504;
//! - a 5xx adds one to the consecutive-5xx count; a 502, 503 or 504 also to the
//!   consecutive-gateway-failure count, any other 5xx zeroes that one; anything else zeroes
//!   both;
//! - a count reaching its threshold (0: never) is a detection, which zeroes that count. It
//!   ejects the endpoint if it is in service, ejecting it keeps the cluster's ejected share
//!   within `max_ejection_percent` (`100 × (ejected + 1) / endpoints`, or none ejected and
//!   `always_eject_one_host`), and the enforcing percentage draws true. Gateway failures are
//!   checked first, as Envoy posts them first;
//! - an ejection zeroes both counts and adds one to the endpoint's ejection count (Envoy's
//!   back-off: not past `max_ejection_time / base_ejection_time + 1`), and lasts
//!   `base_ejection_time × ejection count`, at most `max_ejection_time` (at least
//!   `base_ejection_time`), plus a random jitter up to `max_ejection_time_jitter`;
//! - the endpoint is back in service as soon as that time has passed, with both counts
//!   zeroed. Envoy finds out on its next interval tick; here it is found out lazily (the
//!   balancer compares the deadline with the clock, [`HostState::record`] settles it first),
//!   so an ejection does not outlast its time by up to an `interval`;
//! - each `interval` in service takes one off the ejection count (Envoy decrements it on each
//!   tick the endpoint is in service), so an endpoint that stays well returns to the base
//!   ejection time.

use std::time::Duration;

use crate::config::OutlierDetection;

/// How many of the cluster's endpoints are ejected now, and how many it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterView {
    pub ejected: usize,
    pub endpoints: usize,
}

/// Which count's detection ejected an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
}

/// An ejection: why, and until when (on the caller's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    pub cause: Cause,
    pub until: Duration,
}

/// One endpoint's outlier state. Times are on the caller's monotonic clock (a `Duration`
/// since some origin).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostState {
    consecutive_5xx: u32,
    consecutive_gateway_failure: u32,
    /// Envoy's ejection-time back-off: the multiple of `base_ejection_time` the next
    /// ejection lasts, minus one.
    ejections: u32,
    /// While ejected (or until settled after): when the ejection ends.
    ejected_until: Option<Duration>,
    /// Since when the ejection count has been decaying (the last return to service, moved on
    /// by whole intervals as the count goes down).
    decaying_since: Duration,
}

impl HostState {
    /// Whether the endpoint is ejected at `now`.
    pub fn is_ejected(&self, now: Duration) -> bool {
        self.ejected_until.is_some_and(|until| until > now)
    }

    /// The endpoint's ejection count, as of the last [`record`](Self::record).
    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    /// The consecutive 5xx and gateway failures counted so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.consecutive_5xx, self.consecutive_gateway_failure)
    }

    /// Records an attempt's result as HTTP `status` at `now`. `cluster` tells how many of the
    /// cluster's endpoints are ejected (asked only on a detection); `draw(n)` is uniform in
    /// `0..n` (for the enforcing percentage and the jitter). Returns the ejection it caused.
    pub fn record(
        &mut self,
        config: &OutlierDetection,
        status: u16,
        now: Duration,
        mut cluster: impl FnMut() -> ClusterView,
        mut draw: impl FnMut(u64) -> u64,
    ) -> Option<Ejection> {
        self.settle(now, config.interval);
        if !(500..=599).contains(&status) {
            self.consecutive_5xx = 0;
            self.consecutive_gateway_failure = 0;
            return None;
        }
        if matches!(status, 502..=504) {
            self.consecutive_gateway_failure = self.consecutive_gateway_failure.saturating_add(1);
        } else {
            self.consecutive_gateway_failure = 0;
        }
        self.consecutive_5xx = self.consecutive_5xx.saturating_add(1);

        let detections = [
            (
                Cause::ConsecutiveGatewayFailure,
                self.consecutive_gateway_failure,
                config.consecutive_gateway_failure,
                config.enforcing_consecutive_gateway_failure,
            ),
            (
                Cause::Consecutive5xx,
                self.consecutive_5xx,
                config.consecutive_5xx,
                config.enforcing_consecutive_5xx,
            ),
        ];
        for (cause, count, threshold, enforcing) in detections {
            if threshold == 0 || count < threshold {
                continue;
            }
            match cause {
                Cause::Consecutive5xx => self.consecutive_5xx = 0,
                Cause::ConsecutiveGatewayFailure => self.consecutive_gateway_failure = 0,
            }
            if self.is_ejected(now) {
                // A late answer from an endpoint already ejected.
                continue;
            }
            if may_eject(config, cluster()) && draw(100) < u64::from(enforcing) {
                let until = self.eject(config, now, &mut draw);
                return Some(Ejection { cause, until });
            }
        }
        None
    }

    /// Brings the state up to `now`: an ejection that has ended returns the endpoint to
    /// service with both counts zeroed, and each whole `interval` in service since takes one
    /// off the ejection count.
    fn settle(&mut self, now: Duration, interval: Duration) {
        if let Some(until) = self.ejected_until {
            if until > now {
                return;
            }
            self.ejected_until = None;
            self.consecutive_5xx = 0;
            self.consecutive_gateway_failure = 0;
            self.decaying_since = until;
        }
        if self.ejections == 0 || interval.is_zero() {
            return;
        }
        let elapsed = now.saturating_sub(self.decaying_since);
        let intervals = elapsed.as_nanos() / interval.as_nanos();
        let steps = u32::try_from(intervals)
            .unwrap_or(u32::MAX)
            .min(self.ejections);
        self.ejections -= steps;
        self.decaying_since += interval.saturating_mul(steps);
    }

    /// Ejects the endpoint at `now`; returns when the ejection ends.
    fn eject(
        &mut self,
        config: &OutlierDetection,
        now: Duration,
        draw: &mut impl FnMut(u64) -> u64,
    ) -> Duration {
        let base = config.base_ejection_time;
        let max = config.max_ejection_time.max(base);
        // Envoy's back-off stops growing once it is past the cap, so that it decays back
        // within a bounded time.
        if base.saturating_mul(self.ejections) < max.saturating_add(base) {
            self.ejections += 1;
        }
        let time = base.saturating_mul(self.ejections).min(max);
        let jitter_ms = u64::try_from(config.max_ejection_time_jitter.as_millis()).unwrap_or(0);
        let jitter = match jitter_ms {
            0 => Duration::ZERO,
            ms => Duration::from_millis(draw(ms.saturating_add(1))),
        };
        let until = now.saturating_add(time).saturating_add(jitter);
        self.ejected_until = Some(until);
        self.consecutive_5xx = 0;
        self.consecutive_gateway_failure = 0;
        until
    }
}

/// Whether ejecting one more endpoint keeps the cluster within `max_ejection_percent`
/// (`always_eject_one_host`: or none is ejected yet).
fn may_eject(config: &OutlierDetection, cluster: ClusterView) -> bool {
    let max_percent = config.max_ejection_percent.min(100) as usize;
    let ejected_percent_x_endpoints = cluster.ejected.saturating_add(1).saturating_mul(100);
    let within = ejected_percent_x_endpoints <= max_percent.saturating_mul(cluster.endpoints);
    within || (config.always_eject_one_host && cluster.ejected == 0)
}

#[cfg(test)]
#[path = "outlier_tests.rs"]
mod tests;
