//! Connected proxies and their per-type progress: the data behind `/debug/proxies`, the
//! connected-proxies metric and the `Programmed` condition. Streams register on connect and
//! are removed when their guard drops. The registry also publishes the connected workloads
//! (one per node id, however many streams it has open), which the publisher translates each
//! proxy's own listeners from, and it remembers the certificate last issued to each node
//! (identity and expiry, shown at `/debug/proxies`).
//!
//! It also publishes the mesh's members, the workloads known to run a proxy, which decide
//! which endpoints clients reach over mutual TLS: the connected proxies, those that left
//! less than [`MEMBER_LINGER`] ago (a broken stream or a controller restart must not turn
//! a `Strict` server's clients to plaintext while it reconnects), those remembered from
//! before a restart (local mode) and the injected pods (Kubernetes, where a proxy may be
//! connected to another replica).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::translate::{Member, Members, NodeInfo, Workload, Workloads};

use serde::Serialize;
use tokio::sync::watch;

use super::progress::{ClientEvent, TypeProgress};
use super::types::ResourceType;

/// Which flavour of the protocol a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    Sotw,
    Delta,
}

/// One connected stream, as `/debug/proxies` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyStatus {
    pub node_id: String,
    /// The namespace whose routes it gets.
    pub namespace: String,
    pub protocol: Protocol,
    pub connected_at_unix: u64,
    /// Keyed by type short name (CDS, EDS, LDS, RDS).
    pub types: BTreeMap<&'static str, TypeProgress>,
    /// Type URLs the proxy asked for that weft does not serve.
    pub unknown_types: Vec<String>,
    /// The SPIFFE id its token proved; `None` when authentication is off.
    pub identity: Option<String>,
    /// When its current certificate expires (Unix seconds), once one was issued.
    pub certificate_expiry_unix: Option<u64>,
}

/// How long a proxy that left stays a member: long enough to reconnect after a broken
/// stream or a controller restart (proxies retry within seconds), short enough that an
/// address reused by a plaintext server is not reached over TLS for long.
pub const MEMBER_LINGER: Duration = Duration::from_secs(120);

/// Distinct namespaces whose proxies one controller serves at once, at most. Each gets its
/// own translated `outbound/<namespace>`, so node ids (unauthenticated in local
/// development) must not grow that set without bound; with authentication a namespace is
/// one a token was issued in, and real clusters stay far below this.
pub const MAX_PROXY_NAMESPACES: usize = 1024;

/// A proxy refused because its namespace would exceed [`MAX_PROXY_NAMESPACES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "node namespace {namespace:?}: proxies of {limit} namespaces are connected already, the most one controller serves"
)]
pub struct TooManyNamespaces {
    pub namespace: String,
    pub limit: usize,
}

#[derive(Debug)]
pub struct ProxyRegistry {
    /// Each stream's status, also held by its guard: a stream updates its own after every
    /// push and ACK without the lock of the whole map (nor a search in it).
    streams: Mutex<BTreeMap<u64, Arc<Mutex<StreamEntry>>>>,
    next_id: Mutex<u64>,
    /// Connected workloads; each node id's count of open streams alongside, and each
    /// namespace's count of connected node ids.
    workloads: watch::Sender<Workloads>,
    open: Mutex<Open>,
    namespace_limit: usize,
    /// Node id → expiry of the certificate last issued to it.
    certificates: Mutex<BTreeMap<String, SystemTime>>,
    /// Every member: connected, departed and pods.
    members: watch::Sender<Members>,
    /// Proxies gone (or remembered from before a restart), until the instant they expire.
    departed: Mutex<BTreeMap<String, (Member, Instant)>>,
    /// Injected pods (Kubernetes), by `pod/<namespace>/<name>`.
    pods: Mutex<Members>,
}

/// A stream's status, its progress by type in push order: `update` runs after every push
/// and ACK of every stream, and indexing an array spares it a search by type name.
#[derive(Debug)]
struct StreamEntry {
    /// Its `types` stay empty; [`ProxyRegistry::snapshot`] fills them from `progress`.
    status: ProxyStatus,
    progress: [Option<TypeProgress>; ResourceType::PUSH_ORDER.len()],
}

/// Open streams per node id, connected node ids per namespace.
#[derive(Debug, Default)]
struct Open {
    streams: BTreeMap<String, usize>,
    nodes: BTreeMap<String, usize>,
}

