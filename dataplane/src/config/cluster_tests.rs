//! Tests of cluster conversion: the controller's EDS cluster, STATIC clusters, balancing
//! policies, the metrics service name, and the resilience settings (circuit breakers,
//! outlier detection, HTTP/2 keepalive).

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::load_balancing_policy::Policy;
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers as ProtoCircuitBreakers, Cluster, LoadBalancingPolicy,
    OutlierDetection as ProtoOutlierDetection,
};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, Http1ProtocolOptions, Http2ProtocolOptions, KeepaliveSettings,
    RoutingPriority, TransportSocket, TypedExtensionConfig,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    AutoHttpConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as ProtoDuration, UInt32Value};
use envoy_types::util::pack_any;

use super::{HTTP_PROTOCOL_OPTIONS, parse_cluster, service_name};
use crate::config::test_protos::*;
use crate::config::{
    CircuitBreakers, ClusterConfig, ConfigError, EndpointSet, Http2Keepalive, OutlierDetection,
};

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
            circuit_breakers: CircuitBreakers {
                max_requests: 1024,
                max_pending_requests: 1024,
            },
            outlier_detection: None,
            keepalive: None,
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

fn seconds(seconds: i64) -> Option<ProtoDuration> {
    Some(ProtoDuration { seconds, nanos: 0 })
}

fn count(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}

fn with_thresholds(thresholds: Vec<Thresholds>) -> Cluster {
    Cluster {
        circuit_breakers: Some(ProtoCircuitBreakers {
            thresholds,
            per_host_thresholds: vec![],
        }),
        ..controller_cluster("c")
    }
}

#[test]
fn circuit_breakers_take_the_default_priority_and_envoys_defaults() {
    let limits = |cluster| parse(cluster).unwrap().circuit_breakers;
    let envoy = CircuitBreakers {
        max_requests: 1024,
        max_pending_requests: 1024,
    };
    assert_eq!(
        limits(controller_cluster("c")),
        envoy,
        "no circuit_breakers"
    );
    assert_eq!(CircuitBreakers::default(), envoy);
    let high = Thresholds {
        priority: RoutingPriority::High as i32,
        max_requests: count(1),
        max_pending_requests: count(1),
        ..Default::default()
    };
    assert_eq!(limits(with_thresholds(vec![high])), envoy, "HIGH only");
    let default = Thresholds {
        priority: RoutingPriority::Default as i32,
        max_requests: count(4),
        max_pending_requests: count(0),
        // Accepted and ignored.
        max_connections: count(1),
        max_retries: count(1),
        ..Default::default()
    };
    let second_default = Thresholds {
        max_requests: count(99),
        ..default
    };
    assert_eq!(
        limits(with_thresholds(vec![high, default, second_default])),
        CircuitBreakers {
            max_requests: 4,
            max_pending_requests: 0,
        },
        "the first DEFAULT entry; 0 is a limit"
    );
    let requests_only = Thresholds {
        max_requests: count(7),
        ..Default::default()
    };
    assert_eq!(
        limits(with_thresholds(vec![requests_only])),
        CircuitBreakers {
            max_requests: 7,
            max_pending_requests: 1024,
        }
    );
    let unknown = Thresholds {
        priority: 7,
        ..Default::default()
    };
    assert_eq!(
        field_of(with_thresholds(vec![high, unknown])),
        "circuit_breakers.thresholds[1].priority"
    );
}

fn with_outlier(outlier: ProtoOutlierDetection) -> Cluster {
    Cluster {
        outlier_detection: Some(outlier),
        ..controller_cluster("c")
    }
}

#[test]
fn outlier_detection_defaults_are_envoys() {
    assert_eq!(
        parse(controller_cluster("c")).unwrap().outlier_detection,
        None
    );
    let empty = parse(with_outlier(ProtoOutlierDetection::default())).unwrap();
    assert_eq!(
        empty.outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_5xx: 100,
            enforcing_consecutive_gateway_failure: 0,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_time_jitter: Duration::ZERO,
            max_ejection_percent: 10,
            always_eject_one_host: false,
        })
    );
    assert_eq!(empty.outlier_detection, Some(OutlierDetection::default()));
}

