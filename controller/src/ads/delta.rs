//! The incremental (Delta) ADS protocol for one stream, as plain synchronous logic.
//!
//! The server tracks, per type, which resource versions the client holds: ACKed ones, and
//! the contents of responses still awaiting an ACK. It sends only what differs, tells the
//! client about removals (and about subscribed names that do not exist), and on reconnect
//! starts from the client's `initial_resource_versions`, so a controller restart re-sends
//! nothing the proxy already has. A NACKed resource version is remembered and not re-sent;
//! a newer version of it is. Snapshot pushes send upserts CDS → EDS → LDS → RDS, then
//! removals in reverse order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use super::progress::{ClientEvent, Nack, NonceSource, TypeProgress};
use super::snapshot::{Snapshot, VersionedResource};
use super::types::ResourceType;

/// The result of handling one request.
#[derive(Debug, Default)]
pub struct DeltaReply {
    pub responses: Vec<DeltaDiscoveryResponse>,
    pub events: Vec<ClientEvent>,
}

/// The protocol state of one Delta stream.
#[derive(Debug, Default)]
pub struct DeltaStream {
    nonces: NonceSource,
    types: BTreeMap<ResourceType, TypeState>,
}

/// What the client holds under a name: a version, or our word that it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Version(String),
    Absent,
}

#[derive(Debug)]
struct Pending {
    system_version: String,
    changes: Vec<(String, Held)>,
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    /// ACKed (or announced on reconnect) state of the client.
    acked: BTreeMap<String, Held>,
    /// Sent, not yet ACKed, in nonce order.
    pending: BTreeMap<u64, Pending>,
    /// Versions the client rejected, by name.
    rejected: BTreeMap<String, String>,
    progress: TypeProgress,
}

impl TypeState {
    /// What the client will hold once everything in flight is applied.
    fn held(&self, name: &str) -> Option<&Held> {
        self.pending
            .values()
            .rev()
            .find_map(|p| {
                p.changes
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, h)| h)
            })
            .or_else(|| self.acked.get(name))
    }

    fn held_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.acked.keys().cloned().collect();
        for pending in self.pending.values() {
            names.extend(pending.changes.iter().map(|(n, _)| n.clone()));
        }
        names
    }

    fn subscribed(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// Resources to send (new or changed, not rejected) and names to remove.
    fn diff(
        &self,
        ty: ResourceType,
        snapshot: &Snapshot,
    ) -> (Vec<Arc<VersionedResource>>, Vec<String>) {
        let all = snapshot.resources(ty);
        let candidates: Vec<&Arc<VersionedResource>> = if self.wildcard {
            all.iter().collect()
        } else {
            self.names.iter().filter_map(|n| all.get(n)).collect()
        };
        let upserts = candidates
            .into_iter()
            .filter(|r| self.held(&r.name) != Some(&Held::Version(r.version.clone())))
            .filter(|r| self.rejected.get(&r.name) != Some(&r.version))
            .cloned()
            .collect();
        let mut removals: BTreeSet<String> = self
            .held_names()
            .into_iter()
            .filter(|n| all.get(n).is_none() && self.subscribed(n))
            .filter(|n| self.held(n) != Some(&Held::Absent))
            .collect();
        // Named subscriptions to resources that do not exist are answered as removals.
        removals.extend(
            self.names
                .iter()
                .filter(|n| all.get(n).is_none() && self.held(n).is_none())
                .cloned(),
        );
        (upserts, removals.into_iter().collect())
    }
}

