//! Translation: the index of domain objects → Envoy v3 resources, as pure synchronous
//! functions, plus one [`ResourceReport`] per weft resource for its status conditions.
//!
//! # Resources
//! - **Clusters** (`cluster.rs`): each TCP port of each Service is a Cluster
//!   `outbound|<port>||<name>.<ns>.svc.cluster.local`: EDS over ADS, `LEAST_REQUEST`, 1 s
//!   connect timeout, HTTP/2 upstream (`HttpProtocolOptions` explicit HTTP/2), circuit
//!   breakers raised to 1 000 000 (gRPC multiplexes many RPCs on few connections).
//! - **BackendPolicy** (`backend.rs`): the targeted Service's clusters (every port) get its
//!   outlier detection, circuit breaker caps, connect timeout and HTTP/2 keepalive; one
//!   policy per Service (the first by name; the others are not accepted).
//! - **Endpoints** (`endpoints.rs`): a ClusterLoadAssignment of the same name from the
//!   EndpointSlices labelled `kubernetes.io/service-name: <service>` in the Service's
//!   namespace: every endpoint whose `conditions.ready` is not false, first address, with the
//!   slice port whose name equals the Service port's name (or the slice's only port when the
//!   Service has one port). `targetPort` is not used: slice ports are the real ports.
//! - **Routes** (`vhosts.rs`, `routes.rs`): one RouteConfiguration `outbound/<ns>` per client
//!   namespace (every namespace holding a Service or a GrpcRoute, plus those of the connected
//!   proxies given to [`translate_for`]). It has a virtual host per Service port, named
//!   `<name>.<ns>.svc.cluster.local:<port>`, answering to `<name>.<ns>.svc.cluster.local`,
//!   `<name>.<ns>.svc`, `<name>.<ns>`, `<name>` (only in the Service's own namespace) and
//!   `<clusterIP>`, each with `:<port>`, and without the port for the Service's first port.
//!   A domain already taken in the RouteConfiguration is skipped (Envoy rejects duplicates).
//!   The last route of every virtual host is prefix `/` → the Service's own cluster.
//!   Every route has `timeout: 0s` (Envoy's 15 s default would cut streams) and
//!   `max_stream_duration.grpc_timeout_header_max` (0s = honour the client's `grpc-timeout`).
//! - **GrpcRoute** rules go before the default route of each parent's virtual host (every
//!   port, or `parentRefs[].port`): one Envoy route per `matches` entry (none: one catch-all).
//!   Method `Exact`: service+method → path `/<service>/<method>`, service → prefix
//!   `/<service>/`, method → regex `/[^/]+/<method>`; `RegularExpression`: regex
//!   `/(?:<service>)/(?:<method>)` with `[^/]+` for an absent part. Headers → HeaderMatchers
//!   (exact or regex). backendRefs → weighted_clusters (zero weights left out) or one
//!   cluster. `timeout: T` → `max_stream_duration` T and `grpc_timeout_header_max` T (caps
//!   the client's deadline, applies when it sets none; `0s` = no cap). `retry` → retry_policy:
//!   `retry_on` from the codes Envoy knows (cancelled, deadline-exceeded, internal,
//!   resource-exhausted, unavailable; others get a note and are not retried), then
//!   `connect-failure,refused-stream` (a request that never reached the app is retried
//!   whatever the codes; a reset after it was sent never is, as in weft-proxy), `num_retries` =
//!   `attempts` (retries after the first try, as in Istio: `attempts: 3` = up to 4 tries),
//!   `per_try_timeout`, `retry_back_off.base_interval` = `backoff` (default 25ms).
//! - **Precedence**: a GrpcRoute in the parent Service's namespace (a producer route) applies
//!   to clients in every namespace; one in another namespace (a consumer route, as in GAMMA)
//!   applies only to clients in its own namespace, and its rules come first there. Within
//!   each group, routes are ordered by namespace/name; rules keep their order.
//! - **FaultInjection** (`fault.rs`): for each route entry of the target (every entry of the
//!   Service's virtual hosts, or every entry from the GrpcRoute), a copy placed just before
//!   it, its match extended by the fault's own match (method as a `:path` HeaderMatcher,
//!   headers appended), carrying `typed_per_filter_config["envoy.filters.http.fault"]`:
//!   `HTTPFault { delay: fixed, abort: grpc_status + response_body = message }`, percentages
//!   per million. Envoy (checked with 1.40) sends a gRPC local reply's body as `grpc-message`,
//!   so the abort message reaches the client. A Service target means RPCs addressed to the
//!   Service, whatever backend a GrpcRoute picks. Faults on a GrpcRoute come before faults on
//!   the Service; several faults are ordered by namespace/name, and an RPC matching several
//!   gets only the first (the later ones get a note).
//! - **Route names** say where an entry comes from: `grpcroute:<ns>/<name>:rules[i].matches[j]`,
//!   `default` (to the Service), and `<name>+fault:<ns>/<fault>` for a faulted copy.
//! - **Listeners** are per proxy (`workloads.rs`): translation knows the connected proxies
//!   (a [`Workload`] per node id, from its node metadata) and adds, for each alone
//!   ([`Snapshot::for_node`]), `outbound` (`listener.rs`) at the node's outbound address: one
//!   HttpConnectionManager reading `outbound/<node namespace>` over ADS, filters
//!   `[envoy.filters.http.fault (empty), envoy.filters.http.router]`; and `inbound`
//!   (`inbound.rs`) at its inbound address, in its mTLS mode: chain `tls`
//!   (`transport_protocol: tls`, DownstreamTlsContext requiring a client certificate) for
//!   `Strict` and `Permissive`, chain `plaintext` (`transport_protocol: raw_buffer` when
//!   beside `tls`, no match alone) for `Permissive` and `Disable`, the TLS inspector when a
//!   chain matches on TLS. Both chains: one HttpConnectionManager with an inline route
//!   configuration `inbound` sending everything to `inbound|<app addr>` (timeouts as the
//!   outbound routes), and `x-forwarded-client-cert` replaced by the caller's URI SAN (its
//!   SPIFFE id; `SANITIZE_SET`), so the app can trust it.
//! - **Browsers** (`web.rs`): GrpcRoutes with `spec.web` are also routed by gRPC service in
//!   the RouteConfiguration `web` (made when a route opts in or a proxy has a web
//!   listener), with their CORS policy per route; a proxy whose node metadata has `webAddr`
//!   gets a `web` Listener there (gRPC-Web, CORS, fault, router).
//! - **Inbound clusters** (`cluster.rs`): a STATIC, plaintext, HTTP/2 `inbound|<app addr>`
//!   per distinct app address of the connected proxies, shared.
//!
//! # Mutual TLS
//! - **Modes** (`mtls.rs`): a proxy's mode comes from the accepted MtlsPolicies of its
//!   namespace whose selector matches its labels: a selector beats a namespace-wide policy,
//!   more `matchLabels` beat fewer, a remaining tie goes to the first by name (the losers
//!   get a note). No policy: `Permissive`, as Istio's default: plaintext callers keep
//!   working while every mesh caller already uses mTLS. [`Translation::enforcing`] lists the
//!   proxies each policy governs.
//! - **Outbound clusters** carry `transport_socket_matches` (`tls.rs`): `mtls` for endpoints
//!   whose metadata `envoy.transport_socket_match` holds `{tlsMode: weft}` (UpstreamTlsContext
//!   with ALPN h2, and the server's URI SAN checked against `spiffe://<trust domain>/`), then
//!   `plaintext` (raw buffer) for every other endpoint. The server's exact identity is not
//!   checked: endpoints do not say which service account runs them.
//! - **Endpoint marking** (`endpoints.rs`): an endpoint gets `{tlsMode: weft}` when a connected
//!   proxy runs there, i.e. its inbound address is the endpoint's `ip:port` (local mode:
//!   endpoints list proxies' inbound addresses) or its pod IP is the endpoint's IP
//!   (Kubernetes: the pod's traffic goes through its proxy), and that proxy's mode is not
//!   `Disable` (which accepts plaintext only). Endpoints without a connected proxy stay
//!   plaintext: a proxy that is not there yet cannot be asked for TLS.
//! - **Certificates** are never in a translation: TLS contexts name two SDS secrets over ADS,
//!   `default` (the proxy's certificate and key) and `ROOTCA` (the trust bundle), which the
//!   ADS server packs per stream (`secrets.rs`).
//!
//! # Validation and status
//! Each weft resource is checked in isolation (`validate.rs`); an invalid one is left out
//! entirely and its report says why (`accepted`), the rest still translate. Regular
//! expressions must parse, mean the same in RE2 as in Rust's `regex`, and stay under Envoy's
//! RE2 program size limit (`re2.rs`): Envoy rejects a whole RouteConfiguration over one bad
//! regex. Unknown gRPC status names never get here (the API types do not parse). References are
//! checked separately (`resolved_refs`): a missing parent Service only detaches that parent;
//! a missing backend Service or port leaves that **rule** out (its RPCs fall through to later
//! rules or the Service itself), unless the backend's weight is 0. A fault whose target is
//! missing or not accepted is left out. Services whose name is not a DNS label, ExternalName
//! Services and non-TCP ports are skipped and listed in [`Translation::warnings`].
//! An MtlsPolicy with a bad selector is left out of mode resolution and reported.
//!
//! Envoy's map fields (`typed_per_filter_config`, ...) are `HashMap`s: each holds at most one
//! entry here, so the encoding, and with it the content hash, is deterministic.

