//! What the xDS client holds between responses and across reconnects: every converted
//! resource by type and name (a [`Resources`]), the version of each, and the names it wants
//! for the non-wildcard types (RDS from the held listeners, EDS from the held clusters,
//! VHDS the names RPCs asked for, with what the server answered: `config::OnDemandLookups`).
//!
//! Conversion goes through [`Parsers`], the five `config::parse_*` functions by default;
//! tests swap in their own so the protocol logic is tested on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;

use crate::config::{
    self, ClusterConfig, ConfigError, EndpointSet, ListenerConfig, OnDemandHost, ResourceKind,
    Resources, RouteTable,
};

/// `google.rpc.Code.INVALID_ARGUMENT`, the code of every NACK.
const INVALID_ARGUMENT: i32 = 3;

/// One conversion function: an xDS resource to the proxy's typed config.
pub type Parse<T> = fn(&Any) -> Result<T, ConfigError>;

/// The conversions the client applies to every resource it receives.
#[derive(Debug, Clone, Copy)]
pub struct Parsers {
    pub listener: Parse<ListenerConfig>,
    pub route: Parse<RouteTable>,
    pub cluster: Parse<ClusterConfig>,
    pub endpoints: Parse<EndpointSet>,
    pub virtual_host: Parse<OnDemandHost>,
}

impl Default for Parsers {
    fn default() -> Self {
        Self {
            listener: config::parse_listener,
            route: config::parse_route_config,
            cluster: config::parse_cluster,
            endpoints: config::parse_endpoints,
            virtual_host: config::parse_virtual_host,
        }
    }
}

/// One converted resource.
#[derive(Debug, Clone)]
pub enum Converted {
    Listener(ListenerConfig),
    Route(Arc<RouteTable>),
    Cluster(Arc<ClusterConfig>),
    Endpoints(Arc<EndpointSet>),
    VirtualHost(Arc<OnDemandHost>),
}

impl Converted {
    /// The name the resource gives itself.
    pub fn name(&self) -> &str {
        match self {
            Converted::Listener(listener) => &listener.name,
            Converted::Route(table) => &table.name,
            Converted::Cluster(cluster) => &cluster.name,
            Converted::Endpoints(set) => &set.name,
            Converted::VirtualHost(held) => &held.host.name,
        }
    }
}

impl Parsers {
    /// Converts one resource of a response of type `kind`.
    pub fn convert(&self, kind: ResourceKind, any: &Any) -> Result<Converted, ConfigError> {
        if any.type_url != kind.type_url() {
            return Err(ConfigError {
                resource: short_name(kind).to_string(),
                field: "@type".into(),
                problem: format!(
                    "{:?} in a response of type {}",
                    any.type_url,
                    kind.type_url()
                ),
            });
        }
        Ok(match kind {
            ResourceKind::Listener => Converted::Listener((self.listener)(any)?),
            ResourceKind::Route => Converted::Route(Arc::new((self.route)(any)?)),
            ResourceKind::Cluster => Converted::Cluster(Arc::new((self.cluster)(any)?)),
            ResourceKind::Endpoints => Converted::Endpoints(Arc::new((self.endpoints)(any)?)),
            ResourceKind::VirtualHost => {
                Converted::VirtualHost(Arc::new((self.virtual_host)(any)?))
            }
        })
    }
}

/// The message name of a type (`Cluster`, `ClusterLoadAssignment`, ...), used in metric
/// labels and error messages.
pub fn short_name(kind: ResourceKind) -> &'static str {
    let url = kind.type_url();
    url.rsplit_once('.').map_or(url, |(_, name)| name)
}

/// Which resources of a type the client wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// All of them (LDS, CDS).
    Wildcard,
    /// These names (RDS, EDS).
    Names(BTreeSet<String>),
    /// These names, asked for by RPCs (VHDS, Delta only): they do not follow other
    /// resources, and nothing held is dropped for not being among them.
    OnDemand(BTreeSet<String>),
}

/// The resources in force, and what each resource's version is.
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub parsers: Parsers,
    pub resources: Resources,
    /// Per type and name: the version the server gave the resource (Delta only).
    pub resource_versions: BTreeMap<ResourceKind, BTreeMap<String, String>>,
}

impl Held {
    pub fn new(parsers: Parsers) -> Self {
        Self {
            parsers,
            ..Self::default()
        }
    }

    /// Stores a converted resource under `name`, with its version when the server gives one.
    pub fn upsert(
        &mut self,
        kind: ResourceKind,
        name: &str,
        version: Option<&str>,
        value: Converted,
    ) {
        let name = name.to_string();
        match value {
            Converted::Listener(v) => {
                self.resources.listeners.insert(name.clone(), v);
            }
            Converted::Route(v) => {
                self.resources.routes.insert(name.clone(), v);
            }
            Converted::Cluster(v) => {
                self.resources.clusters.insert(name.clone(), v);
            }
            Converted::Endpoints(v) => {
                self.resources.endpoints.insert(name.clone(), v);
            }
            Converted::VirtualHost(v) => {
                self.resources.virtual_hosts.insert(name.clone(), v);
            }
        }
        let versions = self.resource_versions.entry(kind).or_default();
        match version {
            Some(version) => versions.insert(name, version.to_string()),
            None => versions.remove(&name),
        };
    }

    /// Drops a resource; says whether it was held.
    pub fn remove(&mut self, kind: ResourceKind, name: &str) -> bool {
        if let Some(versions) = self.resource_versions.get_mut(&kind) {
            versions.remove(name);
        }
        match kind {
            ResourceKind::Listener => self.resources.listeners.remove(name).is_some(),
            ResourceKind::Route => self.resources.routes.remove(name).is_some(),
            ResourceKind::Cluster => self.resources.clusters.remove(name).is_some(),
            ResourceKind::Endpoints => self.resources.endpoints.remove(name).is_some(),
            ResourceKind::VirtualHost => self.resources.virtual_hosts.remove(name).is_some(),
        }
    }

