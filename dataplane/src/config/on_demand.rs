//! VHDS (Envoy's Virtual Host Discovery, Delta xDS only), as plain data and logic: the names
//! the proxy subscribed as RPCs needed them (`<route config>/<authority>`), which held host
//! answered each and which the server answered "no such host" ([`OnDemandLookups`]); the
//! held hosts joined into their route configuration's table ([`with_held_hosts`]); and what
//! the held config says about one outbound RPC ([`ProxyConfig::lookup`]): route it, fail it,
//! or hold it and maybe subscribe a name first. The xDS client keeps the bookkeeping; the
//! data path only reads it, and holds RPCs in `proxy::on_demand`.
//!
//! Negative answers stand until the server says otherwise. A Delta subscription stays open,
//! so the server sends a host as soon as one serves a name it answered "no such host"
//! (weft-controller does, as Envoy expects), and a server that already told the client a
//! name does not exist does not answer a second subscription to it: asking again after a
//! while would only hold RPCs for an answer that never comes. So a client calling an
//! unknown authority in a loop costs one subscription, ever; on reconnect every name is
//! subscribed again and answered afresh.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;

use http::HeaderMap;
use weft_common::xds::vhds_resource_name;

use super::matching::RouteDecision;
use super::{OnDemandHost, ProxyConfig, Route, RouteTable, VirtualHost};

/// Names subscribed on demand, at most (each is state here and on the server for the
/// proxy's lifetime; an app naming ever new authorities must not grow them without bound).
/// Past it, a new name is answered "not found" here without asking.
pub const MAX_ON_DEMAND_NAMES: usize = 10_000;

/// What was asked for over VHDS and what the answers were.
#[derive(Debug, Clone, Default)]
pub struct OnDemandLookups {
    /// Every name subscribed, kept (and re-subscribed on reconnect) for the proxy's
    /// lifetime.
    pub subscribed: BTreeSet<String>,
    /// Name (an alias the server listed, or the host's own) → the resource name of the
    /// held host that answers it.
    pub aliases: BTreeMap<String, String>,
    /// Subscribed names the server said no host serves.
    pub not_found: BTreeSet<String>,
    /// Names not subscribed for being past [`MAX_ON_DEMAND_NAMES`]: "not found" without
    /// asking. Emptied when it reaches that size too, so it stays bounded.
    pub refused: BTreeSet<String>,
}

/// What to do about a name the data path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demand {
    /// Subscribe it.
    Subscribe,
    /// Nothing: already subscribed (answered or not) or refused.
    AlreadyAsked,
    /// Past [`MAX_ON_DEMAND_NAMES`]: refused without asking.
    Refused,
}

impl OnDemandLookups {
    /// Whether no host serves `name`: the server said so, or it was refused.
    pub fn known_missing(&self, name: &str) -> bool {
        self.not_found.contains(name) || self.refused.contains(name)
    }

    /// The data path needs `name`; says whether to subscribe it.
    pub fn demand(&mut self, name: &str) -> Demand {
        if self.subscribed.contains(name) || self.refused.contains(name) {
            return Demand::AlreadyAsked;
        }
        if self.subscribed.len() >= MAX_ON_DEMAND_NAMES {
            if self.refused.len() >= MAX_ON_DEMAND_NAMES {
                self.refused.clear();
            }
            self.refused.insert(name.to_owned());
            return Demand::Refused;
        }
        self.subscribed.insert(name.to_owned());
        Demand::Subscribe
    }

    /// Host `resource` arrived, listing `aliases` (a later update may list none: the names
    /// it answered before still map to it).
    pub fn answered(&mut self, resource: &str, aliases: &[String]) {
        for name in aliases.iter().map(String::as_str).chain([resource]) {
            self.not_found.remove(name);
            self.aliases.insert(name.to_owned(), resource.to_owned());
        }
    }

    /// Host `resource` was removed: every name it answered is now "not found" (so RPCs
    /// for them fail at once rather than wait for an answer that will not come).
    pub fn host_removed(&mut self, resource: &str) {
        let names: Vec<String> = self
            .aliases
            .iter()
            .filter(|(_, host)| *host == resource)
            .map(|(name, _)| name.clone())
            .collect();
        for name in names {
            self.aliases.remove(&name);
            self.not_served(&name);
        }
        self.not_served(resource);
    }

    /// The server says no host serves `name` (when it is one the proxy asked for).
    pub fn not_served(&mut self, name: &str) {
        if self.subscribed.contains(name) {
            self.not_found.insert(name.to_owned());
        }
    }
}

impl OnDemandHost {
    /// The host as held under resource name `resource` (`<route config>/<host>`): a name of
    /// its own that repeats the resource name's `<route config>/` loses it, so the host is
    /// named (in metrics' `destination_service`, `/config_dump`) as the same host inline in
    /// a State-of-the-World route configuration is.
    pub fn named_within(self: Arc<Self>, resource: &str) -> Arc<Self> {
        let prefix = resource.rsplit_once('/').map_or("", |(prefix, _)| prefix);
        let short = self
            .host
            .name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.is_empty() && !prefix.is_empty());
        let Some(short) = short else {
            return self;
        };
        let mut host = VirtualHost::clone(&self.host);
        host.name = short.to_owned();
        Arc::new(OnDemandHost {
            host: Arc::new(host),
            named: self.named.clone(),
        })
    }
}

