//! The proxy's admin endpoint (port 15000): `/ready` (200 only once a complete
//! config from xDS is held; otherwise 503 naming what is missing), `/metrics` (the process's
//! one Prometheus registry), `/config_dump` (the config in force in Envoy's ConfigDump shape,
//! see `config_dump.rs`), `/debug/config` (the same in weft's own terms, with VHDS
//! subscriptions and mTLS marks) and `/healthz`.

use std::sync::{Arc, Mutex};

use http::StatusCode;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::sync::watch;
use weft_common::admin::{AdminRequest, Handler, Reply};

use crate::config::{PathMatch, ProxyConfig, Route, RouteTable, StringMatch};

/// The admin handler over the live config and the metrics registry.
pub fn handler(
    config: watch::Receiver<Arc<ProxyConfig>>,
    registry: Arc<Mutex<Registry>>,
) -> Handler {
    Arc::new(move |request: &AdminRequest| {
        let config = config.borrow().clone();
        match request.path {
            "/healthz" => Reply::text(StatusCode::OK, "ok\n"),
            "/ready" => ready(&config),
            "/metrics" => match registry.lock() {
                Ok(registry) => Reply::metrics(&registry, request),
                Err(_) => Reply::text(StatusCode::INTERNAL_SERVER_ERROR, "registry poisoned\n"),
            },
            "/config_dump" => Reply::json(crate::config_dump::config_dump(&config).to_string()),
            "/debug/config" => Reply::json(debug_config(&config).to_string()),
            _ => Reply::not_found("/ready, /metrics, /config_dump, /debug/config or /healthz"),
        }
    })
}

fn ready(config: &ProxyConfig) -> Reply {
    if config.complete {
        return Reply::text(StatusCode::OK, "ready\n");
    }
    let missing = config.missing();
    let missing = if missing.is_empty() {
        "no config received from xDS yet".to_owned()
    } else {
        missing.join("; ")
    };
    Reply::text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {missing}\n"),
    )
}

