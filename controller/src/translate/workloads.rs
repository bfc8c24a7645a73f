//! The connected proxies as translation sees them ([`Workload`], from each proxy's
//! [`NodeInfo`]), and what they add to a translation: each proxy's own `outbound` and
//! `inbound` listeners, the shared `inbound|<app addr>` clusters, which endpoints are run by
//! a proxy that accepts mutual TLS, and which MtlsPolicy governs which proxy.
//!
//! Which endpoints run a proxy is not only a question of who is connected right now: a
//! proxy whose xDS stream broke, or that is connected to another controller replica (or
//! to this one before a restart), still refuses plaintext under `Strict`. So marking reads
//! the mesh's [`Members`] as well: pods the injector labelled (Kubernetes), proxies that
//! left a moment ago, and those remembered across a restart (local mode). See
//! `ads::registry` for where members come from.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::util::pack_any;
use serde::{Deserialize, Serialize};

use super::mtls::{PolicySet, Resolution};
use super::{NodeInfo, ResourceReport, cluster, inbound, listener, web};
use crate::ads::{ResourceType, SnapshotBuilder};
use crate::api::MtlsMode;
use crate::model::{Kind, ObjectKey};

/// One connected proxy: what its listeners, its mTLS mode and the marking of endpoints
/// depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub node_id: String,
    pub namespace: String,
    /// The pod's labels: MtlsPolicy selectors match them.
    pub labels: BTreeMap<String, String>,
    /// Where its `inbound` listener accepts RPCs for the app.
    pub inbound_addr: SocketAddr,
    /// Whether it has an inbound side at all (see `NodeInfo::serves_inbound`).
    pub serves_inbound: bool,
    /// Where the app listens (the `inbound|<app_addr>` cluster).
    pub app_addr: SocketAddr,
    /// The pod IP (Kubernetes), which endpoints list with the app's port.
    pub pod_ip: Option<IpAddr>,
    /// Where its `outbound` listener accepts the app's RPCs.
    pub outbound_addr: SocketAddr,
    /// Where its `web` listener accepts browsers' gRPC-Web calls, if it has one.
    pub web_addr: Option<SocketAddr>,
    /// Whether it speaks Delta xDS (set by the ADS registry; `false` from a `NodeInfo`
    /// alone). A Delta client takes its namespace's virtual hosts over VHDS, so a namespace
    /// whose every proxy speaks Delta needs no inline `outbound/<ns>` (see
    /// [`ProxySummary::delta_only`]).
    pub speaks_delta: bool,
}

/// What routing needs to know of the connected proxies, from one pass over them: their
/// namespaces and whether any has a web listener. A route-only retranslation keeps it (the
/// proxies are the same); with ten thousand proxies the pass was a third of that work.
#[derive(Debug, Clone, Default)]
pub struct ProxySummary {
    /// Each namespace with connected proxies, with whether they all speak Delta.
    namespaces: BTreeMap<String, bool>,
    /// Whether some proxy has a `web` listener (browsers reach the mesh).
    pub web: bool,
}

impl ProxySummary {
    pub fn of(workloads: &Workloads) -> Self {
        let mut summary = Self::default();
        for workload in workloads.values() {
            match summary.namespaces.get_mut(workload.namespace.as_str()) {
                Some(all_delta) => *all_delta &= workload.speaks_delta,
                None => {
                    let namespace = workload.namespace.clone();
                    summary.namespaces.insert(namespace, workload.speaks_delta);
                }
            }
            summary.web |= workload.web_addr.is_some();
        }
        summary
    }

    /// The namespaces with connected proxies.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.namespaces.keys().map(String::as_str)
    }

    /// Whether the clients of `namespace` need no inline `outbound/<ns>` route configuration
    /// (every virtual host in one resource, what State-of-the-World clients get): it has
    /// connected proxies and they all speak Delta. A namespace with no proxy does not, so a
    /// translation without proxies (offline checks, a proxy about to connect) is complete.
    /// Making the inline configurations was a fifth of a translation with a thousand
    /// Services, and each translation alive held 2.7 MB of them.
    pub fn delta_only(&self, namespace: &str) -> bool {
        self.namespaces.get(namespace) == Some(&true)
    }
}

/// The connected proxies by node id (from the ADS registry).
pub type Workloads = BTreeMap<String, Workload>;

impl From<&NodeInfo> for Workload {
    fn from(node: &NodeInfo) -> Self {
        Self {
            node_id: node.id.clone(),
            namespace: node.namespace.clone(),
            labels: node.labels.clone(),
            inbound_addr: node.inbound_addr,
            serves_inbound: node.serves_inbound,
            app_addr: node.app_addr,
            pod_ip: node.pod_ip,
            outbound_addr: node.outbound_addr,
            web_addr: node.web_addr,
            speaks_delta: false,
        }
    }
}

/// A workload known to run a mesh proxy, connected to this controller or not: where its
/// endpoints are marked `tlsMode: weft` (unless its MtlsPolicy mode is `Disable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub namespace: String,
    /// The pod's labels: MtlsPolicy selectors match them.
    pub labels: BTreeMap<String, String>,
    /// Its proxy's inbound listener (local mode: endpoints list it).
    pub inbound_addr: Option<SocketAddr>,
    /// The pod IP (Kubernetes: endpoints list it with the app's port).
    pub pod_ip: Option<IpAddr>,
}

/// The mesh's members by a stable key (node id, or `pod/<namespace>/<name>`).
pub type Members = BTreeMap<String, Member>;

