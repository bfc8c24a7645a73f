//! Tests of assembling the config: the outbound table, endpoints by cluster, completeness
//! and what `/ready` says is missing.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::util::pack_any;

use super::assemble;
use crate::config::test_protos::*;
use crate::config::{
    ProxyConfig, Resources, parse_cluster, parse_endpoints, parse_listener, parse_route_config,
};

fn add_listener(
    resources: &mut Resources,
    listener: envoy_types::pb::envoy::config::listener::v3::Listener,
) {
    let config = parse_listener(&pack_any(listener)).unwrap();
    resources.listeners.insert(config.name.clone(), config);
}

fn add_routes(resources: &mut Resources, routes: RouteConfiguration) {
    let table = parse_route_config(&pack_any(routes)).unwrap();
    resources.routes.insert(table.name.clone(), Arc::new(table));
}

fn add_cluster(resources: &mut Resources, cluster: Cluster) {
    let config = parse_cluster(&pack_any(cluster)).unwrap();
    resources
        .clusters
        .insert(config.name.clone(), Arc::new(config));
}

fn add_endpoints(resources: &mut Resources, name: &str, addrs: &[&str]) {
    let set = parse_endpoints(&pack_any(controller_assignment(name, addrs))).unwrap();
    resources.endpoints.insert(set.name.clone(), Arc::new(set));
}

/// The demo config: listener, routes, three clusters and their endpoints.
fn demo() -> Resources {
    let mut resources = Resources::default();
    add_listener(&mut resources, controller_listener("default"));
    add_routes(&mut resources, demo_route_config());
    for (i, name) in [GREETER, GREETER_V1, GREETER_V2].into_iter().enumerate() {
        add_cluster(&mut resources, controller_cluster(name));
        add_endpoints(&mut resources, name, &[&format!("127.0.0.1:{}", 50051 + i)]);
    }
    resources
}

#[test]
fn a_complete_demo_config() {
    let config = assemble(demo());
    assert!(config.complete);
    assert!(config.missing().is_empty());
    assert_eq!(config.outbound.as_ref().unwrap().name, "outbound/default");
    assert_eq!(config.clusters.len(), 3);
    assert_eq!(
        config.endpoints[GREETER_V1].addrs,
        vec!["127.0.0.1:50052".parse().unwrap()]
    );
    assert_eq!(config.resources.clusters.len(), 3);
}

#[test]
fn nothing_yet() {
    let config = assemble(Resources::default());
    assert!(!config.complete);
    assert!(config.outbound.is_none());
    assert_eq!(config.missing(), ["Listener outbound"]);
    assert_eq!(ProxyConfig::default().missing(), ["Listener outbound"]);
}

#[test]
fn says_what_is_missing_at_each_step() {
    let mut resources = Resources::default();
    add_listener(&mut resources, controller_listener("default"));
    let config = assemble(resources.clone());
    assert_eq!(
        config.missing(),
        ["RouteConfiguration outbound/default (of Listener outbound)"]
    );

    add_routes(&mut resources, demo_route_config());
    add_cluster(&mut resources, controller_cluster(GREETER));
    let config = assemble(resources.clone());
    assert!(!config.complete);
    assert!(config.outbound.is_some());
    assert_eq!(
        config.missing(),
        [
            format!("Cluster {GREETER_V1} (routed to by RouteConfiguration outbound/default)"),
            format!("Cluster {GREETER_V2} (routed to by RouteConfiguration outbound/default)"),
            format!("ClusterLoadAssignment {GREETER} (of Cluster {GREETER})"),
        ]
    );
    assert!(config.endpoints.is_empty());

    let mut almost = demo();
    almost.endpoints.remove(GREETER_V2);
    let config = assemble(almost);
    assert!(!config.complete);
    assert_eq!(
        config.missing(),
        [format!(
            "ClusterLoadAssignment {GREETER_V2} (of Cluster {GREETER_V2})"
        )]
    );
    assert_eq!(config.endpoints.len(), 2);
}