    /// VHDS: the server says `name` does not exist (in `removed_resources`, or as a
    /// resource without a body). A held host's name or an alias of one removes the host,
    /// and every name it answered becomes "not found"; any other name the proxy asked for
    /// is answered "not found".
    pub fn remove_on_demand(&mut self, name: &str) {
        let resource = if self.resources.virtual_hosts.contains_key(name) {
            Some(name.to_owned())
        } else {
            self.resources.on_demand.aliases.get(name).cloned()
        };
        match resource {
            Some(resource) => {
                self.remove(ResourceKind::VirtualHost, &resource);
                self.resources.on_demand.host_removed(&resource);
            }
            None => self.resources.on_demand.not_served(name),
        }
    }

    /// The names held of one type.
    pub fn names(&self, kind: ResourceKind) -> BTreeSet<String> {
        let r = &self.resources;
        match kind {
            ResourceKind::Listener => r.listeners.keys().cloned().collect(),
            ResourceKind::Route => r.routes.keys().cloned().collect(),
            ResourceKind::Cluster => r.clusters.keys().cloned().collect(),
            ResourceKind::Endpoints => r.endpoints.keys().cloned().collect(),
            ResourceKind::VirtualHost => r.virtual_hosts.keys().cloned().collect(),
        }
    }

    /// What the client should subscribe to for `kind`, given what it holds now.
    pub fn wanted(&self, kind: ResourceKind) -> Wanted {
        let r = &self.resources;
        match kind {
            ResourceKind::Listener | ResourceKind::Cluster => Wanted::Wildcard,
            ResourceKind::Route => Wanted::Names(
                r.listeners
                    .values()
                    .map(|l| l.route_config_name.clone())
                    .filter(|name| !name.is_empty())
                    .collect(),
            ),
            // A cluster with inline endpoints (STATIC) needs no EDS resource.
            ResourceKind::Endpoints => Wanted::Names(
                r.clusters
                    .values()
                    .filter(|c| c.inline_endpoints.is_none())
                    .map(|c| c.eds_name.clone())
                    .filter(|name| !name.is_empty())
                    .collect(),
            ),
            ResourceKind::VirtualHost => Wanted::OnDemand(r.on_demand.subscribed.clone()),
        }
    }

    /// Drops held resources of `kind` no longer wanted (after an unsubscribe); says whether
    /// anything was dropped.
    pub fn prune(&mut self, kind: ResourceKind, wanted: &BTreeSet<String>) -> bool {
        let stale: Vec<String> = self
            .names(kind)
            .into_iter()
            .filter(|name| !wanted.contains(name))
            .collect();
        let mut dropped = false;
        for name in stale {
            dropped |= self.remove(kind, &name);
        }
        dropped
    }

    /// Records the version of a type last applied (empty versions are not recorded).
    pub fn set_version(&mut self, kind: ResourceKind, version: &str) {
        if !version.is_empty() {
            self.resources.versions.insert(kind, version.to_string());
        }
    }

    /// The version of a type last applied, or "" before any.
    pub fn version(&self, kind: ResourceKind) -> &str {
        self.resources
            .versions
            .get(&kind)
            .map_or("", String::as_str)
    }
}

/// The `error_detail` of a NACK: INVALID_ARGUMENT with the message (every error of the
/// response, joined by "; ").
pub fn nack_status(message: &str) -> Status {
    Status {
        code: INVALID_ARGUMENT,
        message: message.to_string(),
        details: Vec::new(),
    }
}

/// The error for a response of a type the proxy does not use.
pub fn unknown_type(type_url: &str) -> String {
    format!(
        "unknown type URL {type_url:?}: weft-proxy uses only Listener, RouteConfiguration, \
         VirtualHost (Delta only), Cluster and ClusterLoadAssignment"
    )
}

/// What handling one response produced, for either protocol.
#[derive(Debug)]
pub struct Outcome<Request> {
    /// To send, in order (the ACK or NACK first, then subscription changes).
    pub requests: Vec<Request>,
    /// Whether the held resources changed (re-assemble and publish).
    pub changed: bool,
    /// The response's verdict, for metrics and logs.
    pub verdict: Verdict,
}

/// What the client said about one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The type's message name (`Cluster`), or `unknown`.
    pub type_name: &'static str,
    /// `None` when accepted (ACK); the NACK message otherwise.
    pub rejected: Option<String>,
}

impl Verdict {
    pub fn of(kind: Option<ResourceKind>, rejected: Option<String>) -> Self {
        Self {
            type_name: kind.map_or("unknown", short_name),
            rejected,
        }
    }
}

/// The protocol logic both ADS variants share with the stream loop.
pub trait Protocol {
    type Request;
    type Response;

    /// The requests that open a new stream (subscriptions in CDS, EDS, LDS, RDS, VHDS order).
    fn start(&mut self) -> Vec<Self::Request>;
    /// Handles one response.
    fn handle(&mut self, response: &Self::Response) -> Outcome<Self::Request>;
    /// The data path needs VHDS name `name` (`<route config>/<authority>`): the requests
    /// that subscribe it, if any, and whether the held resources changed (publish). Only
    /// Delta has VHDS; State-of-the-World does nothing.
    fn demand(&mut self, _name: &str) -> (Vec<Self::Request>, bool) {
        (Vec::new(), false)
    }
    /// Everything held now.
    fn held(&self) -> &Held;
}