impl Workload {
    /// As a mesh member; `None` when it has no inbound side (nothing to mark).
    pub fn member(&self) -> Option<Member> {
        self.serves_inbound.then(|| Member {
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
            inbound_addr: Some(self.inbound_addr),
            pod_ip: self.pod_ip,
        })
    }

    /// The workload of an xDS Node (see [`NodeInfo::from_node`]; errors name the field).
    pub fn from_node(node: &Node) -> Result<Self, String> {
        NodeInfo::from_node(node).map(|info| Self::from(&info))
    }
}

/// The addresses at which a proxy accepts mutual TLS: an endpoint there gets
/// `{tlsMode: weft}`.
#[derive(Debug, Default)]
pub(super) struct MtlsTargets {
    /// Inbound listener addresses (local mode: endpoints list them).
    inbound: HashSet<SocketAddr>,
    /// Pod IPs, any port (Kubernetes: the pod's traffic is sent through its proxy).
    pods: HashSet<IpAddr>,
}

impl MtlsTargets {
    /// Every connected workload and every member whose mode is not `Disable` (a
    /// `Disable` proxy accepts plaintext only, so its clients must not use TLS).
    pub fn build(workloads: &Workloads, members: &Members, policies: &PolicySet) -> Self {
        let mut targets = Self::default();
        let connected = workloads.values().filter_map(Workload::member);
        for member in connected.chain(members.values().cloned()) {
            let resolution = policies.resolve(&member.namespace, &member.labels);
            if resolution.resolved.mode != MtlsMode::Disable {
                targets.inbound.extend(member.inbound_addr);
                targets.pods.extend(member.pod_ip);
            }
        }
        targets
    }

    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.inbound.contains(&addr) || self.pods.contains(&addr.ip())
    }
}

/// The proxies each MtlsPolicy governs, by policy.
pub type Enforcing = BTreeMap<ObjectKey, BTreeSet<String>>;

/// Adds every workload's own listeners (`outbound` and `inbound`, in its mode) and the
/// shared `inbound|<app addr>` clusters; notes policies that lost a tie for a workload.
/// Returns which proxies each policy governs.
pub(super) fn add_workloads(
    builder: &mut SnapshotBuilder,
    workloads: &Workloads,
    policies: &PolicySet,
    mtls: bool,
    reports: &mut BTreeMap<ObjectKey, ResourceReport>,
) -> Enforcing {
    let mut enforcing = Enforcing::new();
    // Per losing policy: (the winner, the proxies it lost).
    let mut ties: BTreeMap<ObjectKey, BTreeMap<ObjectKey, Vec<&str>>> = BTreeMap::new();
    let mut app_addrs = BTreeSet::new();
    for workload in workloads.values() {
        let Resolution { resolved, tied } = policies.resolve(&workload.namespace, &workload.labels);
        let id = workload.node_id.as_str();
        let (name, outbound) =
            listener::outbound_listener_at(&workload.namespace, workload.outbound_addr);
        builder.add_for_node(id, ResourceType::Listener, name, outbound);
        if let Some(addr) = workload.web_addr {
            let (name, web) = web::web_listener(addr);
            builder.add_for_node(id, ResourceType::Listener, name, web);
        }
        if workload.serves_inbound {
            // Without mTLS in the mesh (no authentication, so no certificates) every
            // inbound listener is plaintext: a TLS chain would wait for secrets forever.
            let mode = if mtls {
                resolved.mode
            } else {
                MtlsMode::Disable
            };
            let (name, inbound) = inbound::inbound_listener(workload, mode);
            builder.add_for_node(id, ResourceType::Listener, name, inbound);
            app_addrs.insert(workload.app_addr);
        }
        if let Some(policy) = resolved.policy {
            for loser in tied {
                let by_winner = ties.entry(loser).or_default();
                by_winner.entry(policy.clone()).or_default().push(id);
            }
            // Only a proxy with an inbound listener in the policy's mode enforces it.
            if mtls && workload.serves_inbound {
                enforcing.entry(policy).or_default().insert(id.to_owned());
            }
        }
    }
    for addr in app_addrs {
        let cluster = cluster::inbound_cluster(addr);
        builder.add(
            ResourceType::Cluster,
            cluster.name.clone(),
            pack_any(cluster),
        );
    }
    if !mtls {
        for (_, report) in reports
            .iter_mut()
            .filter(|(key, _)| key.kind == Kind::MtlsPolicy)
        {
            report.notes.push(
                "not enforced: the controller does not authenticate proxies (local mode \
                 without --token-file), so no proxy has a certificate and every inbound \
                 listener is plaintext"
                    .to_owned(),
            );
        }
    }
    for (loser, by_winner) in ties {
        let Some(report) = reports.get_mut(&loser) else {
            continue;
        };
        for (winner, proxies) in by_winner {
            report.notes.push(format!(
                "MtlsPolicy {}/{} selects {} with as many matchLabels and wins (first by \
                 name), so this policy does not apply there",
                winner.namespace,
                winner.name,
                proxy_list(&proxies)
            ));
        }
    }
    enforcing
}

/// `proxy a.ns`, `proxies a.ns, b.ns`, cut after a few.
fn proxy_list(ids: &[&str]) -> String {
    const LISTED: usize = 5;
    let word = if ids.len() == 1 { "proxy" } else { "proxies" };
    let listed = ids[..ids.len().min(LISTED)].join(", ");
    match ids.len().checked_sub(LISTED) {
        Some(rest) if rest > 0 => format!("{word} {listed} and {rest} more"),
        _ => format!("{word} {listed}"),
    }
}

#[cfg(test)]
#[path = "workloads_tests.rs"]
mod tests;
