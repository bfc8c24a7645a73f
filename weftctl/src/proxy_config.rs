//! `weftctl proxy-config`: one proxy's config in force, read from its admin `/config_dump` in
//! Envoy's ConfigDump shape (the `configs` list of typed dumps), which weft-proxy and Envoy
//! both serve: listeners, routes (route configuration, virtual host, domains, route name),
//! clusters, endpoints and secrets. Parsing is pure and tolerant: a section a proxy does not
//! have is empty.

use serde::Serialize;
use serde_json::Value;

use crate::cli::Section;
use crate::proxy_status::table;

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ProxyConfig {
    pub listeners: Vec<ListenerRow>,
    pub routes: Vec<RouteRow>,
    pub clusters: Vec<String>,
    pub endpoints: Vec<EndpointRow>,
    pub secrets: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ListenerRow {
    pub name: String,
    /// The RouteConfiguration its HTTP connection manager reads over RDS, if any.
    pub route_config: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct RouteRow {
    pub route_config: String,
    pub virtual_host: String,
    pub domains: Vec<String>,
    pub route: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct EndpointRow {
    pub cluster: String,
    pub address: String,
}

const LISTENERS: &str = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump";
const ROUTES: &str = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump";
const CLUSTERS: &str = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump";
const ENDPOINTS: &str = "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump";
const SECRETS: &str = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump";

/// The config in a `/config_dump` answer.
pub fn parse(dump: &Value) -> ProxyConfig {
    let configs = dump["configs"].as_array().map_or(&[][..], Vec::as_slice);
    let mut config = ProxyConfig::default();
    let of_type = |ty: &'static str| configs.iter().filter(move |c| c["@type"] == ty);
    for dump in of_type(LISTENERS) {
        let statics = items(&dump["static_listeners"]).map(|l| &l["listener"]);
        let dynamics = items(&dump["dynamic_listeners"]).map(|l| &l["active_state"]["listener"]);
        for listener in statics.chain(dynamics).filter(|l| !l.is_null()) {
            let route_config = items(&listener["filter_chains"])
                .flat_map(|chain| items(&chain["filters"]))
                .find_map(|filter| filter["typed_config"]["rds"]["route_config_name"].as_str())
                .map(str::to_owned);
            config.listeners.push(ListenerRow {
                name: text(&listener["name"]),
                route_config,
            });
        }
    }
    for dump in of_type(ROUTES) {
        let statics = items(&dump["static_route_configs"]);
        let dynamics = items(&dump["dynamic_route_configs"]);
        for route_config in statics.chain(dynamics).map(|r| &r["route_config"]) {
            push_routes(&mut config.routes, route_config);
        }
    }
    for dump in of_type(CLUSTERS) {
        let statics = items(&dump["static_clusters"]);
        let dynamics = items(&dump["dynamic_active_clusters"]);
        config
            .clusters
            .extend(statics.chain(dynamics).map(|c| text(&c["cluster"]["name"])));
    }
    for dump in of_type(ENDPOINTS) {
        let statics = items(&dump["static_endpoint_configs"]);
        let dynamics = items(&dump["dynamic_endpoint_configs"]);
        for assignment in statics.chain(dynamics).map(|e| &e["endpoint_config"]) {
            let cluster = text(&assignment["cluster_name"]);
            for endpoint in items(&assignment["endpoints"]).flat_map(|l| items(&l["lb_endpoints"]))
            {
                let socket = &endpoint["endpoint"]["address"]["socket_address"];
                config.endpoints.push(EndpointRow {
                    cluster: cluster.clone(),
                    address: format!(
                        "{}:{}",
                        text(&socket["address"]),
                        text(&socket["port_value"])
                    ),
                });
            }
        }
    }
    for dump in of_type(SECRETS) {
        let statics = items(&dump["static_secrets"]);
        let dynamics = items(&dump["dynamic_active_secrets"]);
        config
            .secrets
            .extend(statics.chain(dynamics).map(|s| text(&s["name"])));
    }
    config
}

fn push_routes(rows: &mut Vec<RouteRow>, route_config: &Value) {
    let name = text(&route_config["name"]);
    for host in items(&route_config["virtual_hosts"]) {
        let domains: Vec<String> = items(&host["domains"]).map(text).collect();
        for route in items(&host["routes"]) {
            rows.push(RouteRow {
                route_config: name.clone(),
                virtual_host: text(&host["name"]),
                domains: domains.clone(),
                route: text(&route["name"]),
            });
        }
    }
}

fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `section` as tables.
pub fn render_tables(config: &ProxyConfig, section: Section) -> String {
    let mut out = String::new();
    let wanted = |s: Section| section == Section::All || section == s;
    let mut add = |title: &str, rows: Vec<Vec<String>>| {
        if section == Section::All {
            out.push_str(&format!("{title}:\n"));
        }
        if rows.len() == 1 {
            out.push_str("(none)\n");
        } else {
            out.push_str(&table(&rows));
        }
        if section == Section::All {
            out.push('\n');
        }
    };
    let header = |cells: &[&str]| cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
    if wanted(Section::Listeners) {
        let mut rows = vec![header(&["NAME", "ROUTE CONFIG"])];
        rows.extend(config.listeners.iter().map(|l| {
            vec![
                l.name.clone(),
                l.route_config.clone().unwrap_or_else(|| "-".into()),
            ]
        }));
        add("Listeners", rows);
    }
    if wanted(Section::Routes) {
        let mut rows = vec![header(&[
            "ROUTE CONFIG",
            "VIRTUAL HOST",
            "DOMAINS",
            "ROUTE",
        ])];
        rows.extend(config.routes.iter().map(|r| {
            vec![
                r.route_config.clone(),
                r.virtual_host.clone(),
                domains(&r.domains),
                r.route.clone(),
            ]
        }));
        add("Routes", rows);
    }
    if wanted(Section::Clusters) {
        let mut rows = vec![header(&["NAME"])];
        rows.extend(config.clusters.iter().map(|c| vec![c.clone()]));
        add("Clusters", rows);
    }
    if wanted(Section::Endpoints) {
        let mut rows = vec![header(&["CLUSTER", "ADDRESS"])];
        rows.extend(
            config
                .endpoints
                .iter()
                .map(|e| vec![e.cluster.clone(), e.address.clone()]),
        );
        add("Endpoints", rows);
    }
    if wanted(Section::Secrets) {
        let mut rows = vec![header(&["NAME"])];
        rows.extend(config.secrets.iter().map(|s| vec![s.clone()]));
        add("Secrets", rows);
    }
    out
}

/// The first three domains and how many more.
fn domains(list: &[String]) -> String {
    let mut shown = list.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if list.len() > 3 {
        shown += &format!(" +{}", list.len() - 3);
    }
    shown
}

/// `section` as a JSON value (the normalized rows).
pub fn section_value(config: &ProxyConfig, section: Section) -> Value {
    let all = serde_json::to_value(config).unwrap_or(Value::Null);
    let key = match section {
        Section::All => return all,
        Section::Listeners => "listeners",
        Section::Routes => "routes",
        Section::Clusters => "clusters",
        Section::Endpoints => "endpoints",
        Section::Secrets => "secrets",
    };
    all[key].clone()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envoy_dump() -> Value {
        json!({"configs": [
            {"@type": LISTENERS, "dynamic_listeners": [{"name": "outbound", "active_state": {"listener": {
                "name": "outbound",
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {"rds": {"route_config_name": "outbound/default"}}}]}]}}}]},
            {"@type": CLUSTERS, "static_clusters": [{"cluster": {"name": "xds"}}],
             "dynamic_active_clusters": [{"cluster": {"name": "outbound|50051||greeter.default.svc.cluster.local"}}]},
            {"@type": ROUTES, "dynamic_route_configs": [{"route_config": {"name": "outbound/default",
                "virtual_hosts": [{"name": "outbound/default/greeter.default.svc.cluster.local:50051",
                    "domains": ["greeter.default.svc.cluster.local:50051", "greeter:50051", "greeter", "10.0.0.1"],
                    "routes": [{"name": "grpcroute:default/greeter:rules[0].matches[0]"}, {"name": "default"}]}]}}]},
            {"@type": ENDPOINTS, "dynamic_endpoint_configs": [{"endpoint_config": {
                "cluster_name": "outbound|50051||greeter.default.svc.cluster.local",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 5000}}}}]}]}}]},
            {"@type": SECRETS, "dynamic_active_secrets": [{"name": "default"}, {"name": "ROOTCA"}]}
        ]})
    }

    #[test]
    fn envoys_config_dump_is_read() {
        let config = parse(&envoy_dump());
        assert_eq!(
            config.listeners,
            [ListenerRow {
                name: "outbound".into(),
                route_config: Some("outbound/default".into())
            }]
        );
        let routes: Vec<&str> = config.routes.iter().map(|r| r.route.as_str()).collect();
        assert_eq!(
            routes,
            ["grpcroute:default/greeter:rules[0].matches[0]", "default"]
        );
        assert_eq!(config.clusters.len(), 2);
        assert_eq!(config.endpoints[0].address, "127.0.0.1:5000");
        assert_eq!(config.secrets, ["default", "ROOTCA"]);
        let table = render_tables(&config, Section::Routes);
        assert!(table.starts_with("ROUTE CONFIG"), "{table}");
        assert!(table.contains("greeter.default.svc.cluster.local:50051,greeter:50051,greeter +1"));
    }

    #[test]
    fn a_dump_without_configs_is_empty() {
        assert_eq!(parse(&json!({})), ProxyConfig::default());
        let config = parse(&envoy_dump());
        assert!(render_tables(&ProxyConfig::default(), Section::Secrets).contains("(none)"));
        assert_eq!(
            section_value(&config, Section::Secrets),
            json!(["default", "ROOTCA"])
        );
    }
}
