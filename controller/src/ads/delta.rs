//! The incremental (Delta) ADS protocol for one stream, as plain synchronous logic.
//!
//! The server tracks, per type, which resource versions the client holds: ACKed ones, and
//! the contents of responses still awaiting an ACK. It sends only what differs, tells the
//! client about removals (and about subscribed names that do not exist), and on reconnect
//! starts from the client's `initial_resource_versions`, so a controller restart re-sends
//! nothing the proxy already has. A NACKed resource version is remembered and not re-sent;
//! a newer version of it is. Snapshot pushes send upserts CDS → EDS → LDS → RDS → VHDS,
//! then removals in reverse order.
//!
//! In a view with VHDS ([`Snapshot::vhds`]), two types are special:
//! - **VirtualHost** subscriptions name authorities (`outbound/<ns>/<authority>`). Each
//!   resolves to the host serving it, sent under the host's own name with the requested
//!   names in `aliases`; one that nothing serves is answered, as Envoy expects, with a
//!   resource of the requested name, no body and itself as alias. A first request naming
//!   nothing (Envoy's namespace watch) gets such an answer for [`VHDS_PLACEHOLDER`], since
//!   an empty response would leave Envoy's route configuration warming.
//! - **Cluster** is wildcard in name only: the stream gets the clusters its virtual hosts
//!   send to (plus the view's pinned ones, the proxy's inbound cluster), sent before the
//!   hosts themselves, and loses those no host it holds needs any more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use super::progress::{ClientEvent, Nack, NonceSource, TypeProgress, Version};
use super::snapshot::{Snapshot, TypeResources, VersionedResource};
use super::types::ResourceType;
use super::vhds::{HostRouting, NamespaceHosts};

/// The authority of the answer to a VHDS first request that names nothing: not a host name
/// (Service names are DNS labels), so never one a client asks for.
pub const VHDS_PLACEHOLDER: &str = "_";

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
    /// Boxed: a map node keeps room for eleven entries, and a `TypeState` is about 350
    /// bytes, so unboxed the node alone was 4 KB per stream (4 MB per 1000 proxies).
    types: BTreeMap<ResourceType, Box<TypeState>>,
    /// What [`DeltaStream::follow_hosts`] last followed, while no subscription changed since.
    followed: Option<Followed>,
}

/// The inputs of following hosts besides the stream's own subscriptions. While they are
/// the same (the routing is the same `Arc`: a translation keeps it when no Service, port
/// or backend came or went), following again would change nothing; with a thousand
/// streams resolving their subscriptions on every push and every ACK, skipping it saved a
/// fifth of the controller's CPU.
#[derive(Debug)]
struct Followed {
    routing: Arc<HostRouting>,
    pinned: Vec<Arc<str>>,
}

impl Followed {
    fn is_current(&self, snapshot: &Snapshot, routing: &Arc<HostRouting>) -> bool {
        Arc::ptr_eq(&self.routing, routing) && self.pinned == snapshot.pinned_clusters()
    }
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
    system_version: Version,
    changes: Vec<(Arc<str>, Held)>,
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    /// The names the stream wants: as subscribed, or (VirtualHost in a VHDS view) the hosts
    /// its subscriptions resolve to and the subscribed names that resolve to none.
    names: BTreeSet<Arc<str>>,
    /// VirtualHost in a VHDS view: the names the client subscribed to (authorities), and
    /// per host it wants, the subscribed names that resolve to it.
    requested: BTreeSet<Arc<str>>,
    aliases: BTreeMap<Arc<str>, Vec<Arc<str>>>,
    /// Cluster in a VHDS view: the clusters the stream's hosts send to, which replace the
    /// wildcard.
    following: Option<BTreeSet<Arc<str>>>,
    /// Whether held resources the stream no longer wants are removed (the hosts and
    /// clusters of a VHDS view), not only those gone from the snapshot.
    prune: bool,
    /// ACKed (or announced on reconnect) state of the client.
    acked: BTreeMap<Arc<str>, Held>,
    /// Sent, not yet ACKed, by nonce number in increasing order: most often none or one.
    /// (A `BTreeMap` keeps its 600-byte node once emptied, for every type of every stream.)
    pending: Vec<(u64, Pending)>,
    /// Versions the client rejected, by name.
    rejected: BTreeMap<Arc<str>, Arc<str>>,
    /// The resource set the last diff covered. While the snapshot's set has its version and
    /// nothing but ACKs happened since, there is nothing to send; when only the snapshot
    /// moved on, only what differs between the two sets needs a look. With a thousand
    /// proxies holding thousands of resources each, that is most of a push's cost.
    diffed: Option<Arc<TypeResources>>,
    progress: TypeProgress,
    /// `acked` changed other than by a response or its ACK (a reconnecting client's
    /// announced versions, an unsubscription): the next [`Self::record_held`] lists the held
    /// names again whatever it is told changed.
    held_stale: bool,
}

