//! The proxy's own typed config: what the data path reads on every RPC, built from Envoy v3
//! xDS resources and validated on the way in (`listener`, `routes`, `cluster`, `endpoints`
//! convert one resource each; `assemble` joins them into one [`ProxyConfig`]).
//!
//! A resource that cannot be converted is an error that names the resource and the field, so
//! the xDS client can NACK it with a precise `error_detail` and keep the last good config.
//! Nothing here does I/O; the data path holds an `Arc<ProxyConfig>` per RPC.

mod assemble;
mod cluster;
#[cfg(test)]
mod controller_output_tests;
mod convert;
mod endpoints;
mod fault;
mod listener;
mod matching;
mod route_action;
mod route_match;
mod routes;
mod string_match;
#[cfg(test)]
mod test_protos;

pub use assemble::assemble;
pub use cluster::parse_cluster;
pub use endpoints::parse_endpoints;
pub use listener::parse_listener;
pub use matching::RouteDecision;
pub use routes::parse_route_config;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 4] = [
        ResourceKind::Cluster,
        ResourceKind::Endpoints,
        ResourceKind::Listener,
        ResourceKind::Route,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            ResourceKind::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceKind::Endpoints => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceKind::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceKind::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.type_url() == url)
    }

    /// Whether the proxy subscribes to every resource of this type (LDS, CDS) or only to
    /// the names other resources refer to (RDS, EDS).
    pub fn is_wildcard(self) -> bool {
        matches!(self, ResourceKind::Listener | ResourceKind::Cluster)
    }
}

/// The outbound listener's HTTP config (its address is the proxy's own `--outbound-addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub name: String,
    /// The RouteConfiguration it reads over RDS (`outbound/<namespace>`).
    pub route_config_name: String,
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

/// One upstream cluster: who it is for metrics, and its endpoints from EDS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: String,
    /// The destination service for metrics, e.g. `greeter.default.svc.cluster.local:50051`.
    pub service: String,
    pub connect_timeout: Duration,
    /// The EDS resource name to subscribe to (usually the cluster name).
    pub eds_name: String,
    /// Endpoints given inline (a `STATIC` cluster's `load_assignment`); such a cluster needs
    /// no EDS resource, and `assemble` uses these instead.
    pub inline_endpoints: Option<EndpointSet>,
}

/// Endpoints of one cluster from a ClusterLoadAssignment (health unknown, healthy or
/// degraded; the lowest priority that has any).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointSet {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
}

/// Every converted resource by name, as the xDS client holds them.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub listeners: BTreeMap<String, ListenerConfig>,
    pub routes: BTreeMap<String, Arc<RouteTable>>,
    pub clusters: BTreeMap<String, Arc<ClusterConfig>>,
    pub endpoints: BTreeMap<String, Arc<EndpointSet>>,
    /// Per type: the version last applied (for `/config_dump` and metrics).
    pub versions: BTreeMap<ResourceKind, String>,
}

/// The config in force, read once per RPC.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// The outbound route table, once the listener and its RouteConfiguration have arrived.
    pub outbound: Option<Arc<RouteTable>>,
    pub clusters: HashMap<String, Arc<ClusterConfig>>,
    /// Endpoints by cluster name (empty when EDS has not arrived or has none).
    pub endpoints: HashMap<String, Arc<EndpointSet>>,
    /// Whether every referenced resource has arrived: the listener, its RouteConfiguration,
    /// every cluster a route names, and every cluster's endpoints.
    pub complete: bool,
    /// What `/config_dump` shows.
    pub resources: Resources,
}
