//! One ClusterLoadAssignment per Service port, from the Service's EndpointSlices: ready
//! endpoints (first address) with the slice port named like the Service port. An endpoint
//! run by a connected proxy that accepts mutual TLS carries the metadata
//! `envoy.transport_socket_match: {tlsMode: weft}`, which picks the cluster's mTLS transport
//! socket (`tls.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, Metadata, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::services::{ServiceEntry, ServicePort};
use super::tls::{TRANSPORT_SOCKET_MATCH, tls_mode_weft};
use super::workloads::MtlsTargets;
use crate::model::Index;

/// The label that ties an EndpointSlice to its Service.
pub(super) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// EndpointSlices by (namespace, Service name).
#[derive(Debug, Default)]
pub(super) struct SlicesByService<'a> {
    slices: BTreeMap<(String, String), Vec<&'a EndpointSlice>>,
}

impl<'a> SlicesByService<'a> {
    /// Groups the IP EndpointSlices of the index by their Service; FQDN slices are skipped
    /// (an EDS cluster needs addresses) with a warning.
    pub fn build(index: &'a Index, warnings: &mut Vec<String>) -> Self {
        let mut slices: BTreeMap<(String, String), Vec<&'a EndpointSlice>> = BTreeMap::new();
        for slice in index.endpoint_slices() {
            let meta = &slice.metadata;
            let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
            let Some(service) = meta.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
                continue;
            };
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                warnings.push(format!(
                    "EndpointSlice {namespace}/{} skipped: addressType {} is not supported",
                    meta.name.as_deref().unwrap_or_default(),
                    slice.address_type
                ));
                continue;
            }
            slices
                .entry((namespace, service.clone()))
                .or_default()
                .push(slice);
        }
        Self { slices }
    }

    fn of(&self, service: &ServiceEntry) -> &[&'a EndpointSlice] {
        let key = (service.namespace.clone(), service.name.clone());
        self.slices.get(&key).map_or(&[], Vec::as_slice)
    }
}

/// The endpoints of `port` of `service`, sorted and without duplicates (so the same
/// endpoints always encode the same). Empty when there are none: Envoy then has a cluster
/// with no hosts, and RPCs to it fail with UNAVAILABLE. Endpoints in `mtls` are marked.
pub(super) fn load_assignment(
    cluster: &str,
    service: &ServiceEntry,
    port: &ServicePort,
    slices: &SlicesByService<'_>,
    mtls: &MtlsTargets,
) -> ClusterLoadAssignment {
    let mut addresses = BTreeSet::new();
    for slice in slices.of(service) {
        let Some(number) = slice_port(slice, port, service.ports.len() == 1) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false);
            let ip = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<IpAddr>().ok());
            if let (true, Some(ip)) = (ready, ip) {
                addresses.insert(SocketAddr::new(ip, number));
            }
        }
    }
    let lb_endpoints: Vec<LbEndpoint> = addresses
        .into_iter()
        .map(|addr| lb_endpoint(addr, mtls.contains(addr)))
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster.to_owned(),
        endpoints: if lb_endpoints.is_empty() {
            vec![]
        } else {
            vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

/// The slice's port for `port`: the one with the same name (absent and empty names are
/// equal), or, when the Service has only this port, the slice's only port.
fn slice_port(slice: &EndpointSlice, port: &ServicePort, only_port: bool) -> Option<u16> {
    let ports = slice.ports.as_deref().unwrap_or_default();
    let name = |n: &Option<String>| n.clone().filter(|s| !s.is_empty());
    let named = ports.iter().find(|p| name(&p.name) == port.name);
    let chosen = match (named, ports) {
        (Some(p), _) => p,
        (None, [only]) if only_port => only,
        _ => return None,
    };
    chosen
        .port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

pub(super) fn socket_address(addr: SocketAddr) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(addr.port()))),
            ..Default::default()
        })),
    }
}