mod backend;
mod cluster;
mod endpoints;
mod fault;
mod inbound;
mod incremental;
mod listener;
mod matching;
mod mtls;
mod node;
mod re2;
mod routes;
mod secrets;
mod services;
mod tls;
mod validate;
mod vhosts;
mod web;
mod workloads;

#[cfg(test)]
mod envoy_check;
#[cfg(test)]
mod golden;
#[cfg(test)]
pub(crate) mod testutil;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use crate::ads::{NamespaceHosts, ResourceType, Snapshot};
use crate::model::{Index, ObjectKey};

pub use cluster::inbound_cluster_name;
pub use inbound::{INBOUND_LISTENER, inbound_listener};
use incremental::RoutingInputs;
pub use incremental::{retranslate_endpoints, retranslate_routes};
pub use listener::{OUTBOUND_LISTENER, outbound_listener};
pub use mtls::{ResolvedMode, resolve_mode};
pub use node::{DEFAULT_APP_ADDR, DEFAULT_INBOUND_ADDR, DEFAULT_OUTBOUND_ADDR, NodeInfo};
pub use secrets::{
    CERTIFICATE_SECRET, TRUST_BUNDLE_SECRET, certificate_secret, trust_bundle_secret,
};
pub use services::{CLUSTER_DOMAIN, cluster_name, route_config_name};
pub use tls::{TLS_MODE_KEY, TLS_MODE_WEFT, TRANSPORT_SOCKET_MATCH};
pub use vhosts::vhds_route_config;
pub use web::{CORS_FILTER, WEB, route_clusters};
use workloads::ProxySummary;
pub use workloads::{Enforcing, Member, Members, Workload, Workloads};

