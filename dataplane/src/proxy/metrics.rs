//! Per-RPC Prometheus metrics, labelled by gRPC service and method (unknown methods arrive
//! as `"other"`, so cardinality stays bounded, as in gRPC's A66):
//!
//! | name | type | labels |
//! |------|------|--------|
//! | `weft_proxy_rpcs_total` | counter | [`RpcLabels`] |
//! | `weft_proxy_rpc_duration_seconds` | histogram (0.5 ms – 30 s) | [`RpcLabels`] |
//! | `weft_proxy_rpc_request_messages_total` | counter | [`RpcLabels`] |
//! | `weft_proxy_rpc_response_messages_total` | counter | [`RpcLabels`] |
//! | `weft_proxy_rpc_timeouts_total` | counter | `direction`, `destination_service`, `grpc_service`, `grpc_method`, `cause` ([`TimeoutCause`]: `client_deadline`, `route_timeout`, `per_try_timeout`, `upstream`) |
//! | `weft_proxy_retries_total` | counter | `destination_service` |
//! | `weft_proxy_outlier_ejections_total` | counter | `destination_service` (the cluster's) |
//! | `weft_proxy_circuit_breaker_overflows_total` | counter | `destination_service` (the cluster's), `limit` (`requests`/`pending`) |
//! | `weft_proxy_vhds_requests_total` | counter | `outcome` ([`VhdsOutcome`]) |
//! | `weft_proxy_rpcs_in_flight` | gauge | `direction` |
//! | `weft_proxy_inbound_connections_total` | counter | `connection_security` |
//! | `weft_proxy_inbound_connections_refused_total` | counter | `reason` ([`Refusal`]) |
//! | `weft_proxy_certificate_expiry_timestamp_seconds` | gauge | (none; 0 before the first certificate) |
//!
//! [`RpcLabels`] = `direction` (`outbound`/`inbound`), `destination_service`, `grpc_service`,
//! `grpc_method`, `grpc_code` (`OK`, `UNAVAILABLE`, …), `fault_injected` (`true`/`false`),
//! `connection_security` (`mtls`/`plaintext`/`unknown`: inbound, how the caller's connection
//! was secured; outbound, how the connection to the chosen endpoint is, `unknown` when the
//! proxy answered before choosing one) and `peer_identity` (inbound over mTLS, the caller's
//! SPIFFE id; otherwise `unknown`, as Istio's `source_principal`; bounded by the number of
//! service accounts), and `protocol` (what the client spoke: `grpc`, or through a web
//! listener `grpc-web` or `grpc-web-text`).
//! An RPC is recorded once, when it ends. The four per-RPC series of a label set are looked up
//! together through one cache, so a finished RPC costs one hash lookup, not four.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::access_log::{AccessLog, Destination};
use super::breaker::Limit;
use super::deadline::TimeoutCause;

/// Which of the proxy's stacks served the RPC.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Direction {
    /// Sent by the local app.
    Outbound,
    /// Sent to the local app.
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// How an RPC's connection was secured (see the module comment).
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
pub enum Security {
    Mtls,
    Plaintext,
    #[default]
    Unknown,
}

impl Security {
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Mtls => "mtls",
            Security::Plaintext => "plaintext",
            Security::Unknown => "unknown",
        }
    }
}

impl EncodeLabelValue for Security {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// The peer identity label when there is none.
pub const UNKNOWN_PEER: &str = "unknown";
/// The destination of RPCs the proxy answered before routing them.
pub const UNKNOWN_DESTINATION: &str = "unknown";

/// The labels of one RPC's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub direction: Direction,
    pub destination_service: String,
    pub grpc_service: String,
    pub grpc_method: String,
    /// The canonical code name (`grpc::code_name`).
    pub grpc_code: String,
    pub fault_injected: bool,
    pub connection_security: Security,
    pub peer_identity: String,
    pub protocol: Protocol,
}

