use super::*;
use crate::model::Object;
use crate::translate::testutil::objects;

fn route(spec: &str) -> GrpcRoute {
    let yaml = format!(
        "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {{name: r, namespace: default}}\nspec:\n{spec}"
    );
    match objects(&yaml).remove(0) {
        Object::GrpcRoute(route) => route,
        _ => unreachable!(),
    }
}

fn fault_of(spec: &str) -> FaultInjection {
    let yaml = format!(
        "apiVersion: weft.dev/v1alpha1\nkind: FaultInjection\nmetadata: {{name: f, namespace: default}}\nspec:\n{spec}"
    );
    match objects(&yaml).remove(0) {
        Object::FaultInjection(fault) => fault,
        _ => unreachable!(),
    }
}

/// A route with one rule made of `rule` (YAML lines at rule level).
fn rule(rule: &str) -> GrpcRoute {
    route(&format!(
        "  parentRefs: [{{name: greeter}}]\n  rules:\n  - {rule}\n"
    ))
}

fn errors(route: &GrpcRoute) -> Vec<String> {
    grpc_route(route).unwrap_err()
}

const BACKEND: &str = "backendRefs: [{name: b, port: 1}]";

#[test]
fn a_valid_route_gives_its_values() {
    let values = grpc_route(&rule(&format!(
        "{BACKEND}\n    timeout: 2s\n    retry: {{attempts: 3, perTryTimeout: 500ms, codes: [UNAVAILABLE, UNAVAILABLE, INTERNAL]}}"
    )))
    .unwrap();
    assert_eq!(
        values,
        [RuleValues {
            timeout: Some(Duration::from_secs(2)),
            retry: Some(RetryValues {
                attempts: 3,
                per_try_timeout: Some(Duration::from_millis(500)),
                codes: vec![GrpcStatus::Unavailable, GrpcStatus::Internal],
                backoff: DEFAULT_BACKOFF,
            }),
        }]
    );
}

#[test]
fn zero_timeout_means_no_cap() {
    let values = grpc_route(&rule(&format!("{BACKEND}\n    timeout: 0s"))).unwrap();
    assert_eq!(values[0].timeout, None);
}

#[test]
fn regular_expressions_must_compile_for_re2() {
    let route = rule(&format!(
        "matches:\n    - method: {{service: a.B}}\n    - method: {{type: RegularExpression, method: '(?=Say)'}}\n    {BACKEND}"
    ));
    assert_eq!(
        errors(&route),
        [
            "spec.rules[0].matches[1].method.method: invalid regular expression: look-around, \
          including look-ahead and look-behind, is not supported"
        ]
    );
    let header = rule(&format!(
        "matches:\n    - headers: [{{name: x-a, type: RegularExpression, value: '(a'}}]\n    {BACKEND}"
    ));
    let err = &errors(&header)[0];
    assert!(
        err.starts_with("spec.rules[0].matches[0].headers[0].value: invalid regular expression:"),
        "{err}"
    );
    let big = rule(&format!(
        "matches:\n    - method: {{type: RegularExpression, service: '[a-z]{{90}}'}}\n    {BACKEND}"
    ));
    let err = &errors(&big)[0];
    assert!(
        err.starts_with("spec.rules[0].matches[0].method: invalid regular expression: too complex"),
        "{err}"
    );
}

#[test]
fn exact_names_must_be_protobuf_names() {
    let route = rule(&format!(
        "matches:\n    - method: {{service: 'hello world', method: ''}}\n    - method: {{}}\n    {BACKEND}"
    ));
    assert_eq!(
        errors(&route),
        [
            "spec.rules[0].matches[0].method.service: \"hello world\" is not a protobuf service name \
             (such as helloworld.Greeter / SayHello)",
            "spec.rules[0].matches[0].method.method: must not be empty",
            "spec.rules[0].matches[1].method: one or both of service and method must be set",
        ]
    );
}

#[test]
fn header_names_are_checked() {
    let route = rule(&format!(
        "matches:\n    - headers: [{{name: ':path', value: x}}, {{name: 'a b', value: x}}, {{name: X-A, value: ''}}, {{name: x-a, value: z}}]\n    {BACKEND}"
    ));
    assert_eq!(
        errors(&route),
        [
            "spec.rules[0].matches[0].headers[0].name: pseudo-headers (such as :path) cannot be matched",
            "spec.rules[0].matches[0].headers[1].name: \"a b\" is not a header name",
            "spec.rules[0].matches[0].headers[2].value: must not be empty",
            "spec.rules[0].matches[0].headers[3].name: x-a is matched twice",
        ]
    );
}

#[test]
fn weights_ports_and_names() {
    let zero = rule("backendRefs: [{name: a, port: 1, weight: 0}, {name: b, port: 1, weight: 0}]");
    assert_eq!(
        errors(&zero),
        ["spec.rules[0].backendRefs: at least one backendRef needs a weight above 0"]
    );
    let bad = rule("backendRefs: [{name: '', port: 0, weight: -1}, {name: b, port: 1}]");
    assert_eq!(
        errors(&bad),
        [
            "spec.rules[0].backendRefs[0].name: must not be empty",
            "spec.rules[0].backendRefs[0].port: 0 is not a port (1 to 65535)",
            "spec.rules[0].backendRefs[0].weight: -1 is not within 0 to 1000000",
        ]
    );
    let empty = route("  parentRefs: []\n  rules: []\n");
    assert_eq!(
        errors(&empty),
        [
            "spec.parentRefs: at least one parent Service is required",
            "spec.rules: at least one rule is required"
        ]
    );
    let no_backends = rule("backendRefs: []");
    assert_eq!(
        errors(&no_backends),
        ["spec.rules[0].backendRefs: at least one backendRef is required"]
    );
}