impl DeltaStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Per-type progress, for debug output and status.
    pub fn progress(&self) -> impl Iterator<Item = (ResourceType, &TypeProgress)> {
        self.types.iter().map(|(ty, st)| (*ty, &st.progress))
    }

    /// Handles one client request against the snapshot currently served.
    pub fn handle_request(
        &mut self,
        req: &DeltaDiscoveryRequest,
        snapshot: &Snapshot,
    ) -> DeltaReply {
        let mut reply = DeltaReply::default();
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            reply.events.push(ClientEvent::UnknownType {
                type_url: req.type_url.clone(),
            });
            return reply;
        };
        let first = !self.types.contains_key(&ty);
        let st = self.types.entry(ty).or_default();

        if !req.response_nonce.is_empty() {
            match req
                .response_nonce
                .parse::<u64>()
                .ok()
                .and_then(|n| st.pending.remove(&n))
            {
                None => reply.events.push(ClientEvent::StaleNonce {
                    ty,
                    nonce: req.response_nonce.clone(),
                }),
                Some(pending) => reply.events.push(settle(ty, st, pending, req)),
            }
        }

        if first {
            st.wildcard = ty.empty_means_wildcard() && req.resource_names_subscribe.is_empty();
            for (name, version) in &req.initial_resource_versions {
                st.acked
                    .insert(name.clone(), Held::Version(version.clone()));
            }
        }
        for name in &req.resource_names_subscribe {
            if name == "*" {
                st.wildcard = true;
            } else {
                st.names.insert(name.clone());
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                st.wildcard = false;
            } else {
                st.names.remove(name);
                st.acked.remove(name);
                st.rejected.remove(name);
            }
        }

        let (upserts, removals) = st.diff(ty, snapshot);
        if first || !upserts.is_empty() || !removals.is_empty() {
            reply.responses.push(respond(
                ty,
                st,
                snapshot,
                upserts,
                removals,
                &mut self.nonces,
            ));
        }
        reply
    }

    /// Pushes what changed in `snapshot`: upserts in make-before-break order, then
    /// removals in reverse order.
    pub fn handle_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        let mut responses = Vec::new();
        let mut removals_by_type = Vec::new();
        for ty in ResourceType::PUSH_ORDER {
            let Some(st) = self.types.get_mut(&ty) else {
                continue;
            };
            let (upserts, removals) = st.diff(ty, snapshot);
            if !upserts.is_empty() {
                responses.push(respond(
                    ty,
                    st,
                    snapshot,
                    upserts,
                    Vec::new(),
                    &mut self.nonces,
                ));
            }
            if !removals.is_empty() {
                removals_by_type.push((ty, removals));
            }
        }
        for (ty, removals) in removals_by_type.into_iter().rev() {
            if let Some(st) = self.types.get_mut(&ty) {
                responses.push(respond(
                    ty,
                    st,
                    snapshot,
                    Vec::new(),
                    removals,
                    &mut self.nonces,
                ));
            }
        }
        responses
    }
}

/// Applies an ACK or NACK of a pending response and says which it was.
fn settle(
    ty: ResourceType,
    st: &mut TypeState,
    pending: Pending,
    req: &DeltaDiscoveryRequest,
) -> ClientEvent {
    match &req.error_detail {
        Some(error) => {
            for (name, held) in pending.changes {
                if let Held::Version(version) = held {
                    st.rejected.insert(name, version);
                }
            }
            let nack = Nack {
                version: pending.system_version,
                message: error.message.clone(),
            };
            st.progress.last_nack = Some(nack.clone());
            ClientEvent::Nack { ty, nack }
        }
        None => {
            for (name, held) in pending.changes {
                st.rejected.remove(&name);
                st.acked.insert(name, held);
            }
            st.progress.acked_version = Some(pending.system_version.clone());
            ClientEvent::Ack {
                ty,
                version: pending.system_version,
            }
        }
    }
}

fn respond(
    ty: ResourceType,
    st: &mut TypeState,
    snapshot: &Snapshot,
    upserts: Vec<Arc<VersionedResource>>,
    removals: Vec<String>,
    nonces: &mut NonceSource,
) -> DeltaDiscoveryResponse {
    let (number, nonce) = nonces.next();
    let system_version = snapshot.resources(ty).version().to_string();
    let mut changes: Vec<(String, Held)> = upserts
        .iter()
        .map(|r| (r.name.clone(), Held::Version(r.version.clone())))
        .collect();
    changes.extend(removals.iter().map(|n| (n.clone(), Held::Absent)));
    st.pending.insert(
        number,
        Pending {
            system_version: system_version.clone(),
            changes,
        },
    );
    st.progress.sent_version = Some(system_version.clone());
    DeltaDiscoveryResponse {
        system_version_info: system_version,
        resources: upserts
            .iter()
            .map(|r| Resource {
                name: r.name.clone(),
                version: r.version.clone(),
                resource: Some(r.body.clone()),
                ..Default::default()
            })
            .collect(),
        type_url: ty.type_url().to_string(),
        removed_resources: removals,
        nonce,
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
