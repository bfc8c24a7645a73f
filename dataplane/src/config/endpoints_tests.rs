//! Tests of endpoint conversion: the controller's assignments, health, priorities, and the
//! addresses weft-proxy cannot use.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::{PortSpecifier, Protocol};
use envoy_types::pb::envoy::config::core::v3::{Address, HealthStatus, Pipe, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::util::pack_any;

use super::parse_endpoints;
use crate::config::test_protos::*;
use crate::config::{ConfigError, EndpointSet};

fn parse(assignment: ClusterLoadAssignment) -> Result<EndpointSet, ConfigError> {
    parse_endpoints(&pack_any(assignment))
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn endpoint(addr: &str, health: HealthStatus) -> LbEndpoint {
    LbEndpoint {
        health_status: health as i32,
        ..lb_endpoint(socket_address(addr.parse().unwrap()))
    }
}

fn locality(priority: u32, endpoints: Vec<LbEndpoint>) -> LocalityLbEndpoints {
    LocalityLbEndpoints {
        priority,
        lb_endpoints: endpoints,
        ..Default::default()
    }
}

#[test]
fn converts_the_controllers_assignment() {
    let set = parse(controller_assignment(
        GREETER,
        &["127.0.0.1:50051", "[::1]:50052"],
    ))
    .unwrap();
    assert_eq!(set.name, GREETER);
    assert_eq!(set.addrs, addrs(&["127.0.0.1:50051", "[::1]:50052"]));
    assert_eq!(
        parse(controller_assignment(GREETER, &[])).unwrap().addrs,
        vec![]
    );
}

#[test]
fn keeps_usable_health_and_the_best_priority() {
    let assignment = ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![
            locality(1, vec![endpoint("10.0.1.1:1", HealthStatus::Healthy)]),
            locality(
                0,
                vec![
                    endpoint("10.0.0.1:1", HealthStatus::Unknown),
                    endpoint("10.0.0.2:1", HealthStatus::Healthy),
                    endpoint("10.0.0.3:1", HealthStatus::Degraded),
                    endpoint("10.0.0.4:1", HealthStatus::Unhealthy),
                    endpoint("10.0.0.5:1", HealthStatus::Draining),
                    endpoint("10.0.0.6:1", HealthStatus::Timeout),
                    endpoint("10.0.0.1:1", HealthStatus::Healthy),
                ],
            ),
        ],
        ..Default::default()
    };
    assert_eq!(
        parse(assignment).unwrap().addrs,
        addrs(&["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"])
    );
    // Priority 0 has nothing usable: fail over to priority 1.
    let failover = ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![
            locality(0, vec![endpoint("10.0.0.1:1", HealthStatus::Unhealthy)]),
            locality(1, vec![endpoint("10.0.1.1:1", HealthStatus::Healthy)]),
        ],
        ..Default::default()
    };
    assert_eq!(parse(failover).unwrap().addrs, addrs(&["10.0.1.1:1"]));
}

fn with_address(address: Option<AddressKind>) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![locality(
            0,
            vec![
                endpoint("10.0.0.1:1", HealthStatus::Healthy),
                lb_endpoint(Address { address }),
            ],
        )],
        ..Default::default()
    }
}

fn socket(address: &str, port: Option<PortSpecifier>) -> Option<AddressKind> {
    Some(AddressKind::SocketAddress(SocketAddress {
        address: address.into(),
        port_specifier: port,
        ..Default::default()
    }))
}

