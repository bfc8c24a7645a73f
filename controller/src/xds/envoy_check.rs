//! Stock Envoy must accept everything translation produces: the golden inputs are
//! translated and put in a static bootstrap (binary protobuf, so nothing is re-encoded by
//! hand) that `envoy --mode validate` checks: Clusters as they are (EDS over an ADS stub),
//! each ClusterLoadAssignment as a static cluster's `load_assignment`, each
//! RouteConfiguration inline in a listener of its own, and a proxy's outbound Listener.
//!
//! Needs the Envoy binary that `tests/env/setup.sh` installs (the test command runs it); a
//! missing Envoy fails the test with the command to install it.

use std::path::PathBuf;
use std::process::Command;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::bootstrap::v3::bootstrap::{DynamicResources, StaticResources};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{ApiConfigSource, ApiVersion, GrpcService, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::util::pack_any;
use prost::Message;

use super::endpoints::socket_address;
use super::listener::HCM_FILTER;
use super::testutil::{decode, index};
use super::{NodeInfo, outbound_listener, translate};
use crate::ads::ResourceType;

fn envoy() -> PathBuf {
    weft_tests::tools::tool("envoy")
}

/// A static bootstrap holding every translated resource of `yaml`'s index.
fn bootstrap(yaml: &str) -> Bootstrap {
    let translation = translate(&index(yaml));
    let snapshot = &translation.snapshot;
    let http2 = super::cluster::cluster("xds").typed_extension_protocol_options;
    let ads_stub = Cluster {
        name: "xds".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: "xds".into(),
            ..Default::default()
        }),
        typed_extension_protocol_options: http2,
        ..Default::default()
    };
    let mut clusters = vec![ads_stub];
    clusters.extend(
        snapshot
            .resources(ResourceType::Cluster)
            .iter()
            .map(|r| decode::<Cluster>(&r.body)),
    );
    for (i, resource) in snapshot
        .resources(ResourceType::Endpoint)
        .iter()
        .enumerate()
    {
        let mut assignment: ClusterLoadAssignment = decode(&resource.body);
        assignment.cluster_name = format!("endpoints-{i}");
        clusters.push(Cluster {
            name: format!("endpoints-{i}"),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
            load_assignment: Some(assignment),
            ..Default::default()
        });
    }
    let node = NodeInfo::new(
        "check",
        "default",
        "127.0.0.1:15001".parse().expect("address"),
    );
    let mut listeners = vec![decode::<Listener>(&outbound_listener(&node).1)];
    for (i, resource) in snapshot.resources(ResourceType::Route).iter().enumerate() {
        let manager = HttpConnectionManager {
            stat_prefix: format!("routes-{i}"),
            route_specifier: Some(RouteSpecifier::RouteConfig(decode::<RouteConfiguration>(
                &resource.body,
            ))),
            http_filters: match decode::<Listener>(&outbound_listener(&node).1).filter_chains[0]
                .filters[0]
                .config_type
                .as_ref()
            {
                Some(ConfigType::TypedConfig(any)) => {
                    decode::<HttpConnectionManager>(any).http_filters
                }
                _ => unreachable!(),
            },
            ..Default::default()
        };
        listeners.push(Listener {
            name: format!("routes-{i}"),
            address: Some(socket_address(
                format!("127.0.0.1:{}", 20_000 + i)
                    .parse()
                    .expect("address"),
            )),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: HCM_FILTER.into(),
                    config_type: Some(ConfigType::TypedConfig(pack_any(manager))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    Bootstrap {
        node: Some(Node {
            id: "check.default".into(),
            cluster: "check".into(),
            ..Default::default()
        }),
        static_resources: Some(StaticResources {
            listeners,
            clusters,
            secrets: vec![],
        }),
        dynamic_resources: Some(DynamicResources {
            ads_config: Some(ApiConfigSource {
                api_type: ApiType::Grpc as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                        cluster_name: "xds".into(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn validate(case: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/xds/testdata")
        .join(case);
    let yaml = std::fs::read_to_string(dir.join("input.yaml")).expect("input.yaml");
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("bootstrap.pb");
    std::fs::write(&path, bootstrap(&yaml).encode_to_vec()).expect("write bootstrap");
    let envoy = envoy();
    let output = Command::new(&envoy)
        .args(["--mode", "validate", "-l", "warning", "--config-path"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (run tests/env/setup.sh): {e}",
                envoy.display()
            )
        });
    // Envoy prints the whole bootstrap before the reason; keep the reason.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("failed") || l.contains("error"))
        .collect();
    assert!(
        output.status.success(),
        "Envoy rejected the {case} translation:\n{}",
        reason.join("\n")
    );
}

#[test]
fn envoy_accepts_the_demo() {
    validate("demo");
}

#[test]
fn envoy_accepts_the_mesh() {
    validate("mesh");
}
