//! Tests of the per-RPC lookups: virtual host by authority, route by path and headers, and
//! metric labels.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, RouteMatch as EnvoyMatch, VirtualHost as EnvoyVirtualHost,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::util::pack_any;
use http::{HeaderMap, HeaderValue};

use super::strip_port;
use crate::config::test_protos::*;
use crate::config::{NamedMethods, RouteTable, parse_route_config};

fn table(virtual_hosts: Vec<EnvoyVirtualHost>) -> RouteTable {
    parse_route_config(&pack_any(route_config("r", virtual_hosts))).unwrap()
}

/// A virtual host `name` with one catch-all route.
fn host(name: &str, domains: &[&str]) -> EnvoyVirtualHost {
    vhost(
        name,
        domains,
        vec![route(name, prefix("/"), to_cluster(name))],
    )
}

/// The virtual host chosen for `authority`.
fn vhost_for<'t>(table: &'t RouteTable, authority: &str) -> Option<&'t str> {
    table
        .select(authority, "/p.S/M", &HeaderMap::new())
        .map(|d| d.virtual_host.name.as_str())
}

#[test]
fn exact_and_port_stripped_authorities() {
    let t = table(vec![
        host("greeter", &["greeter:50051", "greeter"]),
        host("local", &["localhost"]),
        host("v6", &["[::1]"]),
    ]);
    assert_eq!(vhost_for(&t, "greeter:50051"), Some("greeter"));
    assert_eq!(vhost_for(&t, "greeter"), Some("greeter"));
    assert_eq!(vhost_for(&t, "GREETER:50051"), Some("greeter"));
    assert_eq!(vhost_for(&t, "greeter:7"), Some("greeter"));
    assert_eq!(vhost_for(&t, "localhost:15001"), Some("local"));
    assert_eq!(vhost_for(&t, "[::1]:80"), Some("v6"));
    assert_eq!(vhost_for(&t, "other"), None);
    assert_eq!(vhost_for(&t, ""), None);
}

/// The virtual host chosen for `authority` on a connection redirected from `original_dst`.
fn intercepted<'t>(table: &'t RouteTable, authority: &str, original_dst: &str) -> Option<&'t str> {
    table
        .select_intercepted(
            authority,
            Some(original_dst.parse().unwrap()),
            "/p.S/M",
            &HeaderMap::new(),
        )
        .map(|d| d.virtual_host.name.as_str())
}

#[test]
fn an_unknown_authority_routes_by_the_original_destination() {
    // As weft-controller lists a Service with cluster IP 192.0.2.10 and ports 50051, 8080.
    let t = table(vec![
        host(
            "greeter:50051",
            &["greeter:50051", "192.0.2.10:50051", "greeter", "192.0.2.10"],
        ),
        host("greeter:8080", &["greeter:8080", "192.0.2.10:8080"]),
        host("v6", &["[2001:db8::10]:50051"]),
    ]);
    // The authority wins when it names a Service (whatever was dialled).
    assert_eq!(
        intercepted(&t, "greeter:8080", "192.0.2.10:50051"),
        Some("greeter:8080")
    );
    // A client that named the address gets it through the domains already.
    assert_eq!(
        intercepted(&t, "192.0.2.10:50051", "192.0.2.10:50051"),
        Some("greeter:50051")
    );
    // An unknown name: the original destination, port included.
    assert_eq!(
        intercepted(&t, "greeter.example.com", "192.0.2.10:50051"),
        Some("greeter:50051")
    );
    assert_eq!(
        intercepted(&t, "greeter.example.com:8080", "192.0.2.10:8080"),
        Some("greeter:8080")
    );
    assert_eq!(intercepted(&t, "", "[2001:db8::10]:50051"), Some("v6"));
    // Exactly: another port of the cluster IP is not the first port's Service, and an
    // address no Service has is no route.
    assert_eq!(intercepted(&t, "x", "192.0.2.10:9999"), None);
    assert_eq!(intercepted(&t, "x", "192.0.2.11:50051"), None);
    // Without interception nothing changes.
    assert_eq!(vhost_for(&t, "greeter.example.com"), None);
}

#[test]
fn a_catch_all_comes_after_the_original_destination() {
    let t = table(vec![
        host("greeter", &["greeter:50051", "192.0.2.10:50051"]),
        host("any", &["*"]),
    ]);
    assert_eq!(intercepted(&t, "x", "192.0.2.10:50051"), Some("greeter"));
    assert_eq!(intercepted(&t, "x", "192.0.2.99:50051"), Some("any"));
    assert_eq!(vhost_for(&t, "x"), Some("any"));
}

#[test]
fn strip_port_keeps_hosts_without_ports() {
    assert_eq!(strip_port("a:1"), "a");
    assert_eq!(strip_port("a"), "a");
    assert_eq!(strip_port("a:"), "a:");
    assert_eq!(strip_port("a:x"), "a:x");
    assert_eq!(strip_port("[::1]:8080"), "[::1]");
    assert_eq!(strip_port("[::1]"), "[::1]");
    assert_eq!(strip_port("::1"), "::1");
    assert_eq!(strip_port("fe80::1:80"), "fe80::1:80");
}