impl TypeState {
    /// What the client will hold once everything in flight is applied.
    fn held(&self, name: &str) -> Option<&Held> {
        self.pending
            .iter()
            .rev()
            .find_map(|(_, p)| {
                p.changes
                    .iter()
                    .rev()
                    .find(|(n, _)| **n == *name)
                    .map(|(_, h)| h)
            })
            .or_else(|| self.acked.get(name))
    }

    /// The response with nonce number `number`, no longer pending.
    fn take_pending(&mut self, number: u64) -> Option<Pending> {
        let at = self.pending.iter().position(|(n, _)| *n == number)?;
        Some(self.pending.remove(at).1)
    }

    fn held_names(&self) -> BTreeSet<Arc<str>> {
        let mut names: BTreeSet<Arc<str>> = self.acked.keys().cloned().collect();
        for (_, pending) in &self.pending {
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

    /// Records in the progress what the client rejected and, where the stream picks what
    /// it holds (see [`TypeProgress::held`]), what it holds.
    /// `touched` are the names whose state just changed (sent or settled): the held names
    /// are listed again only when one of them entered or left the list. A push or ACK of
    /// new versions of names already held, most of them, costs a lookup per name, and
    /// each list is replaced only when it changed, so the registry's copy stays shared.
    fn record_held<'a>(&mut self, touched: impl IntoIterator<Item = &'a Arc<str>>) {
        if !(self.rejected.is_empty() && self.progress.rejected.is_empty()) {
            let rejected: Vec<Arc<str>> = self.rejected.keys().cloned().collect();
            if *self.progress.rejected != *rejected {
                self.progress.rejected = rejected.into();
            }
        }
        if !self.prune {
            return;
        }
        let stale = std::mem::take(&mut self.held_stale);
        let moved = |name: &Arc<str>| {
            let listed = self.progress.held.binary_search(name).is_ok();
            listed != matches!(self.held(name), Some(Held::Version(_)))
        };
        if stale || touched.into_iter().any(moved) {
            let held: Vec<Arc<str>> = self
                .held_names()
                .into_iter()
                .filter(|n| matches!(self.held(n), Some(Held::Version(_))))
                .collect();
            if *self.progress.held != *held {
                self.progress.held = held.into();
            }
        }
    }

    fn subscribed(&self, name: &str) -> bool {
        match &self.following {
            Some(following) => following.contains(name) || self.names.contains(name),
            None => self.wildcard || self.names.contains(name),
        }
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
        let candidates: Vec<&Arc<VersionedResource>> = match &self.following {
            Some(following) => following
                .union(&self.names)
                .filter_map(|n| all.get(n))
                .collect(),
            None if self.wildcard => all.iter().collect(),
            None => self.names.iter().filter_map(|n| all.get(n)).collect(),
        };
        let upserts = candidates
            .into_iter()
            .filter(|r| self.lacks(r))
            .cloned()
            .collect();
        // Gone from the snapshot, or (following hosts) no longer needed.
        let mut removals: BTreeSet<Arc<str>> = self
            .held_names()
            .into_iter()
            .filter(|n| {
                (all.get(n).is_none() && self.subscribed(n)) || (self.prune && !self.subscribed(n))
            })
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
        if first
            || !req.resource_names_subscribe.is_empty()
            || !req.resource_names_unsubscribe.is_empty()
        {
            self.followed = None;
        }
        let st = self.types.entry(ty).or_default();

        if !req.response_nonce.is_empty() {
            match req
                .response_nonce
                .parse::<u64>()
                .ok()
                .and_then(|n| st.take_pending(n))
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
                st.held_stale = true;
            }
        }
        let hosts = snapshot.vhds().filter(|_| ty == ResourceType::VirtualHost);
        if let Some(hosts) = hosts {
            // Authorities, resolved below; Envoy's first request names none.
            st.held_stale |= !st.prune;
            st.prune = true;
            if first && req.resource_names_subscribe.is_empty() {
                st.requested.insert(hosts.placeholder().into());
            }
            st.requested.extend(
                req.resource_names_subscribe
                    .iter()
                    .map(|n| Arc::from(n.as_str())),
            );
            for name in &req.resource_names_unsubscribe {
                st.requested.remove(name.as_str());
            }
        } else {
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
                    st.held_stale |= st.acked.remove(name.as_str()).is_some();
                    st.rejected.remove(name.as_str());
                }
            }
        }
        // Clusters a new host needs go out before the host.
        let clusters_first = self.follow_hosts(snapshot);
        let st = self.types.entry(ty).or_default();

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
        let mut cluster_removals = Vec::new();
        if clusters_first && ty != ResourceType::Cluster {
            let (responses, removals) = self.push_type(ResourceType::Cluster, snapshot);
            reply.responses.extend(responses);
            cluster_removals = removals;
        }
        let Some(st) = self.types.get_mut(&ty) else {
            return reply;
        };
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
        if !cluster_removals.is_empty()
            && let Some(clusters) = self.types.get_mut(&ResourceType::Cluster)
        {
            reply.responses.extend(respond(
                ResourceType::Cluster,
                clusters,
                snapshot,
                Vec::new(),
                cluster_removals,
                &mut self.nonces,
            ));
        }
        reply
    }

    /// In a VHDS view, brings the VirtualHost names up to what the subscriptions resolve
    /// to in `snapshot`, and the clusters the stream follows up to those hosts' clusters
    /// (each set to be diffed afresh when it changed). Says whether the clusters changed.
    fn follow_hosts(&mut self, snapshot: &Snapshot) -> bool {
        let Some(hosts) = snapshot.vhds() else {
            return false;
        };
        if self
            .followed
            .as_ref()
            .is_some_and(|followed| followed.is_current(snapshot, hosts.routing()))
        {
            return false;
        }
        // Only with both types present does the result depend on nothing but the
        // subscriptions and the inputs remembered (without hosts, on the clusters ACKed).
        if self.types.contains_key(&ResourceType::VirtualHost)
            && self.types.contains_key(&ResourceType::Cluster)
        {
            self.followed = Some(Followed {
                routing: hosts.routing().clone(),
                pinned: snapshot.pinned_clusters().to_vec(),
            });
        }
        if let Some(st) = self.types.get_mut(&ResourceType::VirtualHost)
            && st.prune
            && resolve_hosts(st, hosts)
        {
            st.diffed = None;
        }
        let Some(clusters) = self.types.get(&ResourceType::Cluster) else {
            return false;
        };
        let following: BTreeSet<Arc<str>> = match self.types.get(&ResourceType::VirtualHost) {
            Some(vhds) => vhds
                .names
                .iter()
                .flat_map(|host| hosts.routing().clusters_of(host))
                .chain(snapshot.pinned_clusters())
                .cloned()
                .collect(),
            // A client that reconnects announces the clusters it holds before it says again
            // which hosts it holds (Envoy subscribes type by type): keep those until then,
            // or its RPCs would lose their clusters while it reconnects.
            None => clusters
                .acked
                .keys()
                .filter(|name| {
                    snapshot
                        .resources(ResourceType::Cluster)
                        .get(name)
                        .is_some()
                })
                .chain(snapshot.pinned_clusters())
                .cloned()
                .collect(),
        };
        if clusters.following.as_ref() == Some(&following) {
            return false;
        }
        if let Some(clusters) = self.types.get_mut(&ResourceType::Cluster) {
            clusters.following = Some(following);
            clusters.held_stale |= !clusters.prune;
            clusters.prune = true;
            clusters.diffed = None;
        }
        true
    }

    /// The upserts of `ty` that `snapshot` calls for, as responses, and its removals, left
    /// for the caller to send after what depends on them.
    fn push_type(
        &mut self,
        ty: ResourceType,
        snapshot: &Snapshot,
    ) -> (Vec<DeltaDiscoveryResponse>, Vec<Arc<str>>) {
        let Some(st) = self.types.get_mut(&ty) else {
            return (Vec::new(), Vec::new());
        };
        let all = snapshot.shared_resources(ty);
        let (upserts, removals) = match &st.diffed {
            Some(prev) if prev.version() == all.version() => return (Vec::new(), Vec::new()),
            Some(prev) => st.diff_since(prev, all),
            None => st.diff(ty, snapshot),
        };
        st.diffed = Some(all.clone());
        // A host's removals go with its upserts: Envoy applies both at once, and a domain
        // held twice in between would be rejected.
        if ty == ResourceType::VirtualHost {
            if upserts.is_empty() && removals.is_empty() {
                return (Vec::new(), Vec::new());
            }
            let responses = respond(ty, st, snapshot, upserts, removals, &mut self.nonces);
            return (responses, Vec::new());
        }
        let responses = if upserts.is_empty() {
            Vec::new()
        } else {
            respond(ty, st, snapshot, upserts, Vec::new(), &mut self.nonces)
        };
        (responses, removals)
    }

    /// Pushes what changed in `snapshot`: upserts in make-before-break order, then
    /// removals in reverse order.
    pub fn handle_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        self.follow_hosts(snapshot);
        let mut responses = Vec::new();
        let mut removals_by_type = Vec::new();
        for ty in ResourceType::PUSH_ORDER {
            let (pushed, removals) = self.push_type(ty, snapshot);
            responses.extend(pushed);
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

/// VirtualHost in a VHDS view: sets the names the stream wants to the hosts its
/// subscriptions resolve to (with their aliases) and the subscriptions that resolve to
/// none. Says whether anything changed.
fn resolve_hosts(st: &mut TypeState, hosts: &NamespaceHosts) -> bool {
    let mut names = BTreeSet::new();
    let mut aliases: BTreeMap<Arc<str>, Vec<Arc<str>>> = BTreeMap::new();
    for requested in &st.requested {
        match hosts.routing().resolve(requested) {
            Some(host) => {
                names.insert(host.clone());
                aliases
                    .entry(host.clone())
                    .or_default()
                    .push(requested.clone());
            }
            None => {
                names.insert(requested.clone());
            }
        }
    }
    let changed = names != st.names || aliases != st.aliases;
    st.names = names;
    st.aliases = aliases;
    changed
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
            let names: Vec<&str> = pending.changes.iter().map(|(n, _)| &**n).collect();
            let nack = Nack::new(pending.system_version.to_string(), &error.message)
                .about(names.into_iter());
            for (name, held) in &pending.changes {
                if let Held::Version(version) = held {
                    st.rejected.insert(name.clone(), version.clone());
                }
            }
            st.progress.last_nack = Some(Box::new(nack.clone()));
            st.record_held(pending.changes.iter().map(|(name, _)| name));
            ClientEvent::Nack { ty, nack }
        }
        None => {
            for (name, held) in &pending.changes {
                st.rejected.remove(name);
                // A name unsubscribed since (or pruned: the removal of a cluster no host
                // sends to any more) is forgotten, so a later subscription is answered.
                // Keeping what was ACKed before would tell the stream the client still
                // holds it after the client removed it.
                if st.subscribed(name) {
                    st.acked.insert(name.clone(), held.clone());
                } else {
                    st.acked.remove(name);
                }
            }
            st.progress.acked_version = Some(pending.system_version.clone());
            st.record_held(pending.changes.iter().map(|(name, _)| name));
            ClientEvent::Ack {
                ty,
                version: pending.system_version,
            }
        }
    }
}

