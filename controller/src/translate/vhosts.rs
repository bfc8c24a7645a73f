//! The RouteConfiguration `outbound/<ns>` for clients in one namespace: a virtual host per
//! Service port, answering to the names a client may use, with the GrpcRoute rules that
//! apply to that client, faults, and a default route to the Service itself.
//!
//! Each namespace's hosts come in two forms: inline in `outbound/<ns>` (what
//! State-of-the-World clients get), and as VHDS resources `outbound/<ns>/<host>` (what
//! Delta clients subscribe to one by one, behind a shell `outbound/<ns>` naming `vhds`; see
//! `ads::vhds`). Both carry the same host; the VHDS one is named after its resource.
//!
//! Most virtual hosts look the same from every namespace but the Service's own: only short
//! names (own namespace) and consumer routes (the client's namespace) tell namespaces apart.
//! Such a shared host is built and encoded once per translation and its bytes are reused in
//! every RouteConfiguration; with a thousand Services in ten namespaces, building and
//! encoding each host per namespace was most of a translation. The RouteConfiguration is
//! assembled from encoded hosts exactly as prost would encode the whole message.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, Vhds, VirtualHost,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message as _;
use prost::Name as _;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::cluster::ads_config_source;
use super::fault::{AppliedFault, FaultTarget, applied_faults, with_faults};
use super::matching;
use super::routes::{AttachedRoute, stream_timeouts};
use super::services::{Catalog, ServiceEntry, route_config_name};
use crate::ads::{HostEntry, NamespaceHosts};
use crate::model::ObjectKey;

/// The name of the last route of every virtual host (to the Service itself).
pub(super) const DEFAULT_ROUTE: &str = "default";

/// A virtual host's domains, the clusters it sends to, and its encoding.
#[derive(Clone)]
struct EncodedHost {
    /// Its own name, `<fqdn>:<port>`.
    name: String,
    /// The GrpcRoutes and FaultInjections it carries.
    sources: Vec<ObjectKey>,
    domains: Arc<[String]>,
    clusters: Arc<[String]>,
    bytes: Vec<u8>,
}

impl EncodedHost {
    /// This host as the VHDS resource `<route config>/<own name>`, named after the
    /// resource (Envoy keys VHDS hosts by their own name, and removals by resource name):
    /// the encoding with its leading `name` field swapped.
    /// Its sources are recorded as its sources in `sources` (replacing any before).
    fn vhds_entry(&self, route_config: &str, sources: &mut HostSources) -> HostEntry {
        let name = format!("{route_config}/{}", self.name);
        match self.sources.is_empty() {
            true => sources.remove(&name),
            false => sources.insert(name.clone(), self.sources.clone()),
        };
        let value = renamed(&self.bytes, &self.name, &name);
        HostEntry {
            name,
            body: Any {
                type_url: VirtualHost::type_url(),
                value,
            },
            domains: self.domains.clone(),
            clusters: self.clusters.clone(),
        }
    }
}

/// An encoded `VirtualHost` named `from` (prost writes `name` first), named `to`.
fn renamed(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let rest = &bytes[name_field_len(from)..];
    let mut value = Vec::with_capacity(to.len() + 4 + rest.len());
    length_delimited(1, to.as_bytes(), &mut value);
    value.extend_from_slice(rest);
    value
}

/// The encoded length of field 1 (a `VirtualHost`'s `name`, which prost writes first)
/// holding `name`: key, length, bytes.
fn name_field_len(name: &str) -> usize {
    1 + encoded_len_varint(name.len() as u64) + name.len()
}

/// What one client namespace's routing becomes.
pub(super) struct NamespaceRouting {
    pub namespace: String,
    /// `outbound/<ns>`, every host inline (State-of-the-World clients), when the namespace
    /// may have such clients.
    pub inline: Option<Any>,
    /// `outbound/<ns>` as Delta clients get it: no hosts, `vhds` over ADS.
    pub shell: Any,
    /// The same hosts as VHDS resources.
    pub hosts: Vec<HostEntry>,
}

