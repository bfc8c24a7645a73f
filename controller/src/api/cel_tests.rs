//! The CRDs' CEL rules, evaluated client-side with kube-cel (the engine behind kube's `cel`
//! feature) on whole objects: every rule compiles, valid objects pass, and each broken object
//! fails with the rule's message at the right field. OpenAPI keywords (ranges, enums,
//! patterns, sizes) are not evaluated by kube-cel; `schema_tests` checks they are present.

use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;

fn schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions[0].schema.as_ref().unwrap();
    serde_json::to_value(schema.open_api_v3_schema.as_ref().unwrap()).unwrap()
}

/// The `field: message` of each failed rule, or nothing when the object passes.
fn cel_failures<K: CustomResourceExt>(object: &Value) -> Vec<String> {
    match kube_cel::Validator::new().validate(&schema::<K>(), object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn route(rule: Value) -> Value {
    json!({
        "apiVersion": API_VERSION, "kind": "GrpcRoute",
        "metadata": {"name": "greeter", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "greeter", "port": 50051}], "rules": [rule]},
    })
}

fn rule_with_method(method: Value) -> Value {
    json!({"matches": [{"method": method}], "backendRefs": [{"name": "v1", "port": 50051}]})
}

fn fault(spec: Value) -> Value {
    json!({
        "apiVersion": API_VERSION, "kind": "FaultInjection",
        "metadata": {"name": "chaos", "namespace": "default"}, "spec": spec,
    })
}

/// Asserts exactly one failure, naming `field` and containing `message`.
fn assert_fails(failures: Vec<String>, field: &str, message: &str) {
    assert_eq!(failures.len(), 1, "expected one failure, got {failures:?}");
    let failure = &failures[0];
    assert!(failure.contains(field), "{failure:?} should name {field}");
    assert!(
        failure.contains(message),
        "{failure:?} should say {message:?}"
    );
}

#[test]
fn every_rule_compiles() {
    for (kind, schema) in [
        ("GrpcRoute", schema::<GrpcRoute>()),
        ("FaultInjection", schema::<FaultInjection>()),
        ("MtlsPolicy", schema::<MtlsPolicy>()),
        ("BackendPolicy", schema::<BackendPolicy>()),
    ] {
        let compiled = kube_cel::compile_schema(&schema);
        let errors: Vec<String> = compiled
            .compilation_errors()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{kind}: {errors:?}");
    }
}

#[test]
fn valid_route_passes() {
    let rule = json!({
        "matches": [
            {"method": {"service": "helloworld.Greeter", "method": "SayHello"},
             "headers": [{"name": "x-canary", "value": "true"}]},
            {"method": {"type": "RegularExpression", "service": "helloworld\\..*"}},
            {"method": {"method": "SayHello"}},
        ],
        "backendRefs": [{"name": "v2", "port": 50051, "weight": 0}, {"name": "v1", "port": 50051}],
        "timeout": "2s",
        "retry": {"attempts": 3, "perTryTimeout": "500ms", "codes": ["UNAVAILABLE", "INTERNAL"]},
    });
    assert_eq!(
        cel_failures::<GrpcRoute>(&route(rule)),
        Vec::<String>::new()
    );
}

#[test]
fn method_match_needs_service_or_method() {
    let failures = cel_failures::<GrpcRoute>(&route(rule_with_method(json!({"type": "Exact"}))));
    assert_fails(
        failures,
        "spec.rules[0].matches[0].method",
        "one or both of service and method",
    );
}

#[test]
fn exact_names_must_be_protobuf_names() {
    let bad_service = rule_with_method(json!({"service": "helloworld..Greeter"}));
    let failures = cel_failures::<GrpcRoute>(&route(bad_service));
    assert_fails(
        failures,
        "matches[0].method.service",
        "fully qualified protobuf service name",
    );

    let bad_method = rule_with_method(json!({"service": "a.B", "method": "Say-Hello"}));
    let failures = cel_failures::<GrpcRoute>(&route(bad_method));
    assert_fails(failures, "matches[0].method.method", "protobuf method name");

    let regex = rule_with_method(json!({"type": "RegularExpression", "method": "Say.*"}));
    assert_eq!(
        cel_failures::<GrpcRoute>(&route(regex)),
        Vec::<String>::new()
    );
}

#[test]
fn some_backend_needs_weight() {
    let rule = json!({"backendRefs": [
        {"name": "v1", "port": 50051, "weight": 0},
        {"name": "v2", "port": 50051, "weight": 0},
    ]});
    let failures = cel_failures::<GrpcRoute>(&route(rule));
    assert_fails(failures, "spec.rules[0].backendRefs", "weight above 0");
}

#[test]
fn retry_codes_exclude_ok() {
    let rule = json!({
        "backendRefs": [{"name": "v1", "port": 50051}],
        "retry": {"attempts": 2, "codes": ["UNAVAILABLE", "OK"]},
    });
    let failures = cel_failures::<GrpcRoute>(&route(rule));
    assert_fails(failures, "spec.rules[0].retry.codes", "OK is not a failure");
}

#[test]
fn fault_needs_delay_or_abort() {
    let target = json!({"kind": "Service", "name": "greeter"});
    let failures = cel_failures::<FaultInjection>(&fault(json!({"targetRef": target})));
    assert_fails(failures, "spec", "set delay, abort or both");

    let both = json!({
        "targetRef": target,
        "match": {"method": {"service": "weft.test.Echo", "method": "Unary"}},
        "delay": {"fixedDelay": "10s", "percentage": 100},
        "abort": {"grpcStatus": "UNAVAILABLE", "message": "injected by weft", "percentage": 0.5},
    });
    assert_eq!(
        cel_failures::<FaultInjection>(&fault(both)),
        Vec::<String>::new()
    );
}

#[test]
fn abort_status_is_not_ok() {
    let spec = json!({
        "targetRef": {"kind": "GrpcRoute", "name": "greeter"},
        "abort": {"grpcStatus": "OK"},
    });
    let failures = cel_failures::<FaultInjection>(&fault(spec));
    assert_fails(
        failures,
        "spec.abort.grpcStatus",
        "an abort needs an error status",
    );
}

#[test]
fn fault_match_is_checked_like_a_route_match() {
    let spec = json!({
        "targetRef": {"kind": "Service", "name": "greeter"},
        "match": {"method": {"method": ""}},
        "delay": {"fixedDelay": "1s"},
    });
    let failures = cel_failures::<FaultInjection>(&fault(spec));
    assert_fails(failures, "spec.match.method.method", "protobuf method name");
}
