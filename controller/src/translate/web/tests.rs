use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;

use super::*;
use crate::ads::ResourceType;
use crate::model::Kind;
use crate::translate::endpoints::socket_address;
use crate::translate::testutil::{decode, greeters, index, route_names};
use crate::translate::{Translation, translate, translate_for};

const WEB_ROUTE: &str = "
apiVersion: weft.dev/v1alpha1
kind: GrpcRoute
metadata: {name: greeter, namespace: default}
spec:
  parentRefs: [{name: greeter}]
  rules:
  - matches: [{method: {service: weft.test.Echo, method: Unary}}]
    backendRefs: [{name: greeter-v2, port: 50051}]
  - matches: [{method: {method: Stream}}]
    backendRefs: [{name: greeter-v1, port: 50051}]
  - matches: [{method: {service: other.Service}}]
    backendRefs: [{name: greeter-v1, port: 50051}]
  web:
    services: [weft.test.Echo]
    cors: {allowOrigins: ['https://app.example.com'], allowHeaders: [Authorization], exposeHeaders: [x-request-id], maxAge: 10m}
";

const FAULT: &str = "
apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: chaos, namespace: default}
spec:
  targetRef: {kind: GrpcRoute, name: greeter}
  match: {method: {method: Unary}}
  abort: {grpcStatus: UNAVAILABLE, message: boom}
";

fn web_config(t: &Translation) -> RouteConfiguration {
    let resource = t.snapshot.resources(ResourceType::Route).get(WEB);
    decode(&resource.expect("a web RouteConfiguration").body)
}

fn cors_of(route: &Route) -> Option<CorsPolicy> {
    route.typed_per_filter_config.get(CORS_FILTER).map(decode)
}

#[test]
fn web_routes_are_the_parents_routes_narrowed_to_each_listed_service() {
    let t = translate(&index(&format!("{}---\n{WEB_ROUTE}", greeters())));
    let config = web_config(&t);
    assert_eq!(config.name, "web");
    let [host] = &config.virtual_hosts[..] else {
        panic!("one virtual host: {config:?}")
    };
    assert_eq!(
        (host.name.as_str(), host.domains.clone()),
        ("web", vec!["*".to_owned()])
    );
    // The other service's rule is not reachable under weft.test.Echo.
    assert_eq!(
        route_names(&host.routes),
        [
            "weft.test.Echo:grpcroute:default/greeter:rules[0].matches[0]",
            "weft.test.Echo:grpcroute:default/greeter:rules[1].matches[0]",
            "weft.test.Echo:default",
        ]
    );
    let paths: Vec<_> = host
        .routes
        .iter()
        .map(|r| r.r#match.clone().unwrap().path_specifier.unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            PathSpecifier::Path("/weft.test.Echo/Unary".into()),
            PathSpecifier::Prefix("/weft.test.Echo/".into()),
            PathSpecifier::Prefix("/weft.test.Echo/".into()),
        ]
    );
    // The method-only match keeps its expression as a `:path` matcher.
    let headers = &host.routes[1].r#match.as_ref().unwrap().headers;
    assert_eq!(headers[0].name, ":path");
    let Some(Action::Route(action)) = &host.routes[2].action else {
        panic!()
    };
    assert_eq!(
        action.cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "outbound|50051||greeter.default.svc.cluster.local".into()
        ))
    );
    let cors = cors_of(&host.routes[0]).expect("every web route carries the CORS policy");
    assert!(
        host.routes
            .iter()
            .all(|r| cors_of(r).as_ref() == Some(&cors))
    );
    assert_eq!(cors.allow_methods, "POST");
    assert_eq!(
        cors.allow_headers,
        "content-type,x-grpc-web,x-user-agent,grpc-timeout,authorization"
    );
    assert_eq!(
        cors.expose_headers,
        "grpc-status,grpc-message,grpc-status-details-bin,x-request-id"
    );
    assert_eq!(cors.max_age, "600");
    assert_eq!(
        cors.forward_not_matching_preflights,
        Some(BoolValue { value: false })
    );
    let [origin] = &cors.allow_origin_string_match[..] else {
        panic!()
    };
    assert!(origin.ignore_case);
    assert_eq!(
        origin.match_pattern,
        Some(MatchPattern::Exact("https://app.example.com".into()))
    );
}

#[test]
fn faulted_copies_carry_the_fault_and_the_cors_policy_and_encode_the_same_every_time() {
    let yaml = format!("{}---\n{WEB_ROUTE}---\n{FAULT}", greeters());
    let t = translate(&index(&yaml));
    let routes = web_config(&t).virtual_hosts.remove(0).routes;
    let faulted = &routes[0];
    assert_eq!(
        faulted.name,
        "weft.test.Echo:grpcroute:default/greeter:rules[0].matches[0]+fault:default/chaos"
    );
    let mut filters: Vec<&str> = faulted
        .typed_per_filter_config
        .keys()
        .map(String::as_str)
        .collect();
    filters.sort();
    assert_eq!(filters, [CORS_FILTER, FAULT_FILTER]);
    let again = translate(&index(&yaml));
    let bytes = |t: &Translation| {
        t.snapshot
            .resources(ResourceType::Route)
            .get(WEB)
            .unwrap()
            .body
            .value
            .clone()
    };
    assert_eq!(
        bytes(&t),
        bytes(&again),
        "the same input gives the same bytes"
    );
}