/// Per GrpcRoute and FaultInjection, the VHDS hosts carrying it.
pub(super) type HostAttachments = BTreeMap<ObjectKey, Vec<String>>;

/// Per VHDS host carrying any, the GrpcRoutes and FaultInjections it carries: kept from one
/// translation to the next, so a route-only retranslation remakes only its changed hosts'.
pub(super) type HostSources = BTreeMap<String, Vec<ObjectKey>>;

/// Which hosts carry each GrpcRoute and FaultInjection, each list in host name order.
pub(super) fn attachments(sources: &HostSources) -> HostAttachments {
    let mut attachments = HostAttachments::new();
    for (host, keys) in sources {
        for key in keys {
            attachments
                .entry(key.clone())
                .or_default()
                .push(host.clone());
        }
    }
    attachments
}

/// The routing of each of `namespaces`' clients (each with whether it needs the inline
/// route configuration), and the sources of each host.
pub(super) fn route_configurations<'n>(
    namespaces: impl IntoIterator<Item = (&'n str, bool)>,
    catalog: &Catalog,
    routes: &[AttachedRoute],
    faults: &[AppliedFault],
) -> (Vec<NamespaceRouting>, HostSources) {
    let mut sources = HostSources::new();
    let namespaces: Vec<(&str, bool)> = namespaces.into_iter().collect();
    let mut maker = HostMaker::new(routes, faults);
    for service in catalog.iter() {
        for i in 0..service.ports.len() {
            maker.share(service, i, &namespaces);
        }
    }
    let mut routing = Vec::new();
    for (namespace, inline) in namespaces {
        let name = route_config_name(namespace);
        let mut taken: HashSet<Cow<'_, str>> = HashSet::new();
        // The inline configuration's hosts, collected only where it is made.
        let mut hosts: Vec<Cow<'_, [u8]>> = Vec::new();
        let mut entries = Vec::new();
        for service in catalog.iter() {
            for i in 0..service.ports.len() {
                let host = maker.host(service, i, namespace, |d| taken.contains(d));
                entries.push(host.vhds_entry(&name, &mut sources));
                match host {
                    Cow::Borrowed(host) => {
                        taken.extend(host.domains.iter().map(|d| Cow::Borrowed(d.as_str())));
                        if inline {
                            hosts.push(Cow::Borrowed(&host.bytes));
                        }
                    }
                    Cow::Owned(host) => {
                        taken.extend(host.domains.iter().map(|d| Cow::Owned(d.clone())));
                        if inline {
                            hosts.push(Cow::Owned(host.bytes));
                        }
                    }
                }
            }
        }
        routing.push(NamespaceRouting {
            namespace: namespace.to_owned(),
            shell: vhds_route_config(&name),
            inline: inline.then(|| Any {
                type_url: RouteConfiguration::type_url(),
                value: encode_route_configuration(&name, &hosts),
            }),
            hosts: entries,
        });
    }
    (routing, sources)
}

/// The Service ports (namespace, name, port) whose virtual hosts differ between two sets
/// of routes and faults, in any namespace: those whose attached routes, or the faults that
/// may apply to them, are not the same. Everything else a host is made from (the Service,
/// the domains other hosts took) depends on Services alone.
pub(super) fn changed_ports(
    catalog: &Catalog,
    before: (&[AttachedRoute], &[AppliedFault]),
    after: (&[AttachedRoute], &[AppliedFault]),
) -> BTreeSet<(String, String, u16)> {
    let (old, new) = (routes_by_parent(before.0), routes_by_parent(after.0));
    let mut changed = BTreeSet::new();
    for service in catalog.iter() {
        for port in &service.ports {
            let key = (service.namespace.as_str(), service.name.as_str(), port.port);
            let (a, b) = (
                old.get(&key).map_or(&[][..], Vec::as_slice),
                new.get(&key).map_or(&[][..], Vec::as_slice),
            );
            let same_routes = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| **x == **y);
            if !same_routes || may_apply(before.1, service, a) != may_apply(after.1, service, b) {
                changed.insert((key.0.to_owned(), key.1.to_owned(), key.2));
            }
        }
    }
    changed
}

