//! The State-of-the-World ADS protocol for one stream, as plain synchronous logic: requests
//! and new snapshots go in, responses and client events come out.
//!
//! Rules it keeps (xDS protocol, "ACK/NACK and resource type instance version"):
//! - a request whose `response_nonce` is not the latest one sent for its type is stale: its
//!   ACK/NACK and subscription are ignored;
//! - a NACK (`error_detail` set) is recorded and that version is not sent again; the next
//!   different snapshot is;
//! - a response is sent when the subscription changes or the subscribed resources change;
//! - snapshot pushes go out CDS → EDS → LDS → RDS; a cluster removal is held back until the
//!   listeners and routes no longer refer to it (the clusters are first re-sent as the union
//!   of old and new, and the final set goes out after RDS).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::progress::{ClientEvent, Nack, NonceSource, TypeProgress, Version};
use super::snapshot::{Snapshot, VersionedResource, content_hash};
use super::types::ResourceType;

/// The result of handling one request.
#[derive(Debug, Default)]
pub struct SotwReply {
    pub responses: Vec<DiscoveryResponse>,
    pub events: Vec<ClientEvent>,
}

/// The protocol state of one SotW stream.
#[derive(Debug, Default)]
pub struct SotwStream {
    nonces: NonceSource,
    types: BTreeMap<ResourceType, TypeState>,
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    last_nonce: String,
    /// What the client holds after the last response (by name).
    sent: BTreeMap<String, Arc<VersionedResource>>,
    progress: TypeProgress,
}

/// The resources a subscription selects from a snapshot, with their combined version.
struct View {
    version: String,
    resources: BTreeMap<String, Arc<VersionedResource>>,
}

impl View {
    fn new(resources: BTreeMap<String, Arc<VersionedResource>>) -> Self {
        let version = content_hash(
            resources
                .values()
                .flat_map(|r| [r.name.as_bytes(), r.version.as_bytes()]),
        );
        Self { version, resources }
    }
}

impl TypeState {
    fn view(&self, ty: ResourceType, snapshot: &Snapshot) -> View {
        let all = snapshot.resources(ty);
        let resources = if self.wildcard {
            all.iter()
                .map(|r| (r.name.to_string(), r.clone()))
                .collect()
        } else {
            self.names
                .iter()
                .filter_map(|n| all.get(n).map(|r| (n.clone(), r.clone())))
                .collect()
        };
        View::new(resources)
    }

    /// True when `version` differs from what was sent and was not rejected.
    fn worth_sending(&self, version: &str) -> bool {
        let nacked = self
            .progress
            .last_nack
            .as_ref()
            .is_some_and(|n| n.version == version);
        self.progress.sent_version.as_deref() != Some(version) && !nacked
    }
}

impl SotwStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Per-type progress, for debug output and status.
    pub fn progress(&self) -> impl Iterator<Item = (ResourceType, &TypeProgress)> {
        self.types.iter().map(|(ty, st)| (*ty, &st.progress))
    }

    /// Handles one client request against the snapshot currently served.
    pub fn handle_request(&mut self, req: &DiscoveryRequest, snapshot: &Snapshot) -> SotwReply {
        let mut reply = SotwReply::default();
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            reply.events.push(ClientEvent::UnknownType {
                type_url: req.type_url.clone(),
            });
            return reply;
        };
        let first = !self.types.contains_key(&ty);
        let st = self.types.entry(ty).or_default();

        if !req.response_nonce.is_empty() {
            if req.response_nonce != st.last_nonce {
                reply.events.push(ClientEvent::StaleNonce {
                    ty,
                    nonce: req.response_nonce.clone(),
                });
                return reply;
            }
            match &req.error_detail {
                Some(error) => {
                    let version = st.progress.sent_version.as_deref().unwrap_or_default();
                    let nack = Nack::new(version.to_owned(), &error.message)
                        .about(st.sent.keys().map(String::as_str));
                    st.progress.last_nack = Some(Box::new(nack.clone()));
                    reply.events.push(ClientEvent::Nack { ty, nack });
                }
                None => {
                    let version: Version = match &st.progress.sent_version {
                        Some(sent) if **sent == *req.version_info => sent.clone(),
                        _ => req.version_info.as_str().into(),
                    };
                    st.progress.acked_version = Some(version.clone());
                    reply.events.push(ClientEvent::Ack { ty, version });
                }
            }
        }

        let wildcard = (req.resource_names.is_empty() && ty.empty_means_wildcard())
            || req.resource_names.iter().any(|n| n == "*");
        let names: BTreeSet<String> = req
            .resource_names
            .iter()
            .filter(|n| *n != "*")
            .cloned()
            .collect();
        let subscription_changed = first || wildcard != st.wildcard || names != st.names;
        st.wildcard = wildcard;
        st.names = names;

        let view = st.view(ty, snapshot);
        if subscription_changed || st.worth_sending(&view.version) {
            reply
                .responses
                .push(respond(ty, st, view, &mut self.nonces));
        }
        reply
    }

    /// Pushes what changed in `snapshot` to the types this stream subscribed to, in
    /// make-before-break order.
    pub fn handle_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DiscoveryResponse> {
        let mut upserts = Vec::new();
        let mut deferred_removals = Vec::new();
        for ty in ResourceType::PUSH_ORDER {
            let Some(st) = self.types.get_mut(&ty) else {
                continue;
            };
            let view = st.view(ty, snapshot);
            if !st.worth_sending(&view.version) {
                continue;
            }
            let removes_clusters = ty == ResourceType::Cluster
                && st
                    .sent
                    .keys()
                    .any(|name| !view.resources.contains_key(name));
            if removes_clusters {
                // Old and new clusters together first; the final set after the routes.
                let mut union = st.sent.clone();
                union.extend(view.resources.iter().map(|(n, r)| (n.clone(), r.clone())));
                upserts.push(respond(ty, st, View::new(union), &mut self.nonces));
                deferred_removals.push((ty, view));
            } else {
                upserts.push(respond(ty, st, view, &mut self.nonces));
            }
        }
        for (ty, view) in deferred_removals {
            if let Some(st) = self.types.get_mut(&ty) {
                upserts.push(respond(ty, st, view, &mut self.nonces));
            }
        }
        upserts
    }
}

fn respond(
    ty: ResourceType,
    st: &mut TypeState,
    view: View,
    nonces: &mut NonceSource,
) -> DiscoveryResponse {
    let (_, nonce) = nonces.next();
    st.last_nonce = nonce.clone();
    st.progress.sent_version = Some(view.version.as_str().into());
    let response = DiscoveryResponse {
        version_info: view.version,
        resources: view.resources.values().map(|r| r.body.clone()).collect(),
        type_url: ty.type_url().to_string(),
        nonce,
        ..Default::default()
    };
    st.sent = view.resources;
    response
}

#[cfg(test)]
#[path = "sotw_tests.rs"]
mod tests;