/// The config in force: versions, the inbound listener's mTLS mode, the outbound and web routes
/// (with the virtual hosts held from VHDS joined in), clusters (connect timeout, circuit
/// breakers, outlier detection, keepalive) and their endpoints (and which of those are
/// reached over mTLS); and VHDS on its own: `virtual_hosts`, the hosts held by resource
/// name with the names they answer, and `vhds`, the names subscribed, those answered "not
/// found" and those refused for being too many.
pub fn debug_config(config: &ProxyConfig) -> Value {
    let versions: serde_json::Map<String, Value> = config
        .resources
        .versions
        .iter()
        .map(|(kind, version)| (format!("{kind:?}"), json!(version)))
        .collect();
    let listeners: Vec<Value> = config
        .resources
        .listeners
        .values()
        .map(|l| json!({"name": l.name, "route_config_name": l.route_config_name}))
        .collect();
    let mut clusters: Vec<Value> = config
        .clusters
        .values()
        .map(|cluster| {
            let set = config.endpoints.get(&cluster.name);
            let endpoints: Vec<String> = set
                .map(|set| set.addrs.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            let mtls_endpoints: Vec<String> = set
                .map(|set| set.mtls.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            let ms = |duration: std::time::Duration| duration.as_millis() as u64;
            let outlier = cluster.outlier_detection.as_ref().map(|o| {
                json!({
                    "consecutive_5xx": o.consecutive_5xx,
                    "consecutive_gateway_failure": o.consecutive_gateway_failure,
                    "enforcing_consecutive_5xx": o.enforcing_consecutive_5xx,
                    "enforcing_consecutive_gateway_failure": o.enforcing_consecutive_gateway_failure,
                    "interval_ms": ms(o.interval),
                    "base_ejection_time_ms": ms(o.base_ejection_time),
                    "max_ejection_time_ms": ms(o.max_ejection_time),
                    "max_ejection_percent": o.max_ejection_percent,
                })
            });
            let keepalive = cluster.keepalive.as_ref().map(|k| {
                json!({"interval_ms": ms(k.interval), "timeout_ms": ms(k.timeout)})
            });
            json!({
                "name": cluster.name,
                "service": cluster.service,
                "connect_timeout_ms": ms(cluster.connect_timeout),
                "circuit_breakers": {
                    "max_requests": cluster.circuit_breakers.max_requests,
                    "max_pending_requests": cluster.circuit_breakers.max_pending_requests,
                },
                "outlier_detection": outlier,
                "http2_keepalive": keepalive,
                "endpoints": endpoints,
                "mtls_endpoints": mtls_endpoints,
            })
        })
        .collect();
    clusters.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let on_demand = &config.resources.on_demand;
    let virtual_hosts: Vec<Value> = config
        .resources
        .virtual_hosts
        .iter()
        .map(|(resource_name, held)| {
            let aliases: Vec<&String> = on_demand
                .aliases
                .iter()
                .filter(|(alias, host)| *host == resource_name && *alias != resource_name)
                .map(|(alias, _)| alias)
                .collect();
            json!({
                "resource_name": resource_name,
                "name": held.host.name,
                "domains": held.host.domains,
                "aliases": aliases,
            })
        })
        .collect();
    json!({
        "complete": config.complete,
        "versions": versions,
        "inbound_mode": format!("{:?}", config.inbound_mode()),
        "listeners": listeners,
        "outbound_routes": config.outbound.as_deref().map(route_table),
        "web_routes": config.web.as_deref().map(route_table),
        "clusters": clusters,
        "virtual_hosts": virtual_hosts,
        "vhds": {
            "subscribed": on_demand.subscribed,
            "not_found": on_demand.not_found,
            "refused": on_demand.refused,
        },
    })
}

fn route_table(table: &RouteTable) -> Value {
    let virtual_hosts: Vec<Value> = table
        .virtual_hosts
        .iter()
        .map(|vhost| {
            json!({
                "name": vhost.name,
                "domains": vhost.domains,
                "routes": vhost.routes.iter().map(route).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"name": table.name, "vhds": table.vhds, "virtual_hosts": virtual_hosts})
}

fn route(route: &Route) -> Value {
    let path = match &route.matcher.path {
        PathMatch::Prefix(prefix) => json!({"prefix": prefix}),
        PathMatch::Exact(path) => json!({"path": path}),
        PathMatch::Regex(regex) => json!({"regex": regex.as_str()}),
    };
    let headers: Vec<Value> = route
        .matcher
        .headers
        .iter()
        .map(|header| {
            let value = match &header.value {
                StringMatch::Exact(v) => json!({"exact": v}),
                StringMatch::Prefix(v) => json!({"prefix": v}),
                StringMatch::Suffix(v) => json!({"suffix": v}),
                StringMatch::Contains(v) => json!({"contains": v}),
                StringMatch::Regex(r) => json!({"regex": r.as_str()}),
                StringMatch::Present => json!("present"),
            };
            json!({"name": header.name, "match": value, "invert": header.invert})
        })
        .collect();
    let action = &route.action;
    let backends: Vec<Value> = action
        .backends
        .iter()
        .map(|b| json!({"cluster": b.cluster, "weight": b.weight}))
        .collect();
    let retry = action.retry.as_ref().map(|retry| {
        json!({
            "codes": retry.codes,
            "retries": retry.retries,
            "per_try_timeout_ms": retry.per_try_timeout.map(|t| t.as_millis() as u64),
            "backoff_ms": retry.backoff.as_millis() as u64,
        })
    });
    let fault = route.fault.as_ref().map(|fault| {
        json!({
            "delay": fault.delay.as_ref().map(|d| json!({
                "delay_ms": d.delay.as_millis() as u64, "per_million": d.per_million})),
            "abort": fault.abort.as_ref().map(|a| json!({
                "grpc_status": a.grpc_status, "message": a.message, "per_million": a.per_million})),
        })
    });
    json!({
        "name": route.name,
        "match": {"path": path, "headers": headers},
        "backends": backends,
        "timeout_ms": action.timeout.map(|t| t.as_millis() as u64),
        "retry": retry,
        "fault": fault,
        "cors": route.cors.as_ref().map(|cors| json!({
            "allow_origins": cors.allow_origins.len(),
            "allow_methods": cors.allow_methods,
            "allow_headers": cors.allow_headers,
            "expose_headers": cors.expose_headers,
            "max_age": cors.max_age,
        })),
    })
}

#[cfg(test)]
mod tests {
    use envoy_types::util::pack_any;

    use super::*;
    use crate::config::test_protos::{
        GREETER, controller_listener, prefix, route as envoy_route, to_cluster, vhds_shell, vhost,
    };
    use crate::config::{
        Resources, assemble, parse_listener, parse_route_config, parse_virtual_host,
    };

    #[test]
    fn debug_config_shows_the_virtual_hosts_held_from_vhds() {
        let mut resources = Resources::default();
        let listener = parse_listener(&pack_any(controller_listener("default"))).unwrap();
        resources.listeners.insert(listener.name.clone(), listener);
        let shell = parse_route_config(&pack_any(vhds_shell("outbound/default"))).unwrap();
        resources.routes.insert(shell.name.clone(), Arc::new(shell));
        let host = vhost(
            "greeter.default.svc.cluster.local:50051",
            &["greeter:50051"],
            vec![envoy_route("default", prefix("/"), to_cluster(GREETER))],
        );
        let name = "outbound/default/greeter.default.svc.cluster.local:50051";
        let alias = "outbound/default/greeter:50051";
        let lookups = &mut resources.on_demand;
        lookups.subscribed.insert(alias.into());
        lookups.subscribed.insert("outbound/default/nope:1".into());
        lookups.answered(name, &[alias.into()]);
        lookups.not_served("outbound/default/nope:1");
        let held = parse_virtual_host(&pack_any(host)).unwrap();
        resources.virtual_hosts.insert(name.into(), Arc::new(held));

        let dump = debug_config(&assemble(resources));
        assert_eq!(
            dump["virtual_hosts"],
            json!([{
                "resource_name": name,
                "name": "greeter.default.svc.cluster.local:50051",
                "domains": ["greeter:50051"],
                "aliases": [alias],
            }])
        );
        assert_eq!(
            dump["vhds"],
            json!({
                "subscribed": ["outbound/default/greeter:50051", "outbound/default/nope:1"],
                "not_found": ["outbound/default/nope:1"],
                "refused": [],
            })
        );
        let routes = &dump["outbound_routes"];
        assert_eq!(routes["vhds"], json!(true));
        assert_eq!(
            routes["virtual_hosts"][0]["name"],
            json!("greeter.default.svc.cluster.local:50051")
        );
    }
}