/// The result of translating an index.
#[derive(Debug, Clone)]
pub struct Translation {
    /// Clusters, ClusterLoadAssignments and RouteConfigurations, shared; per connected
    /// proxy (node id), its `outbound` and `inbound` Listeners ([`Snapshot::for_node`]).
    pub snapshot: Snapshot,
    /// One report per GrpcRoute, FaultInjection, MtlsPolicy and BackendPolicy in the index (shared: an
    /// endpoint-only retranslation and the publisher keep the same reports).
    pub reports: Arc<BTreeMap<ObjectKey, ResourceReport>>,
    /// Per MtlsPolicy, the node ids of the connected proxies whose mode it sets (a policy
    /// governing none is absent; so are proxies no policy selects).
    pub enforcing: Arc<Enforcing>,
    /// Objects that no report covers (Services, EndpointSlices) and that were skipped.
    pub warnings: Vec<String>,
    /// What the routing was made from, for a route-only retranslation of the next change.
    routing: Arc<RoutingInputs>,
}

/// What translation found about one weft resource: feeds its `Accepted` and
/// `ResolvedRefs` conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceReport {
    /// `metadata.generation` of the object that was translated.
    pub generation: Option<i64>,
    /// `Err`: why the resource is invalid (each problem as `<field path>: <what is wrong>`,
    /// joined by `; `); an invalid resource is left out of the config entirely.
    pub accepted: Result<(), String>,
    /// `Err`: which references do not resolve, and what was left out because of them.
    pub resolved_refs: Result<(), String>,
    /// What some clients cannot honour, or other things worth knowing.
    pub notes: Vec<String>,
    /// The Envoy resources it is part of: a proxy holding one of them holds this resource
    /// (what `Programmed` counts), and a NACK naming one concerns it.
    pub attachments: Attachments,
}

