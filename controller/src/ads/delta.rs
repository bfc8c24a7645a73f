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
use super::snapshot::{Snapshot, TypeResources, VersionedResource};
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
/// Names and versions are `Arc<str>` shared with the snapshot (see [`Interner`]): with a
/// thousand proxies each holding thousands of resources, owned strings per stream would
/// make the controller's memory grow with proxies × resources.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Version(Arc<str>),
    Absent,
}

#[derive(Debug)]
struct Pending {
    system_version: String,
    changes: Vec<(Arc<str>, Held)>,
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<Arc<str>>,
    /// ACKed (or announced on reconnect) state of the client.
    acked: BTreeMap<Arc<str>, Held>,
    /// Sent, not yet ACKed, in nonce order.
    pending: BTreeMap<u64, Pending>,
    /// Versions the client rejected, by name.
    rejected: BTreeMap<Arc<str>, Arc<str>>,
    /// The resource set the last diff covered. While the snapshot's set has its version and
    /// nothing but ACKs happened since, there is nothing to send; when only the snapshot
    /// moved on, only what differs between the two sets needs a look. With a thousand
    /// proxies holding thousands of resources each, that is most of a push's cost.
    diffed: Option<Arc<TypeResources>>,
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
                    .find(|(n, _)| **n == *name)
                    .map(|(_, h)| h)
            })
            .or_else(|| self.acked.get(name))
    }

    fn held_names(&self) -> BTreeSet<Arc<str>> {
        let mut names: BTreeSet<Arc<str>> = self.acked.keys().cloned().collect();
        for pending in self.pending.values() {
            names.extend(pending.changes.iter().map(|(n, _)| n.clone()));
        }
        names
    }

    /// Whether `resource` should be sent: the client will not hold this version once what
    /// is in flight lands, and has not rejected it.
    fn lacks(&self, resource: &VersionedResource) -> bool {
        let held =
            matches!(self.held(&resource.name), Some(Held::Version(v)) if *v == resource.version);
        !held && self.rejected.get(&*resource.name) != Some(&resource.version)
    }

    fn subscribed(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// What `diff` would say, when the client was brought up to `prev` by the last diff
    /// and only the snapshot changed since: looks only at what changed between `prev` and
    /// `all`, which every stream shares ([`TypeResources::changes_since`]).
    fn diff_since(
        &self,
        prev: &TypeResources,
        all: &TypeResources,
    ) -> (Vec<Arc<VersionedResource>>, Vec<Arc<str>>) {
        let changes = all.changes_since(prev);
        let upserts = changes
            .changed
            .iter()
            .filter(|r| self.subscribed(&r.name) && self.lacks(r))
            .cloned()
            .collect();
        let removals = changes
            .gone
            .iter()
            .filter(|n| self.subscribed(n) && matches!(self.held(n), Some(Held::Version(_))))
            .cloned()
            .collect();
        (upserts, removals)
    }

    /// What `diff` would say for just `names` (newly subscribed): each one the client does
    /// not hold at the snapshot's version is sent, or answered as absent.
    fn diff_names(
        &self,
        names: &[String],
        all: &TypeResources,
    ) -> (Vec<Arc<VersionedResource>>, Vec<Arc<str>>) {
        let (mut upserts, mut removals) = (Vec::new(), Vec::new());
        let names: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        for name in names {
            match all.get(name) {
                Some(r) if self.lacks(r) => upserts.push(r.clone()),
                Some(_) => {}
                None if self.held(name) != Some(&Held::Absent) => {
                    removals.push(Interner(all).name(name));
                }
                None => {}
            }
        }
        (upserts, removals)
    }

    /// Resources to send (new or changed, not rejected) and names to remove.
    fn diff(
        &self,
        ty: ResourceType,
        snapshot: &Snapshot,
    ) -> (Vec<Arc<VersionedResource>>, Vec<Arc<str>>) {
        let all = snapshot.resources(ty);
        let candidates: Vec<&Arc<VersionedResource>> = if self.wildcard {
            all.iter().collect()
        } else {
            self.names.iter().filter_map(|n| all.get(n)).collect()
        };
        let upserts = candidates
            .into_iter()
            .filter(|r| self.lacks(r))
            .cloned()
            .collect();
        let mut removals: BTreeSet<Arc<str>> = self
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

/// Hands out the snapshot's own `Arc<str>` for a name (and for a version the client says it
/// holds, when it is the snapshot's), so per-stream state shares strings instead of
/// copying them; names the snapshot does not have get a fresh allocation.
struct Interner<'a>(&'a TypeResources);

impl Interner<'_> {
    fn name(&self, name: &str) -> Arc<str> {
        self.0
            .get(name)
            .map_or_else(|| Arc::from(name), |r| r.name.clone())
    }

    fn version(&self, name: &str, version: &str) -> Arc<str> {
        match self.0.get(name) {
            Some(r) if *r.version == *version => r.version.clone(),
            _ => Arc::from(version),
        }
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
            let interner = Interner(snapshot.resources(ty));
            for (name, version) in &req.initial_resource_versions {
                st.acked.insert(
                    interner.name(name),
                    Held::Version(interner.version(name, version)),
                );
            }
        }
        for name in &req.resource_names_subscribe {
            if name == "*" {
                st.wildcard = true;
            } else {
                st.names.insert(Interner(snapshot.resources(ty)).name(name));
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                st.wildcard = false;
            } else {
                st.names.remove(name.as_str());
                st.acked.remove(name.as_str());
                st.rejected.remove(name.as_str());
            }
        }

        // A plain ACK changes nothing the client should get: skip the diff.
        let subscriptions_changed = first
            || !req.resource_names_subscribe.is_empty()
            || !req.resource_names_unsubscribe.is_empty();
        let all = snapshot.shared_resources(ty);
        let synced = st
            .diffed
            .as_ref()
            .is_some_and(|d| d.version() == all.version());
        if !subscriptions_changed && synced {
            return reply;
        }
        // Names added to (or dropped from) a stream that is up to date concern only those
        // names: a proxy subscribing to one new cluster's endpoints is not diffed over the
        // thousand it already holds. A wildcard change, or a snapshot that moved on, gets
        // the full diff.
        let wildcard_changed = req
            .resource_names_subscribe
            .iter()
            .chain(&req.resource_names_unsubscribe)
            .any(|n| n == "*");
        let (upserts, removals) = if synced && !first && !wildcard_changed {
            st.diff_names(&req.resource_names_subscribe, all)
        } else {
            st.diff(ty, snapshot)
        };
        st.diffed = Some(all.clone());
        if first || !upserts.is_empty() || !removals.is_empty() {
            reply.responses.extend(respond(
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
            let all = snapshot.shared_resources(ty);
            let (upserts, removals) = match &st.diffed {
                Some(prev) if prev.version() == all.version() => continue,
                Some(prev) => st.diff_since(prev, all),
                None => st.diff(ty, snapshot),
            };
            st.diffed = Some(all.clone());
            if !upserts.is_empty() {
                responses.extend(respond(
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
                responses.extend(respond(
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
            st.diffed = None; // what the client holds is not what was diffed against
            for (name, held) in pending.changes {
                if let Held::Version(version) = held {
                    st.rejected.insert(name, version);
                }
            }
            let nack = Nack::new(pending.system_version, &error.message);
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

/// Upserts of one type go out in responses of at most about this many bytes of resources
/// (a larger resource goes alone). tonic's encoder keeps the allocation its buffer grew to
/// for as long as the stream lives, so a single 1 MB initial response would pin about 1 MB
/// per connected proxy; the client applies each response as it comes, in order.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// One or more responses (see [`MAX_RESPONSE_BYTES`]) carrying `upserts`, then `removals`
/// in the last; always at least one response.
fn respond(
    ty: ResourceType,
    st: &mut TypeState,
    snapshot: &Snapshot,
    upserts: Vec<Arc<VersionedResource>>,
    removals: Vec<Arc<str>>,
    nonces: &mut NonceSource,
) -> Vec<DeltaDiscoveryResponse> {
    let mut chunks: Vec<Vec<Arc<VersionedResource>>> = vec![Vec::new()];
    let mut size = 0;
    for resource in upserts {
        let len = resource.body.value.len();
        if size + len > MAX_RESPONSE_BYTES && chunks.last().is_some_and(|c| !c.is_empty()) {
            chunks.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(resource);
        }
    }
    let mut removals = Some(removals);
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let removals = if i == last {
                removals.take().unwrap_or_default()
            } else {
                Vec::new()
            };
            respond_once(ty, st, snapshot, chunk, removals, nonces)
        })
        .collect()
}

fn respond_once(
    ty: ResourceType,
    st: &mut TypeState,
    snapshot: &Snapshot,
    upserts: Vec<Arc<VersionedResource>>,
    removals: Vec<Arc<str>>,
    nonces: &mut NonceSource,
) -> DeltaDiscoveryResponse {
    let (number, nonce) = nonces.next();
    let system_version = snapshot.resources(ty).version().to_string();
    let mut changes: Vec<(Arc<str>, Held)> = upserts
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
                name: r.name.to_string(),
                version: r.version.to_string(),
                resource: Some(r.body.clone()),
                ..Default::default()
            })
            .collect(),
        type_url: ty.type_url().to_string(),
        removed_resources: removals.iter().map(|n| n.to_string()).collect(),
        nonce,
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
