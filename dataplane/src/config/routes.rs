//! `RouteConfiguration` → [`RouteTable`]: virtual hosts and their domains, each route's match
//! (path, headers), action and fault, and the gRPC methods the routes name (metric labels).
//!
//! Per-filter config (the fault, read by `fault::fault_setting`) is taken from the route,
//! virtual host and route configuration levels, the most specific winning, as in Envoy (the
//! CORS policy, `cors::cors_setting`, from the route only); a
//! virtual host's retry policy applies to its routes without one. Domains are lower-cased
//! and must be unique across virtual hosts (as Envoy requires). Fields that would change
//! routing and are not implemented are errors; fields that only concern Envoy's stats,
//! tracing or HTTP/1 are ignored.
//!
//! VHDS: a RouteConfiguration may name `vhds` (over ADS), and then `VirtualHost` resources
//! come one by one ([`parse_virtual_host`], the same conversion as an inline host). A fault
//! set on such a RouteConfiguration itself is an error: the hosts are converted on their
//! own, so it would silently not reach them.

use std::collections::{HashMap, hash_map::Entry};
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::{
    Route as EnvoyRoute, RouteConfiguration, VirtualHost as EnvoyVirtualHost,
};
use envoy_types::pb::google::protobuf::Any;

use super::convert::{FieldError, FieldResult, check_config_source, decode_resource, reject_set};
use super::cors::cors_setting;
use super::fault::{FAULT_FILTER, fault_setting};
use super::route_action::{retry_policy, route_action};
use super::route_match::{name_methods, route_match};
use super::{
    ConfigError, FaultConfig, NamedMethods, OnDemandHost, RetryPolicy, Route, RouteTable,
    VirtualHost,
};

/// Converts one RouteConfiguration (`any` must hold one); errors name the resource and the
/// field, e.g. `virtual_hosts[0].routes[2].match.safe_regex.regex`.
pub fn parse_route_config(any: &Any) -> Result<RouteTable, ConfigError> {
    let config: RouteConfiguration = decode_resource(any, "RouteConfiguration")?;
    let resource = format!("RouteConfiguration {}", config.name);
    route_table(&config).map_err(|err| err.of_resource(&resource))
}

/// Converts one VHDS `VirtualHost` (`any` must hold one); errors name the host and the
/// field, e.g. `VirtualHost greeter:50051: routes[0].route.timeout`.
pub fn parse_virtual_host(any: &Any) -> Result<OnDemandHost, ConfigError> {
    let vhost: EnvoyVirtualHost = decode_resource(any, "VirtualHost")?;
    let resource = format!("VirtualHost {}", vhost.name);
    on_demand_host(&vhost).map_err(|err| err.of_resource(&resource))
}

fn on_demand_host(vhost: &EnvoyVirtualHost) -> FieldResult<OnDemandHost> {
    // Envoy requires the name; it is what metrics and `/config_dump` show.
    if vhost.name.is_empty() {
        return Err(FieldError::new("name", "empty"));
    }
    let mut named = NamedMethods::default();
    let host = virtual_host(vhost, None, &mut named)?;
    for (j, domain) in host.domains.iter().enumerate() {
        if host.domains[..j].contains(domain) {
            return Err(FieldError::new(
                format!("domains[{j}]"),
                format!("domain {domain:?} is listed twice"),
            ));
        }
    }
    Ok(OnDemandHost {
        host: Arc::new(host),
        named,
    })
}

fn route_table(config: &RouteConfiguration) -> FieldResult<RouteTable> {
    if config.name.is_empty() {
        return Err(FieldError::new("name", "empty"));
    }
    let set = [
        (
            "internal_only_headers",
            !config.internal_only_headers.is_empty(),
        ),
        (
            "request_headers_to_add",
            !config.request_headers_to_add.is_empty(),
        ),
        (
            "request_headers_to_remove",
            !config.request_headers_to_remove.is_empty(),
        ),
        (
            "response_headers_to_add",
            !config.response_headers_to_add.is_empty(),
        ),
        (
            "response_headers_to_remove",
            !config.response_headers_to_remove.is_empty(),
        ),
        (
            "cluster_specifier_plugins",
            !config.cluster_specifier_plugins.is_empty(),
        ),
        (
            "request_mirror_policies",
            !config.request_mirror_policies.is_empty(),
        ),
        ("vhost_header", !config.vhost_header.is_empty()),
        ("route_specifiers", !config.route_specifiers.is_empty()),
    ];
    reject_set(&set)?;
    if let Some(vhds) = &config.vhds {
        check_config_source(vhds.config_source.as_ref(), "vhds.config_source")?;
    }
    let fault = fault_setting(&config.typed_per_filter_config)?.flatten();
    if config.vhds.is_some() && fault.is_some() {
        return Err(FieldError::new(
            format!("typed_per_filter_config[{FAULT_FILTER:?}]"),
            "a fault on a RouteConfiguration with `vhds` would not reach the virtual hosts \
             VHDS sends; set it on those hosts or their routes",
        ));
    }
    let mut domains = HashMap::new();
    let mut named = NamedMethods::default();
    let mut virtual_hosts = Vec::with_capacity(config.virtual_hosts.len());
    for (i, vhost) in config.virtual_hosts.iter().enumerate() {
        let position = format!("virtual_hosts[{i}]");
        let vhost =
            virtual_host(vhost, fault.as_ref(), &mut named).map_err(|e| e.within(&position))?;
        for (j, domain) in vhost.domains.iter().enumerate() {
            match domains.entry(domain.clone()) {
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
                Entry::Occupied(taken) => {
                    return Err(FieldError::new(
                        format!("{position}.domains[{j}]"),
                        format!(
                            "domain {domain:?} is also in virtual_hosts[{}]; domains must be unique",
                            taken.get()
                        ),
                    ));
                }
            }
        }
        virtual_hosts.push(Arc::new(vhost));
    }
    Ok(RouteTable {
        name: config.name.clone(),
        virtual_hosts,
        domains,
        named,
        vhds: config.vhds.is_some(),
    })
}

