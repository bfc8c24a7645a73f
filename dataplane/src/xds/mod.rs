//! The xDS client: one ADS stream to the controller (Delta by default, State-of-the-World
//! when asked or when the server lacks Delta), subscribing LDS and CDS by wildcard, RDS
//! and EDS by the names the listeners and clusters refer to, and (Delta only) VHDS by the
//! names RPCs need, as the data path asks. Every accepted update is
//! converted (`config::parse_*`), assembled and published on a `watch`; a bad update is
//! NACKed with the reason and the last good config stays in force, also while the
//! controller is unreachable.
//!
//! `state` holds the converted resources; `delta` and `sotw` are the protocol logic as
//! plain synchronous code; `client` is the thin tonic loop around them; `backoff` paces
//! reconnects; `metrics` reports connection and update counts.

mod backoff;
mod client;
mod control_plane;
mod delta;
mod metrics;
mod sotw;
mod state;
#[cfg(test)]
mod testutil;

pub use client::{spawn, spawn_with_demands};
pub use control_plane::{ControlPlane, ControlPlaneError};
pub use metrics::{ConfigInfoLabels, UpdateLabels, XdsMetrics};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};

use crate::{Settings, XdsProtocol};

/// Where and how the client talks xDS.
#[derive(Debug, Clone)]
pub struct XdsSettings {
    /// The controller: its ADS endpoint, TLS and token.
    pub control_plane: ControlPlane,
    /// Who this proxy is (sent in the first request of every stream).
    pub node: Node,
    pub protocol: XdsProtocol,
}

impl XdsSettings {
    /// The xDS settings from the proxy's flags.
    pub fn from_settings(settings: &Settings, control_plane: ControlPlane) -> Self {
        Self {
            control_plane,
            node: node_from(settings),
            protocol: settings.xds_protocol,
        }
    }
}

/// The xDS `Node` of this proxy: id `<pod>.<namespace>`, user agent `weft-proxy` and its
/// version, and metadata the controller translates with: namespace, serviceAccount and the
/// outbound, inbound and app addresses (strings), and when given the web listener's address
/// (`webAddr`), the pod IP (`podIP`) and the
/// workload's labels (`labels`, a map of strings, for MtlsPolicy selectors).
pub fn node_from(settings: &Settings) -> Node {
    let mut metadata: Vec<(&str, Kind)> = [
        ("namespace", settings.namespace().to_string()),
        ("serviceAccount", settings.service_account.clone()),
        ("outboundAddr", settings.outbound_addr.to_string()),
        ("inboundAddr", settings.inbound_addr.to_string()),
        ("appAddr", settings.app_addr.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key, Kind::StringValue(value)))
    .collect();
    if let Some(ip) = settings.pod_ip {
        metadata.push(("podIP", Kind::StringValue(ip.to_string())));
    }
    if let Some(addr) = settings.web_addr {
        metadata.push(("webAddr", Kind::StringValue(addr.to_string())));
    }
    if !settings.workload_labels.is_empty() {
        let labels = settings
            .workload_labels
            .iter()
            .map(|(key, value)| (key.clone(), string_value(value.clone())))
            .collect();
        metadata.push(("labels", Kind::StructValue(Struct { fields: labels })));
    }
    Node {
        id: settings.node_id.clone(),
        user_agent_name: "weft-proxy".into(),
        user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion(
            env!("CARGO_PKG_VERSION").into(),
        )),
        metadata: Some(Struct {
            fields: metadata
                .into_iter()
                .map(|(key, kind)| (key.to_string(), Value { kind: Some(kind) }))
                .collect(),
        }),
        ..Default::default()
    }
}

fn string_value(value: String) -> Value {
    Value {
        kind: Some(Kind::StringValue(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn node_carries_identity_and_addresses() {
        let settings = Settings::try_parse_from([
            "weft-proxy",
            "--node-id",
            "greeter-1.shop",
            "--service-account",
            "greeter",
            "--outbound-addr",
            "127.0.0.1:7001",
        ])
        .unwrap();
        let node = node_from(&settings);
        assert_eq!(node.id, "greeter-1.shop");
        assert_eq!(node.user_agent_name, "weft-proxy");
        let fields = &node.metadata.as_ref().unwrap().fields;
        let get = |key: &str| match fields.get(key).and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(s)) => s.clone(),
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(get("namespace"), "shop");
        assert_eq!(get("serviceAccount"), "greeter");
        assert_eq!(get("outboundAddr"), "127.0.0.1:7001");
        assert_eq!(get("inboundAddr"), "127.0.0.1:15006");
        assert_eq!(get("appAddr"), "127.0.0.1:8080");
        let xds = XdsSettings::from_settings(&settings, settings.control_plane().unwrap());
        assert_eq!(xds.protocol, XdsProtocol::Auto);
        assert_eq!(xds.control_plane.server, "http://127.0.0.1:15010");
    }
}