/// An endpoint at `addr`; `mtls`: marked `{tlsMode: weft}` (a proxy accepting mutual TLS
/// runs there).
pub(super) fn lb_endpoint(addr: SocketAddr, mtls: bool) -> LbEndpoint {
    let metadata = mtls.then(|| Metadata {
        filter_metadata: HashMap::from([(TRANSPORT_SOCKET_MATCH.to_owned(), tls_mode_weft())]),
        typed_filter_metadata: HashMap::new(),
    });
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket_address(addr)),
            ..Default::default()
        })),
        metadata,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::services::Catalog;
    use crate::translate::testutil::{index, service_yaml};

    fn slice(name: &str, service: &str, ports: &str, endpoints: &str) -> String {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}, namespace: default, labels: {{{SERVICE_NAME_LABEL}: {service}}}}}\n\
             addressType: IPv4\nports: {ports}\nendpoints: {endpoints}\n"
        )
    }

    /// The endpoint addresses of each port of Service `name`.
    fn endpoints_of(yaml: &str, name: &str) -> Vec<(u16, Vec<String>)> {
        let index = index(yaml);
        let mut warnings = vec![];
        let catalog = Catalog::build(&index, &mut warnings);
        let slices = SlicesByService::build(&index, &mut warnings);
        let service = catalog.get("default", name).unwrap();
        service
            .ports
            .iter()
            .map(|port| {
                let cla = load_assignment("c", service, port, &slices, &MtlsTargets::default());
                let addrs = cla
                    .endpoints
                    .iter()
                    .flat_map(|l| &l.lb_endpoints)
                    .map(|e| match &e.host_identifier {
                        Some(HostIdentifier::Endpoint(Endpoint {
                            address: Some(a), ..
                        })) => match &a.address {
                            Some(AddressKind::SocketAddress(s)) => match s.port_specifier {
                                Some(PortSpecifier::PortValue(p)) => format!("{}:{p}", s.address),
                                _ => panic!(),
                            },
                            _ => panic!(),
                        },
                        _ => panic!(),
                    })
                    .collect();
                (port.port, addrs)
            })
            .collect()
    }

    #[test]
    fn ready_endpoints_with_the_named_slice_port() {
        let yaml = [
            service_yaml("default", "a", &[("grpc", 80), ("admin", 81)]),
            slice(
                "a-1",
                "a",
                "[{name: admin, port: 9901}, {name: grpc, port: 8080}]",
                "[{addresses: [10.0.0.2]}, {addresses: [10.0.0.1, 10.9.9.9], conditions: {ready: true}}, \
                 {addresses: [10.0.0.3], conditions: {ready: false}}]",
            ),
            slice("a-2", "a", "[{name: grpc, port: 8080}]", "[{addresses: [10.0.0.1]}, {addresses: [10.0.0.4]}]"),
            slice("b-1", "b", "[{name: grpc, port: 7}]", "[{addresses: [10.0.0.9]}]"),
        ]
        .join("---\n");
        assert_eq!(
            endpoints_of(&yaml, "a"),
            [
                (
                    80,
                    vec![
                        "10.0.0.1:8080".into(),
                        "10.0.0.2:8080".into(),
                        "10.0.0.4:8080".into()
                    ]
                ),
                (81, vec!["10.0.0.1:9901".into(), "10.0.0.2:9901".into()]),
            ]
        );
    }

    #[test]
    fn the_only_slice_port_serves_a_single_port_service() {
        let yaml = [
            service_yaml("default", "a", &[("grpc", 80)]),
            slice("a-1", "a", "[{port: 8080}]", "[{addresses: [10.0.0.1]}]"),
            service_yaml("default", "b", &[("grpc", 80), ("admin", 81)]),
            slice(
                "b-1",
                "b",
                "[{name: other, port: 8080}]",
                "[{addresses: [10.0.0.1]}]",
            ),
        ]
        .join("---\n");
        assert_eq!(
            endpoints_of(&yaml, "a"),
            [(80, vec!["10.0.0.1:8080".to_string()])]
        );
        assert_eq!(endpoints_of(&yaml, "b"), [(80, vec![]), (81, vec![])]);
    }

    #[test]
    fn no_slices_means_no_endpoints() {
        let yaml = service_yaml("default", "a", &[("grpc", 80)]);
        assert_eq!(endpoints_of(&yaml, "a"), [(80, vec![])]);
    }
}