#[test]
fn unusable_addresses_name_the_field() {
    let at = "endpoints[0].lb_endpoints[1].endpoint.address";
    let cases = [
        (
            socket("greeter.default", Some(PortSpecifier::PortValue(1))),
            "socket_address.address",
        ),
        (socket("10.0.0.1", None), "socket_address.port_value"),
        (
            socket("10.0.0.1", Some(PortSpecifier::PortValue(0))),
            "socket_address.port_value",
        ),
        (
            socket("10.0.0.1", Some(PortSpecifier::PortValue(70_000))),
            "socket_address.port_value",
        ),
        (
            socket("10.0.0.1", Some(PortSpecifier::NamedPort("grpc".into()))),
            "socket_address.named_port",
        ),
        (Some(AddressKind::Pipe(Pipe::default())), "pipe"),
        (None, "socket_address"),
    ];
    for (address, field) in cases {
        let err = parse(with_address(address.clone())).unwrap_err();
        assert_eq!(err.resource, "ClusterLoadAssignment c");
        assert_eq!(err.field, format!("{at}.{field}"), "{address:?}");
    }
    let err = parse(with_address(socket(
        "greeter",
        Some(PortSpecifier::PortValue(1)),
    )))
    .unwrap_err();
    assert!(err.problem.contains("not an IP address"), "{err}");

    let mut udp = with_address(socket("10.0.0.1", Some(PortSpecifier::PortValue(1))));
    if let Some(HostIdentifier::Endpoint(e)) = &mut udp.endpoints[0].lb_endpoints[1].host_identifier
        && let Some(Address {
            address: Some(AddressKind::SocketAddress(s)),
        }) = &mut e.address
    {
        s.protocol = Protocol::Udp as i32;
    }
    assert_eq!(
        parse(udp).unwrap_err().field,
        format!("{at}.socket_address.protocol")
    );
}

#[test]
fn other_errors_name_the_field() {
    let mut named = with_address(None);
    named.endpoints[0].lb_endpoints[1].host_identifier =
        Some(HostIdentifier::EndpointName("e".into()));
    assert_eq!(
        parse(named).unwrap_err().field,
        "endpoints[0].lb_endpoints[1].endpoint_name"
    );
    let mut unnamed = controller_assignment("c", &[]);
    unnamed.cluster_name.clear();
    assert_eq!(parse(unnamed).unwrap_err().field, "cluster_name");
    // An unhealthy endpoint is still checked.
    let mut bad = with_address(socket("host", Some(PortSpecifier::PortValue(1))));
    bad.endpoints[0].lb_endpoints[1].health_status = HealthStatus::Unhealthy as i32;
    assert!(parse(bad).is_err());
}

/// `endpoint` with metadata `envoy.transport_socket_match: {tlsMode: <value>}`.
fn marked(addr: &str, value: envoy_types::pb::google::protobuf::Value) -> LbEndpoint {
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::google::protobuf::Struct;
    let matched = Struct {
        fields: [("tlsMode".to_owned(), value)].into(),
    };
    LbEndpoint {
        metadata: Some(Metadata {
            filter_metadata: [("envoy.transport_socket_match".to_owned(), matched)].into(),
            ..Default::default()
        }),
        ..endpoint(addr, HealthStatus::Unknown)
    }
}

fn string(s: &str) -> envoy_types::pb::google::protobuf::Value {
    use envoy_types::pb::google::protobuf::value::Kind;
    envoy_types::pb::google::protobuf::Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

#[test]
fn endpoints_marked_tls_mode_weft_are_mtls() {
    let assignment = ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![locality(
            0,
            vec![
                marked("10.0.0.1:80", string("weft")),
                endpoint("10.0.0.2:80", HealthStatus::Healthy),
                marked("10.0.0.3:80", string("istio")),
                // Listed again, marked this time: the proxy is there.
                marked("10.0.0.2:80", string("weft")),
            ],
        )],
        ..Default::default()
    };
    let set = parse(assignment).unwrap();
    assert_eq!(
        set.addrs,
        addrs(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])
    );
    assert_eq!(
        set.mtls.iter().copied().collect::<Vec<_>>(),
        addrs(&["10.0.0.1:80", "10.0.0.2:80"])
    );
}

#[test]
fn a_tls_mode_that_is_not_a_string_names_the_field() {
    let number = envoy_types::pb::google::protobuf::Value {
        kind: Some(envoy_types::pb::google::protobuf::value::Kind::NumberValue(
            1.0,
        )),
    };
    let assignment = ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![locality(0, vec![marked("10.0.0.1:80", number)])],
        ..Default::default()
    };
    let err = parse(assignment).unwrap_err();
    assert_eq!(
        err.field,
        "endpoints[0].lb_endpoints[0].metadata.filter_metadata[\"envoy.transport_socket_match\"].tlsMode"
    );
}
