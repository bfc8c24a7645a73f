//! ADS metrics: connected proxies, pushes and NACKs by type, push-to-ACK latency. They are
//! registered under the controller's `weft_controller_` prefix.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::types::ResourceType;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    pub r#type: &'static str,
}

impl From<ResourceType> for TypeLabels {
    fn from(ty: ResourceType) -> Self {
        Self {
            r#type: ty.short_name(),
        }
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

#[derive(Debug)]
pub struct AdsMetrics {
    pub connected_proxies: Gauge,
    pub pushes: Family<TypeLabels, Counter>,
    pub nacks: Family<TypeLabels, Counter>,
    pub push_to_ack_seconds: Family<TypeLabels, Histogram, fn() -> Histogram>,
}

impl AdsMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            connected_proxies: Gauge::default(),
            pushes: Family::default(),
            nacks: Family::default(),
            push_to_ack_seconds: Family::new_with_constructor(latency_histogram),
        };
        // Every type's NACK counter exists from the start at 0, so the first NACK is an
        // increase Prometheus sees (a series born at 1 has no increase).
        for ty in ResourceType::PUSH_ORDER {
            metrics.nacks.get_or_create_owned(&ty.into());
        }
        registry.register(
            "xds_connected_proxies",
            "ADS streams currently open",
            metrics.connected_proxies.clone(),
        );
        registry.register(
            "xds_pushes",
            "xDS responses sent, by type",
            metrics.pushes.clone(),
        );
        registry.register(
            "xds_nacks",
            "xDS updates rejected by proxies, by type",
            metrics.nacks.clone(),
        );
        registry.register(
            "xds_push_to_ack_seconds",
            "Time from sending an xDS response to its ACK, by type",
            metrics.push_to_ack_seconds.clone(),
        );
        metrics
    }

    pub fn observe_ack(&self, ty: ResourceType, latency: Duration) {
        self.push_to_ack_seconds
            .get_or_create(&ty.into())
            .observe(latency.as_secs_f64());
    }
}
