//! One simulated proxy's side of Delta ADS, as plain synchronous logic: what it asks for
//! first, and what it sends back for each response — like Envoy, it subscribes to
//! clusters and listeners by wildcard, ACKs every response, asks for the endpoints of every
//! cluster it is sent (and drops those of removed clusters), asks for the route
//! configuration its listener names (`outbound/<namespace>`, read from the namespace rather
//! than by decoding the listener), and then for the virtual hosts of the Services it calls
//! (VHDS, by authority, as an Envoy or weft-proxy does on its first RPC to each). Resource
//! bodies are never decoded.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};

pub use weft_common::xds::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE, VIRTUAL_HOST};
use weft_common::xds::vhds_resource_name;

/// A resource type by its short name, for events and expectations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XdsKind {
    Cds,
    Eds,
    Lds,
    Rds,
    Vhds,
}

impl XdsKind {
    pub fn from_type_url(url: &str) -> Option<Self> {
        match url {
            CLUSTER => Some(Self::Cds),
            ENDPOINT => Some(Self::Eds),
            LISTENER => Some(Self::Lds),
            ROUTE => Some(Self::Rds),
            VIRTUAL_HOST => Some(Self::Vhds),
            _ => None,
        }
    }
}

/// The simulated proxy's state.
#[derive(Debug)]
pub struct ProxySim {
    pub node_id: String,
    pub namespace: String,
    clusters: BTreeSet<String>,
    endpoints: BTreeSet<String>,
    has_listener: bool,
    has_routes: bool,
    /// The authorities it calls (their Services exist), those it also asks for before their
    /// Services exist (an app retrying a Service not deployed yet), and the virtual hosts
    /// it got (by name).
    calls: Vec<String>,
    awaited: Vec<String>,
    hosts: BTreeSet<String>,
}

impl ProxySim {
    /// A proxy in `namespace` whose app calls `calls` and `awaited` (authorities; only the
    /// former need a host to be synced).
    pub fn new(pod: &str, namespace: &str, calls: Vec<String>, awaited: Vec<String>) -> Self {
        Self {
            node_id: format!("{pod}.{namespace}"),
            namespace: namespace.to_string(),
            clusters: BTreeSet::new(),
            endpoints: BTreeSet::new(),
            has_listener: false,
            has_routes: false,
            calls,
            awaited,
            hosts: BTreeSet::new(),
        }
    }

    /// The first requests: clusters (carrying the node) and listeners, both wildcard.
    /// `outbound_addr` goes in node metadata (several simulated proxies share a machine).
    pub fn initial_requests(&self, outbound_addr: &str) -> Vec<DeltaDiscoveryRequest> {
        let metadata = Struct {
            fields: [(
                "outboundAddr".to_string(),
                Value {
                    kind: Some(Kind::StringValue(outbound_addr.to_string())),
                },
            )]
            .into(),
        };
        let node = Node {
            id: self.node_id.clone(),
            cluster: "weft-bench".into(),
            metadata: Some(metadata),
            ..Default::default()
        };
        vec![
            DeltaDiscoveryRequest {
                node: Some(node),
                type_url: CLUSTER.into(),
                ..Default::default()
            },
            DeltaDiscoveryRequest {
                type_url: LISTENER.into(),
                ..Default::default()
            },
        ]
    }