impl ProxyRegistry {
    pub fn new() -> Arc<Self> {
        Self::with_namespace_limit(MAX_PROXY_NAMESPACES)
    }

    /// A registry serving proxies of at most `namespace_limit` namespaces at once.
    pub fn with_namespace_limit(namespace_limit: usize) -> Arc<Self> {
        Arc::new(Self {
            streams: Mutex::default(),
            next_id: Mutex::default(),
            workloads: watch::Sender::new(Workloads::new()),
            open: Mutex::default(),
            namespace_limit,
            certificates: Mutex::default(),
            members: watch::Sender::new(Members::new()),
            departed: Mutex::default(),
            pods: Mutex::default(),
        })
    }

    /// The connected workloads, by node id.
    pub fn workloads(&self) -> watch::Receiver<Workloads> {
        self.workloads.subscribe()
    }

    /// The mesh's members (see the module comment).
    pub fn members(&self) -> watch::Receiver<Members> {
        self.members.subscribe()
    }

    /// Members known from before a restart: they count as departed just now.
    pub fn remember(&self, members: Members) {
        let until = Instant::now() + MEMBER_LINGER;
        let connected = self.workloads.borrow();
        let mut departed = lock(&self.departed);
        for (key, member) in members {
            if !connected.contains_key(&key) {
                departed.insert(key, (member, until));
            }
        }
        drop((connected, departed));
        self.publish_members();
    }

    /// Replaces the injected pods (a full listing).
    pub fn set_pods(&self, pods: Members) {
        *lock(&self.pods) = pods;
        self.publish_members();
    }

    /// One injected pod changed: now `member`, or no member any more (`None`).
    pub fn update_pod(&self, key: String, member: Option<Member>) {
        let mut pods = lock(&self.pods);
        let changed = match member {
            Some(member) => pods.insert(key, member.clone()) != Some(member),
            None => pods.remove(&key).is_some(),
        };
        drop(pods);
        if changed {
            self.publish_members();
        }
    }

    /// Forgets departed proxies whose time ran out at `now`.
    pub fn prune_departed(&self, now: Instant) {
        lock(&self.departed).retain(|_, (_, until)| *until > now);
        self.publish_members();
    }

    /// Publishes the union of pods, departed and connected proxies. Computed under the
    /// channel's lock, so concurrent changes publish in order and the last one wins.
    fn publish_members(&self) {
        self.members.send_if_modified(|current| {
            let mut members: Members = lock(&self.pods).clone();
            let departed = lock(&self.departed);
            members.extend(departed.iter().map(|(k, (m, _))| (k.clone(), m.clone())));
            drop(departed);
            let connected = self.workloads.borrow();
            members.extend(
                connected
                    .iter()
                    .filter_map(|(id, workload)| Some((id.clone(), workload.member()?))),
            );
            let changed = *current != members;
            *current = members;
            changed
        });
    }

    /// Notes the certificate just issued to `node_id`.
    pub fn record_certificate(&self, node_id: &str, not_after: SystemTime) {
        lock(&self.certificates).insert(node_id.to_owned(), not_after);
    }

    /// Registers a stream of proxy `node` (with the identity its token proved); it is
    /// removed when the returned guard drops. Refused when `node`'s namespace would be one
    /// more than the registry serves.
    pub fn connect(
        self: &Arc<Self>,
        node: &NodeInfo,
        protocol: Protocol,
        identity: Option<String>,
    ) -> Result<StreamGuard, TooManyNamespaces> {
        let node_id = node.id.as_str();
        {
            let mut open = lock(&self.open);
            let first_stream = !open.streams.contains_key(node_id);
            if first_stream {
                let new_namespace = !open.nodes.contains_key(&node.namespace);
                if new_namespace && open.nodes.len() >= self.namespace_limit {
                    return Err(TooManyNamespaces {
                        namespace: node.namespace.clone(),
                        limit: self.namespace_limit,
                    });
                }
                *open.nodes.entry(node.namespace.clone()).or_default() += 1;
            }
            *open.streams.entry(node_id.to_owned()).or_default() += 1;
        }
        let id = {
            let mut next = lock(&self.next_id);
            *next += 1;
            *next
        };
        let connected_at_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let entry = Arc::new(Mutex::new(StreamEntry {
            status: ProxyStatus {
                node_id: node_id.to_string(),
                namespace: node.namespace.clone(),
                protocol,
                connected_at_unix,
                types: BTreeMap::new(),
                unknown_types: Vec::new(),
                identity,
                certificate_expiry_unix: None,
            },
            progress: Default::default(),
        }));
        lock(&self.streams).insert(id, entry.clone());
        let workload = Workload {
            speaks_delta: protocol == Protocol::Delta,
            ..Workload::from(node)
        };
        self.workloads.send_if_modified(|workloads| {
            workloads.insert(node_id.to_owned(), workload.clone()) != Some(workload)
        });
        lock(&self.departed).remove(node_id);
        self.publish_members();
        Ok(StreamGuard {
            registry: self.clone(),
            id,
            entry,
            node_id: node_id.to_owned(),
            namespace: node.namespace.clone(),
        })
    }