/// The faults that may apply to a Service port with `attached` routes: those on the
/// Service, and those on one of the routes.
fn may_apply<'f>(
    faults: &'f [AppliedFault],
    service: &ServiceEntry,
    attached: &[&AttachedRoute],
) -> Vec<&'f AppliedFault> {
    let on_service =
        |namespace: &str, name: &str| namespace == service.namespace && name == service.name;
    faults
        .iter()
        .filter(|fault| match &fault.target {
            FaultTarget::Service { namespace, name } => on_service(namespace, name),
            FaultTarget::GrpcRoute(key) => attached.iter().any(|route| route.key == *key),
        })
        .collect()
}

/// Each namespace's hosts, and the inline `outbound/<ns>` configurations made again.
pub(super) type PatchedRouting = (BTreeMap<String, Arc<NamespaceHosts>>, Vec<(String, Any)>);

/// `previous` (each namespace's hosts as Delta clients get them) with the hosts of the
/// `changed` Service ports made again in every namespace; `inline` says which namespaces
/// also get the inline `outbound/<ns>`, made again when one of its hosts changed (each
/// such namespace's, by name). The sources of the changed hosts are updated in `sources`.
/// `None` when a changed host is not in `previous` or answers to other authorities there
/// (Services changed: translate whole).
pub(super) fn patch_route_configurations(
    previous: &BTreeMap<String, Arc<NamespaceHosts>>,
    inline: &BTreeSet<&str>,
    catalog: &Catalog,
    (routes, faults): (&[AttachedRoute], &[AppliedFault]),
    changed: &BTreeSet<(String, String, u16)>,
    sources: &mut HostSources,
) -> Option<PatchedRouting> {
    let namespaces: Vec<(&str, bool)> = previous.keys().map(|ns| (ns.as_str(), false)).collect();
    let mut maker = HostMaker::new(routes, faults);
    let mut ports = Vec::new();
    for (namespace, name, port) in changed {
        let service = catalog.get(namespace, name)?;
        let i = service.ports.iter().position(|p| p.port == *port)?;
        maker.share(service, i, &namespaces);
        ports.push((service, i));
    }
    let mut patched = BTreeMap::new();
    let mut inline_configs = Vec::new();
    for (namespace, hosts) in previous {
        if ports.is_empty() {
            patched.insert(namespace.clone(), hosts.clone());
            continue;
        }
        let name = route_config_name(namespace);
        let routing = hosts.routing();
        let entries = ports
            .iter()
            .map(|(service, i)| {
                let own = format!("{name}/{}:{}", service.fqdn(), service.ports[*i].port);
                let taken = |d: &str| routing.served_by(d).is_some_and(|h| **h != *own);
                maker
                    .host(service, *i, namespace, taken)
                    .vhds_entry(&name, sources)
            })
            .collect();
        let hosts = hosts.patched(entries)?;
        if inline.contains(namespace.as_str()) {
            inline_configs.push((
                name.clone(),
                inline_route_configuration(&name, catalog, &hosts)?,
            ));
        }
        patched.insert(namespace.clone(), Arc::new(hosts));
    }
    Some((patched, inline_configs))
}

