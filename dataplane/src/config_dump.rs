//! `/config_dump`: the config in force in the shape of Envoy's admin `ConfigDump`
//! (`envoy.admin.v3.ConfigDump`, proto3 JSON), so tools that read Envoy's dump — `weftctl
//! proxy-config`, istioctl-like scripts, jq one-liners — read weft-proxy's.
//!
//! Written from what the proxy applies, not from the resources as received: a field the proxy
//! does not implement is not shown (a listener has its name and, outbound, its RDS route
//! configuration; no addresses: they are the proxy's flags). Sections, in Envoy's order:
//! listeners, clusters, endpoints from EDS (Envoy shows them with `?include_eds`; here
//! always; a static cluster's are in its `load_assignment`), routes
//! (the outbound route configuration with the virtual hosts held from VHDS joined in, as
//! Envoy shows it). There are no secrets: weft-proxy gets its certificate by CSR, not SDS.
//! weft's own view, with VHDS subscriptions and mTLS marks, stays at `/debug/config`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{
    ClusterConfig, EndpointSet, HeaderMatch, PathMatch, ProxyConfig, ResourceKind, Route,
    RouteTable, StringMatch,
};

const ADMIN: &str = "type.googleapis.com/envoy.admin.v3.";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTE_CONFIGURATION: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const CLUSTER_LOAD_ASSIGNMENT: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const HTTP_PROTOCOL_OPTIONS: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const HTTP_FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";

/// The whole dump.
pub fn config_dump(config: &ProxyConfig) -> Value {
    let version = |kind: ResourceKind| {
        config
            .resources
            .versions
            .get(&kind)
            .cloned()
            .unwrap_or_default()
    };
    let listeners: Vec<Value> = config
        .resources
        .listeners
        .values()
        .map(|listener| {
            let mut body = json!({"@type": LISTENER, "name": listener.name});
            if !listener.route_config_name.is_empty() {
                body["filter_chains"] = json!([{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": HCM,
                        "stat_prefix": listener.name,
                        "rds": {
                            "route_config_name": listener.route_config_name,
                            "config_source": ads(),
                        },
                    },
                }]}]);
            }
            json!({
                "name": listener.name,
                "active_state": {"version_info": version(ResourceKind::Listener), "listener": body},
            })
        })
        .collect();
    let clusters: Vec<Value> = config
        .resources
        .clusters
        .values()
        .map(|cluster| {
            json!({"version_info": version(ResourceKind::Cluster), "cluster": cluster_json(cluster)})
        })
        .collect();
    let endpoints: Vec<Value> = config
        .resources
        .endpoints
        .values()
        .map(|set| json!({"version_info": version(ResourceKind::Endpoints), "endpoint_config": endpoints_json(set)}))
        .collect();
    let routes: Vec<Value> = config
        .resources
        .routes
        .iter()
        .map(|(name, table)| {
            // The outbound table with its VHDS hosts joined in, as Envoy shows a route
            // configuration whose virtual hosts came over VHDS.
            let table = config
                .outbound
                .as_ref()
                .filter(|outbound| &outbound.name == name)
                .unwrap_or(table);
            json!({"version_info": version(ResourceKind::Route), "route_config": route_config_json(table)})
        })
        .collect();
    json!({"configs": [
        {"@type": format!("{ADMIN}ListenersConfigDump"), "version_info": version(ResourceKind::Listener), "dynamic_listeners": listeners},
        {"@type": format!("{ADMIN}ClustersConfigDump"), "version_info": version(ResourceKind::Cluster), "dynamic_active_clusters": clusters},
        {"@type": format!("{ADMIN}EndpointsConfigDump"), "dynamic_endpoint_configs": endpoints},
        {"@type": format!("{ADMIN}RoutesConfigDump"), "dynamic_route_configs": routes},
    ]})
}

fn ads() -> Value {
    json!({"ads": {}, "resource_api_version": "V3"})
}

/// A protobuf `Duration` in proto3 JSON: seconds with up to nine decimals, e.g. `"1.500s"`.
pub fn duration(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return format!("{}s", d.as_secs());
    }
    let fraction = format!("{nanos:09}");
    format!("{}.{}s", d.as_secs(), fraction.trim_end_matches('0'))
}

fn cluster_json(cluster: &ClusterConfig) -> Value {
    let mut body = json!({
        "@type": CLUSTER,
        "name": cluster.name,
        "connect_timeout": duration(cluster.connect_timeout),
        "circuit_breakers": {"thresholds": [{
            "max_requests": cluster.circuit_breakers.max_requests,
            "max_pending_requests": cluster.circuit_breakers.max_pending_requests,
        }]},
    });
    match &cluster.inline_endpoints {
        Some(set) => {
            body["type"] = json!("STATIC");
            // A message field, not an `Any`: no `@type`.
            let mut assignment = endpoints_json(set);
            if let Some(fields) = assignment.as_object_mut() {
                fields.remove("@type");
            }
            body["load_assignment"] = assignment;
        }
        None => {
            body["type"] = json!("EDS");
            body["eds_cluster_config"] =
                json!({"eds_config": ads(), "service_name": cluster.eds_name});
        }
    }
    if let Some(o) = &cluster.outlier_detection {
        body["outlier_detection"] = json!({
            "consecutive_5xx": o.consecutive_5xx,
            "consecutive_gateway_failure": o.consecutive_gateway_failure,
            "enforcing_consecutive_5xx": o.enforcing_consecutive_5xx,
            "enforcing_consecutive_gateway_failure": o.enforcing_consecutive_gateway_failure,
            "interval": duration(o.interval),
            "base_ejection_time": duration(o.base_ejection_time),
            "max_ejection_time": duration(o.max_ejection_time),
            "max_ejection_time_jitter": duration(o.max_ejection_time_jitter),
            "max_ejection_percent": o.max_ejection_percent,
            "always_eject_one_host": o.always_eject_one_host,
        });
    }
    let mut http2 = json!({});
    if let Some(keepalive) = &cluster.keepalive {
        http2["connection_keepalive"] = json!({
            "interval": duration(keepalive.interval),
            "timeout": duration(keepalive.timeout),
        });
    }
    body["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": HTTP_PROTOCOL_OPTIONS,
            "explicit_http_config": {"http2_protocol_options": http2},
        },
    });
    body
}