    /// Every connected stream, ordered by node id.
    pub fn snapshot(&self) -> Vec<ProxyStatus> {
        let certificates = lock(&self.certificates).clone();
        let mut all: Vec<ProxyStatus> = lock(&self.streams)
            .values()
            .map(|entry| {
                let entry = lock(entry);
                let mut status = entry.status.clone();
                status.types = ResourceType::PUSH_ORDER
                    .into_iter()
                    .zip(&entry.progress)
                    .filter_map(|(ty, p)| Some((ty.short_name(), p.clone()?)))
                    .collect();
                status
            })
            .collect();
        for status in &mut all {
            if let Some(expiry) = certificates.get(&status.node_id) {
                status.certificate_expiry_unix = expiry
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs());
            }
        }
        all.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        all
    }

    pub fn connected(&self) -> usize {
        lock(&self.streams).len()
    }
}

/// Keeps a stream registered; updates its progress.
#[derive(Debug)]
pub struct StreamGuard {
    registry: Arc<ProxyRegistry>,
    id: u64,
    entry: Arc<Mutex<StreamEntry>>,
    node_id: String,
    namespace: String,
}

impl StreamGuard {
    pub fn update<'a>(
        &self,
        progress: impl Iterator<Item = (ResourceType, &'a TypeProgress)>,
        events: &[ClientEvent],
    ) {
        let mut entry = lock(&self.entry);
        // Copied only when it is not already a copy: a stream reports after every request
        // and push, and with a thousand streams comparing every type's progress by content
        // (the held names) was a fifth of a stream's work in a push.
        for (ty, p) in progress {
            match &mut entry.progress[ty.index()] {
                Some(copy) if copy.is_copy_of(p) => {}
                slot => *slot = Some(p.clone()),
            }
        }
        let unknown = &mut entry.status.unknown_types;
        for event in events {
            if let ClientEvent::UnknownType { type_url } = event
                && !unknown.contains(type_url)
            {
                unknown.push(type_url.clone());
            }
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        lock(&self.registry.streams).remove(&self.id);
        let mut open = lock(&self.registry.open);
        let last = match open.streams.get_mut(&self.node_id) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            _ => true,
        };
        if last {
            open.streams.remove(&self.node_id);
            match open.nodes.get_mut(&self.namespace) {
                Some(count) if *count > 1 => *count -= 1,
                _ => _ = open.nodes.remove(&self.namespace),
            }
            drop(open);
            lock(&self.registry.certificates).remove(&self.node_id);
            let mut left = None;
            self.registry.workloads.send_if_modified(|workloads| {
                left = workloads.remove(&self.node_id);
                left.is_some()
            });
            if let Some(member) = left.as_ref().and_then(Workload::member) {
                let until = Instant::now() + MEMBER_LINGER;
                lock(&self.registry.departed).insert(self.node_id.clone(), (member, until));
            }
            self.registry.publish_members();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeInfo {
        let (pod, namespace) = id.rsplit_once('.').unwrap();
        NodeInfo::new(pod, namespace, "127.0.0.1:15001".parse().unwrap())
    }

    #[test]
    fn a_workload_says_whether_its_proxy_speaks_delta() {
        let registry = ProxyRegistry::new();
        let _a = registry.connect(&node("a.default"), Protocol::Delta, None);
        let _b = registry.connect(&node("b.default"), Protocol::Sotw, None);
        let workloads = registry.workloads().borrow().clone();
        assert!(workloads["a.default"].speaks_delta);
        assert!(!workloads["b.default"].speaks_delta);
    }

    #[test]
    fn streams_register_update_and_leave() {
        let registry = ProxyRegistry::new();
        let guard = registry
            .connect(&node("a.default"), Protocol::Delta, None)
            .unwrap();
        let progress = TypeProgress {
            sent_version: Some("v1".into()),
            ..Default::default()
        };
        guard.update(
            [(ResourceType::Cluster, &progress)].into_iter(),
            &[ClientEvent::UnknownType {
                type_url: "x".into(),
            }],
        );
        let all = registry.snapshot();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].types["CDS"].sent_version.as_deref(), Some("v1"));
        assert_eq!(all[0].unknown_types, ["x"]);
        drop(guard);
        assert_eq!(registry.connected(), 0);
    }

