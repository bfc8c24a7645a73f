//! Tests of `RouteConfiguration` conversion: the controller's shapes, domains, virtual host
//! retry policies, and that every error names its field.

use std::collections::BTreeSet;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, ConfigSource, HeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, QueryParameterMatcher, RedirectAction, RouteConfiguration, Vhds,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::util::pack_any;

use super::{parse_route_config, parse_virtual_host};
use crate::config::test_protos::*;
use crate::config::{
    AbortFault, ConfigError, NamedMethods, PathMatch, RetryPolicy as Retry, RouteTable,
    StringMatch, WeightedBackend,
};

fn parse(config: RouteConfiguration) -> Result<RouteTable, ConfigError> {
    parse_route_config(&pack_any(config))
}

/// The error of a config with one virtual host holding `routes`.
fn error_of(routes: Vec<envoy_types::pb::envoy::config::route::v3::Route>) -> ConfigError {
    parse(route_config(
        "outbound/default",
        vec![vhost("v", &["a"], routes)],
    ))
    .unwrap_err()
}

fn ok_route() -> envoy_types::pb::envoy::config::route::v3::Route {
    route("ok", prefix("/"), to_cluster("c"))
}

#[test]
fn converts_the_controllers_demo_routes() {
    let table = parse(demo_route_config()).unwrap();
    assert_eq!(table.name, "outbound/default");
    assert_eq!(table.virtual_hosts.len(), 3);
    assert_eq!(table.domains.len(), 24);
    assert_eq!(table.domains["greeter:50051"], 0);
    assert_eq!(table.domains["greeter-v2.default.svc"], 2);
    let greeter = &table.virtual_hosts[0];
    assert_eq!(greeter.name, "greeter.default.svc.cluster.local:50051");
    assert_eq!(greeter.domains, greeter_domains("greeter"));
    let names: Vec<&str> = greeter.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "grpcroute:default/greeter:rules[0].matches[0]+fault:default/greeter-chaos",
            "grpcroute:default/greeter:rules[0].matches[0]",
            "default+fault:default/greeter-chaos",
            "default",
        ]
    );
    let faulted = &greeter.routes[0];
    assert!(matches!(&faulted.matcher.path, PathMatch::Prefix(p) if p == "/weft.test.Echo/"));
    assert_eq!(faulted.matcher.headers.len(), 1);
    assert_eq!(faulted.matcher.headers[0].name, ":path");
    assert!(
        matches!(&faulted.matcher.headers[0].value, StringMatch::Exact(v) if v == "/weft.test.Echo/Unary")
    );
    let fault = faulted.fault.as_ref().unwrap();
    assert_eq!(fault.delay, None);
    assert_eq!(
        fault.abort,
        Some(AbortFault {
            grpc_status: 14,
            message: "injected by weft".into(),
            per_million: 50_000,
        })
    );
    let action = &faulted.action;
    assert_eq!(
        action.backends,
        [
            WeightedBackend {
                cluster: GREETER_V1.into(),
                weight: 90
            },
            WeightedBackend {
                cluster: GREETER_V2.into(),
                weight: 10
            },
        ]
    );
    assert_eq!(action.total_weight, 100);
    assert_eq!(action.timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        action.retry,
        Some(Retry {
            codes: BTreeSet::from([14]),
            not_sent: false,
            retries: 3,
            per_try_timeout: Some(Duration::from_millis(500)),
            backoff: Duration::from_millis(25),
        })
    );
    assert_eq!(greeter.routes[1].fault, None);
    let default = &greeter.routes[3];
    assert_eq!(default.action.timeout, None);
    assert_eq!(default.action.retry, None);
    assert_eq!(default.action.total_weight, 1);
    assert_eq!(default.action.backends[0].cluster, GREETER);
    assert_eq!(
        table.named,
        NamedMethods {
            services: BTreeSet::from(["weft.test.Echo".to_owned()]),
            methods: BTreeSet::from(["weft.test.Echo/Unary".to_owned()]),
        }
    );
}

#[test]
fn domains_are_lower_case_and_unique() {
    let table = parse(route_config(
        "r",
        vec![vhost(
            "a",
            &["Greeter:50051", "*.Example.com"],
            vec![ok_route()],
        )],
    ))
    .unwrap();
    assert_eq!(
        table.virtual_hosts[0].domains,
        ["greeter:50051", "*.example.com"]
    );
    assert_eq!(table.domains.get("greeter:50051"), Some(&0));

    let err = parse(route_config(
        "r",
        vec![
            vhost("a", &["x", "greeter"], vec![ok_route()]),
            vhost("b", &["y", "GREETER"], vec![ok_route()]),
        ],
    ))
    .unwrap_err();
    assert_eq!(err.resource, "RouteConfiguration r");
    assert_eq!(err.field, "virtual_hosts[1].domains[1]");
    assert!(err.problem.contains("virtual_hosts[0]"), "{err}");
}