fn endpoints_json(set: &EndpointSet) -> Value {
    let lb_endpoints: Vec<Value> = set
        .addrs
        .iter()
        .map(|addr| {
            let mut endpoint = json!({"endpoint": {"address": {"socket_address": {
                "address": addr.ip().to_string(),
                "port_value": addr.port(),
            }}}});
            if set.mtls.contains(addr) {
                endpoint["metadata"] =
                    json!({"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "weft"}}});
            }
            endpoint
        })
        .collect();
    json!({
        "@type": CLUSTER_LOAD_ASSIGNMENT,
        "cluster_name": set.name,
        "endpoints": [{"lb_endpoints": lb_endpoints}],
    })
}

fn route_config_json(table: &RouteTable) -> Value {
    let virtual_hosts: Vec<Value> = table
        .virtual_hosts
        .iter()
        .map(|host| {
            json!({
                "name": host.name,
                "domains": host.domains,
                "routes": host.routes.iter().map(route_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut body = json!({
        "@type": ROUTE_CONFIGURATION,
        "name": table.name,
        "virtual_hosts": virtual_hosts,
    });
    if table.vhds {
        body["vhds"] = json!({"config_source": ads()});
    }
    body
}

fn route_json(route: &Route) -> Value {
    let mut matcher = match &route.matcher.path {
        PathMatch::Prefix(prefix) => json!({"prefix": prefix}),
        PathMatch::Exact(path) => json!({"path": path}),
        PathMatch::Regex(regex) => json!({"safe_regex": {"regex": regex.as_str()}}),
    };
    if !route.matcher.headers.is_empty() {
        matcher["headers"] = route.matcher.headers.iter().map(header_json).collect();
    }
    let action = &route.action;
    let mut target = match action.backends.as_slice() {
        [only] => json!({"cluster": only.cluster}),
        several => json!({"weighted_clusters": {"clusters": several
            .iter()
            .map(|b| json!({"name": b.cluster, "weight": b.weight}))
            .collect::<Vec<_>>()}}),
    };
    if let Some(timeout) = action.timeout {
        target["max_stream_duration"] = json!({
            "max_stream_duration": duration(timeout),
            "grpc_timeout_header_max": duration(timeout),
        });
    }
    if let Some(retry) = &action.retry {
        let mut retry_on: Vec<&str> = retry.codes.iter().filter_map(|c| retry_token(*c)).collect();
        if retry.not_sent {
            retry_on.extend(["connect-failure", "refused-stream"]);
        }
        let mut policy = json!({
            "retry_on": retry_on.join(","),
            "num_retries": retry.retries,
            "retry_back_off": {"base_interval": duration(retry.backoff)},
        });
        if let Some(per_try) = retry.per_try_timeout {
            policy["per_try_timeout"] = json!(duration(per_try));
        }
        target["retry_policy"] = policy;
    }
    let mut body = json!({"name": route.name, "match": matcher, "route": target});
    if let Some(fault) = &route.fault {
        let percentage =
            |per_million: u32| json!({"numerator": per_million, "denominator": "MILLION"});
        let mut http_fault = json!({"@type": HTTP_FAULT});
        if let Some(delay) = &fault.delay {
            http_fault["delay"] = json!({
                "fixed_delay": duration(delay.delay),
                "percentage": percentage(delay.per_million),
            });
        }
        if let Some(abort) = &fault.abort {
            http_fault["abort"] = json!({
                "grpc_status": abort.grpc_status,
                "percentage": percentage(abort.per_million),
            });
            if !abort.message.is_empty() {
                http_fault["abort"]["response_body"] = json!(abort.message);
            }
        }
        body["typed_per_filter_config"] = json!({"envoy.filters.http.fault": http_fault});
    }
    body
}

/// Envoy's `retry_on` name of a gRPC code, for the codes Envoy can retry.
fn retry_token(code: u32) -> Option<&'static str> {
    use weft_common::grpc::code;
    match code {
        code::CANCELLED => Some("cancelled"),
        code::DEADLINE_EXCEEDED => Some("deadline-exceeded"),
        code::RESOURCE_EXHAUSTED => Some("resource-exhausted"),
        code::INTERNAL => Some("internal"),
        code::UNAVAILABLE => Some("unavailable"),
        _ => None,
    }
}

fn header_json(header: &HeaderMatch) -> Value {
    let mut body = json!({"name": header.name, "invert_match": header.invert});
    match &header.value {
        StringMatch::Present => body["present_match"] = json!(true),
        StringMatch::Exact(v) => body["string_match"] = json!({"exact": v}),
        StringMatch::Prefix(v) => body["string_match"] = json!({"prefix": v}),
        StringMatch::Suffix(v) => body["string_match"] = json!({"suffix": v}),
        StringMatch::Contains(v) => body["string_match"] = json!({"contains": v}),
        StringMatch::Regex(r) => {
            body["string_match"] = json!({"safe_regex": {"regex": r.as_str()}})
        }
    }
    body
}

#[cfg(test)]
#[path = "config_dump_tests.rs"]
mod tests;