/// `table` with the VHDS hosts held for it (resource names `<table name>/...`) after its
/// inline ones; unchanged when it does not name `vhds`. A domain two hosts list goes to the
/// first (inline hosts, then by resource name), as a host moving a domain to another in
/// two updates holds it twice for a moment.
pub fn with_held_hosts(
    table: &Arc<RouteTable>,
    hosts: &BTreeMap<String, Arc<OnDemandHost>>,
) -> Arc<RouteTable> {
    if !table.vhds {
        return Arc::clone(table);
    }
    let prefix = format!("{}/", table.name);
    let held = hosts
        .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .take_while(|(name, _)| name.starts_with(&prefix));
    let mut joined = RouteTable::clone(table);
    for (_, held) in held {
        let index = joined.virtual_hosts.len();
        for domain in &held.host.domains {
            joined.domains.entry(domain.clone()).or_insert(index);
        }
        joined.virtual_hosts.push(Arc::clone(&held.host));
        joined
            .named
            .services
            .extend(held.named.services.iter().cloned());
        joined
            .named
            .methods
            .extend(held.named.methods.iter().cloned());
    }
    Arc::new(joined)
}

/// What routing one outbound RPC looks at.
#[derive(Debug, Clone, Copy)]
pub struct RpcTarget<'a> {
    /// As the client sent it.
    pub authority: &'a str,
    /// Where an intercepted connection was going.
    pub original_dst: Option<SocketAddr>,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
}

/// What the held config says about one RPC.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// Route it.
    Route(RouteDecision<'a>),
    /// A virtual host answers the authority but none of its routes the RPC (or the table
    /// has no `vhds` and no host answers): the usual "no route".
    NoRoute,
    /// VHDS said no host serves the authority (now or before: see the module comment).
    NotFound,
    /// Not yet: the virtual host, or a cluster its route sends to, or that cluster's
    /// endpoints, have not arrived. `demand`: the name to subscribe, when not yet asked.
    Wait { demand: Option<String> },
}

impl<'a> Lookup<'a> {
    /// The route, when there is one to take.
    pub fn decision(self) -> Option<RouteDecision<'a>> {
        match self {
            Lookup::Route(decision) => Some(decision),
            _ => None,
        }
    }
}

impl ProxyConfig {
    /// Routes a browser's call on the web table: the one virtual host answers every
    /// authority, and its routes pick by path (the gRPC service). The web table never
    /// names `vhds` and its clusters come over CDS with every other, so nothing is waited
    /// for; without a web table there is no route.
    pub fn lookup_web(&self, rpc: &RpcTarget<'_>) -> Lookup<'_> {
        let Some(table) = &self.web else {
            return Lookup::NoRoute;
        };
        let Some(virtual_host) = table.virtual_host_for(rpc.authority, None) else {
            return Lookup::NoRoute;
        };
        match virtual_host.route_for(rpc.authority, rpc.path, rpc.headers) {
            Some(route) => Lookup::Route(RouteDecision {
                virtual_host,
                route,
            }),
            None => Lookup::NoRoute,
        }
    }
    /// Routes `rpc` on the outbound table, as [`RouteTable::select_intercepted`] does; when
    /// the table names `vhds` and no host answers, says whether to wait (and what to ask
    /// for: the authority, lower-cased, then on an intercepted connection the original
    /// destination `ip:port`) or fail; and holds an RPC until every cluster its route may
    /// send to has endpoints. Without `vhds` this is exactly `select_intercepted`.
    pub fn lookup(&self, rpc: &RpcTarget<'_>) -> Lookup<'_> {
        let Some(table) = &self.outbound else {
            return Lookup::Wait { demand: None };
        };
        if table.vhds && !rpc.authority.is_empty() {
            // The authority is settled first (a host for it, or the word that there is
            // none): an authority that names a Service wins over the address dialled, even
            // when a host already held lists that address.
            let lookups = &self.resources.on_demand;
            let name = vhds_resource_name(&table.name, &rpc.authority.to_ascii_lowercase());
            let settled = table.virtual_host_for(rpc.authority, None).is_some()
                || lookups.aliases.contains_key(&name)
                || lookups.known_missing(&name);
            if !settled {
                let asked = lookups.subscribed.contains(&name);
                return Lookup::Wait {
                    demand: (!asked).then_some(name),
                };
            }
        }
        if let Some(virtual_host) = table.virtual_host_for(rpc.authority, rpc.original_dst) {
            let Some(route) = virtual_host.route_for(rpc.authority, rpc.path, rpc.headers) else {
                return Lookup::NoRoute;
            };
            if table.vhds && !self.can_send(route) {
                return Lookup::Wait { demand: None };
            }
            return Lookup::Route(RouteDecision {
                virtual_host,
                route,
            });
        }
        if !table.vhds {
            return Lookup::NoRoute;
        }
        let lookups = &self.resources.on_demand;
        let authorities = [
            Some(rpc.authority.to_ascii_lowercase()),
            rpc.original_dst.map(|dst| dst.to_string()),
        ];
        for authority in authorities.into_iter().flatten() {
            if authority.is_empty() {
                continue;
            }
            let name = vhds_resource_name(&table.name, &authority);
            // Answered "no host", or by a host that does not list the authority: try the
            // next one.
            if lookups.aliases.contains_key(&name) || lookups.known_missing(&name) {
                continue;
            }
            // Subscribed and unanswered: the answer is on its way.
            let asked = lookups.subscribed.contains(&name);
            return Lookup::Wait {
                demand: (!asked).then_some(name),
            };
        }
        Lookup::NotFound
    }

    /// Whether every cluster `route` may send to is known and has its endpoints.
    fn can_send(&self, route: &Route) -> bool {
        route.action.backends.iter().all(|backend| {
            self.clusters.contains_key(&backend.cluster)
                && self.endpoints.contains_key(&backend.cluster)
        })
    }
}

#[cfg(test)]
#[path = "on_demand_tests.rs"]
mod tests;