#[test]
fn bad_domains_are_errors() {
    for (domains, field) in [
        (&["a*b"][..], "virtual_hosts[0].domains[0]"),
        (&["x", "**"][..], "virtual_hosts[0].domains[1]"),
        (&["x", ""][..], "virtual_hosts[0].domains[1]"),
        (&[][..], "virtual_hosts[0].domains"),
    ] {
        let err = parse(route_config(
            "r",
            vec![vhost("a", domains, vec![ok_route()])],
        ))
        .unwrap_err();
        assert_eq!(err.field, field, "{domains:?}: {err}");
    }
}

#[test]
fn an_re2_only_regex_is_rejected_naming_the_field() {
    let routes = vec![
        ok_route(),
        ok_route(),
        route("q", regex_path(r"\Qa.b\E"), to_cluster("c")),
    ];
    let err = error_of(routes);
    assert_eq!(
        err,
        ConfigError {
            resource: "RouteConfiguration outbound/default".into(),
            field: "virtual_hosts[0].routes[2].match.safe_regex.regex".into(),
            problem: r#"regular expression "\\Qa.b\\E" is not supported by weft-proxy: unrecognized escape sequence"#
                .into(),
        }
    );
}

#[test]
fn header_matcher_errors_name_the_header() {
    let mut m = prefix("/");
    m.headers.push(exact_header("x-a", "1"));
    m.headers
        .push(string_header("x-b", MatchPattern::SafeRegex(regex("(a"))));
    let err = error_of(vec![route("r", m, to_cluster("c"))]);
    assert_eq!(
        err.field,
        "virtual_hosts[0].routes[0].match.headers[1].string_match.safe_regex.regex"
    );
    assert!(err.problem.contains("unclosed group"), "{err}");
}

#[test]
fn only_route_actions_are_accepted() {
    let with_action = |action| envoy_types::pb::envoy::config::route::v3::Route {
        r#match: Some(prefix("/")),
        action,
        ..Default::default()
    };
    let cases = [
        (
            Some(Action::Redirect(RedirectAction::default())),
            "virtual_hosts[0].routes[0].redirect",
        ),
        (
            Some(Action::DirectResponse(DirectResponseAction::default())),
            "virtual_hosts[0].routes[0].direct_response",
        ),
        (None, "virtual_hosts[0].routes[0].action"),
    ];
    for (action, field) in cases {
        let err = error_of(vec![with_action(action)]);
        assert_eq!(err.field, field, "{err}");
    }
    let err = error_of(vec![ok_route(), route("r", prefix("/"), weighted(&[]))]);
    assert_eq!(
        err.field,
        "virtual_hosts[0].routes[1].route.weighted_clusters.clusters"
    );
}

#[test]
fn match_errors_name_the_field() {
    let mut no_match = ok_route();
    no_match.r#match = None;
    assert_eq!(
        error_of(vec![no_match]).field,
        "virtual_hosts[0].routes[0].match"
    );
    let mut no_path = ok_route();
    no_path.r#match.as_mut().unwrap().path_specifier = None;
    assert_eq!(
        error_of(vec![no_path]).field,
        "virtual_hosts[0].routes[0].match.path_specifier"
    );
    let mut query = ok_route();
    query
        .r#match
        .as_mut()
        .unwrap()
        .query_parameters
        .push(QueryParameterMatcher::default());
    let err = error_of(vec![query]);
    assert_eq!(
        err.field,
        "virtual_hosts[0].routes[0].match.query_parameters"
    );
    assert_eq!(err.problem, "not supported by weft-proxy");
    let mut mutation = ok_route();
    mutation.request_headers_to_add.push(HeaderValueOption {
        header: Some(HeaderValue::default()),
        ..Default::default()
    });
    assert_eq!(
        error_of(vec![mutation]).field,
        "virtual_hosts[0].routes[0].request_headers_to_add"
    );
}

