use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;

use super::*;
use crate::translate::testutil::{GREETER, greeters, index, route_names, service_yaml};
use crate::translate::{Translation, translate};

fn route_yaml(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}"
    )
}

/// The greeters plus GrpcRoute `default/r` on greeter:50051 with one rule (`rule` at rule
/// level).
fn with_rule(rule: &str) -> Translation {
    let spec = format!("  parentRefs: [{{name: greeter, port: 50051}}]\n  rules:\n  - {rule}\n");
    translate(&index(&format!(
        "{}---\n{}",
        greeters(),
        route_yaml("default", "r", &spec)
    )))
}

fn action(route: &Route) -> &RouteAction {
    match &route.action {
        Some(Action::Route(action)) => action,
        other => panic!("not a route action: {other:?}"),
    }
}

const V1: &str = "outbound|50051||greeter-v1.default.svc.cluster.local";
const V2: &str = "outbound|50051||greeter-v2.default.svc.cluster.local";

#[test]
fn one_backend_is_a_cluster_several_are_weighted() {
    let single = with_rule("backendRefs: [{name: greeter-v1, port: 50051}]");
    let routes = single.routes(GREETER);
    assert_eq!(
        route_names(&routes),
        ["grpcroute:default/r:rules[0].matches[0]", "default"]
    );
    assert_eq!(
        action(&routes[0]).cluster_specifier,
        Some(ClusterSpecifier::Cluster(V1.into()))
    );
    assert_eq!(
        routes[0].r#match.as_ref().unwrap().path_specifier,
        Some(PathSpecifier::Prefix("/".into()))
    );

    let split = with_rule(
        "backendRefs: [{name: greeter-v1, port: 50051, weight: 90}, {name: greeter-v2, port: 50051, weight: 10}, \
         {name: greeter, port: 50051, weight: 0}]",
    );
    let split_routes = split.routes(GREETER);
    let Some(ClusterSpecifier::WeightedClusters(weighted)) =
        &action(&split_routes[0]).cluster_specifier
    else {
        panic!("not weighted");
    };
    let weights: Vec<(&str, u32)> = weighted
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    assert_eq!(weights, [(V1, 90), (V2, 10)], "zero weights are left out");
}

#[test]
fn every_route_keeps_streams_open_and_honours_grpc_timeout() {
    let t = with_rule("backendRefs: [{name: greeter-v1, port: 50051}]");
    for route in t.routes(GREETER) {
        let action = action(&route);
        assert_eq!(
            action.timeout,
            Some(ProtoDuration::default()),
            "{}",
            route.name
        );
        let max = action.max_stream_duration.unwrap();
        assert_eq!(max.grpc_timeout_header_max, Some(ProtoDuration::default()));
        assert_eq!(max.max_stream_duration, None);
    }
}

#[test]
fn a_rule_timeout_caps_the_deadline() {
    let t = with_rule("backendRefs: [{name: greeter-v1, port: 50051}]\n    timeout: 2500ms");
    let max = action(&t.routes(GREETER)[0]).max_stream_duration.unwrap();
    let expected = Some(ProtoDuration {
        seconds: 2,
        nanos: 500_000_000,
    });
    assert_eq!(max.max_stream_duration, expected);
    assert_eq!(max.grpc_timeout_header_max, expected);
}

#[test]
fn retries_map_to_envoy_retry_on() {
    let t = with_rule(
        "backendRefs: [{name: greeter-v1, port: 50051}]\n    \
         retry: {attempts: 3, perTryTimeout: 500ms, backoff: 50ms, codes: [UNAVAILABLE, CANCELLED, \
         DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED, UNKNOWN, ABORTED]}",
    );
    let policy = action(&t.routes(GREETER)[0]).retry_policy.clone().unwrap();
    assert_eq!(
        policy.retry_on,
        "unavailable,cancelled,deadline-exceeded,internal,resource-exhausted,\
         connect-failure,refused-stream",
        "the codes, then the requests that never reached the app"
    );
    assert_eq!(
        policy.num_retries,
        Some(UInt32Value { value: 3 }),
        "attempts means retries"
    );
    assert_eq!(
        policy.per_try_timeout,
        Some(ProtoDuration {
            seconds: 0,
            nanos: 500_000_000
        })
    );
    let back_off = policy.retry_back_off.unwrap();
    assert_eq!(
        back_off.base_interval,
        Some(ProtoDuration {
            seconds: 0,
            nanos: 50_000_000
        })
    );
    let report = t.report(Kind::GrpcRoute, "default", "r");
    assert_eq!(report.notes.len(), 1);
    assert!(
        report.notes[0]
            .starts_with("spec.rules[0].retry.codes: UNKNOWN, ABORTED cannot be retried"),
        "{report:?}"
    );
}

#[test]
fn no_retry_policy_without_attempts_or_retryable_codes() {
    let off = with_rule("backendRefs: [{name: greeter-v1, port: 50051}]\n    retry: {attempts: 0}");
    assert_eq!(action(&off.routes(GREETER)[0]).retry_policy, None);
    let unknown = with_rule(
        "backendRefs: [{name: greeter-v1, port: 50051}]\n    retry: {attempts: 2, codes: [UNKNOWN]}",
    );
    assert_eq!(action(&unknown.routes(GREETER)[0]).retry_policy, None);
    let defaults =
        with_rule("backendRefs: [{name: greeter-v1, port: 50051}]\n    retry: {attempts: 1}");
    let policy = action(&defaults.routes(GREETER)[0])
        .retry_policy
        .clone()
        .unwrap();
    assert_eq!(
        policy.retry_on,
        "unavailable,connect-failure,refused-stream"
    );
    assert_eq!(policy.per_try_timeout, None);
    assert_eq!(
        policy.retry_back_off.unwrap().base_interval,
        Some(ProtoDuration {
            seconds: 0,
            nanos: 25_000_000
        })
    );
}

