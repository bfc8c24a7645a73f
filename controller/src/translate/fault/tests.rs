use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;

use super::*;
use crate::translate::testutil::{GREETER, decode, greeters, index, route_names};
use crate::translate::{Translation, translate};

const ROUTE: &str = "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\n\
    metadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: greeter}]\n  rules:\n  \
    - matches: [{method: {service: helloworld.Greeter}}]\n    backendRefs: [{name: greeter-v1, port: 50051}]\n";

fn fault_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: FaultInjection\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{spec}"
    )
}

fn with_faults_yaml(faults: &[String]) -> Translation {
    let mut docs = vec![greeters(), ROUTE.to_string()];
    docs.extend(faults.iter().cloned());
    translate(&index(&docs.join("---\n")))
}

fn fault_of(route: &Route) -> HttpFault {
    decode(&route.typed_per_filter_config[FAULT_FILTER])
}

#[test]
fn a_service_fault_precedes_every_route_of_its_virtual_hosts() {
    let t = with_faults_yaml(&[fault_yaml(
        "chaos",
        "  targetRef: {kind: Service, name: greeter}\n  \
         delay: {fixedDelay: 1500ms, percentage: 0.5}\n  \
         abort: {grpcStatus: UNAVAILABLE, message: injected, percentage: 5}\n",
    )]);
    let routes = t.routes(GREETER);
    assert_eq!(
        route_names(&routes),
        [
            "grpcroute:default/r:rules[0].matches[0]+fault:default/chaos",
            "grpcroute:default/r:rules[0].matches[0]",
            "default+fault:default/chaos",
            "default",
        ]
    );
    assert_eq!(
        routes[0].r#match, routes[1].r#match,
        "no fault match: the original match"
    );
    assert_eq!(routes[0].action, routes[1].action);
    assert!(routes[1].typed_per_filter_config.is_empty());
    let fault = fault_of(&routes[0]);
    let delay = fault.delay.unwrap();
    assert_eq!(
        delay.fault_delay_secifier,
        Some(FaultDelaySecifier::FixedDelay(ProtoDuration {
            seconds: 1,
            nanos: 500_000_000
        }))
    );
    assert_eq!(
        delay.percentage,
        Some(FractionalPercent {
            numerator: 5_000,
            denominator: DenominatorType::Million as i32
        })
    );
    let abort = fault.abort.unwrap();
    assert_eq!(abort.error_type, Some(ErrorType::GrpcStatus(14)));
    assert_eq!(
        abort.response_body, "injected",
        "Envoy sends it as grpc-message"
    );
    assert_eq!(
        abort.percentage,
        Some(FractionalPercent {
            numerator: 50_000,
            denominator: DenominatorType::Million as i32
        })
    );
    let report = t.report(Kind::FaultInjection, "default", "chaos");
    assert_eq!(
        (&report.accepted, &report.resolved_refs),
        (&Ok(()), &Ok(()))
    );
    let v1 = t.routes("greeter-v1.default.svc.cluster.local:50051");
    assert_eq!(
        route_names(&v1),
        ["default"],
        "a Service fault is about RPCs addressed to it"
    );
}

#[test]
fn the_fault_match_narrows_each_copy() {
    let t = with_faults_yaml(&[fault_yaml(
        "chaos",
        "  targetRef: {kind: Service, name: greeter}\n  \
         match:\n    method: {method: SayHello}\n    headers: [{name: x-chaos, value: 'on'}]\n  \
         abort: {grpcStatus: INTERNAL}\n",
    )]);
    let routes = t.routes(GREETER);
    let copy = routes[0].r#match.as_ref().unwrap();
    let original = routes[1].r#match.as_ref().unwrap();
    assert_eq!(copy.path_specifier, original.path_specifier);
    let headers: Vec<(&str, &Option<HeaderMatchSpecifier>)> = copy
        .headers
        .iter()
        .map(|h| (h.name.as_str(), &h.header_match_specifier))
        .collect();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[0].0, ":path");
    let Some(HeaderMatchSpecifier::StringMatch(path)) = headers[0].1 else {
        panic!()
    };
    assert!(
        matches!(&path.match_pattern, Some(MatchPattern::SafeRegex(r)) if r.regex == "/[^/]+/SayHello")
    );
    assert_eq!(headers[1].0, "x-chaos");
    let abort = fault_of(&routes[0]).abort.unwrap();
    assert_eq!(
        abort.response_body, "fault injected by weft",
        "the default message"
    );
    assert_eq!(abort.percentage.unwrap().numerator, 1_000_000);
}

