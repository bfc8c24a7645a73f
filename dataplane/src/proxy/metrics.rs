//! Per-RPC Prometheus metrics, labelled by gRPC service and method (unknown methods arrive
//! as `"other"`, so cardinality stays bounded, as in gRPC's A66):
//!
//! | name | type | labels |
//! |------|------|--------|
//! | `weft_proxy_rpcs_total` | counter | [`RpcLabels`] |
//! | `weft_proxy_rpc_duration_seconds` | histogram (0.5 ms – 30 s) | [`RpcLabels`] |
//! | `weft_proxy_rpc_request_messages_total` | counter | [`RpcLabels`] |
//! | `weft_proxy_rpc_response_messages_total` | counter | [`RpcLabels`] |
//! | `weft_proxy_retries_total` | counter | `destination_service` |
//! | `weft_proxy_rpcs_in_flight` | gauge | `direction` |
//!
//! [`RpcLabels`] = `direction` (`outbound`/`inbound`), `destination_service`, `grpc_service`,
//! `grpc_method`, `grpc_code` (`OK`, `UNAVAILABLE`, …), `fault_injected` (`true`/`false`).
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
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination_service: String,
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
    retries: Family<DestinationLabels, Counter>,
    /// Indexed by `Direction as usize`.
    in_flight: [Gauge; 2],
    series: RwLock<HashMap<RpcLabels, Series>>,
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
            retries: Family::default(),
            in_flight: [gauge(Direction::Outbound), gauge(Direction::Inbound)],
            series: RwLock::default(),
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
            "weft_proxy_retries",
            "Retry attempts sent upstream",
            metrics.retries.clone(),
        );
        registry.register("weft_proxy_rpcs_in_flight", "RPCs being served", in_flight);
        metrics
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
