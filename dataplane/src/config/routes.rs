//! `RouteConfiguration` → [`RouteTable`]: virtual hosts and their domains, each route's match
//! (path, headers), action and fault, and the gRPC methods the routes name (metric labels).
//!
//! Per-filter config (the fault) is read at the route, virtual host and route configuration
//! level, the most specific winning, as in Envoy. It is recognised by its type
//! (`HTTPFault`), possibly wrapped in a `FilterConfig` (`disabled: true` turns the fault off,
//! `is_optional: true` lets an unknown filter's config be ignored); other filters' configs
//! are errors. Fields that would change routing and are not implemented are errors; fields
//! that only concern Envoy's stats, tracing or HTTP/1 are ignored.

use std::collections::{HashMap, hash_map::Entry};
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    FilterConfig, Route as EnvoyRoute, RouteConfiguration, RouteMatch as EnvoyMatch,
    VirtualHost as EnvoyVirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::google::protobuf::Any;
use prost::Name;

use super::convert::{FieldError, FieldResult, decode_any, decode_resource, unsupported};
use super::fault::fault_config;
use super::matching::split_method_path;
use super::route_action::{retry_policy, route_action};
use super::string_match::{caseless_literal, header_matcher, regex_matcher};
use super::{
    ConfigError, FaultConfig, NamedMethods, PathMatch, RetryPolicy, Route, RouteMatch, RouteTable,
    StringMatch, VirtualHost,
};

/// The conventional name of Envoy's fault filter (a key of `typed_per_filter_config`).
pub(super) const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// A level's fault setting: `None` inherits from the enclosing level, `Some(None)` turns
/// faults off, `Some(Some(_))` sets one.
type FaultSetting = Option<Option<FaultConfig>>;

pub fn parse_route_config(any: &Any) -> Result<RouteTable, ConfigError> {
    let config: RouteConfiguration = decode_resource(any, "RouteConfiguration")?;
    let resource = format!("RouteConfiguration {}", config.name);
    route_table(&config).map_err(|err| err.of_resource(&resource))
}

fn route_table(config: &RouteConfiguration) -> FieldResult<RouteTable> {
    if config.name.is_empty() {
        return Err(FieldError::new("name", "empty"));
    }
    let set = [
        ("vhds", config.vhds.is_some()),
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
    let fault = fault_setting(&config.typed_per_filter_config)?.flatten();
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
    })
}

fn reject_set(set: &[(&str, bool)]) -> FieldResult<()> {
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((field, _)) => Err(unsupported(field)),
        None => Ok(()),
    }
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
    name_methods(&matcher, named);
    Ok(Route {
        name: route.name.clone(),
        matcher,
        action,
        fault,
    })
}

fn not_forwarding(field: &str) -> FieldError {
    FieldError::new(
        field,
        "not supported by weft-proxy, which only forwards RPCs (use a `route` action)",
    )
}

fn route_match(matcher: &EnvoyMatch) -> FieldResult<RouteMatch> {
    let set = [
        ("runtime_fraction", matcher.runtime_fraction.is_some()),
        ("query_parameters", !matcher.query_parameters.is_empty()),
        ("cookies", !matcher.cookies.is_empty()),
        ("tls_context", matcher.tls_context.is_some()),
        ("dynamic_metadata", !matcher.dynamic_metadata.is_empty()),
        ("filter_state", !matcher.filter_state.is_empty()),
    ];
    // `grpc` (match gRPC requests only) is ignored: every request is one.
    reject_set(&set)?;
    let case_sensitive = matcher.case_sensitive.is_none_or(|c| c.value);
    let caseless = |field: &str, before: &str, literal: &str, after: &str| {
        caseless_literal(before, literal, after)
            .map(PathMatch::Regex)
            .map_err(|problem| FieldError::new(field, problem))
    };
    let path = match &matcher.path_specifier {
        None => return Err(FieldError::new("path_specifier", "missing")),
        Some(PathSpecifier::Prefix(prefix)) if case_sensitive => PathMatch::Prefix(prefix.clone()),
        Some(PathSpecifier::Prefix(prefix)) => caseless("prefix", "^", prefix, "")?,
        Some(PathSpecifier::Path(path)) if case_sensitive => PathMatch::Exact(path.clone()),
        Some(PathSpecifier::Path(path)) => caseless("path", "^", path, "$")?,
        // Envoy: `case_sensitive` does not apply to regexes.
        Some(PathSpecifier::SafeRegex(regex)) => {
            PathMatch::Regex(regex_matcher(regex).map_err(|e| e.within("safe_regex"))?)
        }
        Some(PathSpecifier::PathSeparatedPrefix(prefix)) => {
            let field = "path_separated_prefix";
            if prefix.contains(['?', '#']) || prefix.ends_with('/') {
                return Err(FieldError::new(
                    field,
                    "must not contain ? or # nor end with /",
                ));
            }
            if case_sensitive {
                let pattern = format!("{}(?:/(?s:.*))?", regex::escape(prefix));
                super::string_match::whole_match_regex(&pattern)
                    .map(PathMatch::Regex)
                    .map_err(|problem| FieldError::new(field, problem))?
            } else {
                caseless(field, "^", prefix, "(?:/(?s:.*))?$")?
            }
        }
        Some(PathSpecifier::ConnectMatcher(_)) => return Err(unsupported("connect_matcher")),
        Some(PathSpecifier::PathMatchPolicy(_)) => return Err(unsupported("path_match_policy")),
    };
    let headers = matcher
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_matcher(h).map_err(|e| e.within(&format!("headers[{i}]"))))
        .collect::<FieldResult<Vec<_>>>()?;
    Ok(RouteMatch { path, headers })
}

