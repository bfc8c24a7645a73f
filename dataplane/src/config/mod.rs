//! The proxy's own typed config: what the data path reads on every RPC, built from Envoy v3
//! xDS resources and validated on the way in (`listener`, `routes`, `cluster`, `endpoints`
//! convert one resource each, `inbound` the `inbound` listener, `transport` the TLS
//! contexts of both; `assemble` joins them into one [`ProxyConfig`]). `on_demand` is VHDS:
//! virtual hosts fetched as RPCs need them, what was asked and answered, and what the held
//! config says about an authority.
//!
//! Mutual TLS, as the config says it: the `inbound` listener's mode ([`InboundConfig`]),
//! whether a cluster speaks mTLS to some endpoints and which trust domain servers must be
//! in ([`ClusterConfig::mtls`]), and which endpoints those are ([`EndpointSet::mtls`]).
//! Certificates are not in it: the proxy gets its own from the controller's CA (`tls`).
//!
//! A resource that cannot be converted is an error that names the resource and the field, so
//! the xDS client can NACK it with a precise `error_detail` and keep the last good config.
//! Nothing here does I/O; the data path holds an `Arc<ProxyConfig>` per RPC.

mod assemble;
mod cluster;
#[cfg(test)]
mod controller_mtls_tests;
#[cfg(test)]
pub(crate) mod controller_output_tests;
mod convert;
mod cors;
mod endpoints;
mod fault;
mod inbound;
mod listener;
mod matching;
mod on_demand;
mod route_action;
mod route_match;
mod routes;
mod string_match;
#[cfg(test)]
pub(crate) mod test_protos;
mod transport;

pub use assemble::assemble;
pub use cluster::parse_cluster;
pub use endpoints::parse_endpoints;
pub use listener::{INBOUND_LISTENER, OUTBOUND_LISTENER, WEB_LISTENER, parse_listener};
pub use matching::RouteDecision;
pub use on_demand::{Demand, Lookup, MAX_ON_DEMAND_NAMES, OnDemandLookups, RpcTarget};
pub use routes::{parse_route_config, parse_virtual_host};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use weft_common::xds::type_url;

/// A resource the proxy cannot use: `resource` names it (`"Listener outbound"`), `field` is
/// the path inside it (`"virtual_hosts[0].routes[2].match.safe_regex"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {field}: {problem}")]
pub struct ConfigError {
    pub resource: String,
    pub field: String,
    pub problem: String,
}

/// The xDS resource types the proxy subscribes to, in make-before-break order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Cluster,
    Endpoints,
    Listener,
    Route,
    /// VHDS (Delta only): one virtual host of a RouteConfiguration that names `vhds`,
    /// subscribed by name as RPCs need it.
    VirtualHost,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 5] = [
        ResourceKind::Cluster,
        ResourceKind::Endpoints,
        ResourceKind::Listener,
        ResourceKind::Route,
        ResourceKind::VirtualHost,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            ResourceKind::Cluster => type_url::CLUSTER,
            ResourceKind::Endpoints => type_url::ENDPOINT,
            ResourceKind::Listener => type_url::LISTENER,
            ResourceKind::Route => type_url::ROUTE,
            ResourceKind::VirtualHost => type_url::VIRTUAL_HOST,
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.type_url() == url)
    }

    /// Whether the proxy subscribes to every resource of this type (LDS, CDS) or only to
    /// names: those other resources refer to (RDS, EDS) or RPCs need (VHDS).
    pub fn is_wildcard(self) -> bool {
        matches!(self, ResourceKind::Listener | ResourceKind::Cluster)
    }
}

/// One listener's config (its address is the proxy's own: `--outbound-addr` for the
/// outbound listener, the inbound address for `inbound`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListenerConfig {
    pub name: String,
    /// The RouteConfiguration it reads over RDS (`outbound/<namespace>`); empty for the
    /// `inbound` listener, whose routes are not read (everything goes to the app).
    pub route_config_name: String,
    /// For the listener named `inbound`: its mutual TLS mode. `None` for every other.
    pub inbound: Option<InboundConfig>,
}

