//! xDS client metrics: whether the proxy is connected to its controller, how often it
//! (re)connected, every update it accepted or rejected by type, and the version of each type
//! in force.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::state::{Verdict, short_name};
use crate::config::ResourceKind;

/// `weft_proxy_xds_updates_total{type, result}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpdateLabels {
    /// The resource's message name: `Listener`, `RouteConfiguration`, `Cluster`,
    /// `ClusterLoadAssignment`, `VirtualHost` (or `unknown`).
    pub r#type: &'static str,
    /// `ack` or `nack`.
    pub result: &'static str,
}

/// `weft_proxy_xds_config_info{type, version}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigInfoLabels {
    pub r#type: &'static str,
    pub version: String,
}

#[derive(Debug, Default)]
pub struct XdsMetrics {
    /// 1 while an ADS stream is open.
    pub connected: Gauge,
    /// ADS streams opened.
    pub connects: Counter,
    pub updates: Family<UpdateLabels, Counter>,
    pub config_info: Family<ConfigInfoLabels, Gauge>,
    /// The version each type's `config_info` series shows now.
    shown: Mutex<BTreeMap<ResourceKind, String>>,
}

impl XdsMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "weft_proxy_xds_connected",
            "1 while the proxy has an open ADS stream to its controller",
            metrics.connected.clone(),
        );
        registry.register(
            "weft_proxy_xds_connects",
            "ADS streams opened to the controller",
            metrics.connects.clone(),
        );
        registry.register(
            "weft_proxy_xds_updates",
            "xDS responses by type and result (ack: applied; nack: rejected, old config kept)",
            metrics.updates.clone(),
        );
        registry.register(
            "weft_proxy_xds_config_info",
            "The xDS version in force per type (always 1)",
            metrics.config_info.clone(),
        );
        metrics
    }

    /// Counts one ACK or NACK.
    pub fn record_verdict(&self, verdict: &Verdict) {
        let result = if verdict.rejected.is_some() {
            "nack"
        } else {
            "ack"
        };
        self.updates
            .get_or_create(&UpdateLabels {
                r#type: verdict.type_name,
                result,
            })
            .inc();
    }

    /// Shows `versions` in `config_info`, removing the series of versions replaced.
    pub fn record_versions(&self, versions: &BTreeMap<ResourceKind, String>) {
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        for (kind, version) in versions {
            if shown.get(kind) == Some(version) {
                continue;
            }
            if let Some(old) = shown.insert(*kind, version.clone()) {
                self.config_info.remove(&ConfigInfoLabels {
                    r#type: short_name(*kind),
                    version: old,
                });
            }
            self.config_info
                .get_or_create(&ConfigInfoLabels {
                    r#type: short_name(*kind),
                    version: version.clone(),
                })
                .set(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn names_labels_and_version_replacement() {
        let mut registry = Registry::default();
        let metrics = XdsMetrics::register(&mut registry);
        metrics.connected.set(1);
        metrics.connects.inc();
        metrics.record_verdict(&Verdict::of(Some(ResourceKind::Cluster), None));
        metrics.record_verdict(&Verdict::of(Some(ResourceKind::Route), Some("bad".into())));
        metrics.record_versions(&BTreeMap::from([(ResourceKind::Cluster, "v1".into())]));
        metrics.record_versions(&BTreeMap::from([(ResourceKind::Cluster, "v2".into())]));
        let out = text(&registry);
        for line in [
            "weft_proxy_xds_connected 1",
            "weft_proxy_xds_connects_total 1",
            "weft_proxy_xds_updates_total{type=\"Cluster\",result=\"ack\"} 1",
            "weft_proxy_xds_updates_total{type=\"RouteConfiguration\",result=\"nack\"} 1",
            "weft_proxy_xds_config_info{type=\"Cluster\",version=\"v2\"} 1",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
        assert!(!out.contains("version=\"v1\""), "{out}");
    }
}
