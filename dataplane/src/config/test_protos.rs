//! Test helpers: Envoy protos built the way weft-controller builds them
//! (`controller/src/translate/{listener,routes,cluster,endpoints,fault,vhosts}.rs`, see the golden
//! dumps in `controller/src/translate/testdata/`), plus small builders for hand-made variants.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::retry_policy::RetryBackOff;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, MaxStreamDuration,
};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, Vhds,
    VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use envoy_types::pb::envoy::extensions::filters::http::on_demand::v3::{OnDemand, OnDemandCds};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as ProtoDuration, UInt32Value};
use envoy_types::util::pack_any;

pub const FAULT: &str = "envoy.filters.http.fault";
pub const ON_DEMAND: &str = "envoy.filters.http.on_demand";
pub const ROUTER: &str = "envoy.filters.http.router";
pub const HCM: &str = "envoy.filters.network.http_connection_manager";

pub fn proto_duration(d: Duration) -> ProtoDuration {
    ProtoDuration {
        seconds: i64::try_from(d.as_secs()).unwrap(),
        nanos: i32::try_from(d.subsec_nanos()).unwrap(),
    }
}

pub fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

pub fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(HttpFilterConfig::TypedConfig(config)),
        ..Default::default()
    }
}

/// The controller's on-demand filter: clusters over ADS, a 5 s wait.
pub fn controller_on_demand() -> OnDemand {
    OnDemand {
        odcds: Some(OnDemandCds {
            source: Some(ads()),
            resources_locator: String::new(),
            timeout: Some(proto_duration(Duration::from_secs(5))),
        }),
    }
}

/// The controller's connection manager for `outbound/<namespace>`.
pub fn connection_manager(namespace: &str) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: "outbound".into(),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: format!("outbound/{namespace}"),
        })),
        http_filters: vec![
            http_filter(ON_DEMAND, pack_any(controller_on_demand())),
            http_filter(FAULT, pack_any(HttpFault::default())),
            http_filter(ROUTER, pack_any(Router::default())),
        ],
        generate_request_id: Some(BoolValue { value: false }),
        stream_idle_timeout: Some(ProtoDuration::default()),
        ..Default::default()
    }
}

/// A listener with one chain holding `manager`.
pub fn listener_with(name: &str, manager: HttpConnectionManager) -> Listener {
    Listener {
        name: name.into(),
        address: Some(socket_address("127.0.0.1:15001".parse().unwrap())),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM.into(),
                config_type: Some(ConfigType::TypedConfig(pack_any(manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The controller's outbound listener.
pub fn controller_listener(namespace: &str) -> Listener {
    listener_with("outbound", connection_manager(namespace))
}

/// The controller's EDS cluster.
pub fn controller_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: String::new(),
        }),
        connect_timeout: Some(ProtoDuration {
            seconds: 1,
            nanos: 0,
        }),
        lb_policy: LbPolicy::LeastRequest as i32,
        ..Default::default()
    }
}

pub fn socket_address(addr: SocketAddr) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(addr.port()))),
            ..Default::default()
        })),
    }
}

pub fn lb_endpoint(address: Address) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(address),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The controller's load assignment (one locality, when there are endpoints).
pub fn controller_assignment(cluster: &str, addrs: &[&str]) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = addrs
        .iter()
        .map(|a| lb_endpoint(socket_address(a.parse().unwrap())))
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster.to_owned(),
        endpoints: if lb_endpoints.is_empty() {
            vec![]
        } else {
            vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

pub fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(p.into())),
        ..Default::default()
    }
}

pub fn exact_path(p: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Path(p.into())),
        ..Default::default()
    }
}

pub fn regex_path(re: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::SafeRegex(regex(re))),
        ..Default::default()
    }
}

pub fn regex(re: &str) -> RegexMatcher {
    RegexMatcher {
        regex: re.into(),
        engine_type: None,
    }
}

pub fn string_header(name: &str, pattern: MatchPattern) -> HeaderMatcher {
    HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            ignore_case: false,
            match_pattern: Some(pattern),
        })),
        ..Default::default()
    }
}

pub fn exact_header(name: &str, value: &str) -> HeaderMatcher {
    string_header(name, MatchPattern::Exact(value.into()))
}

/// The controller's stream timeouts: `timeout: 0s`, `grpc_timeout_header_max` = cap or 0s.
pub fn stream_timeouts(timeout: Option<Duration>) -> RouteAction {
    RouteAction {
        timeout: Some(ProtoDuration::default()),
        max_stream_duration: Some(MaxStreamDuration {
            max_stream_duration: timeout.map(proto_duration),
            grpc_timeout_header_max: Some(proto_duration(timeout.unwrap_or_default())),
            grpc_timeout_header_offset: None,
        }),
        ..Default::default()
    }
}

pub fn to_cluster(cluster: &str) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
        ..stream_timeouts(None)
    }
}

pub fn weighted(backends: &[(&str, Option<u32>)]) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: backends
                .iter()
                .map(|(name, weight)| ClusterWeight {
                    name: (*name).into(),
                    weight: weight.map(|value| UInt32Value { value }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })),
        ..stream_timeouts(None)
    }
}

