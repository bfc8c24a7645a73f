//! The Envoy-shaped dump of configs made from the controller's own output: it parses as
//! `envoy.admin.v3.ConfigDump` proto3 JSON against Envoy's descriptors, and shows what the
//! proxy applies.

use std::time::Duration;

use super::*;
use crate::config::controller_output_tests::{proxy_config, translation};

#[test]
fn durations_are_proto3_json() {
    assert_eq!(duration(Duration::from_secs(1)), "1s");
    assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
    assert_eq!(duration(Duration::from_millis(25)), "0.025s");
    assert_eq!(duration(Duration::from_nanos(1)), "0.000000001s");
    assert_eq!(duration(Duration::ZERO), "0s");
}

#[test]
fn the_dump_of_every_golden_case_is_envoys_config_dump() {
    for (case, namespace) in [("demo", "default"), ("mesh", "default"), ("mesh", "team-a")] {
        let config = proxy_config(&translation(case), namespace);
        let dump = config_dump(&config);
        let text = dump.to_string();
        weft_tests::envoy_protos::parse_json("envoy.admin.v3.ConfigDump", &text)
            .unwrap_or_else(|err| panic!("{case}/{namespace}: {err:#}\n{text}"));
        let types: Vec<&str> = dump["configs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["@type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
                "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            ]
        );
    }
}

#[test]
fn a_proxys_inbound_listener_and_static_cluster_are_envoys_too() {
    let mut config = proxy_config(&translation("demo"), "default");
    let inbound = crate::config::ListenerConfig {
        name: "inbound".into(),
        route_config_name: String::new(),
        inbound: Some(crate::config::InboundConfig::default()),
    };
    config
        .resources
        .listeners
        .insert(inbound.name.clone(), inbound);
    let app = crate::config::EndpointSet {
        name: "inbound|127.0.0.1:8080".into(),
        addrs: vec!["127.0.0.1:8080".parse().unwrap()],
        mtls: Default::default(),
    };
    let cluster = crate::config::ClusterConfig {
        name: app.name.clone(),
        inline_endpoints: Some(app),
        ..Default::default()
    };
    config
        .resources
        .clusters
        .insert(cluster.name.clone(), std::sync::Arc::new(cluster));
    let text = config_dump(&config).to_string();
    weft_tests::envoy_protos::parse_json("envoy.admin.v3.ConfigDump", &text)
        .unwrap_or_else(|err| panic!("{err:#}\n{text}"));
    assert!(text.contains("\"type\":\"STATIC\""), "{text}");
}

#[test]
fn the_check_rejects_what_envoy_would() {
    let parse =
        |json: &str| weft_tests::envoy_protos::parse_json("envoy.admin.v3.ConfigDump", json);
    assert!(parse(r#"{"configs": []}"#).is_ok());
    // An unknown field, a wrong type, an Any of an unknown type.
    let bad_cluster = r#"{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        "dynamic_active_clusters": [{"cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "nmae": "x"}}]}]}"#;
    assert!(parse(bad_cluster).is_err());
    let bad_timeout = r#"{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        "dynamic_active_clusters": [{"cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "connect_timeout": 5}}]}]}"#;
    assert!(parse(bad_timeout).is_err());
    assert!(parse(r#"{"configs": [{"@type": "type.googleapis.com/weft.Nope"}]}"#).is_err());
}

#[test]
fn the_dump_shows_routes_faults_retries_and_policies_as_envoy_names_them() {
    let config = proxy_config(&translation("mesh"), "default");
    let dump = config_dump(&config);
    let text = dump.to_string();
    let listener = &dump["configs"][0]["dynamic_listeners"][0]["active_state"]["listener"];
    assert_eq!(listener["name"], "outbound");
    assert_eq!(
        listener["filter_chains"][0]["filters"][0]["typed_config"]["rds"]["route_config_name"],
        "outbound/default"
    );
    for expected in [
        "\"weighted_clusters\"",
        "\"retry_on\"",
        "\"envoy.filters.http.fault\"",
        "\"denominator\":\"MILLION\"",
        "\"safe_regex\"",
        "\"type\":\"EDS\"",
        "\"max_stream_duration\"",
    ] {
        assert!(text.contains(expected), "no {expected} in {text}");
    }
}
