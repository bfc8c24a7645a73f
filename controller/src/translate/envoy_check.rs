//! Stock Envoy must accept everything translation produces: the golden inputs are
//! translated for three proxies (one per MtlsPolicy mode, their endpoints marked for mTLS)
//! and put in a static bootstrap (binary protobuf, so nothing is re-encoded by hand) that
//! `envoy --mode validate` checks: Clusters as they are (EDS over an ADS stub, with their
//! transport socket matches; the `inbound|` clusters), each ClusterLoadAssignment as a
//! static cluster's `load_assignment` under its cluster's transport socket matches, each
//! RouteConfiguration inline in a listener of its own, a proxy's outbound Listener, each
//! proxy's inbound Listener (renamed, so names stay unique), and the two SDS Secrets as
//! static secrets.
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
use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, UpstreamTlsContext};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::util::pack_any;
use prost::{Message, Name};

use super::endpoints::socket_address;
use super::listener::HCM_FILTER;
use super::testutil::{DOMAIN, workloads};
use super::testutil::{decode, index};
use super::{NodeInfo, certificate_secret, outbound_listener, translate_for, trust_bundle_secret};
use crate::ads::ResourceType;

fn envoy() -> PathBuf {
    weft_tests::tools::tool("envoy")
}

/// A namespace-wide `Disable` policy in namespace `legacy`, for the third proxy.
const DISABLE_POLICY: &str = "---
apiVersion: weft.dev/v1alpha1
kind: MtlsPolicy
metadata: {name: legacy, namespace: legacy}
spec: {mode: Disable}
";

/// A static bootstrap holding every translated resource of `yaml`'s index.
fn bootstrap(yaml: &str) -> Bootstrap {
    // `default` has a Strict policy in the golden inputs; `team-a` none (Permissive). They
    // run endpoints of the inputs (the demo's 127.0.0.1:50051, the mesh's pod 10.1.0.1), so
    // some endpoints are marked; the `Disable` one runs the demo's 127.0.0.1:50052.
    let mut proxies = workloads(&[
        ("strict", "default", "127.0.0.1:21001"),
        ("permissive", "team-a", "127.0.0.1:50051"),
        ("disable", "legacy", "127.0.0.1:50052"),
    ]);
    if let Some(strict) = proxies.get_mut("strict.default") {
        strict.pod_ip = Some("10.1.0.1".parse().expect("ip"));
    }
    let translation = translate_for(
        &index(&format!("{yaml}{DISABLE_POLICY}")),
        &proxies,
        &super::Members::new(),
        Some(DOMAIN),
    );
    let snapshot = &translation.snapshot;
    let marked = snapshot
        .resources(ResourceType::Endpoint)
        .iter()
        .map(|r| decode::<ClusterLoadAssignment>(&r.body))
        .flat_map(|a| a.endpoints)
        .flat_map(|l| l.lb_endpoints)
        .filter(|e| e.metadata.is_some())
        .count();
    assert!(marked > 0, "some endpoint is marked for mTLS");
    let http2 = super::cluster::http2_options();
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
        let of_cluster = snapshot
            .resources(ResourceType::Cluster)
            .get(&resource.name)
            .map(|c| decode::<Cluster>(&c.body));
        clusters.push(Cluster {
            name: format!("endpoints-{i}"),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
            load_assignment: Some(assignment),
            transport_socket_matches: of_cluster
                .map(|c| with_static_secrets(c.transport_socket_matches))
                .unwrap_or_default(),
            ..Default::default()
        });
    }
    let node = NodeInfo::new(
        "check",
        "default",
        "127.0.0.1:15001".parse().expect("address"),
    );
    let mut listeners = vec![decode::<Listener>(&outbound_listener(&node).1)];
    for id in proxies.keys() {
        let own = snapshot.for_node(id).expect("per-proxy listeners");
        let inbound = own.resources(ResourceType::Listener).get("inbound");
        let mut inbound: Listener = decode(&inbound.expect("an inbound listener").body);
        inbound.name = format!("inbound-{id}");
        listeners.push(inbound);
    }
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
            secrets: secrets(),
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

/// `matches` with every SDS secret read from the bootstrap's static secrets instead of ADS.
/// Envoy (1.40 still) crashes on a bootstrap cluster with hosts whose TLS context fetches
/// a secret over ADS: the ADS stream is set up after static clusters
/// (envoyproxy/envoy#15517, #19618). Clusters from CDS, as the controller serves them, are
/// not affected; the EDS clusters above keep ADS.
fn with_static_secrets(mut matches: Vec<TransportSocketMatch>) -> Vec<TransportSocketMatch> {
    for socket in matches
        .iter_mut()
        .filter_map(|m| m.transport_socket.as_mut())
    {
        let Some(SocketConfig::TypedConfig(any)) = &mut socket.config_type else {
            continue;
        };
        if any.type_url != UpstreamTlsContext::type_url() {
            continue;
        }
        let mut context: UpstreamTlsContext = decode(any);
        let common = context
            .common_tls_context
            .as_mut()
            .expect("common_tls_context");
        for sds in &mut common.tls_certificate_sds_secret_configs {
            sds.sds_config = None;
        }
        if let Some(ValidationContextType::CombinedValidationContext(combined)) =
            &mut common.validation_context_type
            && let Some(sds) = &mut combined.validation_context_sds_secret_config
        {
            sds.sds_config = None;
        }
        *any = pack_any(context);
    }
    matches
}

/// The SDS Secrets of a self-signed certificate (which is also the trust bundle).
fn secrets() -> Vec<Secret> {
    let key = rcgen::generate_simple_self_signed(vec!["check".to_owned()]).expect("certificate");
    let pem = key.cert.pem();
    vec![
        decode(&certificate_secret(&pem, &key.signing_key.serialize_pem()).1),
        decode(&trust_bundle_secret(&pem).1),
    ]
}

fn validate(case: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/translate/testdata")
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
    let mut reason: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("failed") || l.contains("error"))
        .collect();
    if reason.is_empty() {
        // No line says why: the last lines are the most likely to.
        let lines: Vec<&str> = stderr.lines().collect();
        reason = lines[lines.len().saturating_sub(5)..].to_vec();
    }
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