/// `outbound/<ns>` with every host inline, from the VHDS hosts of that namespace (renamed
/// back to their own names), in catalog order as [`route_configurations`] makes it.
fn inline_route_configuration(
    name: &str,
    catalog: &Catalog,
    hosts: &NamespaceHosts,
) -> Option<Any> {
    let mut encoded = Vec::new();
    for service in catalog.iter() {
        for port in &service.ports {
            let own = format!("{}:{}", service.fqdn(), port.port);
            let resource = hosts.hosts().get(&format!("{name}/{own}"))?;
            let bytes = renamed(&resource.body.value, &resource.name, &own);
            encoded.push(Cow::Owned(bytes));
        }
    }
    Some(Any {
        type_url: RouteConfiguration::type_url(),
        value: encode_route_configuration(name, &encoded),
    })
}

/// Makes each Service port's virtual host for a client namespace, building the host that
/// most namespaces share once.
struct HostMaker<'a> {
    hosts_of: Hosts<'a>,
    /// Each Service port as seen from the namespaces that share a view of it.
    shared: HashMap<(&'a str, &'a str, u16), EncodedHost>,
}

impl<'a> HostMaker<'a> {
    fn new(routes: &'a [AttachedRoute], faults: &'a [AppliedFault]) -> Self {
        Self {
            hosts_of: Hosts {
                by_parent: routes_by_parent(routes),
                faults,
            },
            shared: HashMap::new(),
        }
    }

    /// Builds the shared view of `service.ports[i]`, if one of `namespaces` has it.
    fn share(&mut self, service: &'a ServiceEntry, i: usize, namespaces: &[(&str, bool)]) {
        let port = service.ports[i].port;
        let attached = self.hosts_of.attached(service, port);
        if let Some((namespace, _)) = namespaces
            .iter()
            .find(|(ns, _)| is_shared_view(service, ns, attached))
        {
            let host = self.hosts_of.build(service, i, namespace, |_| false);
            let key = (service.namespace.as_str(), service.name.as_str(), port);
            self.shared.insert(key, host);
        }
    }

    /// The virtual host of `service.ports[i]` for clients in `namespace`, without the
    /// domains `taken` says an earlier host has: the shared one when that namespace shares
    /// the view and none of its domains is taken.
    fn host(
        &self,
        service: &'a ServiceEntry,
        i: usize,
        namespace: &str,
        taken: impl Fn(&str) -> bool,
    ) -> Cow<'_, EncodedHost> {
        let port = service.ports[i].port;
        let key = (service.namespace.as_str(), service.name.as_str(), port);
        let reusable = self.shared.get(&key).filter(|shared| {
            is_shared_view(service, namespace, self.hosts_of.attached(service, port))
                && shared.domains.iter().all(|d| !taken(d))
        });
        match reusable {
            Some(host) => Cow::Borrowed(host),
            None => Cow::Owned(self.hosts_of.build(service, i, namespace, taken)),
        }
    }
}

/// `outbound/<ns>` for Delta clients: no virtual hosts; they come over VHDS on the same
/// ADS stream.
pub fn vhds_route_config(name: &str) -> Any {
    let config = RouteConfiguration {
        name: name.to_owned(),
        vhds: Some(Vhds {
            config_source: Some(ads_config_source()),
        }),
        ..Default::default()
    };
    Any {
        type_url: RouteConfiguration::type_url(),
        value: config.encode_to_vec(),
    }
}

/// Builds virtual hosts.
struct Hosts<'a> {
    by_parent: HashMap<(&'a str, &'a str, u16), Vec<&'a AttachedRoute>>,
    faults: &'a [AppliedFault],
}

impl<'a> Hosts<'a> {
    /// The routes attached to a Service port.
    fn attached<'s>(&'s self, service: &'s ServiceEntry, port: u16) -> &'s [&'s AttachedRoute] {
        self.by_parent
            .get(&(service.namespace.as_str(), service.name.as_str(), port))
            .map_or(&[][..], Vec::as_slice)
    }