#[test]
fn the_only_listener_or_the_one_named_outbound() {
    let mut resources = demo();
    let listener = resources.listeners.remove("outbound").unwrap();
    let renamed = crate::config::ListenerConfig {
        name: "main".into(),
        ..listener.clone()
    };
    resources.listeners.insert("main".into(), renamed);
    assert!(assemble(resources.clone()).complete);

    resources.listeners.insert(
        "second".into(),
        crate::config::ListenerConfig {
            name: "second".into(),
            ..listener.clone()
        },
    );
    let config = assemble(resources.clone());
    assert!(!config.complete);
    assert_eq!(config.missing(), ["Listener outbound (have main, second)"]);

    resources.listeners.insert("outbound".into(), listener);
    assert!(assemble(resources).complete);
}

#[test]
fn endpoints_are_found_by_eds_name_and_inline() {
    let mut resources = Resources::default();
    add_listener(&mut resources, controller_listener("default"));
    add_routes(
        &mut resources,
        route_config(
            "outbound/default",
            vec![vhost(
                "v",
                &["a"],
                vec![
                    route("eds", prefix("/a/"), to_cluster("by-eds")),
                    route("static", prefix("/"), to_cluster("static")),
                ],
            )],
        ),
    );
    let mut eds = controller_cluster("by-eds");
    eds.eds_cluster_config.as_mut().unwrap().service_name = "eds-name".into();
    add_cluster(&mut resources, eds);
    add_cluster(
        &mut resources,
        Cluster {
            name: "static".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
            load_assignment: Some(controller_assignment("static", &["127.0.0.9:9"])),
            ..Default::default()
        },
    );
    let config = assemble(resources.clone());
    assert_eq!(
        config.missing(),
        ["ClusterLoadAssignment eds-name (of Cluster by-eds)"]
    );
    add_endpoints(&mut resources, "eds-name", &["127.0.0.1:1"]);
    let config = assemble(resources);
    assert!(config.complete, "{:?}", config.missing());
    assert_eq!(
        config.endpoints["by-eds"].addrs,
        vec!["127.0.0.1:1".parse().unwrap()]
    );
    assert_eq!(
        config.endpoints["static"].addrs,
        vec!["127.0.0.9:9".parse().unwrap()]
    );
}

#[test]
fn long_lists_are_cut() {
    let mut resources = demo();
    resources.endpoints.clear();
    for i in 0..20 {
        add_cluster(&mut resources, controller_cluster(&format!("extra-{i:02}")));
    }
    let missing = assemble(resources).missing();
    assert_eq!(missing.len(), 11);
    assert_eq!(missing[10], "and 13 more");
}

#[test]
fn the_inbound_listener_gives_the_mode_and_is_not_required() {
    use crate::config::InboundMode;
    let mut resources = demo();
    let config = assemble(resources.clone());
    assert_eq!(
        (config.inbound, config.inbound_mode()),
        (None, InboundMode::Permissive)
    );
    assert!(config.complete);

    let workload =
        crate::config::controller_mtls_tests::workload("g", "default", "127.0.0.1:15006", &[]);
    let strict = weft_controller::translate::inbound_listener(
        &workload,
        weft_controller::api::MtlsMode::Strict,
    );
    let parsed = parse_listener(&strict.1).unwrap();
    resources.listeners.insert(parsed.name.clone(), parsed);
    let config = assemble(resources.clone());
    assert_eq!(config.inbound_mode(), InboundMode::Strict);
    assert!(config.complete, "{:?}", config.missing());
    assert_eq!(config.outbound.as_ref().unwrap().name, "outbound/default");

    // Without `outbound`, `inbound` is not taken for the outbound listener.
    resources.listeners.remove("outbound");
    let config = assemble(resources);
    assert!(config.outbound.is_none());
    assert_eq!(config.missing(), ["Listener outbound (have inbound)"]);
}