#[test]
fn a_service_claimed_by_an_earlier_route_stays_with_it() {
    let later = WEB_ROUTE.replace("name: greeter, namespace", "name: later, namespace");
    let t = translate(&index(&format!(
        "{}---\n{WEB_ROUTE}---\n{later}",
        greeters()
    )));
    // Routed once, as a mesh client is: both routes' rules on the parent, then the default.
    let routes = web_config(&t).virtual_hosts.remove(0).routes;
    assert_eq!(
        route_names(&routes),
        [
            "weft.test.Echo:grpcroute:default/greeter:rules[0].matches[0]",
            "weft.test.Echo:grpcroute:default/greeter:rules[1].matches[0]",
            "weft.test.Echo:grpcroute:default/later:rules[0].matches[0]",
            "weft.test.Echo:grpcroute:default/later:rules[1].matches[0]",
            "weft.test.Echo:default",
        ]
    );
    assert_eq!(
        t.report(Kind::GrpcRoute, "default", "later").notes,
        [
            "spec.web.services: weft.test.Echo is served to browsers by GrpcRoute default/greeter, which comes first"
        ]
    );
    assert!(
        t.report(Kind::GrpcRoute, "default", "greeter")
            .notes
            .is_empty()
    );
}

#[test]
fn no_web_route_configuration_when_no_route_opts_in_and_no_proxy_has_a_web_listener() {
    let t = translate(&index(&greeters()));
    assert!(t.snapshot.resources(ResourceType::Route).get(WEB).is_none());
}

#[test]
fn a_proxy_with_a_web_address_gets_a_web_listener_reading_the_web_routes() {
    let mut node =
        crate::translate::NodeInfo::new("gateway", "default", "127.0.0.1:15001".parse().unwrap());
    node.web_addr = Some("127.0.0.1:15080".parse().unwrap());
    let workload = crate::translate::Workload::from(&node);
    let workloads = [(workload.node_id.clone(), workload)].into_iter().collect();
    let t = translate_for(&index(&greeters()), &workloads, &Default::default(), None);
    assert_eq!(web_config(&t).virtual_hosts[0].routes, []);
    let node_listeners = t
        .snapshot
        .for_node("gateway.default")
        .expect("the proxy's snapshot");
    let listener = node_listeners
        .resources(ResourceType::Listener)
        .get(WEB)
        .expect("a web listener");
    let listener: Listener = decode(&listener.body);
    assert_eq!(
        listener.address,
        Some(socket_address("127.0.0.1:15080".parse().unwrap()))
    );
    let Some(ConfigType::TypedConfig(config)) = &listener.filter_chains[0].filters[0].config_type
    else {
        panic!()
    };
    let manager: HttpConnectionManager = decode(config);
    let Some(RouteSpecifier::Rds(rds)) = &manager.route_specifier else {
        panic!()
    };
    assert_eq!(rds.route_config_name, "web");
    let names: Vec<&str> = manager
        .http_filters
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        names,
        [GRPC_WEB_FILTER, CORS_FILTER, FAULT_FILTER, ROUTER_FILTER]
    );
    assert!(matches!(
        manager.http_filters[0].config_type,
        Some(HttpFilterConfig::TypedConfig(_))
    ));
}

#[test]
fn narrowing_keeps_what_is_inside_the_service_and_drops_what_is_not() {
    let route = |specifier: PathSpecifier| Route {
        name: "r".into(),
        r#match: Some(envoy_types::pb::envoy::config::route::v3::RouteMatch {
            path_specifier: Some(specifier),
            ..Default::default()
        }),
        ..Default::default()
    };
    let path_of = |r: Option<Route>| r.map(|r| r.r#match.unwrap().path_specifier.unwrap());
    let cases = [
        (
            PathSpecifier::Prefix("/".into()),
            Some(PathSpecifier::Prefix("/a.B/".into())),
        ),
        (
            PathSpecifier::Prefix("/a.B/".into()),
            Some(PathSpecifier::Prefix("/a.B/".into())),
        ),
        (
            PathSpecifier::Path("/a.B/M".into()),
            Some(PathSpecifier::Path("/a.B/M".into())),
        ),
        (PathSpecifier::Path("/a.C/M".into()), None),
        (PathSpecifier::Prefix("/a.C/".into()), None),
    ];
    for (specifier, expected) in cases {
        assert_eq!(
            path_of(within_service(&route(specifier.clone()), "a.B")),
            expected,
            "{specifier:?}"
        );
    }
}

#[test]
fn web_faults_with_an_http_equivalent_abort_with_that_http_status() {
    let fault =
        |status: &str| FAULT.replace("grpcStatus: UNAVAILABLE", &format!("grpcStatus: {status}"));
    for (status, expected) in [
        ("UNAVAILABLE", ErrorType::HttpStatus(503)),
        ("PERMISSION_DENIED", ErrorType::HttpStatus(403)),
        ("RESOURCE_EXHAUSTED", ErrorType::GrpcStatus(8)),
    ] {
        let yaml = format!("{}---\n{WEB_ROUTE}---\n{}", greeters(), fault(status));
        let t = translate(&index(&yaml));
        let routes = web_config(&t).virtual_hosts.remove(0).routes;
        let config = &routes[0].typed_per_filter_config[FAULT_FILTER];
        let fault: HttpFault = decode(config);
        let abort = fault.abort.expect("an abort");
        assert_eq!(abort.error_type, Some(expected), "{status}");
        assert_eq!(abort.response_body, "boom");
        // The mesh's own routes keep the gRPC status.
        let vhost = t.vhost("default", crate::translate::testutil::GREETER);
        let mesh_fault: HttpFault = decode(&vhost.routes[0].typed_per_filter_config[FAULT_FILTER]);
        assert!(matches!(
            mesh_fault.abort.unwrap().error_type,
            Some(ErrorType::GrpcStatus(_))
        ));
    }
}
