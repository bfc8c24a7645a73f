//! Connected proxies and their per-type progress: the data behind `/debug/proxies`, the
//! connected-proxies metric and the `Programmed` condition. Streams register on connect and
//! are removed when their guard drops. The registry also publishes every namespace a proxy
//! has connected from, so the publisher serves `outbound/<ns>` even to a namespace that holds
//! no Service or route (the set only grows: a reconnect never churns route configs).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

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
    pub protocol: Protocol,
    pub connected_at_unix: u64,
    /// Keyed by type short name (CDS, EDS, LDS, RDS).
    pub types: BTreeMap<&'static str, TypeProgress>,
    /// Type URLs the proxy asked for that weft does not serve.
    pub unknown_types: Vec<String>,
}

#[derive(Debug)]
pub struct ProxyRegistry {
    streams: Mutex<BTreeMap<u64, ProxyStatus>>,
    next_id: Mutex<u64>,
    namespaces: watch::Sender<BTreeSet<String>>,
}

impl ProxyRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            streams: Mutex::default(),
            next_id: Mutex::default(),
            namespaces: watch::Sender::new(BTreeSet::new()),
        })
    }

    /// Every namespace a proxy has connected from (by node id `<pod>.<namespace>`).
    pub fn namespaces(&self) -> watch::Receiver<BTreeSet<String>> {
        self.namespaces.subscribe()
    }

    /// Registers a stream; it is removed when the returned guard drops.
    pub fn connect(self: &Arc<Self>, node_id: &str, protocol: Protocol) -> StreamGuard {
        let id = {
            let mut next = lock(&self.next_id);
            *next += 1;
            *next
        };
        let connected_at_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        lock(&self.streams).insert(
            id,
            ProxyStatus {
                node_id: node_id.to_string(),
                protocol,
                connected_at_unix,
                types: BTreeMap::new(),
                unknown_types: Vec::new(),
            },
        );
        if let Some((_, namespace)) = node_id.rsplit_once('.') {
            self.namespaces.send_if_modified(|namespaces| {
                !namespaces.contains(namespace) && namespaces.insert(namespace.to_owned())
            });
        }
        StreamGuard {
            registry: self.clone(),
            id,
        }
    }

    /// Every connected stream, ordered by node id.
    pub fn snapshot(&self) -> Vec<ProxyStatus> {
        let mut all: Vec<ProxyStatus> = lock(&self.streams).values().cloned().collect();
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
}

impl StreamGuard {
    pub fn update<'a>(
        &self,
        progress: impl Iterator<Item = (ResourceType, &'a TypeProgress)>,
        events: &[ClientEvent],
    ) {
        let mut streams = lock(&self.registry.streams);
        let Some(status) = streams.get_mut(&self.id) else {
            return;
        };
        for (ty, p) in progress {
            status.types.insert(ty.short_name(), p.clone());
        }
        for event in events {
            if let ClientEvent::UnknownType { type_url } = event
                && !status.unknown_types.contains(type_url)
            {
                status.unknown_types.push(type_url.clone());
            }
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        lock(&self.registry.streams).remove(&self.id);
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

    #[test]
    fn streams_register_update_and_leave() {
        let registry = ProxyRegistry::new();
        let guard = registry.connect("a.default", Protocol::Delta);
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
    fn namespaces_of_connected_proxies_accumulate() {
        let registry = ProxyRegistry::new();
        let namespaces = registry.namespaces();
        drop(registry.connect("a.team-a", Protocol::Delta));
        let _b = registry.connect("b.default", Protocol::Sotw);
        let _c = registry.connect("c.default", Protocol::Sotw);
        let seen: Vec<String> = namespaces.borrow().iter().cloned().collect();
        assert_eq!(seen, ["default", "team-a"], "kept after a disconnect");
    }
}