/// The `inbound` listener, as weft-proxy applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InboundConfig {
    pub mode: InboundMode,
}

/// What the inbound listener accepts, from its filter chains (an MtlsPolicy's mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InboundMode {
    /// Only mutual TLS with a client certificate of the mesh.
    Strict,
    /// Mutual TLS and plaintext alike; what a proxy does when it has no `inbound` listener
    /// (the controller's default too, as Istio's).
    #[default]
    Permissive,
    /// Plaintext only.
    Disable,
}

/// One RouteConfiguration: virtual hosts picked by `:authority`.
#[derive(Debug, Clone)]
pub struct RouteTable {
    pub name: String,
    pub virtual_hosts: Vec<Arc<VirtualHost>>,
    /// Every domain (lower case, as written: with or without port) → index in `virtual_hosts`.
    pub domains: HashMap<String, usize>,
    /// gRPC services and `/service/method` paths named by some route match; everything else
    /// is counted as `other` in metrics so label cardinality stays bounded.
    pub named: NamedMethods,
    /// The RouteConfiguration names `vhds`: virtual hosts beyond those inline come over
    /// VHDS as RPCs ask for them. In the assembled config the held ones are joined in.
    pub vhds: bool,
}

/// A virtual host received over VHDS, with the gRPC methods its routes name (joined into
/// its route table's [`RouteTable::named`]).
#[derive(Debug, Clone)]
pub struct OnDemandHost {
    pub host: Arc<VirtualHost>,
    pub named: NamedMethods,
}

/// Which gRPC services and methods the routes name (for metric labels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedMethods {
    /// `package.Service`
    pub services: BTreeSet<String>,
    /// `package.Service/Method`
    pub methods: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    /// First match wins.
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// From the route's `typed_per_filter_config["envoy.filters.http.fault"]`.
    pub fault: Option<FaultConfig>,
    /// From the route's `typed_per_filter_config["envoy.filters.http.cors"]`: applied to
    /// browsers' calls on the web listener.
    pub cors: Option<Arc<CorsPolicy>>,
}

/// A route's CORS policy (Envoy's `CorsPolicy`), as the web listener applies it.
#[derive(Debug, Clone, Default)]
pub struct CorsPolicy {
    /// A browser's `Origin` must match one of these.
    pub allow_origins: Vec<StringMatch>,
    /// Methods a preflight may ask for (gRPC-Web: `POST`).
    pub allow_methods: Vec<String>,
    /// Request headers a preflight allows.
    pub allow_headers: Vec<String>,
    /// Response headers pages may read.
    pub expose_headers: Vec<String>,
    /// How long, in seconds, a browser may reuse a preflight's answer.
    pub max_age: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// All must match.
    pub headers: Vec<HeaderMatch>,
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(regex::Regex),
}

#[derive(Debug, Clone)]
pub struct HeaderMatch {
    /// Lower case; may be the pseudo-header `:path` or `:authority`.
    pub name: String,
    pub value: StringMatch,
    pub invert: bool,
}

