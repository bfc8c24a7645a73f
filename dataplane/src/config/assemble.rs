//! Joins the converted resources into the [`ProxyConfig`] the data path reads: the outbound
//! route table (from the listener named `outbound`, or the only listener but `inbound` and
//! `web`), the web route table (from the listener named `web`, when there is one), the
//! `inbound` listener's mode, clusters and their endpoints by cluster name, and whether
//! everything referenced has arrived ([`ProxyConfig::missing`] says what has not, for
//! `/ready`). The `inbound` listener is not required: without it the proxy is `Permissive`.
//! A route configuration naming `vhds` gets the virtual hosts held from VHDS joined in
//! (`on_demand::with_held_hosts`), for routing and for what is missing alike.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::listener::{INBOUND_LISTENER, OUTBOUND_LISTENER, WEB_LISTENER};
use super::on_demand::with_held_hosts;
use super::{EndpointSet, ListenerConfig, ProxyConfig, Resources, RouteTable};

/// At most this many missing resources are listed; the rest are counted.
const MAX_LISTED: usize = 10;

/// The config in force for `resources` (which it keeps, for `/config_dump`).
pub fn assemble(resources: Resources) -> ProxyConfig {
    let outbound = outbound_listener(&resources)
        .and_then(|listener| resources.routes.get(&listener.route_config_name))
        .map(|table| with_held_hosts(table, &resources.virtual_hosts));
    let web = resources
        .listeners
        .get(WEB_LISTENER)
        .and_then(|listener| resources.routes.get(&listener.route_config_name))
        .cloned();
    let clusters: HashMap<_, _> = resources
        .clusters
        .iter()
        .map(|(name, cluster)| (name.clone(), Arc::clone(cluster)))
        .collect();
    let endpoints: HashMap<String, Arc<EndpointSet>> = resources
        .clusters
        .iter()
        .filter_map(|(name, cluster)| {
            let set = match &cluster.inline_endpoints {
                Some(inline) => Arc::new(inline.clone()),
                None => Arc::clone(resources.endpoints.get(&cluster.eds_name)?),
            };
            Some((name.clone(), set))
        })
        .collect();
    let inbound = resources
        .listeners
        .get(INBOUND_LISTENER)
        .and_then(|listener| listener.inbound);
    let complete = missing_resources(&resources).is_empty();
    ProxyConfig {
        outbound,
        web,
        inbound,
        clusters,
        endpoints,
        complete,
        resources,
    }
}

/// The listener named `outbound`, or the only listener there is besides `inbound` (which
/// has no routes) and `web`.
fn outbound_listener(resources: &Resources) -> Option<&ListenerConfig> {
    resources.listeners.get(OUTBOUND_LISTENER).or_else(|| {
        let mut all = resources
            .listeners
            .values()
            .filter(|listener| ![INBOUND_LISTENER, WEB_LISTENER].contains(&listener.name.as_str()));
        match (all.next(), all.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    })
}

impl ProxyConfig {
    /// What is still missing before the config is complete, one line each (empty when it
    /// is complete): the listener, its RouteConfiguration, clusters its routes name, and
    /// endpoints of clusters. Long lists end with a count of the rest.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = missing_resources(&self.resources);
        if missing.len() > MAX_LISTED {
            let rest = missing.len() - MAX_LISTED;
            missing.truncate(MAX_LISTED);
            missing.push(format!("and {rest} more"));
        }
        missing
    }
}

fn missing_resources(resources: &Resources) -> Vec<String> {
    let mut missing = Vec::new();
    if let Some(web) = resources.listeners.get(WEB_LISTENER) {
        match resources.routes.get(&web.route_config_name) {
            None => missing.push(format!(
                "RouteConfiguration {} (of Listener {WEB_LISTENER})",
                web.route_config_name
            )),
            Some(table) => missing_clusters(resources, table, &mut missing),
        }
    }
    match outbound_listener(resources) {
        None if resources.listeners.is_empty() => {
            missing.push(format!("Listener {OUTBOUND_LISTENER}"));
        }
        None => {
            let names: Vec<&str> = resources.listeners.keys().map(String::as_str).collect();
            missing.push(format!(
                "Listener {OUTBOUND_LISTENER} (have {})",
                names.join(", ")
            ));
        }
        Some(listener) => match resources.routes.get(&listener.route_config_name) {
            None => missing.push(format!(
                "RouteConfiguration {} (of Listener {})",
                listener.route_config_name, listener.name
            )),
            Some(table) => {
                let table = with_held_hosts(table, &resources.virtual_hosts);
                missing_clusters(resources, &table, &mut missing);
            }
        },
    }
    for (name, cluster) in &resources.clusters {
        let has_endpoints = cluster.inline_endpoints.is_some()
            || resources.endpoints.contains_key(&cluster.eds_name);
        if !has_endpoints {
            missing.push(format!(
                "ClusterLoadAssignment {} (of Cluster {name})",
                cluster.eds_name
            ));
        }
    }
    missing
}

/// The clusters routes of `table` send to that have not arrived.
fn missing_clusters(resources: &Resources, table: &RouteTable, missing: &mut Vec<String>) {
    for cluster in referenced_clusters(table) {
        if !resources.clusters.contains_key(cluster) {
            missing.push(format!(
                "Cluster {cluster} (routed to by RouteConfiguration {})",
                table.name
            ));
        }
    }
}

/// Every cluster a route of `table` sends RPCs to, sorted.
fn referenced_clusters(table: &RouteTable) -> BTreeSet<&str> {
    table
        .virtual_hosts
        .iter()
        .flat_map(|vhost| &vhost.routes)
        .flat_map(|route| &route.action.backends)
        .map(|backend| backend.cluster.as_str())
        .collect()
}

#[cfg(test)]
#[path = "assemble_tests.rs"]
mod tests;
