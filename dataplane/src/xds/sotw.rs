//! The State-of-the-World ADS protocol, client side, as plain synchronous logic.
//!
//! - Every request of a type carries the full list of names wanted (empty for the wildcard
//!   types LDS and CDS), the version last applied and the nonce last received on this
//!   stream; a new stream sends the last applied versions with no nonce.
//! - A response is converted whole: one bad resource NACKs all of it (the request keeps the
//!   last good version) and nothing is applied.
//! - LDS and CDS responses are the full set, so held names they omit are removed; RDS and
//!   EDS responses carry only what they carry.
//! - After an accepted response, RDS and EDS requests follow what the listeners and clusters
//!   now name; resources no longer wanted are dropped.
//! - No VHDS: it is Delta only. A RouteConfiguration naming `vhds`, or a VirtualHost
//!   response, is NACKed (the server should have sent the hosts inline).

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;

use super::state::{
    Converted, Held, Outcome, Protocol, Verdict, Wanted, nack_status, unknown_type,
};
use crate::config::ResourceKind;

/// The SotW protocol state: what is held (kept across reconnects) and, per type, what this
/// stream last asked for.
#[derive(Debug)]
pub struct SotwState {
    node: Node,
    held: Held,
    streams: BTreeMap<ResourceKind, Requested>,
}

/// One type on the current stream.
#[derive(Debug, Clone, Default)]
struct Requested {
    /// Names in the last request (empty: wildcard for LDS/CDS).
    names: BTreeSet<String>,
    /// The nonce of the last response of this type on this stream.
    nonce: String,
}

impl SotwState {
    pub fn new(node: Node, held: Held) -> Self {
        Self {
            node,
            held,
            streams: BTreeMap::new(),
        }
    }

    fn request(&self, kind: ResourceKind, error: Option<Status>) -> DiscoveryRequest {
        let requested = self.streams.get(&kind).cloned().unwrap_or_default();
        DiscoveryRequest {
            version_info: self.held.version(kind).to_string(),
            resource_names: requested.names.into_iter().collect(),
            type_url: kind.type_url().to_string(),
            response_nonce: requested.nonce,
            error_detail: error,
            ..Default::default()
        }
    }

    /// New requests for the named types whose wanted names changed; drops resources no
    /// longer wanted.
    fn follow_references(&mut self) -> Vec<DiscoveryRequest> {
        let mut requests = Vec::new();
        for kind in ResourceKind::ALL {
            let Wanted::Names(wanted) = self.held.wanted(kind) else {
                continue;
            };
            self.held.prune(kind, &wanted);
            let current = self.streams.get(&kind);
            let unchanged = match current {
                Some(requested) => requested.names == wanted,
                None => wanted.is_empty(),
            };
            if unchanged {
                continue;
            }
            self.streams.entry(kind).or_default().names = wanted;
            requests.push(self.request(kind, None));
        }
        requests
    }

    fn convert_all(
        &self,
        kind: ResourceKind,
        response: &DiscoveryResponse,
    ) -> Result<Vec<Converted>, Vec<String>> {
        let mut converted = Vec::new();
        let mut errors = Vec::new();
        for any in &response.resources {
            match self.held.parsers.convert(kind, any) {
                Ok(Converted::Route(table)) if table.vhds => errors.push(format!(
                    "RouteConfiguration {}: vhds: virtual host discovery needs Delta xDS",
                    table.name
                )),
                Ok(value) => converted.push(value),
                Err(err) => errors.push(err.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(converted)
        } else {
            Err(errors)
        }
    }

    fn apply(&mut self, kind: ResourceKind, converted: Vec<Converted>, version: &str) {
        if kind.is_wildcard() {
            let present: BTreeSet<&str> = converted.iter().map(Converted::name).collect();
            for name in self.held.names(kind) {
                if !present.contains(name.as_str()) {
                    self.held.remove(kind, &name);
                }
            }
        }
        for value in converted {
            let name = value.name().to_string();
            self.held.upsert(kind, &name, None, value);
        }
        self.held.set_version(kind, version);
    }
}

impl Protocol for SotwState {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;

    fn start(&mut self) -> Vec<DiscoveryRequest> {
        self.streams.clear();
        let mut requests = Vec::new();
        for kind in ResourceKind::ALL {
            let names = match self.held.wanted(kind) {
                Wanted::Wildcard => BTreeSet::new(),
                Wanted::Names(names) if names.is_empty() => continue,
                Wanted::Names(names) => names,
                Wanted::OnDemand(_) => continue,
            };
            self.streams.insert(
                kind,
                Requested {
                    names,
                    nonce: String::new(),
                },
            );
            requests.push(self.request(kind, None));
        }
        if let Some(first) = requests.first_mut() {
            first.node = Some(self.node.clone());
        }
        requests
    }

    fn handle(&mut self, response: &DiscoveryResponse) -> Outcome<DiscoveryRequest> {
        let kind = ResourceKind::from_type_url(&response.type_url)
            .filter(|kind| *kind != ResourceKind::VirtualHost);
        let Some(kind) = kind else {
            let message = unknown_type(&response.type_url);
            let request = DiscoveryRequest {
                type_url: response.type_url.clone(),
                response_nonce: response.nonce.clone(),
                error_detail: Some(nack_status(&message)),
                ..Default::default()
            };
            return Outcome {
                requests: vec![request],
                changed: false,
                verdict: Verdict::of(None, Some(message)),
            };
        };
        self.streams.entry(kind).or_default().nonce = response.nonce.clone();
        match self.convert_all(kind, response) {
            Err(errors) => {
                let message = errors.join("; ");
                Outcome {
                    requests: vec![self.request(kind, Some(nack_status(&message)))],
                    changed: false,
                    verdict: Verdict::of(Some(kind), Some(message)),
                }
            }
            Ok(converted) => {
                self.apply(kind, converted, &response.version_info);
                let mut ack = self.request(kind, None);
                ack.version_info = response.version_info.clone();
                let mut requests = vec![ack];
                requests.extend(self.follow_references());
                Outcome {
                    requests,
                    changed: true,
                    verdict: Verdict::of(Some(kind), None),
                }
            }
        }
    }

    fn held(&self) -> &Held {
        &self.held
    }
}

#[cfg(test)]
#[path = "sotw_tests.rs"]
mod tests;