/// Records the services and methods a match names: a prefix `/pkg.Svc/` names the service,
/// an exact `/pkg.Svc/M` (as the path or as a `:path` header) the method and its service.
fn name_methods(matcher: &RouteMatch, named: &mut NamedMethods) {
    let mut name = |path: &str, exact: bool| {
        if exact {
            if let Some((service, method)) = split_method_path(path)
                && !path.contains('?')
            {
                named.services.insert(service.to_owned());
                named.methods.insert(format!("{service}/{method}"));
            }
        } else if let Some(service) = path.strip_prefix('/').and_then(|s| s.strip_suffix('/'))
            && !service.is_empty()
            && !service.contains('/')
        {
            named.services.insert(service.to_owned());
        }
    };
    match &matcher.path {
        PathMatch::Prefix(prefix) => name(prefix, false),
        PathMatch::Exact(path) => name(path, true),
        PathMatch::Regex(_) => {}
    }
    for header in matcher
        .headers
        .iter()
        .filter(|h| h.name == ":path" && !h.invert)
    {
        match &header.value {
            StringMatch::Exact(path) => name(path, true),
            StringMatch::Prefix(prefix) => name(prefix, false),
            _ => {}
        }
    }
}

/// The fault setting of one level's `typed_per_filter_config` (see the module comment).
fn fault_setting(configs: &HashMap<String, Any>) -> FieldResult<FaultSetting> {
    // Sorted, so the same config always reports the same error first.
    let mut entries: Vec<(&String, &Any)> = configs.iter().collect();
    entries.sort_by_key(|(name, _)| *name);
    let mut setting = None;
    for (name, any) in entries {
        let field = format!("typed_per_filter_config[{name:?}]");
        let (inner, optional, disabled) = if any.type_url == FilterConfig::type_url() {
            let wrapper: FilterConfig = decode_any(any).map_err(|e| e.within(&field))?;
            (wrapper.config, wrapper.is_optional, wrapper.disabled)
        } else {
            (Some(any.clone()), false, false)
        };
        // Known by its type; under the fault filter's name any other type is a mistake,
        // reported by decoding it as a fault.
        let is_fault = name == FAULT_FILTER
            || inner
                .as_ref()
                .is_some_and(|a| a.type_url == HttpFault::type_url());
        match inner {
            _ if disabled && is_fault => setting = Some(None),
            // Turning off a filter weft-proxy does not run changes nothing.
            _ if disabled => {}
            Some(any) if is_fault => {
                let fault: HttpFault = decode_any(&any).map_err(|e| e.within(&field))?;
                setting = Some(fault_config(&fault).map_err(|e| e.within(&field))?);
            }
            _ if optional => {}
            None => return Err(FieldError::new(format!("{field}.config"), "missing")),
            Some(any) => {
                return Err(FieldError::new(
                    field,
                    format!(
                        "config of type {:?}: weft-proxy runs no such filter (only {FAULT_FILTER})",
                        any.type_url
                    ),
                ));
            }
        }
    }
    Ok(setting)
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