#[test]
fn outlier_detection_takes_every_consecutive_error_field() {
    let outlier = ProtoOutlierDetection {
        consecutive_5xx: count(3),
        consecutive_gateway_failure: count(2),
        enforcing_consecutive_5xx: count(50),
        enforcing_consecutive_gateway_failure: count(100),
        interval: Some(ProtoDuration {
            seconds: 0,
            nanos: 500_000_000,
        }),
        base_ejection_time: seconds(5),
        max_ejection_time: seconds(60),
        max_ejection_time_jitter: seconds(1),
        max_ejection_percent: count(150),
        always_eject_one_host: Some(BoolValue { value: true }),
        // Not implemented, ignored whatever they say.
        enforcing_success_rate: count(100),
        success_rate_minimum_hosts: count(1),
        failure_percentage_threshold: count(1),
        enforcing_failure_percentage: count(100),
        successful_active_health_check_uneject_host: Some(BoolValue { value: true }),
        ..Default::default()
    };
    assert_eq!(
        parse(with_outlier(outlier)).unwrap().outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx: 3,
            consecutive_gateway_failure: 2,
            enforcing_consecutive_5xx: 50,
            enforcing_consecutive_gateway_failure: 100,
            interval: Duration::from_millis(500),
            base_ejection_time: Duration::from_secs(5),
            max_ejection_time: Duration::from_secs(60),
            max_ejection_time_jitter: Duration::from_secs(1),
            max_ejection_percent: 100,
            always_eject_one_host: true,
        })
    );
    // Zero thresholds are allowed: that detection never ejects.
    let zero = ProtoOutlierDetection {
        consecutive_5xx: count(0),
        ..Default::default()
    };
    let parsed = parse(with_outlier(zero))
        .unwrap()
        .outlier_detection
        .unwrap();
    assert_eq!(parsed.consecutive_5xx, 0);
    // Envoy rejects a max_ejection_time below base_ejection_time; weft-proxy lets
    // base_ejection_time win at run time.
    let short_max = ProtoOutlierDetection {
        base_ejection_time: seconds(600),
        ..Default::default()
    };
    assert!(parse(with_outlier(short_max)).is_ok());
}

#[test]
fn outlier_detection_errors_name_the_field() {
    let split = ProtoOutlierDetection {
        split_external_local_origin_errors: true,
        ..Default::default()
    };
    let err = parse(with_outlier(split)).unwrap_err();
    assert_eq!(
        err.field,
        "outlier_detection.split_external_local_origin_errors"
    );
    assert!(err.problem.contains("not supported"), "{err}");
    let cases = [
        (
            ProtoOutlierDetection {
                interval: seconds(-1),
                ..Default::default()
            },
            "outlier_detection.interval",
        ),
        (
            ProtoOutlierDetection {
                interval: seconds(0),
                ..Default::default()
            },
            "outlier_detection.interval",
        ),
        (
            ProtoOutlierDetection {
                base_ejection_time: Some(ProtoDuration {
                    seconds: 1,
                    nanos: 1_000_000_000,
                }),
                ..Default::default()
            },
            "outlier_detection.base_ejection_time",
        ),
        (
            ProtoOutlierDetection {
                max_ejection_time: seconds(0),
                ..Default::default()
            },
            "outlier_detection.max_ejection_time",
        ),
        (
            ProtoOutlierDetection {
                max_ejection_time_jitter: seconds(-3),
                ..Default::default()
            },
            "outlier_detection.max_ejection_time_jitter",
        ),
        (
            ProtoOutlierDetection {
                enforcing_consecutive_5xx: count(101),
                ..Default::default()
            },
            "outlier_detection.enforcing_consecutive_5xx",
        ),
        (
            ProtoOutlierDetection {
                enforcing_consecutive_gateway_failure: count(200),
                ..Default::default()
            },
            "outlier_detection.enforcing_consecutive_gateway_failure",
        ),
        (
            ProtoOutlierDetection {
                detect_degraded_hosts: Some(BoolValue { value: true }),
                ..Default::default()
            },
            "outlier_detection.detect_degraded_hosts",
        ),
        (
            ProtoOutlierDetection {
                monitors: vec![TypedExtensionConfig::default()],
                ..Default::default()
            },
            "outlier_detection.monitors",
        ),
    ];
    for (outlier, field) in cases {
        let err = parse(with_outlier(outlier)).unwrap_err();
        assert_eq!(
            (err.resource.as_str(), err.field.as_str()),
            ("Cluster c", field)
        );
    }
}

fn http2_keepalive(keepalive: Option<KeepaliveSettings>) -> UpstreamProtocolOptions {
    UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
        protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions {
            connection_keepalive: keepalive,
            ..Default::default()
        })),
    })
}

fn with_protocol(options: UpstreamProtocolOptions) -> Cluster {
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(options),
        ..Default::default()
    };
    let mut cluster = controller_cluster("c");
    cluster
        .typed_extension_protocol_options
        .insert(HTTP_PROTOCOL_OPTIONS.into(), pack_any(options));
    cluster
}