#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(regex::Regex),
    Present,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteAction {
    /// At least one; weights sum to `total_weight` > 0.
    pub backends: Vec<WeightedBackend>,
    pub total_weight: u64,
    /// Caps the client's `grpc-timeout` (and is the deadline when the client sends none).
    pub timeout: Option<Duration>,
    pub retry: Option<RetryPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedBackend {
    pub cluster: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// gRPC status codes (numeric) that are retried.
    pub codes: BTreeSet<u32>,
    /// Whether an attempt that never reached the app (connect failure, refused stream) is
    /// retried (`retry_on` `connect-failure` or `refused-stream`).
    pub not_sent: bool,
    /// Retries after the first attempt.
    pub retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub backoff: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultConfig {
    pub delay: Option<DelayFault>,
    pub abort: Option<AbortFault>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayFault {
    pub delay: Duration,
    /// Parts per million of RPCs delayed.
    pub per_million: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortFault {
    /// gRPC status code (numeric, 1..=16).
    pub grpc_status: u32,
    /// Sent as `grpc-message` (from `response_body`); may be empty.
    pub message: String,
    pub per_million: u32,
}

/// One upstream cluster: who it is for metrics, its endpoints from EDS, how to connect to
/// them, and how to protect them (circuit breakers, outlier detection).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterConfig {
    /// The Cluster's name, which routes refer to (`outbound|50051||greeter.default.svc...`).
    pub name: String,
    /// The destination service for metrics, e.g. `greeter.default.svc.cluster.local:50051`.
    pub service: String,
    /// How long connecting to an endpoint may take (Envoy's default 5 s when unset).
    pub connect_timeout: Duration,
    /// The EDS resource name to subscribe to (usually the cluster name).
    pub eds_name: String,
    /// Endpoints given inline (a `STATIC` cluster's `load_assignment`); such a cluster needs
    /// no EDS resource, and `assemble` uses these instead.
    pub inline_endpoints: Option<EndpointSet>,
    /// Mutual TLS to the endpoints marked for it ([`EndpointSet::mtls`]), from the
    /// cluster's `transport_socket_matches`; `None`: plaintext to every endpoint.
    pub mtls: Option<UpstreamMtls>,
    /// The limits of the cluster's circuit breakers (`circuit_breakers`, DEFAULT priority;
    /// Envoy's 1024 each when unset).
    pub circuit_breakers: CircuitBreakers,
    /// Passive health checking of the cluster's endpoints (`outlier_detection`); `None`:
    /// endpoints are never ejected.
    pub outlier_detection: Option<OutlierDetection>,
    /// HTTP/2 PINGs on connections this cluster opens (the upstream HTTP/2 protocol
    /// options' `connection_keepalive`); `None`: no keepalive pings.
    pub keepalive: Option<Http2Keepalive>,
}

/// A cluster's circuit-breaker limits (Envoy's `circuit_breakers.thresholds` of DEFAULT
/// priority). Past a limit the proxy answers UNAVAILABLE itself, and that answer is never
/// retried. 0 lets nothing through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakers {
    /// Attempts in flight to the cluster at once (`max_requests`), from an attempt's start
    /// until its response stream ends.
    pub max_requests: u32,
    /// Attempts waiting at once for a connection to an endpoint of the cluster to be
    /// established (`max_pending_requests`).
    pub max_pending_requests: u32,
}

impl CircuitBreakers {
    /// Envoy's default for each limit.
    pub const ENVOY_DEFAULT: u32 = 1024;
}

impl Default for CircuitBreakers {
    /// Envoy's defaults, which apply with no `circuit_breakers` at all.
    fn default() -> Self {
        Self {
            max_requests: Self::ENVOY_DEFAULT,
            max_pending_requests: Self::ENVOY_DEFAULT,
        }
    }
}

/// Envoy's consecutive-error outlier detection (`outlier_detection`): an endpoint that
/// answers too many 5xx (gRPC statuses count as Envoy's HTTP equivalents) in a row is
/// ejected from balancing for a while. Success-rate and failure-percentage detection are not
/// implemented (see `cluster.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierDetection {
    /// 5xx in a row that eject an endpoint (`consecutive_5xx`); 0 never does.
    pub consecutive_5xx: u32,
    /// 502, 503 or 504 in a row that eject an endpoint (`consecutive_gateway_failure`); 0
    /// never does.
    pub consecutive_gateway_failure: u32,
    /// Percent chance (0..=100) that a `consecutive_5xx` detection ejects.
    pub enforcing_consecutive_5xx: u32,
    /// Percent chance (0..=100) that a `consecutive_gateway_failure` detection ejects
    /// (Envoy's default 0: detected, never enforced).
    pub enforcing_consecutive_gateway_failure: u32,
    /// The ejection count of an endpoint decreases by one per `interval` in service.
    pub interval: Duration,
    /// An ejection lasts this times the endpoint's ejection count...
    pub base_ejection_time: Duration,
    /// ...but no longer than this (nor than `base_ejection_time`, if that is longer).
    pub max_ejection_time: Duration,
    /// Up to this much longer, at random (`max_ejection_time_jitter`; zero by default).
    pub max_ejection_time_jitter: Duration,
    /// At most this percent (0..=100) of the cluster's endpoints are ejected at once.
    pub max_ejection_percent: u32,
    /// Eject one endpoint even when `max_ejection_percent` would not allow any.
    pub always_eject_one_host: bool,
}

impl Default for OutlierDetection {
    /// Envoy's defaults (an `outlier_detection: {}`).
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_5xx: 100,
            enforcing_consecutive_gateway_failure: 0,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_time_jitter: Duration::ZERO,
            max_ejection_percent: 10,
            always_eject_one_host: false,
        }
    }
}