/// The Envoy resources a weft resource is translated into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attachments {
    /// VHDS virtual hosts, `outbound/<client ns>/<fqdn>:<port>` (State-of-the-World
    /// clients of that namespace hold them inside `outbound/<client ns>`).
    pub hosts: Vec<String>,
    /// Clusters (a BackendPolicy's).
    pub clusters: Vec<String>,
    /// Clusters its routes send to: a NACK of one concerns it too, but holding one does
    /// not mean holding it.
    pub backends: Vec<String>,
}

impl ResourceReport {
    fn new(generation: Option<i64>) -> Self {
        Self {
            generation,
            accepted: Ok(()),
            resolved_refs: Ok(()),
            notes: Vec::new(),
            attachments: Attachments::default(),
        }
    }
}

/// Joins problems into one condition message; `Ok` when there are none.
fn problems(list: Vec<String>) -> Result<(), String> {
    if list.is_empty() {
        Ok(())
    } else {
        Err(list.join("; "))
    }
}

/// Translates the index with no proxy connected, in the default trust domain: every client
/// namespace is one that holds a Service or a GrpcRoute.
pub fn translate(index: &Index) -> Translation {
    translate_for(
        index,
        &Workloads::new(),
        &Members::new(),
        Some(weft_common::spiffe::DEFAULT_TRUST_DOMAIN),
    )
}

/// [`translate`], for the connected proxies `workloads`: each gets its own listeners, its
/// namespace its `outbound/<ns>` (even without Services there), its app an `inbound|<addr>`
/// cluster, and the endpoints it runs the `tlsMode: weft` mark unless its mode is `Disable`
/// (so do the endpoints of `members`, every proxy known to run in the mesh, connected here
/// or not: the registry publishes them; a connected one may be in both).
/// Clusters check servers' SPIFFE ids against `trust_domain`.
///
/// `trust_domain` is `None` when the mesh runs without mTLS (the controller authenticates no
/// proxy, so none has a certificate): clusters are plaintext only, no endpoint is marked and
/// inbound listeners are plaintext.
pub fn translate_for(
    index: &Index,
    workloads: &Workloads,
    members: &Members,
    trust_domain: Option<&str>,
) -> Translation {
    translate_after(index, workloads, members, trust_domain, None)
}

/// [`translate_for`], keeping what it can of `previous` (the last translation's snapshot):
/// every resource whose body is unchanged is the previous one (not hashed again, not held
/// twice while streams still hold the previous snapshot), and each namespace's host
/// routing, when made from the same inputs, stays the same `Arc`, so streams that followed
/// it need not resolve their subscriptions again.
pub fn translate_after(
    index: &Index,
    workloads: &Workloads,
    members: &Members,
    trust_domain: Option<&str>,
    previous: Option<&Snapshot>,
) -> Translation {
    let mut warnings = Vec::new();
    let mut reports = BTreeMap::new();
    let catalog = Arc::new(services::Catalog::build(index, &mut warnings));
    let catalog_warnings = warnings.clone();
    let proxies = ProxySummary::of(workloads);
    let policies = mtls::PolicySet::build(index);
    let mut builder = Snapshot::builder();

    let backend_settings = backend::resolve_policies(index, &catalog, &mut reports);
    for service in catalog.iter() {
        let policy = backend_settings.get(&(service.namespace.clone(), service.name.clone()));
        for port in &service.ports {
            let name = service.cluster(port.port);
            let cluster = pack_any(cluster::cluster(&name, trust_domain, policy));
            builder.add(ResourceType::Cluster, name, cluster);
        }
    }
    let targets = match trust_domain {
        Some(_) => workloads::MtlsTargets::build(workloads, members, &policies),
        None => workloads::MtlsTargets::default(),
    };
    for (name, assignment) in load_assignments(index, &catalog, &targets, &mut warnings) {
        builder.add(ResourceType::Endpoint, name, assignment);
    }

    let (attached, faults, web) = translate_routing(index, &catalog, &proxies, &mut reports);
    if let Some(web) = web {
        builder.add(ResourceType::Route, WEB.to_owned(), web);
    }
    mtls::report_policies(index, &mut reports);
    let mtls = trust_domain.is_some();
    let enforcing =
        workloads::add_workloads(&mut builder, workloads, &policies, mtls, &mut reports);

    let namespaces = client_namespaces(&catalog, &attached, &proxies);
    let (routing, sources) = vhosts::route_configurations(
        namespaces.iter().map(|(ns, inline)| (ns.as_str(), *inline)),
        &catalog,
        &attached,
        &faults,
    );
    attach_hosts(&sources, &mut reports);
    for routing in routing {
        let name = route_config_name(&routing.namespace);
        let before = previous.and_then(|p| p.namespace_hosts(&routing.namespace));
        let hosts = NamespaceHosts::new(&name, routing.shell, routing.hosts, before.map(|b| &**b));
        if let Some(config) = routing.inline {
            builder.add(ResourceType::Route, name, config);
        }
        builder.namespace_hosts(&routing.namespace, hosts);
    }

    Translation {
        snapshot: builder.build_after(previous),
        reports: Arc::new(reports),
        enforcing: Arc::new(enforcing),
        warnings,
        routing: Arc::new(RoutingInputs {
            catalog,
            catalog_warnings,
            proxies,
            routes: attached,
            faults,
            namespaces,
            sources,
        }),
    }
}