fn keepalive_settings(
    interval: Option<ProtoDuration>,
    timeout: Option<ProtoDuration>,
) -> KeepaliveSettings {
    KeepaliveSettings {
        interval,
        timeout,
        ..Default::default()
    }
}

#[test]
fn http2_keepalive_comes_from_the_upstream_protocol_options() {
    let keepalive = |cluster| parse(cluster).unwrap().keepalive;
    let every_30s = Some(Http2Keepalive {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
    });
    let settings = keepalive_settings(seconds(30), seconds(5));
    assert_eq!(
        keepalive(with_protocol(http2_keepalive(Some(settings)))),
        every_30s
    );
    let auto = UpstreamProtocolOptions::AutoConfig(AutoHttpConfig {
        http2_protocol_options: Some(Http2ProtocolOptions {
            connection_keepalive: Some(settings),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(keepalive(with_protocol(auto)), every_30s);
    // No keepalive, no interval, or no HTTP/2 options: no pings.
    assert_eq!(keepalive(controller_cluster("c")), None);
    assert_eq!(keepalive(with_protocol(http2_keepalive(None))), None);
    let no_interval = keepalive_settings(None, seconds(5));
    assert_eq!(
        keepalive(with_protocol(http2_keepalive(Some(no_interval)))),
        None
    );
    let zero_interval = keepalive_settings(seconds(0), seconds(5));
    assert_eq!(
        keepalive(with_protocol(http2_keepalive(Some(zero_interval)))),
        None
    );
    let http1 = UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
        protocol_config: Some(ProtocolConfig::HttpProtocolOptions(
            Http1ProtocolOptions::default(),
        )),
    });
    assert_eq!(keepalive(with_protocol(http1)), None);
}

#[test]
fn http2_keepalive_errors_name_the_field() {
    let prefix = format!(
        "typed_extension_protocol_options[\"{HTTP_PROTOCOL_OPTIONS}\"].explicit_http_config.\
         http2_protocol_options.connection_keepalive"
    );
    for (settings, field) in [
        (keepalive_settings(seconds(30), None), "timeout"),
        (keepalive_settings(seconds(30), seconds(0)), "timeout"),
        (keepalive_settings(seconds(30), seconds(-1)), "timeout"),
        (keepalive_settings(seconds(-30), seconds(5)), "interval"),
    ] {
        let err = parse(with_protocol(http2_keepalive(Some(settings)))).unwrap_err();
        assert_eq!(err.field, format!("{prefix}.{field}"));
    }
    let mut wrong_type = controller_cluster("c");
    wrong_type.typed_extension_protocol_options.insert(
        HTTP_PROTOCOL_OPTIONS.into(),
        pack_any(KeepaliveSettings::default()),
    );
    let err = parse(wrong_type).unwrap_err();
    assert_eq!(
        err.field,
        format!("typed_extension_protocol_options[\"{HTTP_PROTOCOL_OPTIONS}\"]")
    );
    // Options under other keys are not read.
    let mut other_key = controller_cluster("c");
    other_key
        .typed_extension_protocol_options
        .insert("other".into(), pack_any(KeepaliveSettings::default()));
    assert!(parse(other_key).is_ok());
}

#[test]
fn the_controllers_resilience_settings_convert() {
    let mut cluster = with_protocol(http2_keepalive(Some(keepalive_settings(
        seconds(10),
        seconds(20),
    ))));
    cluster.circuit_breakers = with_thresholds(vec![Thresholds {
        priority: RoutingPriority::Default as i32,
        max_connections: count(1_000_000),
        max_pending_requests: count(8),
        max_requests: count(4),
        max_retries: count(1_000_000),
        ..Default::default()
    }])
    .circuit_breakers;
    cluster.outlier_detection = Some(ProtoOutlierDetection {
        consecutive_5xx: count(3),
        enforcing_consecutive_5xx: count(100),
        enforcing_success_rate: count(0),
        interval: seconds(1),
        base_ejection_time: seconds(2),
        max_ejection_time: seconds(20),
        max_ejection_percent: count(50),
        ..Default::default()
    });
    let config = parse(cluster).unwrap();
    assert_eq!(
        config.circuit_breakers,
        CircuitBreakers {
            max_requests: 4,
            max_pending_requests: 8,
        }
    );
    let outlier = config.outlier_detection.unwrap();
    assert_eq!(
        (outlier.consecutive_5xx, outlier.max_ejection_percent),
        (3, 50)
    );
    assert_eq!(outlier.base_ejection_time, Duration::from_secs(2));
    assert_eq!(
        config.keepalive,
        Some(Http2Keepalive {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(20),
        })
    );
}
