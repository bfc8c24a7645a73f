//! The Services translation can route to (the catalog), and the names derived from them:
//! cluster names, host names, RouteConfiguration names.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use crate::model::Index;

/// The cluster DNS domain Services live under.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The Cluster (and ClusterLoadAssignment) of one Service port:
/// `outbound|<port>||<name>.<ns>.svc.cluster.local`.
pub fn cluster_name(namespace: &str, name: &str, port: u16) -> String {
    format!("outbound|{port}||{name}.{namespace}.svc.{CLUSTER_DOMAIN}")
}

/// The RouteConfiguration serving clients in `namespace`: `outbound/<ns>`.
pub fn route_config_name(namespace: &str) -> String {
    format!("outbound/{namespace}")
}

/// One usable Service port.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ServicePort {
    pub port: u16,
    pub name: Option<String>,
}

/// A Service translation can use: valid names and at least zero usable ports.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ServiceEntry {
    pub namespace: String,
    pub name: String,
    /// TCP ports in the Service's order, without duplicates.
    pub ports: Vec<ServicePort>,
    pub cluster_ip: Option<IpAddr>,
}

impl ServiceEntry {
    /// `<name>.<ns>.svc.cluster.local`
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.{CLUSTER_DOMAIN}", self.name, self.namespace)
    }

    pub fn cluster(&self, port: u16) -> String {
        cluster_name(&self.namespace, &self.name, port)
    }

    pub fn port(&self, port: i32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| i32::from(p.port) == port)
    }
}

/// Every usable Service, by (namespace, name).
#[derive(Debug, Default)]
pub(super) struct Catalog {
    services: BTreeMap<(String, String), ServiceEntry>,
}

impl Catalog {
    /// Reads the Services of the index; skipped ones (and why) go to `warnings`.
    pub fn build(index: &Index, warnings: &mut Vec<String>) -> Self {
        let mut services = BTreeMap::new();
        for service in index.services() {
            if let Some(entry) = entry(service, warnings) {
                services.insert((entry.namespace.clone(), entry.name.clone()), entry);
            }
        }
        Self { services }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&ServiceEntry> {
        self.services.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// In namespace/name order.
    pub fn iter(&self) -> impl Iterator<Item = &ServiceEntry> {
        self.services.values()
    }
}

fn entry(service: &Service, warnings: &mut Vec<String>) -> Option<ServiceEntry> {
    let namespace = service
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = service.metadata.name.clone().unwrap_or_default();
    let id = format!("Service {namespace}/{name}");
    if !is_dns_label(&name, true) || !is_dns_label(&namespace, false) {
        warnings.push(format!(
            "{id} skipped: its name and namespace must be DNS labels"
        ));
        return None;
    }
    let spec = service.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        warnings.push(format!(
            "{id} skipped: ExternalName Services are not supported"
        ));
        return None;
    }
    let mut ports: Vec<ServicePort> = Vec::new();
    for (i, port) in spec.ports.unwrap_or_default().into_iter().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        let number = u16::try_from(port.port).ok().filter(|p| *p != 0);
        match number {
            _ if protocol != "TCP" => {
                warnings.push(format!(
                    "{id}: spec.ports[{i}] skipped: protocol {protocol}"
                ));
            }
            None => warnings.push(format!("{id}: spec.ports[{i}] skipped: no valid port")),
            Some(n) if ports.iter().any(|p| p.port == n) => {
                warnings.push(format!("{id}: spec.ports[{i}] skipped: port {n} repeats"));
            }
            Some(n) => ports.push(ServicePort {
                port: n,
                name: port.name.filter(|s| !s.is_empty()),
            }),
        }
    }
    let cluster_ip = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok());
    Some(ServiceEntry {
        namespace,
        name,
        ports,
        cluster_ip,
    })
}

/// A DNS label: 1–63 of `[a-z0-9-]`, starting (RFC 1035, for Service names) with a letter
/// or (RFC 1123, for namespaces) an alphanumeric, not ending with `-`.
pub(super) fn is_dns_label(text: &str, rfc1035: bool) -> bool {
    let bytes = text.as_bytes();
    let first_ok = |b: &u8| b.is_ascii_lowercase() || (!rfc1035 && b.is_ascii_digit());
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(first_ok)
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::testutil::{index, service_yaml};

    #[test]
    fn names_follow_the_istio_convention() {
        assert_eq!(
            cluster_name("default", "greeter", 50051),
            "outbound|50051||greeter.default.svc.cluster.local"
        );
        assert_eq!(route_config_name("team-a"), "outbound/team-a");
    }

    #[test]
    fn skips_bad_names_external_names_and_non_tcp_ports() {
        let yaml = [
            service_yaml("default", "Bad_Name", &[("grpc", 1)]),
            "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: default}\n\
             spec: {type: ExternalName, externalName: example.com}\n"
                .to_string(),
            "apiVersion: v1\nkind: Service\nmetadata: {name: mixed, namespace: default}\n\
             spec:\n  clusterIP: 10.0.0.7\n  ports:\n  - {name: dns, port: 53, protocol: UDP}\n  \
             - {name: grpc, port: 8080}\n  - {name: again, port: 8080}\n"
                .to_string(),
        ]
        .join("---\n");
        let mut warnings = Vec::new();
        let catalog = Catalog::build(&index(&yaml), &mut warnings);
        let names: Vec<&str> = catalog.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["mixed"]);
        let mixed = catalog.get("default", "mixed").unwrap();
        assert_eq!(
            mixed.ports,
            [ServicePort {
                port: 8080,
                name: Some("grpc".into())
            }]
        );
        assert_eq!(mixed.cluster_ip, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(warnings.len(), 4, "{warnings:#?}");
        assert!(warnings[0].contains("Bad_Name"), "{warnings:#?}");
        assert!(
            warnings.iter().any(|w| w.contains("protocol UDP")),
            "{warnings:#?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("port 8080 repeats")),
            "{warnings:#?}"
        );
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("greeter-v1", true));
        assert!(!is_dns_label("1greeter", true));
        assert!(is_dns_label("1team", false));
        assert!(!is_dns_label("a.b", false));
        assert!(!is_dns_label("a-", false));
        assert!(!is_dns_label("", false));
        assert!(!is_dns_label(&"a".repeat(64), false));
    }
}