/// HTTP/2 keepalive on upstream connections (Envoy's `connection_keepalive`): a PING every
/// `interval`; no answer within `timeout` closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Keepalive {
    pub interval: Duration,
    pub timeout: Duration,
}

/// How a cluster speaks mutual TLS to its marked endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamMtls {
    /// What the server's URI SAN (its SPIFFE id) must start with:
    /// `spiffe://<trust-domain>/`.
    pub trust_domain_prefix: String,
}

/// Endpoints of one cluster from a ClusterLoadAssignment (health unknown, healthy or
/// degraded; the lowest priority that has any).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointSet {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    /// Those of `addrs` run by a mesh proxy that accepts mutual TLS (endpoint metadata
    /// `envoy.transport_socket_match: {tlsMode: weft}`); empty: none.
    pub mtls: BTreeSet<SocketAddr>,
}

impl EndpointSet {
    /// Whether RPCs to `addr` use mutual TLS, given the cluster's `mtls` setting: only
    /// when the cluster has one and the endpoint is marked (as Envoy's transport socket
    /// matches decide).
    pub fn uses_mtls(&self, cluster: &ClusterConfig, addr: SocketAddr) -> bool {
        cluster.mtls.is_some() && self.mtls.contains(&addr)
    }
}

/// Every converted resource by name, as the xDS client holds them.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub listeners: BTreeMap<String, ListenerConfig>,
    pub routes: BTreeMap<String, Arc<RouteTable>>,
    pub clusters: BTreeMap<String, Arc<ClusterConfig>>,
    pub endpoints: BTreeMap<String, Arc<EndpointSet>>,
    /// VHDS: the virtual hosts held, by resource name (`<route config>/<host>`).
    pub virtual_hosts: BTreeMap<String, Arc<OnDemandHost>>,
    /// VHDS: the names subscribed on demand and what the server answered.
    pub on_demand: OnDemandLookups,
    /// Per type: the version last applied (for `/config_dump` and metrics).
    pub versions: BTreeMap<ResourceKind, String>,
}

/// The config in force, read once per RPC.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// The outbound route table, once the listener and its RouteConfiguration have arrived
    /// (with the virtual hosts held from VHDS joined in).
    pub outbound: Option<Arc<RouteTable>>,
    /// The web route table (browsers' calls, by gRPC service), once the `web` listener and
    /// its RouteConfiguration have arrived.
    pub web: Option<Arc<RouteTable>>,
    /// The `inbound` listener's config; `None` when the server sent none (then
    /// [`Self::inbound_mode`] is `Permissive`). Not needed for the config to be complete:
    /// xDS servers other than weft-controller send no such listener.
    pub inbound: Option<InboundConfig>,
    pub clusters: HashMap<String, Arc<ClusterConfig>>,
    /// Endpoints by cluster name (empty when EDS has not arrived or has none).
    pub endpoints: HashMap<String, Arc<EndpointSet>>,
    /// Whether every referenced resource has arrived: the listener, its RouteConfiguration,
    /// every cluster a route names, and every cluster's endpoints.
    pub complete: bool,
    /// What `/config_dump` and `/debug/config` show.
    pub resources: Resources,
}

impl ProxyConfig {
    /// The inbound mode in force: the `inbound` listener's, `Permissive` without one.
    pub fn inbound_mode(&self) -> InboundMode {
        self.inbound.map(|inbound| inbound.mode).unwrap_or_default()
    }
}
