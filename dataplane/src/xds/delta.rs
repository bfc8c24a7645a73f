//! The incremental (Delta) ADS protocol, client side, as plain synchronous logic: responses
//! go in, requests to send and "the config changed" come out.
//!
//! - A new stream subscribes CDS and LDS with `*` and EDS/RDS with the names the held
//!   clusters and listeners refer to (and VHDS the names asked before, first), announcing
//!   what it holds in `initial_resource_versions` so a reconnect re-sends nothing unchanged.
//! - A response is converted whole: one bad resource NACKs all of it and nothing is applied.
//!   Otherwise its upserts and `removed_resources` are applied and ACKed.
//! - After an accepted response, EDS and RDS subscriptions follow what the clusters and
//!   listeners now name (`resource_names_subscribe` / `_unsubscribe`); resources no longer
//!   wanted are dropped.
//! - VHDS: when the data path needs a virtual host ([`Protocol::demand`]) its name
//!   (`<route config>/<authority>`) is subscribed once and kept for the proxy's lifetime.
//!   The server answers with the host under its own resource name listing the name among
//!   its `aliases`, or says no host serves it: a resource of that name (or listing it as an
//!   alias) without a body, as Envoy expects, or the name in `removed_resources`. Later
//!   removals (either way) may name the host or an alias. Held hosts are announced by
//!   resource name in `initial_resource_versions` on reconnect, and the names asked for are
//!   re-subscribed.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};

use super::state::{
    Converted, Held, Outcome, Protocol, Verdict, Wanted, nack_status, short_name, unknown_type,
};
use crate::config::{ConfigError, Demand, ResourceKind};

/// The order a new stream subscribes in. VHDS (only on a reconnect: names are subscribed
/// on demand) goes first: a server whose wildcard CDS follows the virtual hosts a stream
/// holds (weft-controller) then knows them when it answers CDS; asked CDS first it would
/// remove their clusters (and the proxy their endpoints) until the VHDS request arrived.
const START_ORDER: [ResourceKind; 5] = [
    ResourceKind::VirtualHost,
    ResourceKind::Cluster,
    ResourceKind::Endpoints,
    ResourceKind::Listener,
    ResourceKind::Route,
];

/// A response's resources, converted.
#[derive(Default)]
struct Changes {
    upserts: Vec<Upsert>,
    /// VHDS: names the server says no host serves (resources without a body).
    absent: Vec<String>,
}

/// One resource of a response, converted.
struct Upsert {
    name: String,
    version: String,
    /// The names it answers besides its own (VHDS).
    aliases: Vec<String>,
    value: Converted,
}

/// The Delta protocol state: what is held (kept across reconnects) and what this stream
/// subscribed to.
#[derive(Debug)]
pub struct DeltaState {
    node: Node,
    held: Held,
    /// Per type, the names subscribed on the current stream (`*` for wildcard types).
    subscribed: BTreeMap<ResourceKind, BTreeSet<String>>,
}

impl DeltaState {
    pub fn new(node: Node, held: Held) -> Self {
        Self {
            node,
            held,
            subscribed: BTreeMap::new(),
        }
    }

    /// Gives up the held resources (to continue over State-of-the-World).
    pub fn into_held(self) -> Held {
        self.held
    }

