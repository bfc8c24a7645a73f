//! The incremental (Delta) ADS protocol, client side, as plain synchronous logic: responses
//! go in, requests to send and "the config changed" come out.
//!
//! - A new stream subscribes CDS and LDS with `*` and EDS/RDS with the names the held
//!   clusters and listeners refer to, announcing what it holds in
//!   `initial_resource_versions` so a reconnect re-sends nothing unchanged.
//! - A response is converted whole: one bad resource NACKs all of it and nothing is applied.
//!   Otherwise its upserts and `removed_resources` are applied and ACKed.
//! - After an accepted response, EDS and RDS subscriptions follow what the clusters and
//!   listeners now name (`resource_names_subscribe` / `_unsubscribe`); resources no longer
//!   wanted are dropped.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};

use super::state::{
    Converted, Held, Outcome, Protocol, Verdict, Wanted, nack_status, short_name, unknown_type,
};
use crate::config::{ConfigError, ResourceKind};

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
    ) -> Result<Vec<(String, String, Converted)>, Vec<String>> {
        let mut converted = Vec::new();
        let mut errors = Vec::new();
        for resource in &response.resources {
            let result = match &resource.resource {
                Some(any) => self.held.parsers.convert(kind, any),
                None => Err(ConfigError {
                    resource: format!("{} {}", short_name(kind), resource.name),
                    field: "resource".into(),
                    problem: "missing".into(),
                }),
            };
            match result {
                Ok(value) => {
                    let name = match resource.name.as_str() {
                        "" => value.name().to_string(),
                        name => name.to_string(),
                    };
                    converted.push((name, resource.version.clone(), value))
                }
                Err(err) => errors.push(err.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(converted)
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
        for kind in ResourceKind::ALL {
            let names = match self.held.wanted(kind) {
                Wanted::Wildcard => BTreeSet::from(["*".to_string()]),
                Wanted::Names(names) if names.is_empty() => continue,
                Wanted::Names(names) => names,
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
        let converted = match self.convert_all(kind, response) {
            Ok(converted) => converted,
            Err(errors) => {
                let message = errors.join("; ");
                return Outcome {
                    requests: vec![reply(Some(message.clone()))],
                    changed: false,
                    verdict: Verdict::of(Some(kind), Some(message)),
                };
            }
        };
        for (name, version, value) in converted {
            self.held.upsert(kind, &name, Some(&version), value);
        }
        for name in &response.removed_resources {
            self.held.remove(kind, name);
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
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
