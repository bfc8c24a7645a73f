//! Tests of cluster conversion: the controller's EDS cluster, STATIC clusters, balancing
//! policies and the metrics service name.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::load_balancing_policy::Policy;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, LoadBalancingPolicy};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, TransportSocket, TypedExtensionConfig,
};
use envoy_types::pb::google::protobuf::{Any, Duration as ProtoDuration};
use envoy_types::util::pack_any;

use super::{parse_cluster, service_name};
use crate::config::test_protos::*;
use crate::config::{ClusterConfig, ConfigError, EndpointSet};

fn parse(cluster: Cluster) -> Result<ClusterConfig, ConfigError> {
    parse_cluster(&pack_any(cluster))
}

fn field_of(cluster: Cluster) -> String {
    parse(cluster).unwrap_err().field
}

#[test]
fn converts_the_controllers_cluster() {
    assert_eq!(
        parse(controller_cluster(GREETER)).unwrap(),
        ClusterConfig {
            name: GREETER.into(),
            service: "greeter.default.svc.cluster.local:50051".into(),
            connect_timeout: Duration::from_secs(1),
            eds_name: GREETER.into(),
            inline_endpoints: None,
            mtls: None,
        }
    );
}

#[test]
fn service_names_for_metrics() {
    assert_eq!(
        service_name("outbound|50051||greeter.default.svc.cluster.local"),
        "greeter.default.svc.cluster.local:50051"
    );
    assert_eq!(service_name("outbound|80|v1|a.b"), "a.b:80");
    for other in [
        "plain",
        "outbound|x||a",
        "outbound|80||",
        "a|1|b|c|d",
        "outbound|80|a",
    ] {
        assert_eq!(service_name(other), other);
    }
}

#[test]
fn eds_service_name_and_defaults() {
    let mut cluster = controller_cluster("c");
    cluster.eds_cluster_config.as_mut().unwrap().service_name = "eds-c".into();
    cluster.connect_timeout = None;
    let config = parse(cluster).unwrap();
    assert_eq!(config.eds_name, "eds-c");
    assert_eq!(config.service, "c");
    assert_eq!(config.connect_timeout, Duration::from_secs(5));

    let mut zero = controller_cluster("c");
    zero.connect_timeout = Some(ProtoDuration::default());
    assert_eq!(field_of(zero), "connect_timeout");

    let mut elsewhere = controller_cluster("c");
    elsewhere
        .eds_cluster_config
        .as_mut()
        .unwrap()
        .eds_config
        .as_mut()
        .unwrap()
        .config_source_specifier = Some(ConfigSourceSpecifier::ApiConfigSource(
        ApiConfigSource::default(),
    ));
    assert_eq!(field_of(elsewhere), "eds_cluster_config.eds_config");
}

#[test]
fn balancing_policies() {
    for policy in [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::Random,
    ] {
        let mut cluster = controller_cluster("c");
        cluster.lb_policy = policy as i32;
        assert!(parse(cluster).is_ok(), "{policy:?}");
    }
    for policy in [
        LbPolicy::RingHash,
        LbPolicy::Maglev,
        LbPolicy::ClusterProvided,
    ] {
        let mut cluster = controller_cluster("c");
        cluster.lb_policy = policy as i32;
        let err = parse(cluster).unwrap_err();
        assert_eq!(err.field, "lb_policy");
        assert!(err.problem.starts_with(policy.as_str_name()), "{err}");
    }
    let typed = |type_url: &str| {
        let mut cluster = controller_cluster("c");
        cluster.load_balancing_policy = Some(LoadBalancingPolicy {
            policies: vec![Policy {
                typed_extension_config: Some(TypedExtensionConfig {
                    name: "p".into(),
                    typed_config: Some(Any {
                        type_url: type_url.into(),
                        value: vec![],
                    }),
                }),
            }],
        });
        parse(cluster)
    };
    assert!(
        typed(
            "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin"
        )
        .is_ok()
    );
    let err =
        typed("type.googleapis.com/envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash")
            .unwrap_err();
    assert_eq!(err.field, "load_balancing_policy.policies");
}

#[test]
fn static_clusters_carry_their_endpoints() {
    let static_cluster = |assignment| Cluster {
        name: "s".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: assignment,
        ..Default::default()
    };
    let config = parse(static_cluster(Some(controller_assignment(
        "other-name",
        &["127.0.0.1:1", "127.0.0.2:2"],
    ))))
    .unwrap();
    assert_eq!(config.eds_name, "s");
    assert_eq!(
        config.inline_endpoints,
        Some(EndpointSet {
            name: "s".into(),
            addrs: vec![
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.2:2".parse().unwrap()
            ],
            mtls: Default::default(),
        })
    );
    assert_eq!(field_of(static_cluster(None)), "load_assignment");
    let bad = controller_assignment("s", &[]);
    let mut bad_host = bad.clone();
    bad_host.endpoints.push(Default::default());
    bad_host.endpoints[0].lb_endpoints.push(Default::default());
    assert_eq!(
        field_of(static_cluster(Some(bad_host))),
        "load_assignment.endpoints[0].lb_endpoints[0].endpoint"
    );
    // No discovery type: STATIC, as in Envoy.
    let mut untyped = static_cluster(Some(bad));
    untyped.cluster_discovery_type = None;
    assert_eq!(
        parse(untyped).unwrap().inline_endpoints.unwrap().addrs,
        vec![]
    );
}

#[test]
fn unsupported_clusters_name_the_field() {
    let mut dns = controller_cluster("c");
    dns.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32));
    let err = parse(dns).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.resource.as_str()),
        ("type", "Cluster c")
    );
    assert!(err.problem.starts_with("STRICT_DNS"), "{err}");
    let mut tls = controller_cluster("c");
    tls.transport_socket = Some(TransportSocket::default());
    assert_eq!(field_of(tls), "transport_socket");
    assert_eq!(field_of(controller_cluster("")), "name");
    let err = parse_cluster(&pack_any(controller_assignment("c", &[]))).unwrap_err();
    assert_eq!(err.resource, "Cluster");
}
