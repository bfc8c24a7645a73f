//! Tests of route match conversion: case-insensitive and path-separated prefixes, and the
//! services and methods matches name.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::route::v3::RouteMatch as EnvoyMatch;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use crate::config::test_protos::*;
use crate::config::{PathMatch, RouteTable, parse_route_config};

fn parse(config: envoy_types::pb::envoy::config::route::v3::RouteConfiguration) -> RouteTable {
    parse_route_config(&pack_any(config)).unwrap()
}

#[test]
fn case_insensitive_and_path_separated_prefixes_become_regexes() {
    let mut caseless = prefix("/Pkg.Svc/");
    caseless.case_sensitive = Some(BoolValue { value: false });
    let separated = EnvoyMatch {
        path_specifier: Some(PathSpecifier::PathSeparatedPrefix("/api".into())),
        ..Default::default()
    };
    let table = parse(route_config(
        "r",
        vec![vhost(
            "v",
            &["a"],
            vec![
                route("caseless", caseless, to_cluster("c")),
                route("separated", separated, to_cluster("c")),
            ],
        )],
    ));
    let regex = |i: usize| match &table.virtual_hosts[0].routes[i].matcher.path {
        PathMatch::Regex(re) => re.clone(),
        other => panic!("{other:?}"),
    };
    assert!(regex(0).is_match("/pkg.svc/M"));
    assert!(!regex(0).is_match("/x/pkg.svc/M"));
    assert!(regex(1).is_match("/api"));
    assert!(regex(1).is_match("/api/v1"));
    assert!(!regex(1).is_match("/apiv1"));
    // Case-insensitive routes name nothing: labels are looked up case-sensitively.
    assert!(table.named.services.is_empty());
}

#[test]
fn names_services_and_methods_from_paths_and_path_headers() {
    let mut header_named = regex_path("/[^/]+/Check");
    header_named.headers.push(exact_header(":path", "/a.B/Get"));
    let mut inverted = prefix("/");
    inverted
        .headers
        .push(string_header(":path", MatchPattern::Prefix("/c.D/".into())));
    inverted.headers[0].invert_match = true;
    let mut prefix_header = prefix("/");
    prefix_header
        .headers
        .push(string_header(":path", MatchPattern::Prefix("/e.F/".into())));
    let routes = vec![
        route("1", exact_path("/x.Y/Z"), to_cluster("c")),
        route("2", prefix("/s.T/"), to_cluster("c")),
        route(
            "3",
            regex_path("/(?:helloworld\\..*)/(?:Say.*)"),
            to_cluster("c"),
        ),
        route("4", header_named, to_cluster("c")),
        route("5", inverted, to_cluster("c")),
        route("6", prefix_header, to_cluster("c")),
        route("7", prefix("/not/a/service/"), to_cluster("c")),
        route("8", exact_path("/malformed"), to_cluster("c")),
    ];
    let table = parse(route_config("r", vec![vhost("v", &["a"], routes)]));
    let set = |items: &[&str]| {
        items
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(table.named.services, set(&["a.B", "e.F", "s.T", "x.Y"]));
    assert_eq!(table.named.methods, set(&["a.B/Get", "x.Y/Z"]));
}