    fn request(&self, kind: ResourceKind) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: kind.type_url().to_string(),
            ..Default::default()
        }
    }

    /// Subscription changes for the named types after the held resources changed; drops
    /// resources no longer wanted. Returns the requests and whether anything was dropped.
    fn follow_references(&mut self) -> (Vec<DeltaDiscoveryRequest>, bool) {
        let mut requests = Vec::new();
        let mut dropped = false;
        for kind in ResourceKind::ALL {
            let Wanted::Names(wanted) = self.held.wanted(kind) else {
                continue;
            };
            let current = self.subscribed.get(&kind).cloned().unwrap_or_default();
            let subscribe: Vec<String> = wanted.difference(&current).cloned().collect();
            let unsubscribe: Vec<String> = current.difference(&wanted).cloned().collect();
            dropped |= self.held.prune(kind, &wanted);
            if subscribe.is_empty() && unsubscribe.is_empty() {
                continue;
            }
            let mut request = self.request(kind);
            request.resource_names_subscribe = subscribe;
            request.resource_names_unsubscribe = unsubscribe;
            requests.push(request);
            self.subscribed.insert(kind, wanted);
        }
        (requests, dropped)
    }

    /// Converts every resource of a response, or says what is wrong with it.
    fn convert_all(
        &self,
        kind: ResourceKind,
        response: &DeltaDiscoveryResponse,
    ) -> Result<Changes, Vec<String>> {
        let mut changes = Changes::default();
        let mut errors = Vec::new();
        for resource in &response.resources {
            let missing = |field: &str| ConfigError {
                resource: format!("{} {}", short_name(kind), resource.name),
                field: field.into(),
                problem: "missing".into(),
            };
            let vhds = kind == ResourceKind::VirtualHost;
            let result = match &resource.resource {
                // A virtual host's own name is not its resource name (`<route config>/...`),
                // which is how it is held, updated and removed.
                Some(_) if vhds && resource.name.is_empty() => Err(missing("name")),
                Some(any) => self.held.parsers.convert(kind, any).map_err(|mut err| {
                    if vhds {
                        err.resource = format!("{} {}", short_name(kind), resource.name);
                    }
                    err
                }),
                // Envoy's VHDS "no such host": the names asked for, without a body.
                None if vhds && !(resource.name.is_empty() && resource.aliases.is_empty()) => {
                    let names = resource.aliases.iter().chain([&resource.name]);
                    let names = names.filter(|name| !name.is_empty()).cloned();
                    changes.absent.extend(names);
                    continue;
                }
                None if vhds => Err(missing("name")),
                None => Err(missing("resource")),
            };
            match result {
                Ok(value) => {
                    let name = match resource.name.as_str() {
                        "" => value.name().to_string(),
                        name => name.to_string(),
                    };
                    changes.upserts.push(Upsert {
                        name,
                        version: resource.version.clone(),
                        aliases: resource.aliases.clone(),
                        value,
                    })
                }
                Err(err) => errors.push(err.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }
}

impl Protocol for DeltaState {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;

    fn start(&mut self) -> Vec<DeltaDiscoveryRequest> {
        self.subscribed.clear();
        let mut requests = Vec::new();
        for kind in START_ORDER {
            let names = match self.held.wanted(kind) {
                Wanted::Wildcard => BTreeSet::from(["*".to_string()]),
                Wanted::Names(names) | Wanted::OnDemand(names) if names.is_empty() => continue,
                Wanted::Names(names) | Wanted::OnDemand(names) => names,
            };
            let mut request = self.request(kind);
            request.resource_names_subscribe = names.iter().cloned().collect();
            request.initial_resource_versions = self
                .held
                .resource_versions
                .get(&kind)
                .map(|versions| versions.clone().into_iter().collect())
                .unwrap_or_default();
            requests.push(request);
            self.subscribed.insert(kind, names);
        }
        if let Some(first) = requests.first_mut() {
            first.node = Some(self.node.clone());
        }
        requests
    }

    fn handle(&mut self, response: &DeltaDiscoveryResponse) -> Outcome<DeltaDiscoveryRequest> {
        let reply = |rejected: Option<String>| DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail: rejected.map(|message| nack_status(&message)),
            ..Default::default()
        };
        let Some(kind) = ResourceKind::from_type_url(&response.type_url) else {
            let message = unknown_type(&response.type_url);
            return Outcome {
                requests: vec![reply(Some(message.clone()))],
                changed: false,
                verdict: Verdict::of(None, Some(message)),
            };
        };
        let changes = match self.convert_all(kind, response) {
            Ok(changes) => changes,
            Err(errors) => {
                let message = errors.join("; ");
                return Outcome {
                    requests: vec![reply(Some(message.clone()))],
                    changed: false,
                    verdict: Verdict::of(Some(kind), Some(message)),
                };
            }
        };
        for upsert in changes.upserts {
            let value = match upsert.value {
                Converted::VirtualHost(host) => {
                    Converted::VirtualHost(host.named_within(&upsert.name))
                }
                value => value,
            };
            self.held
                .upsert(kind, &upsert.name, Some(&upsert.version), value);
            if kind == ResourceKind::VirtualHost {
                let lookups = &mut self.held.resources.on_demand;
                lookups.answered(&upsert.name, &upsert.aliases);
            }
        }
        for name in changes.absent.iter().chain(&response.removed_resources) {
            if kind == ResourceKind::VirtualHost {
                self.held.remove_on_demand(name);
            } else {
                self.held.remove(kind, name);
            }
        }
        self.held.set_version(kind, &response.system_version_info);
        let mut requests = vec![reply(None)];
        let (subscriptions, _) = self.follow_references();
        requests.extend(subscriptions);
        Outcome {
            requests,
            changed: true,
            verdict: Verdict::of(Some(kind), None),
        }
    }

    fn held(&self) -> &Held {
        &self.held
    }

    fn demand(&mut self, name: &str) -> (Vec<DeltaDiscoveryRequest>, bool) {
        let kind = ResourceKind::VirtualHost;
        match self.held.resources.on_demand.demand(name) {
            Demand::AlreadyAsked => (Vec::new(), false),
            // Published, so the RPCs waiting for it fail now.
            Demand::Refused => (Vec::new(), true),
            Demand::Subscribe => {
                self.subscribed
                    .entry(kind)
                    .or_default()
                    .insert(name.to_owned());
                let mut request = self.request(kind);
                request.resource_names_subscribe = vec![name.to_owned()];
                (vec![request], false)
            }
        }
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "delta_vhds_tests.rs"]
mod vhds_tests;