fn virtual_host(
    vhost: &EnvoyVirtualHost,
    inherited_fault: Option<&FaultConfig>,
    named: &mut NamedMethods,
) -> FieldResult<VirtualHost> {
    let set = [
        ("matcher", vhost.matcher.is_some()),
        ("require_tls", vhost.require_tls != 0),
        ("rate_limits", !vhost.rate_limits.is_empty()),
        (
            "request_headers_to_add",
            !vhost.request_headers_to_add.is_empty(),
        ),
        (
            "request_headers_to_remove",
            !vhost.request_headers_to_remove.is_empty(),
        ),
        (
            "response_headers_to_add",
            !vhost.response_headers_to_add.is_empty(),
        ),
        (
            "response_headers_to_remove",
            !vhost.response_headers_to_remove.is_empty(),
        ),
        (
            "retry_policy_typed_config",
            vhost.retry_policy_typed_config.is_some(),
        ),
        ("hedge_policy", vhost.hedge_policy.is_some()),
        (
            "request_mirror_policies",
            !vhost.request_mirror_policies.is_empty(),
        ),
        ("route_specifiers", !vhost.route_specifiers.is_empty()),
    ];
    reject_set(&set)?;
    if vhost.domains.is_empty() {
        return Err(FieldError::new("domains", "empty"));
    }
    let domains = vhost
        .domains
        .iter()
        .enumerate()
        .map(|(j, domain)| {
            checked_domain(domain).map_err(|p| FieldError::new(format!("domains[{j}]"), p))
        })
        .collect::<FieldResult<Vec<String>>>()?;
    let retry = vhost
        .retry_policy
        .as_ref()
        .map(retry_policy)
        .transpose()
        .map_err(|e| e.within("retry_policy"))?
        .flatten();
    let fault = match fault_setting(&vhost.typed_per_filter_config)? {
        Some(setting) => setting,
        None => inherited_fault.cloned(),
    };
    let routes = vhost
        .routes
        .iter()
        .enumerate()
        .map(|(k, r)| {
            route(r, retry.as_ref(), fault.as_ref(), named)
                .map_err(|e| e.within(&format!("routes[{k}]")))
        })
        .collect::<FieldResult<Vec<Route>>>()?;
    Ok(VirtualHost {
        name: vhost.name.clone(),
        domains,
        routes,
    })
}

/// A domain in lower case; a wildcard `*` may only be the whole domain, its first or its
/// last character (Envoy's rule).
fn checked_domain(domain: &str) -> Result<String, String> {
    let domain = domain.to_ascii_lowercase();
    let stars = domain.matches('*').count();
    let placed = domain == "*" || domain.starts_with('*') || domain.ends_with('*');
    if domain.is_empty() {
        return Err("empty".into());
    }
    if stars > 1 || (stars == 1 && !placed) {
        return Err(format!(
            "{domain:?}: a wildcard may only start or end a domain, once"
        ));
    }
    Ok(domain)
}

fn route(
    route: &EnvoyRoute,
    vhost_retry: Option<&RetryPolicy>,
    inherited_fault: Option<&FaultConfig>,
    named: &mut NamedMethods,
) -> FieldResult<Route> {
    let set = [
        (
            "request_headers_to_add",
            !route.request_headers_to_add.is_empty(),
        ),
        (
            "request_headers_to_remove",
            !route.request_headers_to_remove.is_empty(),
        ),
        (
            "response_headers_to_add",
            !route.response_headers_to_add.is_empty(),
        ),
        (
            "response_headers_to_remove",
            !route.response_headers_to_remove.is_empty(),
        ),
        ("route_specifiers", !route.route_specifiers.is_empty()),
    ];
    reject_set(&set)?;
    let matcher = route
        .r#match
        .as_ref()
        .ok_or_else(|| FieldError::new("match", "missing"))
        .and_then(|m| route_match(m).map_err(|e| e.within("match")))?;
    let action = match &route.action {
        None => return Err(FieldError::new("action", "missing")),
        Some(Action::Route(action)) => {
            route_action(action, vhost_retry).map_err(|e| e.within("route"))?
        }
        Some(Action::Redirect(_)) => return Err(not_forwarding("redirect")),
        Some(Action::DirectResponse(_)) => return Err(not_forwarding("direct_response")),
        Some(Action::FilterAction(_)) => return Err(not_forwarding("filter_action")),
        Some(Action::NonForwardingAction(_)) => {
            return Err(not_forwarding("non_forwarding_action"));
        }
    };
    let fault = match fault_setting(&route.typed_per_filter_config)? {
        Some(setting) => setting,
        None => inherited_fault.cloned(),
    };
    let cors = cors_setting(&route.typed_per_filter_config)?.map(Arc::new);
    name_methods(&matcher, named);
    Ok(Route {
        name: route.name.clone(),
        matcher,
        action,
        fault,
        cors,
    })
}

fn not_forwarding(field: &str) -> FieldError {
    FieldError::new(
        field,
        "not supported by weft-proxy, which only forwards RPCs (use a `route` action)",
    )
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