    #[test]
    fn workloads_follow_connected_nodes_across_overlapping_streams() {
        let registry = ProxyRegistry::new();
        let workloads = registry.workloads();
        let first = registry
            .connect(&node("a.team-a"), Protocol::Delta, None)
            .unwrap();
        let second = registry
            .connect(&node("a.team-a"), Protocol::Delta, None)
            .unwrap();
        let _b = registry
            .connect(
                &node("b.default"),
                Protocol::Sotw,
                Some("spiffe://x".into()),
            )
            .unwrap();
        registry.record_certificate(
            "b.default",
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7),
        );
        let seen: Vec<String> = workloads.borrow().keys().cloned().collect();
        assert_eq!(seen, ["a.team-a", "b.default"]);
        drop(first);
        assert!(
            workloads.borrow().contains_key("a.team-a"),
            "a reconnect overlaps"
        );
        drop(second);
        assert!(!workloads.borrow().contains_key("a.team-a"));
        let b = registry.snapshot();
        assert_eq!(b[0].identity.as_deref(), Some("spiffe://x"));
        assert_eq!(b[0].certificate_expiry_unix, Some(7));
    }

    #[test]
    fn members_are_connected_departed_for_a_while_remembered_and_pods() {
        let registry = ProxyRegistry::new();
        let members = registry.members();
        let keys = || members.borrow().keys().cloned().collect::<Vec<_>>();
        let a = registry
            .connect(&node("a.default"), Protocol::Delta, None)
            .unwrap();
        assert_eq!(keys(), ["a.default"]);
        drop(a);
        assert_eq!(keys(), ["a.default"], "a proxy that left lingers");
        assert!(registry.workloads().borrow().is_empty());

        let member = members.borrow()["a.default"].clone();
        registry.remember(Members::from([("b.default".to_owned(), member.clone())]));
        let mut pod = member.clone();
        pod.pod_ip = Some("10.0.0.1".parse().unwrap());
        registry.update_pod("pod/default/p".to_owned(), Some(pod));
        assert_eq!(keys(), ["a.default", "b.default", "pod/default/p"]);

        // Reconnecting ends the linger; a later departure starts a new one.
        let b = registry
            .connect(&node("b.default"), Protocol::Sotw, None)
            .unwrap();
        registry.prune_departed(Instant::now() + MEMBER_LINGER + Duration::from_secs(1));
        assert_eq!(keys(), ["b.default", "pod/default/p"]);
        drop(b);
        registry.update_pod("pod/default/p".to_owned(), None);
        assert_eq!(keys(), ["b.default"]);
        registry.set_pods(Members::new());
        assert_eq!(keys(), ["b.default"]);
        registry.prune_departed(Instant::now() + MEMBER_LINGER + Duration::from_secs(1));
        assert!(keys().is_empty());
    }

    #[test]
    fn proxies_of_a_namespace_beyond_the_limit_are_refused_until_one_leaves() {
        let registry = ProxyRegistry::with_namespace_limit(2);
        let a = registry
            .connect(&node("a.one"), Protocol::Delta, None)
            .unwrap();
        let _b = registry
            .connect(&node("b.two"), Protocol::Delta, None)
            .unwrap();
        let _b2 = registry
            .connect(&node("b2.two"), Protocol::Delta, None)
            .unwrap();
        let err = registry
            .connect(&node("c.three"), Protocol::Delta, None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "node namespace \"three\": proxies of 2 namespaces are connected already, the most one controller serves"
        );
        assert!(!registry.workloads().borrow().contains_key("c.three"));
        // A second stream of a connected node, and nodes of known namespaces, are served.
        let _a2 = registry
            .connect(&node("a.one"), Protocol::Sotw, None)
            .unwrap();
        drop(a);
        drop(_a2);
        let _c = registry
            .connect(&node("c.three"), Protocol::Delta, None)
            .unwrap();
    }
}