/// The controller's retry policy.
pub fn retry(retry_on: &str, attempts: u32, per_try: Option<Duration>) -> RetryPolicy {
    RetryPolicy {
        retry_on: retry_on.into(),
        num_retries: Some(UInt32Value { value: attempts }),
        per_try_timeout: per_try.map(proto_duration),
        retry_back_off: Some(RetryBackOff {
            base_interval: Some(proto_duration(Duration::from_millis(25))),
            max_interval: None,
        }),
        ..Default::default()
    }
}

pub fn route(name: &str, matcher: RouteMatch, action: RouteAction) -> Route {
    Route {
        name: name.into(),
        r#match: Some(matcher),
        action: Some(Action::Route(action)),
        ..Default::default()
    }
}

pub fn with_fault(mut route: Route, fault: HttpFault) -> Route {
    route.typed_per_filter_config = HashMap::from([(FAULT.to_owned(), pack_any(fault))]);
    route
}

pub fn vhost(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        routes,
        ..Default::default()
    }
}

pub fn route_config(name: &str, virtual_hosts: Vec<VirtualHost>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        virtual_hosts,
        ..Default::default()
    }
}

/// weft-controller's route configuration for a Delta client: no virtual hosts inline, all
/// of them over VHDS (ADS).
pub fn vhds_shell(name: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        vhds: Some(Vhds {
            config_source: Some(ads()),
        }),
        ..Default::default()
    }
}

pub fn per_million(numerator: u32) -> FractionalPercent {
    FractionalPercent {
        numerator,
        denominator: DenominatorType::Million as i32,
    }
}

/// The controller's fault: abort with a gRPC status and message, and/or a fixed delay.
pub fn controller_fault(
    abort: Option<(u32, &str, u32)>,
    delay: Option<(Duration, u32)>,
) -> HttpFault {
    HttpFault {
        delay: delay.map(|(fixed, ppm)| FaultDelay {
            percentage: Some(per_million(ppm)),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(proto_duration(fixed))),
        }),
        abort: abort.map(|(status, message, ppm)| FaultAbort {
            percentage: Some(per_million(ppm)),
            response_body: message.into(),
            error_type: Some(ErrorType::GrpcStatus(status)),
        }),
        ..Default::default()
    }
}

pub const GREETER: &str = "outbound|50051||greeter.default.svc.cluster.local";
pub const GREETER_V1: &str = "outbound|50051||greeter-v1.default.svc.cluster.local";
pub const GREETER_V2: &str = "outbound|50051||greeter-v2.default.svc.cluster.local";

/// The domains the controller gives Service `name` (first port 50051) in `default`.
pub fn greeter_domains(name: &str) -> Vec<String> {
    let hosts = [
        format!("{name}.default.svc.cluster.local"),
        format!("{name}.default.svc"),
        format!("{name}.default"),
        name.to_owned(),
    ];
    let with_port = hosts.iter().map(|h| format!("{h}:50051"));
    with_port.chain(hosts.iter().cloned()).collect()
}

/// The demo's `outbound/default` (testdata/demo/routes.outbound_default.txt): a GrpcRoute
/// on greeter splitting 90/10 with retries and a 2 s timeout, a fault on
/// `/weft.test.Echo/Unary` copied before each route, and a default route per Service.
pub fn demo_route_config() -> RouteConfiguration {
    let split = RouteAction {
        retry_policy: Some(retry("unavailable", 3, Some(Duration::from_millis(500)))),
        ..RouteAction {
            cluster_specifier: weighted(&[(GREETER_V1, Some(90)), (GREETER_V2, Some(10))])
                .cluster_specifier,
            ..stream_timeouts(Some(Duration::from_secs(2)))
        }
    };
    let fault = controller_fault(Some((14, "injected by weft", 50_000)), None);
    let narrowed = |mut m: RouteMatch| {
        m.headers
            .push(exact_header(":path", "/weft.test.Echo/Unary"));
        m
    };
    let rule = "grpcroute:default/greeter:rules[0].matches[0]";
    let greeter_routes = vec![
        with_fault(
            route(
                &format!("{rule}+fault:default/greeter-chaos"),
                narrowed(prefix("/weft.test.Echo/")),
                split.clone(),
            ),
            fault.clone(),
        ),
        route(rule, prefix("/weft.test.Echo/"), split),
        with_fault(
            route(
                "default+fault:default/greeter-chaos",
                narrowed(prefix("/")),
                to_cluster(GREETER),
            ),
            fault,
        ),
        route("default", prefix("/"), to_cluster(GREETER)),
    ];
    let host = |name: &str, routes| VirtualHost {
        name: format!("{name}.default.svc.cluster.local:50051"),
        domains: greeter_domains(name),
        routes,
        ..Default::default()
    };
    route_config(
        "outbound/default",
        vec![
            host("greeter", greeter_routes),
            host(
                "greeter-v1",
                vec![route("default", prefix("/"), to_cluster(GREETER_V1))],
            ),
            host(
                "greeter-v2",
                vec![route("default", prefix("/"), to_cluster(GREETER_V2))],
            ),
        ],
    )
}