#[test]
fn a_virtual_host_retry_policy_applies_to_routes_without_one() {
    let mut own = ok_route();
    let Some(Action::Route(action)) = own.action.as_mut() else {
        panic!()
    };
    action.retry_policy = Some(retry("internal", 2, None));
    let mut v = vhost("v", &["a"], vec![ok_route(), own]);
    v.retry_policy = Some(retry("unavailable,cancelled", 5, None));
    let table = parse(route_config("r", vec![v])).unwrap();
    let codes = |r: usize| {
        table.virtual_hosts[0].routes[r]
            .action
            .retry
            .clone()
            .unwrap()
            .codes
    };
    assert_eq!(codes(0), BTreeSet::from([1, 14]));
    assert_eq!(codes(1), BTreeSet::from([13]));

    let mut bad = vhost("v", &["a"], vec![ok_route()]);
    bad.retry_policy = Some(retry("5xx", 1, None));
    let err = parse(route_config("r", vec![bad])).unwrap_err();
    assert_eq!(err.field, "virtual_hosts[0].retry_policy.retry_on");
}

#[test]
fn wrong_type_or_bytes_are_errors() {
    let err = parse_route_config(&pack_any(Router::default())).unwrap_err();
    assert_eq!(err.resource, "RouteConfiguration");
    let err = parse(route_config("", vec![])).unwrap_err();
    assert_eq!(err.field, "name");
    // No virtual hosts is valid (nothing routes).
    assert!(
        parse(route_config("r", vec![]))
            .unwrap()
            .virtual_hosts
            .is_empty()
    );
}

#[test]
fn a_route_configuration_may_name_vhds_over_ads() {
    let table = parse(vhds_shell("outbound/default")).unwrap();
    assert!(table.vhds);
    assert!(table.virtual_hosts.is_empty());
    assert!(!parse(demo_route_config()).unwrap().vhds);

    let mut elsewhere = vhds_shell("outbound/default");
    elsewhere.vhds = Some(Vhds {
        config_source: Some(ConfigSource {
            config_source_specifier: Some(ConfigSourceSpecifier::ApiConfigSource(
                ApiConfigSource::default(),
            )),
            ..Default::default()
        }),
    });
    assert_eq!(parse(elsewhere).unwrap_err().field, "vhds.config_source");

    // Its own fault would not reach the hosts VHDS sends.
    let mut faulted = vhds_shell("outbound/default");
    faulted.typed_per_filter_config = std::collections::HashMap::from([(
        FAULT.to_owned(),
        pack_any(controller_fault(Some((14, "x", 1)), None)),
    )]);
    let err = parse(faulted).unwrap_err();
    assert_eq!(
        err.field,
        "typed_per_filter_config[\"envoy.filters.http.fault\"]"
    );
}

#[test]
fn a_vhds_virtual_host_converts_like_an_inline_one() {
    let config = demo_route_config();
    let inline = parse(config.clone()).unwrap();
    let held = parse_virtual_host(&pack_any(config.virtual_hosts[0].clone())).unwrap();
    assert_eq!(held.host.name, inline.virtual_hosts[0].name);
    assert_eq!(held.host.domains, inline.virtual_hosts[0].domains);
    assert_eq!(held.host.routes.len(), 4);
    assert_eq!(
        held.host.routes[0].fault,
        inline.virtual_hosts[0].routes[0].fault
    );
    assert_eq!(
        held.host.routes[0].action,
        inline.virtual_hosts[0].routes[0].action
    );
    assert_eq!(held.named, inline.named);
}

#[test]
fn vhds_virtual_host_errors_name_the_host_and_field() {
    let parse_host = |host| parse_virtual_host(&pack_any(host)).unwrap_err();
    let err = parse_host(vhost(
        "greeter:50051",
        &["greeter:50051"],
        vec![
            ok_route(),
            route("q", regex_path(r"\Qa\E"), to_cluster("c")),
        ],
    ));
    assert_eq!(err.resource, "VirtualHost greeter:50051");
    assert_eq!(err.field, "routes[1].match.safe_regex.regex");
    let err = parse_host(vhost("", &["a"], vec![ok_route()]));
    assert_eq!(
        (err.resource.as_str(), err.field.as_str()),
        ("VirtualHost ", "name")
    );
    let err = parse_host(vhost("v", &["a", "A"], vec![ok_route()]));
    assert_eq!(err.field, "domains[1]");
    let err = parse_host(vhost("v", &[], vec![ok_route()]));
    assert_eq!(err.field, "domains");
    let err = parse_virtual_host(&pack_any(Router::default())).unwrap_err();
    assert_eq!(err.resource, "VirtualHost");
}