/// GrpcRoutes and FaultInjections, reported, and the RouteConfiguration `web` when browsers
/// reach the mesh (a route opts in, or a proxy has a web listener).
fn translate_routing(
    index: &Index,
    catalog: &services::Catalog,
    proxies: &ProxySummary,
    reports: &mut BTreeMap<ObjectKey, ResourceReport>,
) -> (
    Vec<routes::AttachedRoute>,
    Vec<fault::AppliedFault>,
    Option<Any>,
) {
    let attached = routes::translate_routes(index, catalog, reports);
    for route in &attached {
        if let Some(report) = reports.get_mut(&route.key) {
            report.attachments.backends = vhosts::clusters_of(&route.entries);
        }
    }
    let faults = fault::translate_faults(index, catalog, &attached, reports);
    let browsers_reach = attached.iter().any(|route| route.web.is_some()) || proxies.web;
    let web =
        browsers_reach.then(|| web::web_route_configuration(catalog, &attached, &faults, reports));
    (attached, faults, web)
}

/// Every client namespace (one holding a Service, a GrpcRoute or a connected proxy), each
/// with whether it needs the inline `outbound/<ns>` (some client may speak SotW).
fn client_namespaces(
    catalog: &services::Catalog,
    attached: &[routes::AttachedRoute],
    proxies: &ProxySummary,
) -> Vec<(String, bool)> {
    let mut namespaces: BTreeSet<&str> = catalog.iter().map(|s| s.namespace.as_str()).collect();
    namespaces.extend(attached.iter().map(|route| route.key.namespace.as_str()));
    namespaces.extend(proxies.namespaces());
    namespaces
        .into_iter()
        .map(|ns| (ns.to_owned(), !proxies.delta_only(ns)))
        .collect()
}

/// Records in each GrpcRoute's and FaultInjection's report the hosts carrying it.
fn attach_hosts(sources: &vhosts::HostSources, reports: &mut BTreeMap<ObjectKey, ResourceReport>) {
    for (key, hosts) in vhosts::attachments(sources) {
        if let Some(report) = reports.get_mut(&key) {
            report.attachments.hosts = hosts;
        }
    }
}

/// A ClusterLoadAssignment per Service port, by cluster name.
fn load_assignments(
    index: &Index,
    catalog: &services::Catalog,
    targets: &workloads::MtlsTargets,
    warnings: &mut Vec<String>,
) -> Vec<(String, Any)> {
    let slices = endpoints::SlicesByService::build(index, warnings);
    let mut assignments = Vec::new();
    for service in catalog.iter() {
        for port in &service.ports {
            let name = service.cluster(port.port);
            let assignment = pack_any(endpoints::load_assignment(
                &name, service, port, &slices, targets,
            ));
            assignments.push((name, assignment));
        }
    }
    assignments
}

#[cfg(test)]
mod tests;
