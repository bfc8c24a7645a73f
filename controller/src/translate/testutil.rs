//! Test helpers: an index from multi-document YAML (the same kinds and serde types as local
//! mode), small YAML builders, and decoding of translated resources.

use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use crate::ads::ResourceType;
use crate::api::{API_VERSION, FaultInjection, GrpcRoute, MtlsPolicy};
use crate::model::{Index, Kind, Object, ObjectKey};

use super::Translation;

/// Parses every document of `yaml` into an Object by `apiVersion` and `kind`.
pub(crate) fn objects(yaml: &str) -> Vec<Object> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).unwrap();
    docs.into_iter()
        .filter(|d| !d.is_null())
        .map(|doc| {
            let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_owned();
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            match (api_version.as_str(), kind.as_str()) {
                ("v1", "Service") => Object::Service(serde_json::from_value(doc).unwrap()),
                ("discovery.k8s.io/v1", "EndpointSlice") => {
                    Object::EndpointSlice(serde_json::from_value(doc).unwrap())
                }
                (API_VERSION, "GrpcRoute") => {
                    Object::GrpcRoute(serde_json::from_value::<GrpcRoute>(doc).unwrap())
                }
                (API_VERSION, "FaultInjection") => {
                    Object::FaultInjection(serde_json::from_value::<FaultInjection>(doc).unwrap())
                }
                (API_VERSION, "MtlsPolicy") => {
                    Object::MtlsPolicy(serde_json::from_value::<MtlsPolicy>(doc).unwrap())
                }
                (API_VERSION, "BackendPolicy") => {
                    Object::BackendPolicy(serde_json::from_value(doc).unwrap())
                }
                other => panic!("unexpected document {other:?}"),
            }
        })
        .collect()
}

pub(crate) fn index(yaml: &str) -> Index {
    let mut index = Index::new();
    for object in objects(yaml) {
        index.apply(object);
    }
    index
}

/// A Service with (name, port) ports.
pub(crate) fn service_yaml(namespace: &str, name: &str, ports: &[(&str, u16)]) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|(n, p)| format!("{{name: {n}, port: {p}}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{ports: [{}]}}\n",
        ports.join(", ")
    )
}

/// Services `greeter`, `greeter-v1`, `greeter-v2` in `default`, port `grpc` 50051.
pub(crate) fn greeters() -> String {
    ["greeter", "greeter-v1", "greeter-v2"]
        .iter()
        .map(|name| service_yaml("default", name, &[("grpc", 50051)]))
        .collect::<Vec<_>>()
        .join("---\n")
}

pub(crate) fn key(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(kind, namespace, name)
}

pub(crate) fn decode<M: Message + Default>(any: &Any) -> M {
    M::decode(any.value.as_slice()).unwrap()
}

impl Translation {
    /// The RouteConfiguration `outbound/<namespace>`.
    pub(crate) fn route_config(&self, namespace: &str) -> RouteConfiguration {
        let name = super::route_config_name(namespace);
        let resource = self.snapshot.resources(ResourceType::Route).get(&name);
        decode(&resource.unwrap_or_else(|| panic!("no {name}")).body)
    }

    /// The virtual host named `host` (e.g. `greeter.default.svc.cluster.local:50051`) in
    /// `outbound/<namespace>`.
    pub(crate) fn vhost(&self, namespace: &str, host: &str) -> VirtualHost {
        let config = self.route_config(namespace);
        let found = config.virtual_hosts.into_iter().find(|v| v.name == host);
        found.unwrap_or_else(|| panic!("no virtual host {host} in outbound/{namespace}"))
    }

    /// The routes of a virtual host in `default`, by name.
    pub(crate) fn routes(&self, host: &str) -> Vec<Route> {
        self.vhost("default", host).routes
    }

    pub(crate) fn report(&self, kind: Kind, namespace: &str, name: &str) -> &super::ResourceReport {
        let key = key(kind, namespace, name);
        self.reports
            .get(&key)
            .unwrap_or_else(|| panic!("no report for {key}"))
    }
}

/// The name of every route of a virtual host.
pub(crate) fn route_names(routes: &[Route]) -> Vec<&str> {
    routes.iter().map(|r| r.name.as_str()).collect()
}

/// `greeter.default.svc.cluster.local:50051`
pub(crate) const GREETER: &str = "greeter.default.svc.cluster.local:50051";

/// A proxy `<pod>.<namespace>` whose inbound listener is at `inbound` (other addresses
/// default).
pub(crate) fn workload(pod: &str, namespace: &str, inbound: &str) -> super::Workload {
    let mut node = super::NodeInfo::new(pod, namespace, "127.0.0.1:15001".parse().unwrap());
    node.inbound_addr = inbound.parse().unwrap();
    super::Workload::from(&node)
}

/// Proxies given as (pod, namespace, inbound address), by node id.
pub(crate) fn workloads(list: &[(&str, &str, &str)]) -> super::Workloads {
    list.iter()
        .map(|(pod, namespace, inbound)| {
            let w = workload(pod, namespace, inbound);
            (w.node_id.clone(), w)
        })
        .collect()
}

/// One proxy (`client.<ns>`) in each of `namespaces`.
pub(crate) fn clients(namespaces: &[&str]) -> super::Workloads {
    let list: Vec<(&str, &str, String)> = namespaces
        .iter()
        .zip(16000u16..)
        .map(|(ns, port)| ("client", *ns, format!("127.0.0.1:{port}")))
        .collect();
    let list: Vec<(&str, &str, &str)> = list.iter().map(|(p, n, a)| (*p, *n, a.as_str())).collect();
    workloads(&list)
}

/// The trust domain of test translations.
pub(crate) const DOMAIN: &str = weft_common::spiffe::DEFAULT_TRUST_DOMAIN;