#[test]
fn wildcards_longest_suffix_then_longest_prefix_then_star() {
    let t = table(vec![
        host("suffix", &["*.example.com"]),
        host("longer-suffix", &["*-bar.example.com"]),
        host("prefix", &["api.*"]),
        host("longer-prefix", &["api.internal.*"]),
        host("star", &["*"]),
        host("exact", &["a.example.com"]),
    ]);
    assert_eq!(vhost_for(&t, "a.example.com"), Some("exact"));
    assert_eq!(vhost_for(&t, "b.example.com"), Some("suffix"));
    assert_eq!(vhost_for(&t, "foo-bar.example.com"), Some("longer-suffix"));
    assert_eq!(vhost_for(&t, "b.example.com:443"), Some("suffix"));
    // The wildcard stands for at least one character.
    assert_eq!(vhost_for(&t, "example.com"), Some("star"));
    assert_eq!(vhost_for(&t, ".example.com"), Some("star"));
    assert_eq!(vhost_for(&t, "api.x"), Some("prefix"));
    assert_eq!(vhost_for(&t, "api.internal.x"), Some("longer-prefix"));
    // Suffix wildcards beat prefix wildcards.
    assert_eq!(vhost_for(&t, "api.example.com"), Some("suffix"));
    assert_eq!(vhost_for(&t, "elsewhere"), Some("star"));
    assert_eq!(vhost_for(&t, "ELSEWHERE:1"), Some("star"));
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// The name of the route chosen in a one-host table of `routes`.
fn route_for(t: &RouteTable, path: &str, pairs: &[(&str, &str)]) -> Option<String> {
    t.select("a", path, &headers(pairs))
        .map(|d| d.route.name.clone())
}

fn with_headers(mut m: EnvoyMatch, matchers: Vec<HeaderMatcher>) -> EnvoyMatch {
    m.headers = matchers;
    m
}

#[test]
fn the_first_matching_route_wins() {
    let t = table(vec![vhost(
        "v",
        &["a"],
        vec![
            route("exact", exact_path("/p.S/M"), to_cluster("c")),
            route("service", prefix("/p.S/"), to_cluster("c")),
            route("regex", regex_path("/q\\.[A-Z]/.*"), to_cluster("c")),
            route("all", prefix("/"), to_cluster("c")),
            route("never", prefix("/p.S/"), to_cluster("c")),
        ],
    )]);
    assert_eq!(route_for(&t, "/p.S/M", &[]).as_deref(), Some("exact"));
    assert_eq!(route_for(&t, "/p.S/M?x=1", &[]).as_deref(), Some("exact"));
    assert_eq!(route_for(&t, "/p.S/N", &[]).as_deref(), Some("service"));
    assert_eq!(route_for(&t, "/q.T/N", &[]).as_deref(), Some("regex"));
    // Regexes match the whole path.
    assert_eq!(route_for(&t, "/x/q.T/N", &[]).as_deref(), Some("all"));
    assert_eq!(route_for(&t, "/q.TT/N", &[]).as_deref(), Some("all"));
    assert_eq!(route_for(&t, "/q.T/N?a=b", &[]).as_deref(), Some("regex"));
}

#[test]
fn no_route_matches() {
    let t = table(vec![vhost(
        "v",
        &["a"],
        vec![route("only", prefix("/p.S/"), to_cluster("c"))],
    )]);
    assert_eq!(route_for(&t, "/q.S/M", &[]), None);
}

#[test]
fn header_matchers_all_must_accept() {
    let canary = exact_header("x-canary", "true");
    let mut not_debug = string_header("x-debug", MatchPattern::Prefix("on".into()));
    not_debug.invert_match = true;
    let absent = HeaderMatcher {
        name: "x-absent".into(),
        header_match_specifier: Some(HeaderMatchSpecifier::PresentMatch(false)),
        ..Default::default()
    };
    let t = table(vec![vhost(
        "v",
        &["a"],
        vec![
            route(
                "canary",
                with_headers(prefix("/"), vec![canary, not_debug]),
                to_cluster("c"),
            ),
            route(
                "absent",
                with_headers(prefix("/"), vec![absent]),
                to_cluster("c"),
            ),
            route("rest", prefix("/"), to_cluster("c")),
        ],
    )]);
    let pick = |pairs: &[(&str, &str)]| route_for(&t, "/p.S/M", pairs).unwrap();
    // A missing x-debug fails its inverted value matcher too (Envoy's rule).
    assert_eq!(pick(&[("x-canary", "true")]), "absent");
    assert_eq!(pick(&[("x-canary", "true"), ("x-debug", "off")]), "canary");
    assert_eq!(pick(&[("x-canary", "true"), ("x-debug", "on!")]), "absent");
    assert_eq!(pick(&[("x-canary", "false")]), "absent");
    assert_eq!(pick(&[("x-absent", "")]), "rest");
    assert_eq!(pick(&[("x-absent", "1"), ("x-canary", "TRUE")]), "rest");
}

#[test]
fn an_inverted_value_matcher_needs_the_header() {
    let mut not_v1 = exact_header("x-version", "v1");
    not_v1.invert_match = true;
    let t = table(vec![vhost(
        "v",
        &["a"],
        vec![
            route(
                "not-v1",
                with_headers(prefix("/"), vec![not_v1]),
                to_cluster("c"),
            ),
            route("rest", prefix("/"), to_cluster("c")),
        ],
    )]);
    assert_eq!(
        route_for(&t, "/", &[("x-version", "v2")]).unwrap(),
        "not-v1"
    );
    assert_eq!(route_for(&t, "/", &[("x-version", "v1")]).unwrap(), "rest");
    // Envoy: a missing header fails a value matcher, inverted or not.
    assert_eq!(route_for(&t, "/", &[]).unwrap(), "rest");
}

#[test]
fn pseudo_headers_and_repeated_headers() {
    let t = table(vec![vhost(
        "v",
        &["a", "a:80"],
        vec![
            route(
                "path",
                with_headers(prefix("/"), vec![exact_header(":path", "/p.S/M")]),
                to_cluster("c"),
            ),
            route(
                "authority",
                with_headers(prefix("/"), vec![exact_header(":authority", "a:80")]),
                to_cluster("c"),
            ),
            route(
                "joined",
                with_headers(prefix("/"), vec![exact_header("x-list", "1,2")]),
                to_cluster("c"),
            ),
            route(
                "method",
                with_headers(prefix("/"), vec![exact_header(":method", "POST")]),
                to_cluster("c"),
            ),
        ],
    )]);
    let pick = |authority: &str, path: &str, pairs: &[(&str, &str)]| {
        t.select(authority, path, &headers(pairs))
            .map(|d| d.route.name.clone())
            .unwrap()
    };
    assert_eq!(pick("a", "/p.S/M", &[]), "path");
    assert_eq!(pick("a:80", "/p.S/N", &[]), "authority");
    assert_eq!(
        pick("a", "/p.S/N", &[("x-list", "1"), ("x-list", "2")]),
        "joined"
    );
    assert_eq!(pick("a", "/p.S/N", &[("x-list", "1")]), "method");
}

#[test]
fn selects_the_controllers_demo_routes() {
    let t = parse_route_config(&pack_any(demo_route_config())).unwrap();
    let pick = |authority: &str, path: &str| {
        let decision = t.select(authority, path, &HeaderMap::new()).unwrap();
        (
            decision.virtual_host.name.clone(),
            decision.route.name.clone(),
        )
    };
    let rule = "grpcroute:default/greeter:rules[0].matches[0]";
    let greeter = "greeter.default.svc.cluster.local:50051";
    assert_eq!(
        pick("greeter:50051", "/weft.test.Echo/Unary"),
        (
            greeter.into(),
            format!("{rule}+fault:default/greeter-chaos")
        )
    );
    assert_eq!(
        pick(
            "greeter.default.svc.cluster.local",
            "/weft.test.Echo/Stream"
        ),
        (greeter.into(), rule.into())
    );
    assert_eq!(
        pick("greeter.default", "/other.Svc/Unary"),
        (greeter.into(), "default".into())
    );
    assert_eq!(
        pick("greeter-v1:50051", "/weft.test.Echo/Unary"),
        (
            "greeter-v1.default.svc.cluster.local:50051".into(),
            "default".into()
        )
    );
    assert!(
        t.select("unknown:50051", "/a/b", &HeaderMap::new())
            .is_none()
    );
}

#[test]
fn labels_name_only_what_routes_name() {
    let named = NamedMethods {
        services: BTreeSet::from(["pkg.Svc".to_owned(), "pkg.Other".to_owned()]),
        methods: BTreeSet::from(["pkg.Svc/M".to_owned()]),
    };
    assert_eq!(named.labels("/pkg.Svc/M"), ("pkg.Svc", "M"));
    assert_eq!(named.labels("/pkg.Svc/M?x"), ("pkg.Svc", "M"));
    assert_eq!(named.labels("/pkg.Svc/N"), ("pkg.Svc", "other"));
    assert_eq!(named.labels("/pkg.Other/M"), ("pkg.Other", "other"));
    assert_eq!(named.labels("/pkg.Unknown/M"), ("other", "other"));
    for malformed in [
        "",
        "/",
        "pkg.Svc/M",
        "/pkg.Svc",
        "/pkg.Svc/",
        "//M",
        "/pkg.Svc/M/x",
    ] {
        assert_eq!(named.labels(malformed), ("other", "other"), "{malformed:?}");
    }
    assert_eq!(
        NamedMethods::default().labels("/pkg.Svc/M"),
        ("other", "other")
    );
}