#[test]
fn each_match_is_a_route() {
    let t = with_rule(
        "matches:\n    - method: {service: helloworld.Greeter, method: SayHello}\n    \
         - method: {service: helloworld.Greeter}\n      headers: [{name: x-canary, value: 'true'}]\n    \
         backendRefs: [{name: greeter-v2, port: 50051}]",
    );
    let routes = t.routes(GREETER);
    assert_eq!(
        route_names(&routes),
        [
            "grpcroute:default/r:rules[0].matches[0]",
            "grpcroute:default/r:rules[0].matches[1]",
            "default"
        ]
    );
    let second = routes[1].r#match.as_ref().unwrap();
    assert_eq!(
        second.path_specifier,
        Some(PathSpecifier::Prefix("/helloworld.Greeter/".into()))
    );
    assert_eq!(second.headers[0].name, "x-canary");
}

#[test]
fn a_missing_backend_leaves_its_rule_out() {
    let spec = "  parentRefs: [{name: greeter}]\n  rules:\n  \
        - backendRefs: [{name: greeter-v3, port: 50051}]\n  \
        - backendRefs: [{name: greeter-v1, port: 9}]\n  \
        - backendRefs: [{name: greeter-v1, port: 50051}, {name: gone, port: 1, weight: 0}]\n";
    let t = translate(&index(&format!(
        "{}---\n{}",
        greeters(),
        route_yaml("default", "r", spec)
    )));
    assert_eq!(
        route_names(&t.routes(GREETER)),
        ["grpcroute:default/r:rules[2].matches[0]", "default"]
    );
    let report = t.report(Kind::GrpcRoute, "default", "r");
    assert_eq!(report.accepted, Ok(()));
    assert_eq!(
        report.resolved_refs,
        Err("spec.rules[0].backendRefs[0]: Service default/greeter-v3 not found; rule 0 is left out; \
             spec.rules[1].backendRefs[0].port: Service default/greeter-v1 has no port 9; rule 1 is left out; \
             spec.rules[2].backendRefs[1]: Service default/gone not found"
            .into())
    );
}

#[test]
fn missing_parents_are_reported_and_others_still_served() {
    let spec = "  parentRefs: [{name: nowhere}, {name: greeter, port: 1234}, {name: greeter-v1}]\n  rules:\n  \
        - backendRefs: [{name: greeter-v2, port: 50051}]\n";
    let t = translate(&index(&format!(
        "{}---\n{}",
        greeters(),
        route_yaml("default", "r", spec)
    )));
    let report = t.report(Kind::GrpcRoute, "default", "r");
    assert_eq!(report.accepted, Ok(()));
    assert_eq!(
        report.resolved_refs,
        Err("spec.parentRefs[0]: no Service default/nowhere; \
             spec.parentRefs[1].port: Service default/greeter has no port 1234"
            .into())
    );
    assert_eq!(route_names(&t.routes(GREETER)), ["default"]);
    let v1 = t.routes("greeter-v1.default.svc.cluster.local:50051");
    assert_eq!(
        route_names(&v1),
        ["grpcroute:default/r:rules[0].matches[0]", "default"]
    );
}

#[test]
fn an_invalid_route_is_left_out_and_others_still_translate() {
    let bad = "  parentRefs: [{name: greeter}]\n  rules:\n  \
        - matches: [{method: {type: RegularExpression, method: '(?=x)'}}]\n    \
          backendRefs: [{name: greeter-v1, port: 50051}]\n";
    let good = "  parentRefs: [{name: greeter}]\n  rules:\n  - backendRefs: [{name: greeter-v2, port: 50051}]\n";
    let yaml = format!(
        "{}---\n{}---\n{}",
        greeters(),
        route_yaml("default", "a-bad", bad),
        route_yaml("default", "b-good", good)
    );
    let t = translate(&index(&yaml));
    assert!(
        t.report(Kind::GrpcRoute, "default", "a-bad")
            .accepted
            .is_err()
    );
    assert_eq!(
        t.report(Kind::GrpcRoute, "default", "b-good").accepted,
        Ok(())
    );
    assert_eq!(
        route_names(&t.routes(GREETER)),
        ["grpcroute:default/b-good:rules[0].matches[0]", "default"]
    );
}

#[test]
fn routes_on_one_parent_go_in_name_order_consumers_first() {
    let rule = |ns: &str| {
        format!(
            "  parentRefs: [{{name: greeter, namespace: default}}]\n  rules:\n  \
             - backendRefs: [{{name: greeter-v1, namespace: default, port: 50051}}]\n  # {ns}\n"
        )
    };
    let yaml = [
        greeters(),
        service_yaml("team-a", "web", &[("http", 8080)]),
        route_yaml("default", "zeta", &rule("default")),
        route_yaml("default", "alpha", &rule("default")),
        route_yaml("team-a", "mine", &rule("team-a")),
    ]
    .join("---\n");
    let t = translate(&index(&yaml));
    assert_eq!(
        route_names(&t.routes(GREETER)),
        [
            "grpcroute:default/alpha:rules[0].matches[0]",
            "grpcroute:default/zeta:rules[0].matches[0]",
            "default"
        ],
        "producer routes only, in the Service's namespace"
    );
    let team_a = t.vhost("team-a", GREETER).routes;
    assert_eq!(
        route_names(&team_a),
        [
            "grpcroute:team-a/mine:rules[0].matches[0]",
            "grpcroute:default/alpha:rules[0].matches[0]",
            "grpcroute:default/zeta:rules[0].matches[0]",
            "default"
        ],
        "a consumer route applies to its own namespace, first"
    );
}