/// Upserts of one type go out in responses whose resources take at most about this many
/// bytes encoded ([`encoded_len`]; a larger resource goes alone). tonic's encoder keeps
/// the allocation its buffer grew to for as long as the stream lives, and grows it by
/// doubling, so a single 1 MB initial response would pin about 1 MB per connected proxy;
/// the client applies each response as it comes, in order. At 64 KB, a proxy's first
/// clusters and endpoints (about 6 KB each for ten Services) kept 8 KB per stream. Counting
/// 4 KB of bodies alone still made most responses a little over 4 KB encoded, so most
/// buffers doubled to 8 KB; at 3 KB of encoded resources a response with its own fields
/// fits in 4 KB, and the first sync takes a few more responses, each ACKed on its own.
const MAX_RESPONSE_BYTES: usize = 3 * 1024;

/// About what `resource` adds to an encoded response: its body and type URL, its name and
/// version, and a few bytes of tags and lengths.
fn encoded_len(resource: &VersionedResource) -> usize {
    resource.body.value.len()
        + resource.body.type_url.len()
        + resource.name.len()
        + resource.version.len()
        + 16
}

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
        let len = encoded_len(&resource);
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
    // VHDS: a subscribed authority that no host serves is answered with a resource of its
    // name, no body, and itself as alias (what Envoy waits for; a removal would leave its
    // request paused). A host the client held is removed as usual.
    let (unserved, removed): (Vec<Arc<str>>, Vec<Arc<str>>) =
        removals.iter().cloned().partition(|name| {
            ty == ResourceType::VirtualHost
                && st.requested.contains(name)
                && !matches!(st.held(name), Some(Held::Version(_)))
        });
    let (number, nonce) = nonces.next();
    let system_version = snapshot.resources(ty).version().clone();
    let mut changes: Vec<(Arc<str>, Held)> = upserts
        .iter()
        .map(|r| (r.name.clone(), Held::Version(r.version.clone())))
        .collect();
    changes.extend(removals.iter().map(|n| (n.clone(), Held::Absent)));
    st.progress.sent_version = Some(system_version.clone());
    let touched: Vec<Arc<str>> = changes.iter().map(|(name, _)| name.clone()).collect();
    st.pending.push((
        number,
        Pending {
            system_version: system_version.clone(),
            changes,
        },
    ));
    st.record_held(&touched);
    let mut resources: Vec<Resource> = upserts
        .iter()
        .map(|r| Resource {
            name: r.name.to_string(),
            version: r.version.to_string(),
            resource: Some(r.body.clone()),
            aliases: st
                .aliases
                .get(&r.name)
                .map(|list| list.iter().map(|a| a.to_string()).collect())
                .unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    resources.extend(unserved.iter().map(|name| Resource {
        name: name.to_string(),
        aliases: vec![name.to_string()],
        ..Default::default()
    }));
    DeltaDiscoveryResponse {
        system_version_info: system_version.to_string(),
        resources,
        type_url: ty.type_url().to_string(),
        removed_resources: removed.iter().map(|n| n.to_string()).collect(),
        nonce,
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
