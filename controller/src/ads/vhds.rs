//! What Delta clients are served instead of whole route configurations: per client
//! namespace, the virtual hosts of `outbound/<ns>` as VHDS resources, the authorities each
//! answers to, and the clusters each sends to.
//!
//! A Delta client (weft-proxy, stock Envoy with the on-demand filter) gets `outbound/<ns>`
//! as a shell naming `vhds`, and subscribes to `outbound/<ns>/<authority>` on its first RPC
//! to an authority. [`NamespaceHosts::resolve`] turns that alias into the host serving it
//! (answered under the host's own name with the alias in `aliases`), and
//! [`NamespaceHosts::clusters_of`] says which clusters the stream then needs: a Delta
//! stream's wildcard CDS holds only the clusters of the hosts it subscribed to, so a proxy
//! that calls 10 of 1000 Services holds 10 hosts and their clusters, and a route change
//! reaches only the proxies that call that Service.
//!
//! One `NamespaceHosts` per namespace is built by translation and shared by every stream
//! of that namespace; streams keep only names.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

use super::snapshot::TypeResources;

/// One virtual host as translation hands it over.
#[derive(Debug, Clone)]
pub struct HostEntry {
    /// `outbound/<ns>/<fqdn>:<port>`: the resource name and the host's own `name`.
    pub name: String,
    /// The encoded `VirtualHost`.
    pub body: Any,
    /// The authorities it answers to (its `domains`). Shared: most hosts look the same
    /// from every namespace, and a translation makes one entry per namespace and host.
    pub domains: Arc<[String]>,
    /// The clusters its routes send to (shared alike).
    pub clusters: Arc<[String]>,
}

/// The VHDS view of one client namespace.
#[derive(Debug, Default)]
pub struct NamespaceHosts {
    /// The shell `outbound/<ns>` (a RouteConfiguration naming `vhds`), as a set of one.
    shell: Arc<TypeResources>,
    /// The VirtualHost resources.
    hosts: Arc<TypeResources>,
    /// Which host serves which authority, and where each sends.
    routing: Arc<HostRouting>,
}

/// What a stream needs to follow its subscriptions: the host serving each authority and
/// the clusters each host sends to. It changes only when Services, ports or backends come
/// and go, not when a route's content changes, so a translation keeps the previous one
/// (same `Arc`) when its inputs are the same, and a stream that already followed it skips
/// the work ([`HostRouting::fingerprint`]).
#[derive(Debug, Default, PartialEq)]
pub struct HostRouting {
    /// `outbound/<ns>/`: every alias and host name starts with it.
    prefix: String,
    /// Authority (lowercase, as in `domains`) → the host serving it.
    by_authority: HashMap<Box<str>, Arc<str>>,
    /// Host name → the clusters it sends to.
    clusters: HashMap<Arc<str>, Box<[Arc<str>]>>,
    /// A hash of everything above's inputs (host names, domains, clusters, in order).
    fingerprint: u64,
}

impl NamespaceHosts {
    /// The hosts of `outbound/<ns>` (`route_config`), and its shell. The routing of
    /// `previous` (the last translation's hosts of this namespace) is kept when it was made
    /// from the same names, domains and clusters.
    pub fn new(
        route_config: &str,
        shell: Any,
        hosts: Vec<HostEntry>,
        previous: Option<&NamespaceHosts>,
    ) -> Self {
        let fingerprint = HostRouting::fingerprint(route_config, &hosts);
        let kept = previous
            .map(|p| &p.routing)
            .filter(|routing| routing.fingerprint == fingerprint)
            .cloned();
        let mut routing_inputs = Vec::new();
        let bodies: Vec<(String, Any)> = hosts
            .into_iter()
            .map(|host| {
                if kept.is_none() {
                    routing_inputs.push((host.name.clone(), host.domains, host.clusters));
                }
                (host.name, host.body)
            })
            .collect();
        let hosts = Arc::new(TypeResources::from_bodies_after(
            bodies,
            previous.map(|p| &*p.hosts),
        ));
        let routing = kept.unwrap_or_else(|| {
            Arc::new(HostRouting::new(
                route_config,
                routing_inputs,
                &hosts,
                fingerprint,
            ))
        });
        Self {
            shell: Arc::new(TypeResources::from_bodies_after(
                [(route_config.to_owned(), shell)],
                previous.map(|p| &*p.shell),
            )),
            hosts,
            routing,
        }
    }