#[test]
fn durations_and_retries() {
    let route = rule(&format!(
        "{BACKEND}\n    timeout: 2 seconds\n    retry: {{attempts: 11, perTryTimeout: 0s, backoff: 1x, codes: [OK]}}"
    ));
    assert_eq!(
        errors(&route),
        [
            "spec.rules[0].timeout: \"2 seconds\" is not a duration like 250ms, 10s or 1h30m: each \
             number needs a unit: h, m, s or ms",
            "spec.rules[0].retry.attempts: 11 is not within 0 to 10",
            "spec.rules[0].retry.codes: OK is not a failure and cannot be retried",
            "spec.rules[0].retry.perTryTimeout: 0s must be longer than 0",
            "spec.rules[0].retry.backoff: \"1x\" is not a duration like 250ms, 10s or 1h30m: each \
             number needs a unit: h, m, s or ms",
        ]
    );
}

#[test]
fn a_valid_fault_gives_its_values() {
    let values = fault(&fault_of(
        "  targetRef: {kind: Service, name: greeter}\n  delay: {fixedDelay: 1s, percentage: 0.5}\n  \
         abort: {grpcStatus: UNAVAILABLE}",
    ))
    .unwrap();
    assert_eq!(values.delay, Some((Duration::from_secs(1), 0.5)));
    assert_eq!(
        values.abort,
        Some(AbortValues {
            status: GrpcStatus::Unavailable,
            percentage: 100.0,
            message: DEFAULT_ABORT_MESSAGE.into()
        })
    );
}

#[test]
fn fault_problems() {
    let bad = fault(&fault_of(
        "  targetRef: {kind: Service, name: ''}\n  match: {method: {type: RegularExpression, service: '(a)\\1'}}\n  \
         delay: {fixedDelay: 0s, percentage: 101}\n  abort: {grpcStatus: OK, percentage: -1}",
    ))
    .unwrap_err();
    assert_eq!(bad.len(), 6, "{bad:#?}");
    assert_eq!(bad[0], "spec.targetRef.name: must not be empty");
    assert!(
        bad[1].starts_with("spec.match.method.service: invalid regular expression: backreferences"),
        "{}",
        bad[1]
    );
    assert_eq!(bad[2], "spec.delay.fixedDelay: 0s must be longer than 0");
    assert_eq!(bad[3], "spec.delay.percentage: 101 is not within 0 to 100");
    assert_eq!(
        bad[4],
        "spec.abort.grpcStatus: an abort needs an error status, not OK"
    );
    assert_eq!(bad[5], "spec.abort.percentage: -1 is not within 0 to 100");
    let nothing = fault(&fault_of("  targetRef: {kind: Service, name: a}\n")).unwrap_err();
    assert_eq!(nothing, ["spec: set delay, abort or both"]);
}

/// A valid route with `web` made of `web` (YAML flow mapping).
fn web_route(web: &str) -> GrpcRoute {
    route(&format!(
        "  parentRefs: [{{name: greeter}}]\n  rules:\n  - {BACKEND}\n  web: {web}\n"
    ))
}

#[test]
fn web_access_with_services_and_cors_is_valid() {
    let route = web_route(
        "{services: [weft.test.Echo, Health], cors: {allowOrigins: ['https://app.example.com', 'http://127.0.0.1:8000', 'http://[::1]:80', '*'], allowHeaders: [authorization], exposeHeaders: [x-request-id], maxAge: 10m}}",
    );
    assert!(grpc_route(&route).is_ok(), "{:?}", grpc_route(&route));
}

#[test]
fn web_access_problems_name_their_fields() {
    let route = web_route(
        "{services: ['weft..Echo', a.B, a.B], cors: {allowOrigins: ['https://app.example.com/page', 'app.example.com'], allowHeaders: ['bad header'], maxAge: 10 minutes}}",
    );
    assert_eq!(
        errors(&route),
        [
            "spec.web.services[0]: \"weft..Echo\" is not a gRPC service name like helloworld.Greeter",
            "spec.web.services[2]: a.B is listed twice",
            "spec.web.cors.allowOrigins[0]: \"https://app.example.com/page\" is not an origin like https://app.example.com (scheme, host, optional port; no path) or \"*\"",
            "spec.web.cors.allowOrigins[1]: \"app.example.com\" is not an origin like https://app.example.com (scheme, host, optional port; no path) or \"*\"",
            "spec.web.cors.allowHeaders[0]: \"bad header\" is not an HTTP header name",
            "spec.web.cors.maxAge: \"10 minutes\" is not a duration like 250ms, 10s or 1h30m: each number needs a unit: h, m, s or ms",
        ]
    );
}