/// What the client spoke: gRPC, or gRPC-Web (binary or base64 text) through a web listener.
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Grpc,
    GrpcWeb,
    GrpcWebText,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc-web",
            Protocol::GrpcWebText => "grpc-web-text",
        }
    }
}

impl EncodeLabelValue for Protocol {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination_service: String,
}

impl EncodeLabelValue for Limit {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// How an outbound RPC whose virtual host had to come over VHDS fared (an RPC is counted
/// when the held config could not route it at once).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum VhdsOutcome {
    /// A virtual host answered its authority (and its route's clusters had endpoints).
    Found,
    /// No host serves the authority: the server said so, now or shortly before.
    NotFound,
    /// Nothing usable arrived within the hold (`on_demand::HOLD_LIMIT`).
    Timeout,
}

impl EncodeLabelValue for VhdsOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(match self {
            VhdsOutcome::Found => "found",
            VhdsOutcome::NotFound => "not_found",
            VhdsOutcome::Timeout => "timeout",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VhdsLabels {
    outcome: VhdsOutcome,
}

impl EncodeLabelValue for TimeoutCause {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    direction: Direction,
    destination_service: String,
    grpc_service: String,
    grpc_method: String,
    cause: TimeoutCause,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OverflowLabels {
    destination_service: String,
    limit: Limit,
}

/// Upper bounds of the latency histogram, in seconds: 0.5 ms to 30 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The series one label set records into (each a shared handle into its family).
struct Series {
    rpcs: Counter,
    duration: Histogram,
    request_messages: Counter,
    response_messages: Counter,
}

/// The proxy's per-RPC metrics, shared by every connection.
pub struct ProxyMetrics {
    rpcs: Family<RpcLabels, Counter>,
    duration: Family<RpcLabels, Histogram, fn() -> Histogram>,
    request_messages: Family<RpcLabels, Counter>,
    response_messages: Family<RpcLabels, Counter>,
    timeouts: Family<TimeoutLabels, Counter>,
    retries: Family<DestinationLabels, Counter>,
    ejections: Family<DestinationLabels, Counter>,
    overflows: Family<OverflowLabels, Counter>,
    vhds: Family<VhdsLabels, Counter>,
    /// Indexed by `Direction as usize`.
    in_flight: [Gauge; 2],
    series: RwLock<HashMap<RpcLabels, Series>>,
    /// The per-RPC access log, when `--access-log` turned it on.
    access_log: Option<AccessLog>,
}

impl ProxyMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let in_flight = Family::<DirectionLabels, Gauge>::default();
        // Both directions exist (at 0) from the start.
        let gauge = |direction| in_flight.get_or_create_owned(&DirectionLabels { direction });
        let metrics = Self {
            rpcs: Family::default(),
            duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            request_messages: Family::default(),
            response_messages: Family::default(),
            timeouts: Family::default(),
            retries: Family::default(),
            ejections: Family::default(),
            overflows: Family::default(),
            vhds: Family::default(),
            in_flight: [gauge(Direction::Outbound), gauge(Direction::Inbound)],
            series: RwLock::default(),
            access_log: None,
        };
        registry.register(
            "weft_proxy_rpcs",
            "RPCs the proxy finished",
            metrics.rpcs.clone(),
        );
        registry.register_with_unit(
            "weft_proxy_rpc_duration",
            "Time from receiving an RPC to the end of its response",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "weft_proxy_rpc_request_messages",
            "gRPC messages the client sent in finished RPCs",
            metrics.request_messages.clone(),
        );
        registry.register(
            "weft_proxy_rpc_response_messages",
            "gRPC messages the server sent in finished RPCs",
            metrics.response_messages.clone(),
        );
        registry.register(
            "weft_proxy_rpc_timeouts",
            "RPCs ended by a deadline or timeout, by whose (cause)",
            metrics.timeouts.clone(),
        );
        registry.register(
            "weft_proxy_retries",
            "Retry attempts sent upstream",
            metrics.retries.clone(),
        );
        registry.register(
            "weft_proxy_outlier_ejections",
            "Endpoints ejected by outlier detection",
            metrics.ejections.clone(),
        );
        registry.register(
            "weft_proxy_circuit_breaker_overflows",
            "Attempts refused by a cluster's circuit breaker, by limit",
            metrics.overflows.clone(),
        );
        registry.register(
            "weft_proxy_vhds_requests",
            "Outbound RPCs that waited for their virtual host over VHDS, by outcome",
            metrics.vhds.clone(),
        );
        registry.register("weft_proxy_rpcs_in_flight", "RPCs being served", in_flight);
        metrics
    }

    /// Turns on the access log (`--access-log`); entries it drops are counted in
    /// `weft_proxy_access_log_dropped_total`.
    pub fn with_access_log(
        mut self,
        registry: &mut Registry,
        destination: &Destination,
        sample: f64,
    ) -> std::io::Result<Self> {
        let dropped = Counter::default();
        registry.register(
            "weft_proxy_access_log_dropped",
            "Access log entries dropped because the log's destination could not keep up",
            dropped.clone(),
        );
        self.access_log = Some(AccessLog::open(destination, sample, dropped)?);
        Ok(self)
    }

    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref()
    }

    /// Drops every outbound series of the destination Services `keep` rejects (a Service
    /// removed from the config), so a dashboard stops listing them and memory stays bounded.
    /// Inbound series and `unknown` (RPCs answered before routing) always stay.
    pub fn retain_destinations(&self, keep: impl Fn(&str) -> bool) {
        let mut cache = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<RpcLabels> = cache
            .keys()
            .filter(|l| l.direction == Direction::Outbound)
            .filter(|l| l.destination_service != UNKNOWN_DESTINATION)
            .filter(|l| !keep(&l.destination_service))
            .cloned()
            .collect();
        let mut services = std::collections::HashSet::new();
        for labels in &gone {
            cache.remove(labels);
            self.rpcs.remove(labels);
            self.duration.remove(labels);
            self.request_messages.remove(labels);
            self.response_messages.remove(labels);
            for cause in TimeoutCause::ALL {
                self.timeouts.remove(&TimeoutLabels {
                    direction: labels.direction,
                    destination_service: labels.destination_service.clone(),
                    grpc_service: labels.grpc_service.clone(),
                    grpc_method: labels.grpc_method.clone(),
                    cause,
                });
            }
            services.insert(labels.destination_service.clone());
        }
        for destination_service in services {
            let destination = DestinationLabels {
                destination_service,
            };
            self.retries.remove(&destination);
            self.ejections.remove(&destination);
            for limit in Limit::ALL {
                self.overflows.remove(&OverflowLabels {
                    destination_service: destination.destination_service.clone(),
                    limit,
                });
            }
        }
    }

    /// Counts an RPC a deadline or timeout ended, under `cause`.
    pub fn timed_out(&self, labels: &RpcLabels, cause: TimeoutCause) {
        self.timeouts
            .get_or_create(&TimeoutLabels {
                direction: labels.direction,
                destination_service: labels.destination_service.clone(),
                grpc_service: labels.grpc_service.clone(),
                grpc_method: labels.grpc_method.clone(),
                cause,
            })
            .inc();
    }

    /// Records one finished RPC: its count, latency and message counts each way.
    pub fn record(
        &self,
        labels: &RpcLabels,
        latency: Duration,
        request_messages: u64,
        response_messages: u64,
    ) {
        let record = |series: &Series| {
            series.rpcs.inc();
            series.duration.observe(latency.as_secs_f64());
            series.request_messages.inc_by(request_messages);
            series.response_messages.inc_by(response_messages);
        };
        {
            let cache = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = cache.get(labels) {
                record(series);
                return;
            }
        }
        // First RPC with these labels: create its series in every family.
        let series = Series {
            rpcs: self.rpcs.get_or_create_owned(labels),
            duration: self.duration.get_or_create_owned(labels),
            request_messages: self.request_messages.get_or_create_owned(labels),
            response_messages: self.response_messages.get_or_create_owned(labels),
        };
        record(&series);
        let mut cache = self.series.write().unwrap_or_else(PoisonError::into_inner);
        cache.entry(labels.clone()).or_insert(series);
    }

    /// Counts one retry towards `destination_service`.
    pub fn retry(&self, destination_service: &str) {
        let labels = DestinationLabels {
            destination_service: destination_service.to_owned(),
        };
        self.retries.get_or_create(&labels).inc();
    }

    /// Counts one endpoint of `destination_service` ejected by outlier detection.
    pub fn outlier_ejection(&self, destination_service: &str) {
        let labels = DestinationLabels {
            destination_service: destination_service.to_owned(),
        };
        self.ejections.get_or_create(&labels).inc();
    }

    /// Counts one attempt to `destination_service` refused by its circuit breaker's `limit`.
    pub fn circuit_breaker_overflow(&self, destination_service: &str, limit: Limit) {
        let labels = OverflowLabels {
            destination_service: destination_service.to_owned(),
            limit,
        };
        self.overflows.get_or_create(&labels).inc();
    }

    /// Counts one RPC that needed its virtual host over VHDS, by how that went.
    pub fn vhds_request(&self, outcome: VhdsOutcome) {
        self.vhds.get_or_create(&VhdsLabels { outcome }).inc();
    }

    /// Counts an RPC as in flight until the returned guard is dropped.
    pub fn in_flight(&self, direction: Direction) -> InFlightGauge {
        let gauge = self.in_flight[direction as usize].clone();
        gauge.inc();
        InFlightGauge(gauge)
    }
}