#[test]
fn a_route_fault_copies_only_that_routes_entries_and_comes_first() {
    let t = with_faults_yaml(&[
        fault_yaml(
            "on-route",
            "  targetRef: {kind: GrpcRoute, name: r}\n  delay: {fixedDelay: 1s}\n",
        ),
        fault_yaml(
            "a-on-service",
            "  targetRef: {kind: Service, name: greeter}\n  delay: {fixedDelay: 2s}\n",
        ),
    ]);
    assert_eq!(
        route_names(&t.routes(GREETER)),
        [
            "grpcroute:default/r:rules[0].matches[0]+fault:default/on-route",
            "grpcroute:default/r:rules[0].matches[0]+fault:default/a-on-service",
            "grpcroute:default/r:rules[0].matches[0]",
            "default+fault:default/a-on-service",
            "default",
        ]
    );
}

#[test]
fn faults_on_the_same_target_are_noted() {
    let t = with_faults_yaml(&[
        fault_yaml(
            "a",
            "  targetRef: {kind: Service, name: greeter}\n  delay: {fixedDelay: 1s}\n",
        ),
        fault_yaml(
            "b",
            "  targetRef: {kind: Service, name: greeter}\n  delay: {fixedDelay: 2s}\n",
        ),
    ]);
    assert!(
        t.report(Kind::FaultInjection, "default", "a")
            .notes
            .is_empty()
    );
    let b = &t.report(Kind::FaultInjection, "default", "b").notes;
    assert!(
        b[0].starts_with("FaultInjection default/a has the same target"),
        "{b:?}"
    );
}

#[test]
fn faults_on_disjoint_methods_of_one_target_are_not_said_to_hide_each_other() {
    let on = |name: &str, method: &str| {
        fault_yaml(
            name,
            &format!(
                "  targetRef: {{kind: Service, name: greeter}}\n  \
                 match: {{method: {{service: helloworld.Greeter, method: {method}}}}}\n  \
                 delay: {{fixedDelay: 1s}}\n"
            ),
        )
    };
    let t = with_faults_yaml(&[
        on("a", "SayHello"),
        on("b", "SayGoodbye"),
        on("c", "SayHello"),
    ]);
    let notes = |name: &str| {
        t.report(Kind::FaultInjection, "default", name)
            .notes
            .clone()
    };
    assert!(
        notes("a").is_empty() && notes("b").is_empty(),
        "{:?}",
        notes("b")
    );
    let c = notes("c");
    assert!(
        c.len() == 1 && c[0].starts_with("FaultInjection default/a has the same target"),
        "{c:?}"
    );
}

#[test]
fn missing_or_invalid_targets_and_invalid_faults_are_left_out() {
    let bad_route = "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\n\
        metadata: {name: bad, namespace: default}\nspec:\n  parentRefs: [{name: greeter}]\n  rules:\n  \
        - backendRefs: [{name: greeter-v1, port: 50051, weight: 0}]\n";
    let t = with_faults_yaml(&[
        bad_route.to_string(),
        fault_yaml(
            "no-service",
            "  targetRef: {kind: Service, name: nope}\n  delay: {fixedDelay: 1s}\n",
        ),
        fault_yaml(
            "no-route",
            "  targetRef: {kind: GrpcRoute, name: nope}\n  delay: {fixedDelay: 1s}\n",
        ),
        fault_yaml(
            "bad-route",
            "  targetRef: {kind: GrpcRoute, name: bad}\n  delay: {fixedDelay: 1s}\n",
        ),
        fault_yaml(
            "invalid",
            "  targetRef: {kind: Service, name: greeter}\n  delay: {fixedDelay: 1s, percentage: 200}\n",
        ),
    ]);
    let refs = |name| {
        t.report(Kind::FaultInjection, "default", name)
            .resolved_refs
            .clone()
    };
    assert_eq!(
        refs("no-service"),
        Err("spec.targetRef: no Service default/nope".into())
    );
    assert_eq!(
        refs("no-route"),
        Err("spec.targetRef: no GrpcRoute default/nope".into())
    );
    assert_eq!(
        refs("bad-route"),
        Err("spec.targetRef: GrpcRoute default/bad is not accepted".into())
    );
    let invalid = t.report(Kind::FaultInjection, "default", "invalid");
    assert_eq!(
        invalid.accepted,
        Err("spec.delay.percentage: 200 is not within 0 to 100".into())
    );
    assert_eq!(
        route_names(&t.routes(GREETER)),
        ["grpcroute:default/r:rules[0].matches[0]", "default"]
    );
}

#[test]
fn per_million_keeps_fractions() {
    assert_eq!(per_million(0.0001).numerator, 1);
    assert_eq!(per_million(12.5).numerator, 125_000);
    assert_eq!(per_million(100.0).numerator, 1_000_000);
}