    /// The ACK of `response`, then any new subscriptions it calls for.
    pub fn on_response(&mut self, response: &DeltaDiscoveryResponse) -> Vec<DeltaDiscoveryRequest> {
        let mut out = vec![DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        }];
        match XdsKind::from_type_url(&response.type_url) {
            Some(XdsKind::Cds) => {
                let added: Vec<String> = response
                    .resources
                    .iter()
                    .filter(|r| self.clusters.insert(r.name.clone()))
                    .map(|r| r.name.clone())
                    .collect();
                let removed: Vec<String> = response
                    .removed_resources
                    .iter()
                    .filter(|name| self.clusters.remove(*name))
                    .cloned()
                    .collect();
                for name in &removed {
                    self.endpoints.remove(name);
                }
                if !added.is_empty() || !removed.is_empty() {
                    out.push(DeltaDiscoveryRequest {
                        type_url: ENDPOINT.into(),
                        resource_names_subscribe: added,
                        resource_names_unsubscribe: removed,
                        ..Default::default()
                    });
                }
            }
            Some(XdsKind::Eds) => {
                for r in &response.resources {
                    self.endpoints.insert(r.name.clone());
                }
            }
            Some(XdsKind::Lds) if !self.has_listener && !response.resources.is_empty() => {
                self.has_listener = true;
                out.push(DeltaDiscoveryRequest {
                    type_url: ROUTE.into(),
                    resource_names_subscribe: vec![format!("outbound/{}", self.namespace)],
                    ..Default::default()
                });
            }
            Some(XdsKind::Rds) if !self.has_routes && !response.resources.is_empty() => {
                self.has_routes = true;
                let route_config = format!("outbound/{}", self.namespace);
                out.push(DeltaDiscoveryRequest {
                    type_url: VIRTUAL_HOST.into(),
                    resource_names_subscribe: self
                        .calls
                        .iter()
                        .chain(&self.awaited)
                        .map(|authority| vhds_resource_name(&route_config, authority))
                        .collect(),
                    ..Default::default()
                });
            }
            Some(XdsKind::Vhds) => {
                for r in response.resources.iter().filter(|r| r.resource.is_some()) {
                    self.hosts.insert(r.name.clone());
                }
                for name in &response.removed_resources {
                    self.hosts.remove(name);
                }
            }
            Some(XdsKind::Lds | XdsKind::Rds) | None => {}
        }
        out
    }

    /// Whether it holds a complete config: clusters with all their endpoints, a listener,
    /// its routes and a virtual host per authority it calls.
    pub fn synced(&self) -> bool {
        self.has_listener
            && self.has_routes
            && self.hosts.len() >= self.calls.len()
            && !self.clusters.is_empty()
            && self.clusters.iter().all(|c| self.endpoints.contains(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::Resource;

    fn response(
        type_url: &str,
        nonce: &str,
        names: &[&str],
        removed: &[&str],
    ) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            type_url: type_url.into(),
            nonce: nonce.into(),
            resources: names
                .iter()
                .map(|n| Resource {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            removed_resources: removed.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn starts_with_wildcard_clusters_and_listeners() {
        let sim = ProxySim::new("p-1", "ns-2", vec![], vec![]);
        let first = sim.initial_requests("127.0.0.1:1");
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].node.as_ref().unwrap().id, "p-1.ns-2");
        assert!(first[0].resource_names_subscribe.is_empty());
        assert_eq!(
            (first[0].type_url.as_str(), first[1].type_url.as_str()),
            (CLUSTER, LISTENER)
        );
    }

    #[test]
    fn follows_clusters_and_listener_to_a_full_config() {
        let mut sim = ProxySim::new(
            "p",
            "ns-0",
            vec!["svc-0.ns-0:80".into()],
            vec!["x:80".into()],
        );
        let out = sim.on_response(&response(CLUSTER, "1", &["a", "b"], &[]));
        assert_eq!(out[0].response_nonce, "1");
        assert_eq!(out[1].type_url, ENDPOINT);
        assert_eq!(out[1].resource_names_subscribe, ["a", "b"]);
        assert_eq!(
            sim.on_response(&response(ENDPOINT, "2", &["a", "b"], &[]))
                .len(),
            1
        );
        let out = sim.on_response(&response(LISTENER, "3", &["outbound"], &[]));
        assert_eq!(out[1].resource_names_subscribe, ["outbound/ns-0"]);
        assert!(!sim.synced());
        let out = sim.on_response(&response(ROUTE, "4", &["outbound/ns-0"], &[]));
        assert_eq!(out[1].type_url, VIRTUAL_HOST);
        assert_eq!(
            out[1].resource_names_subscribe,
            ["outbound/ns-0/svc-0.ns-0:80", "outbound/ns-0/x:80"]
        );
        assert!(!sim.synced());
        let mut host = response(VIRTUAL_HOST, "4b", &["outbound/ns-0/svc-0"], &[]);
        host.resources[0].resource = Some(Default::default());
        sim.on_response(&host);
        assert!(sim.synced());
        // A second listener update does not subscribe again; a removed cluster is dropped.
        assert_eq!(
            sim.on_response(&response(LISTENER, "5", &["outbound"], &[]))
                .len(),
            1
        );
        let out = sim.on_response(&response(CLUSTER, "6", &[], &["b"]));
        assert_eq!(out[1].resource_names_unsubscribe, ["b"]);
        assert!(sim.synced());
    }
}