    /// These hosts with `changed` in place of the hosts of the same names, sharing every
    /// other host and the shell: a route change to one Service touches one host per
    /// namespace, not all of them. The routing is kept unless a changed host sends to
    /// other clusters. `None` when a changed host is not one of these or answers to other
    /// authorities (only a change of Services does that; the caller translates whole).
    pub fn patched(&self, changed: Vec<HostEntry>) -> Option<NamespaceHosts> {
        let routing = &self.routing;
        let mut fingerprint = routing.fingerprint;
        let mut new_clusters = Vec::new();
        for host in &changed {
            let old_clusters = routing.clusters.get(host.name.as_str())?;
            let same_domains = host.domains.iter().all(|domain| {
                routing
                    .by_authority
                    .get(domain.to_ascii_lowercase().as_str())
                    .is_some_and(|serving| **serving == *host.name)
            });
            if !same_domains {
                return None;
            }
            let same_clusters = old_clusters.len() == host.clusters.len()
                && old_clusters
                    .iter()
                    .zip(host.clusters.iter())
                    .all(|(a, b)| **a == **b);
            if !same_clusters {
                let old = host_fingerprint(&host.name, &host.domains, old_clusters.iter());
                let new = host_fingerprint(&host.name, &host.domains, host.clusters.iter());
                fingerprint = fingerprint.wrapping_sub(old).wrapping_add(new);
                new_clusters.push((host.name.clone(), host.clusters.clone()));
            }
        }
        let hosts = Arc::new(
            self.hosts
                .patched(changed.into_iter().map(|host| (host.name, host.body))),
        );
        let routing = match new_clusters.is_empty() {
            true => routing.clone(),
            false => {
                let mut clusters = routing.clusters.clone();
                for (name, sends_to) in new_clusters {
                    let name = hosts.get(&name).map(|r| r.name.clone())?;
                    clusters.insert(
                        name,
                        sends_to.iter().map(|c| Arc::from(c.as_str())).collect(),
                    );
                }
                Arc::new(HostRouting {
                    prefix: routing.prefix.clone(),
                    by_authority: routing.by_authority.clone(),
                    clusters,
                    fingerprint,
                })
            }
        };
        Some(Self {
            shell: self.shell.clone(),
            hosts,
            routing,
        })
    }

    /// The answer to a first VHDS request that names nothing: `outbound/<ns>/_`.
    pub fn placeholder(&self) -> String {
        format!("{}{}", self.routing.prefix, super::delta::VHDS_PLACEHOLDER)
    }

    /// The shell route configuration, as a set of one.
    pub fn shell(&self) -> &Arc<TypeResources> {
        &self.shell
    }

    /// The VirtualHost resources.
    pub fn hosts(&self) -> &Arc<TypeResources> {
        &self.hosts
    }

    /// Which host serves which authority: the same `Arc` across translations that did not
    /// change it.
    pub fn routing(&self) -> &Arc<HostRouting> {
        &self.routing
    }

    /// Whether both serve the same hosts under the same names (content versions only).
    pub fn same_content(&self, other: &NamespaceHosts) -> bool {
        self.shell.version() == other.shell.version()
            && self.hosts.version() == other.hosts.version()
    }
}

/// One host's part in the routing: its name, domains and the clusters it sends to.
type RoutingInput = (String, Arc<[String]>, Arc<[String]>);