/// Holds one RPC in `weft_proxy_rpcs_in_flight` until dropped.
pub struct InFlightGauge(Gauge);

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;

/// Why an inbound connection was refused before any RPC on it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Refusal {
    /// A plaintext client where the MtlsPolicy says `Strict`.
    PlaintextUnderStrict,
    /// A TLS client where the MtlsPolicy says `Disable`.
    TlsUnderDisable,
    /// A TLS client before this proxy has a certificate to answer with.
    NoCertificate,
    /// The TLS handshake failed or timed out (no client certificate, one from another
    /// trust domain, an expired one, ...).
    HandshakeFailed,
}

impl EncodeLabelValue for Refusal {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(match self {
            Refusal::PlaintextUnderStrict => "plaintext_under_strict",
            Refusal::TlsUnderDisable => "tls_under_disable",
            Refusal::NoCertificate => "no_certificate",
            Refusal::HandshakeFailed => "handshake_failed",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecurityLabels {
    connection_security: Security,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: Refusal,
}

/// Inbound connection admission and the workload certificate.
pub struct MtlsMetrics {
    admitted: Family<SecurityLabels, Counter>,
    refused: Family<RefusalLabels, Counter>,
    certificate_expiry: Gauge,
}

impl MtlsMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            admitted: Family::default(),
            refused: Family::default(),
            certificate_expiry: Gauge::default(),
        };
        registry.register(
            "weft_proxy_inbound_connections",
            "Inbound connections admitted, by how they are secured",
            metrics.admitted.clone(),
        );
        registry.register(
            "weft_proxy_inbound_connections_refused",
            "Inbound connections refused before any RPC, by reason",
            metrics.refused.clone(),
        );
        registry.register(
            "weft_proxy_certificate_expiry_timestamp_seconds",
            "When the proxy's workload certificate expires (Unix time; 0 before the first)",
            metrics.certificate_expiry.clone(),
        );
        metrics
    }

    pub fn admitted(&self, mtls: bool) {
        let connection_security = if mtls {
            Security::Mtls
        } else {
            Security::Plaintext
        };
        self.admitted
            .get_or_create(&SecurityLabels {
                connection_security,
            })
            .inc();
    }

    pub fn refused(&self, reason: Refusal) {
        self.refused.get_or_create(&RefusalLabels { reason }).inc();
    }

    pub fn certificate_expires(&self, at: std::time::SystemTime) {
        let secs = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        });
        self.certificate_expiry.set(secs);
    }
}