    /// The virtual host of `service.ports[i]` for clients in `namespace`, without the
    /// domains `taken` says an earlier host has.
    fn build(
        &self,
        service: &ServiceEntry,
        i: usize,
        namespace: &str,
        taken: impl Fn(&str) -> bool,
    ) -> EncodedHost {
        let port = service.ports[i].port;
        let domains = domains(service, port, i == 0, namespace)
            .into_iter()
            .filter(|d| !taken(d))
            .collect();
        let entries = entries(service, port, namespace, self.attached(service, port));
        let mut origins: Vec<&ObjectKey> = entries.iter().filter_map(|(_, key)| *key).collect();
        origins.dedup();
        let mut sources: Vec<ObjectKey> = origins.iter().map(|key| (*key).clone()).collect();
        sources.extend(
            applied_faults(&origins, &service.namespace, &service.name, self.faults).cloned(),
        );
        sources.sort();
        sources.dedup();
        let host = VirtualHost {
            name: format!("{}:{}", service.fqdn(), port),
            domains,
            routes: with_faults(entries, &service.namespace, &service.name, self.faults),
            ..Default::default()
        };
        let bytes = host.encode_to_vec();
        EncodedHost {
            clusters: clusters_of(&host.routes).into(),
            sources,
            name: host.name,
            domains: host.domains.into(),
            bytes,
        }
    }
}

/// Whether clients in `namespace` see the Service port as every other namespace does: not
/// the Service's own namespace (short names), and no consumer route from `namespace`.
fn is_shared_view(service: &ServiceEntry, namespace: &str, attached: &[&AttachedRoute]) -> bool {
    service.namespace != namespace && !attached.iter().any(|r| r.key.namespace == namespace)
}

/// `RouteConfiguration { name, virtual_hosts }` encoded from already encoded hosts: the
/// bytes prost writes for the whole message (fields in number order, each length
/// delimited), so versions do not depend on how the message was put together.
fn encode_route_configuration(name: &str, hosts: &[Cow<'_, [u8]>]) -> Vec<u8> {
    let mut out = Vec::new();
    if !name.is_empty() {
        length_delimited(1, name.as_bytes(), &mut out);
    }
    for host in hosts {
        length_delimited(2, host, &mut out);
    }
    out
}

/// Field `number` holding `bytes` (a string or an encoded message), as protobuf writes it.
pub(super) fn length_delimited(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// The host names of one Service port as seen from `client_namespace`, each with the port,
/// and also without it for the Service's first port. (The caller leaves out names an earlier
/// virtual host took: Envoy rejects a RouteConfiguration that repeats a domain.)
fn domains(
    service: &ServiceEntry,
    port: u16,
    first_port: bool,
    client_namespace: &str,
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
    let mut domains: Vec<String> = hosts.iter().map(|host| format!("{host}:{port}")).collect();
    if first_port {
        domains.extend(hosts);
    }
    domains
}

/// The routes attached to each Service port (namespace, name, port), in `routes` order:
/// built once per RouteConfiguration, so a virtual host does not scan every route (with a
/// thousand Services, that scan was most of a translation).
pub(super) fn routes_by_parent(
    routes: &[AttachedRoute],
) -> HashMap<(&str, &str, u16), Vec<&AttachedRoute>> {
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
pub(super) fn entries<'a>(
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

/// The clusters `routes` send to, each once, in order.
pub(super) fn clusters_of(routes: &[Route]) -> Vec<String> {
    let mut clusters: Vec<String> = Vec::new();
    for route in routes {
        let Some(Action::Route(action)) = &route.action else {
            continue;
        };
        let names: Vec<&str> = match &action.cluster_specifier {
            Some(ClusterSpecifier::Cluster(name)) => vec![name.as_str()],
            Some(ClusterSpecifier::WeightedClusters(weighted)) => {
                weighted.clusters.iter().map(|c| c.name.as_str()).collect()
            }
            _ => Vec::new(),
        };
        for name in names {
            if !clusters.iter().any(|c| c == name) {
                clusters.push(name.to_owned());
            }
        }
    }
    clusters
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
