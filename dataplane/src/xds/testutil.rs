//! Test helpers for the protocol logic: fake conversions over a tiny text encoding, so the
//! Delta and SotW tests exercise the protocol, not the real config parsers.
//!
//! A fake resource is an `Any` of the real type URL whose bytes are text:
//! `name` or `name=ref` (a listener's route config, a cluster's EDS name, or `static` for a
//! cluster with inline endpoints, `vhds` for a route config naming VHDS, a virtual host's
//! one domain); a name starting with `!` fails to convert with a `ConfigError` naming it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Any;

use super::state::{Held, Parsers, short_name};
use crate::config::{
    ClusterConfig, ConfigError, EndpointSet, ListenerConfig, NamedMethods, OnDemandHost,
    ResourceKind, RouteTable, VirtualHost,
};

pub const CDS: ResourceKind = ResourceKind::Cluster;
pub const EDS: ResourceKind = ResourceKind::Endpoints;
pub const LDS: ResourceKind = ResourceKind::Listener;
pub const RDS: ResourceKind = ResourceKind::Route;
pub const VHDS: ResourceKind = ResourceKind::VirtualHost;

pub fn node() -> Node {
    Node {
        id: "proxy-0.default".into(),
        ..Default::default()
    }
}

pub fn held() -> Held {
    Held::new(Parsers {
        listener: fake_listener,
        route: fake_route,
        cluster: fake_cluster,
        endpoints: fake_endpoints,
        virtual_host: fake_virtual_host,
    })
}

/// A fake resource of `kind`: `"name"` or `"name=ref"`.
pub fn any(kind: ResourceKind, text: &str) -> Any {
    Any {
        type_url: kind.type_url().into(),
        value: text.as_bytes().to_vec(),
    }
}

/// The name of a fake resource.
pub fn name_of(text: &str) -> &str {
    text.split_once('=').map_or(text, |(name, _)| name)
}

fn decode(kind: ResourceKind, any: &Any) -> Result<(String, String), ConfigError> {
    let text = String::from_utf8_lossy(&any.value).into_owned();
    let (name, reference) = match text.split_once('=') {
        Some((name, reference)) => (name.to_string(), reference.to_string()),
        None => (text.clone(), String::new()),
    };
    match name.strip_prefix('!') {
        Some(bad) => Err(ConfigError {
            resource: format!("{} {bad}", short_name(kind)),
            field: "spec".into(),
            problem: "is bad".into(),
        }),
        None => Ok((name, reference)),
    }
}

fn fake_listener(any: &Any) -> Result<ListenerConfig, ConfigError> {
    let (name, route_config_name) = decode(LDS, any)?;
    Ok(ListenerConfig {
        name,
        route_config_name,
        ..Default::default()
    })
}

fn fake_route(any: &Any) -> Result<RouteTable, ConfigError> {
    let (name, reference) = decode(RDS, any)?;
    Ok(RouteTable {
        name,
        virtual_hosts: Vec::new(),
        domains: HashMap::new(),
        named: NamedMethods::default(),
        vhds: reference == "vhds",
    })
}

fn fake_cluster(any: &Any) -> Result<ClusterConfig, ConfigError> {
    let (name, eds_name) = decode(CDS, any)?;
    let inline_endpoints = (eds_name == "static").then(|| EndpointSet {
        name: name.clone(),
        addrs: Vec::new(),
        ..Default::default()
    });
    Ok(ClusterConfig {
        service: name.clone(),
        name,
        connect_timeout: Duration::from_secs(1),
        eds_name,
        inline_endpoints,
        ..Default::default()
    })
}

fn fake_endpoints(any: &Any) -> Result<EndpointSet, ConfigError> {
    let (name, _) = decode(EDS, any)?;
    Ok(EndpointSet {
        name,
        addrs: Vec::new(),
        ..Default::default()
    })
}

fn fake_virtual_host(any: &Any) -> Result<OnDemandHost, ConfigError> {
    let (name, domain) = decode(VHDS, any)?;
    let domains = vec![if domain.is_empty() {
        name.clone()
    } else {
        domain
    }];
    Ok(OnDemandHost {
        host: Arc::new(VirtualHost {
            name,
            domains,
            routes: Vec::new(),
        }),
        named: NamedMethods::default(),
    })
}

/// The names held of each type, for compact assertions.
pub fn names(held: &Held, kind: ResourceKind) -> Vec<String> {
    held.names(kind).into_iter().collect()
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