impl HostRouting {
    /// Built from each host's (name, domains, clusters); keys share `hosts`' own strings.
    fn new(
        route_config: &str,
        inputs: Vec<RoutingInput>,
        hosts: &TypeResources,
        fingerprint: u64,
    ) -> Self {
        let own = |name: &str| {
            hosts
                .get(name)
                .map_or_else(|| Arc::from(name), |r| r.name.clone())
        };
        let mut by_authority = HashMap::new();
        let mut clusters = HashMap::with_capacity(inputs.len());
        for (name, domains, sends_to) in inputs {
            let name = own(&name);
            for domain in domains.iter() {
                by_authority
                    .entry(domain.to_ascii_lowercase().into_boxed_str())
                    .or_insert_with(|| name.clone());
            }
            clusters.insert(
                name,
                sends_to.iter().map(|c| Arc::from(c.as_str())).collect(),
            );
        }
        Self {
            prefix: format!("{route_config}/"),
            by_authority,
            clusters,
            fingerprint,
        }
    }

    /// A hash of what the routing is made from. Hashing the strings costs a fraction of
    /// building the maps (no allocation), which is the point of keeping the previous one.
    /// A sum of one hash per host, so one host's change moves it by that host's part
    /// ([`NamespaceHosts::patched`]); no two hosts share a domain, so order does not matter.
    fn fingerprint(route_config: &str, hosts: &[HostEntry]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        route_config.hash(&mut hasher);
        hosts.iter().fold(hasher.finish(), |sum, host| {
            sum.wrapping_add(host_fingerprint(
                &host.name,
                &host.domains,
                host.clusters.iter(),
            ))
        })
    }

    /// The host a subscribed name stands for: a host's own name, or
    /// `outbound/<ns>/<authority>` for an authority some host answers to (matched without
    /// regard to case, as HTTP host names are). `None`: nothing serves it.
    pub fn resolve(&self, requested: &str) -> Option<&Arc<str>> {
        if let Some((name, _)) = self.clusters.get_key_value(requested) {
            return Some(name);
        }
        let authority = requested.strip_prefix(&self.prefix)?.to_ascii_lowercase();
        // As weft-proxy matches (and Envoy after stripping its listener's port): the
        // authority, then without a port no host lists (`localhost:15001` → `localhost`).
        self.by_authority
            .get(authority.as_str())
            .or_else(|| self.by_authority.get(without_port(&authority)?))
    }

    /// The host answering to `domain` (lowercase, as in `domains`), if one does.
    pub fn served_by(&self, domain: &str) -> Option<&Arc<str>> {
        self.by_authority.get(domain)
    }

    /// The clusters host `name` sends to (none for a name that is not a host).
    pub fn clusters_of(&self, name: &str) -> &[Arc<str>] {
        self.clusters.get(name).map_or(&[], |list| list)
    }
}

/// One host's part in [`HostRouting::fingerprint`].
fn host_fingerprint<C: AsRef<str>>(
    name: &str,
    domains: &[String],
    clusters: impl Iterator<Item = C>,
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (name, domains).hash(&mut hasher);
    for cluster in clusters {
        cluster.as_ref().hash(&mut hasher);
    }
    hasher.finish()
}

