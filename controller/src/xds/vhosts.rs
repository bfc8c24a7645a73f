//! The RouteConfiguration `outbound/<ns>` for clients in one namespace: a virtual host per
//! Service port, answering to the names a client may use, with the GrpcRoute rules that
//! apply to that client, faults, and a default route to the Service itself.

use std::collections::{HashMap, HashSet};

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, VirtualHost,
};

use super::fault::{AppliedFault, with_faults};
use super::matching;
use super::routes::{AttachedRoute, stream_timeouts};
use super::services::{Catalog, ServiceEntry, route_config_name};
use crate::model::ObjectKey;

/// The name of the last route of every virtual host (to the Service itself).
pub(super) const DEFAULT_ROUTE: &str = "default";

/// The RouteConfiguration serving clients in `namespace`.
pub(super) fn route_configuration(
    namespace: &str,
    catalog: &Catalog,
    routes: &[AttachedRoute],
    faults: &[AppliedFault],
) -> RouteConfiguration {
    let by_parent = routes_by_parent(routes);
    let mut taken = HashSet::new();
    let mut virtual_hosts = Vec::new();
    for service in catalog.iter() {
        for (i, port) in service.ports.iter().enumerate() {
            let domains = domains(service, port.port, i == 0, namespace, &mut taken);
            let attached = by_parent
                .get(&(service.namespace.as_str(), service.name.as_str(), port.port))
                .map_or(&[][..], Vec::as_slice);
            let entries = entries(service, port.port, namespace, attached);
            virtual_hosts.push(VirtualHost {
                name: format!("{}:{}", service.fqdn(), port.port),
                domains,
                routes: with_faults(entries, &service.namespace, &service.name, faults),
                ..Default::default()
            });
        }
    }
    RouteConfiguration {
        name: route_config_name(namespace),
        virtual_hosts,
        ..Default::default()
    }
}

/// The host names of one Service port as seen from `client_namespace`, each with the port,
/// and also without it for the Service's first port; a name already `taken` by an earlier
/// virtual host is left out (Envoy rejects a RouteConfiguration that repeats a domain).
fn domains(
    service: &ServiceEntry,
    port: u16,
    first_port: bool,
    client_namespace: &str,
    taken: &mut HashSet<String>,
) -> Vec<String> {
    let (name, ns) = (&service.name, &service.namespace);
    let mut hosts = vec![
        service.fqdn(),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}"),
    ];
    if ns == client_namespace {
        hosts.push(name.clone());
    }
    if let Some(ip) = service.cluster_ip {
        hosts.push(if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        });
    }
    let with_port = hosts.iter().map(|host| format!("{host}:{port}"));
    let without_port = hosts.iter().filter(|_| first_port).cloned();
    with_port
        .chain(without_port)
        .filter(|domain| taken.insert(domain.clone()))
        .collect()
}

/// The routes attached to each Service port (namespace, name, port), in `routes` order:
/// built once per RouteConfiguration, so a virtual host does not scan every route (with a
/// thousand Services, that scan was most of a translation).
fn routes_by_parent(routes: &[AttachedRoute]) -> HashMap<(&str, &str, u16), Vec<&AttachedRoute>> {
    let mut by_parent: HashMap<_, Vec<&AttachedRoute>> = HashMap::new();
    for route in routes {
        for (namespace, name, port) in &route.parents {
            let attached = by_parent
                .entry((namespace.as_str(), name.as_str(), *port))
                .or_default();
            // A route naming the same parent twice still applies once.
            if !attached.iter().any(|r| std::ptr::eq(*r, route)) {
                attached.push(route);
            }
        }
    }
    by_parent
}

/// The route entries of one virtual host before faults, each with the GrpcRoute it comes
/// from: consumer routes (the client's namespace, when that is not the Service's), then
/// producer routes (the Service's namespace), then the default route. `attached` are the
/// routes whose parents include this Service port.
fn entries<'a>(
    service: &ServiceEntry,
    port: u16,
    client_namespace: &str,
    attached: &[&'a AttachedRoute],
) -> Vec<(Route, Option<&'a ObjectKey>)> {
    let consumer = attached
        .iter()
        .filter(|r| client_namespace != service.namespace && r.key.namespace == client_namespace);
    let producer = attached
        .iter()
        .filter(|r| r.key.namespace == service.namespace);
    let mut entries: Vec<(Route, Option<&ObjectKey>)> = consumer
        .chain(producer)
        .flat_map(|route| {
            route
                .entries
                .iter()
                .map(move |entry| (entry.clone(), Some(&route.key)))
        })
        .collect();
    entries.push((default_route(&service.cluster(port)), None));
    entries
}

fn default_route(cluster: &str) -> Route {
    Route {
        name: DEFAULT_ROUTE.into(),
        r#match: Some(matching::route_match(None)),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_owned())),
            ..stream_timeouts(None)
        })),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