/// `authority` without its `:port`, if it has one (`[::1]:80` → `[::1]`).
fn without_port(authority: &str) -> Option<&str> {
    let (host, port) = authority.rsplit_once(':')?;
    let bracketed_or_plain = host.ends_with(']') || !host.contains(':');
    (bracketed_or_plain && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .then_some(host)
}

impl PartialEq for NamespaceHosts {
    fn eq(&self, other: &Self) -> bool {
        self.routing.prefix == other.routing.prefix && self.same_content(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, domains: &[&str], clusters: &[&str]) -> HostEntry {
        HostEntry {
            name: name.into(),
            body: Any {
                type_url: "vh".into(),
                value: name.as_bytes().to_vec(),
            },
            domains: domains.iter().map(|d| d.to_string()).collect(),
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn greeter() -> NamespaceHosts {
        NamespaceHosts::new("outbound/default", Any::default(), greeter_entries(), None)
    }

    fn greeter_entries() -> Vec<HostEntry> {
        vec![
            entry(
                "outbound/default/greeter:50051",
                &["greeter:50051", "greeter", "10.0.0.1:50051"],
                &["outbound|50051||greeter"],
            ),
            entry(
                "outbound/default/echo:9000",
                &["echo:9000", "echo"],
                &["outbound|9000||echo", "outbound|9000||echo-v2"],
            ),
        ]
    }

    #[test]
    fn routing_is_kept_while_names_domains_and_clusters_stay() {
        let first = greeter();
        let mut changed_body = greeter_entries();
        changed_body[0].body.value = b"another route".to_vec();
        let second = NamespaceHosts::new(
            "outbound/default",
            Any::default(),
            changed_body,
            Some(&first),
        );
        assert!(Arc::ptr_eq(first.routing(), second.routing()));
        assert!(!second.same_content(&first), "the host itself changed");

        let mut new_domain = greeter_entries();
        new_domain[1].domains = ["echo:9000", "echo", "10.0.0.2:9000"]
            .map(String::from)
            .into();
        let third = NamespaceHosts::new(
            "outbound/default",
            Any::default(),
            new_domain,
            Some(&second),
        );
        assert!(!Arc::ptr_eq(second.routing(), third.routing()));
        assert_eq!(
            third
                .routing()
                .resolve("outbound/default/10.0.0.2:9000")
                .map(|n| &**n),
            Some("outbound/default/echo:9000")
        );

        let mut new_backend = greeter_entries();
        new_backend[0].clusters = ["outbound|50051||greeter", "outbound|50051||greeter-v2"]
            .map(String::from)
            .into();
        let fourth = NamespaceHosts::new(
            "outbound/default",
            Any::default(),
            new_backend,
            Some(&first),
        );
        assert_eq!(
            fourth
                .routing()
                .clusters_of("outbound/default/greeter:50051")
                .len(),
            2
        );
        let other_namespace = NamespaceHosts::new(
            "outbound/other",
            Any::default(),
            greeter_entries(),
            Some(&first),
        );
        assert!(!Arc::ptr_eq(first.routing(), other_namespace.routing()));
    }

    #[test]
    fn aliases_resolve_to_the_host_serving_them() {
        let hosts = greeter();
        for alias in [
            "greeter",
            "greeter:50051",
            "10.0.0.1:50051",
            "GREETER:50051",
        ] {
            assert_eq!(
                hosts
                    .routing()
                    .resolve(&format!("outbound/default/{alias}"))
                    .map(|n| &**n),
                Some("outbound/default/greeter:50051"),
                "{alias}"
            );
        }
        assert_eq!(
            hosts
                .routing()
                .resolve("outbound/default/echo:9000")
                .map(|n| &**n),
            Some("outbound/default/echo:9000"),
            "a host's own name"
        );
        assert_eq!(hosts.routing().resolve("outbound/default/nope:1"), None);
        assert_eq!(
            hosts
                .routing()
                .resolve("outbound/default/greeter:15001")
                .map(|n| &**n),
            Some("outbound/default/greeter:50051"),
            "a port no host lists is dropped, as the proxies match"
        );
        assert_eq!(
            hosts.routing().resolve("outbound/default/echo:1"),
            hosts.routing().resolve("outbound/default/echo")
        );
        assert_eq!(
            hosts.routing().resolve("outbound/other/greeter"),
            None,
            "another namespace's prefix"
        );
    }

    #[test]
    fn clusters_of_each_host() {
        let hosts = greeter();
        let clusters: Vec<&str> = hosts
            .routing()
            .clusters_of("outbound/default/echo:9000")
            .iter()
            .map(|c| &**c)
            .collect();
        assert_eq!(clusters, ["outbound|9000||echo", "outbound|9000||echo-v2"]);
        assert!(
            hosts
                .routing()
                .clusters_of("outbound/default/nope")
                .is_empty()
        );
    }
}
