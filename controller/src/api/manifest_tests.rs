//! The demo YAML under `manifests/local/` parses into the API types unchanged, so local mode
//! and a cluster read the same files.

use std::path::PathBuf;

use serde::Deserialize;

use super::*;

fn manifest(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/local")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The weft documents of a multi-document YAML file, parsed as `T` when their kind is `kind`.
fn documents<T: for<'de> Deserialize<'de>>(yaml: &str, kind: &str) -> Vec<T> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).unwrap();
    docs.into_iter()
        .filter(|d| d["apiVersion"] == API_VERSION && d["kind"] == kind)
        .map(|d| serde_json::from_value(d).unwrap())
        .collect()
}

#[test]
fn local_route_parses() {
    let routes: Vec<GrpcRoute> = documents(&manifest("route.yaml"), "GrpcRoute");
    assert_eq!(routes.len(), 1);
    let route = &routes[0];
    assert_eq!(route.metadata.name.as_deref(), Some("greeter"));
    assert_eq!(route.metadata.namespace.as_deref(), Some("default"));
    let spec = &route.spec;
    assert_eq!(spec.parent_refs[0].name, "greeter");
    assert_eq!(spec.parent_refs[0].port, Some(50051));
    let rule = &spec.rules[0];
    let method = rule.matches[0].method.as_ref().unwrap();
    assert_eq!(method.match_type, MatchType::Exact);
    assert_eq!(method.service.as_deref(), Some("weft.test.Echo"));
    assert_eq!(method.method, None);
    let weights: Vec<(&str, i32)> = rule
        .backend_refs
        .iter()
        .map(|b| (b.name.as_str(), b.weight))
        .collect();
    assert_eq!(weights, [("greeter-v1", 90), ("greeter-v2", 10)]);
    assert_eq!(
        rule.timeout.as_ref().unwrap().to_std().unwrap().as_secs(),
        2
    );
    let retry = rule.retry.as_ref().unwrap();
    assert_eq!(retry.attempts, 3);
    assert_eq!(retry.per_try_timeout, Some(Duration::from("500ms")));
    assert_eq!(retry.codes, [GrpcStatus::Unavailable]);
    assert_eq!(retry.backoff, Some(Duration::from("25ms")));
}

#[test]
fn local_fault_parses() {
    let faults: Vec<FaultInjection> = documents(&manifest("fault.yaml"), "FaultInjection");
    assert_eq!(faults.len(), 1);
    let spec = &faults[0].spec;
    assert_eq!(spec.target_ref.kind, FaultTargetKind::Service);
    assert_eq!(spec.target_ref.name, "greeter");
    let method = spec.rpc_match.as_ref().unwrap().method.as_ref().unwrap();
    assert_eq!(method.method.as_deref(), Some("Unary"));
    assert!(spec.delay.is_none());
    let abort = spec.abort.as_ref().unwrap();
    assert_eq!(abort.grpc_status, GrpcStatus::Unavailable);
    assert_eq!(abort.message.as_deref(), Some("injected by weft"));
    assert_eq!(abort.percentage, Percentage(5.0));
}

#[test]
fn design_examples_parse_with_defaults() {
    let yaml = r#"
apiVersion: weft.dev/v1alpha1
kind: GrpcRoute
metadata: {name: greeter, namespace: default}
spec:
  parentRefs: [{name: greeter}]
  rules:
  - matches:
    - headers: [{name: x-canary, value: "true"}]
    backendRefs: [{name: greeter-v2, port: 50051}]
    retry: {attempts: 1}
---
apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: slow, namespace: default}
spec:
  targetRef: {kind: GrpcRoute, name: greeter}
  delay: {fixedDelay: 10s}
---
apiVersion: weft.dev/v1alpha1
kind: MtlsPolicy
metadata: {name: default, namespace: default}
spec:
  mode: Strict
"#;
    let routes: Vec<GrpcRoute> = documents(yaml, "GrpcRoute");
    let rule = &routes[0].spec.rules[0];
    assert_eq!(rule.backend_refs[0].weight, 1, "weight defaults to 1");
    assert_eq!(rule.matches[0].headers[0].match_type, MatchType::Exact);
    let retry = rule.retry.as_ref().unwrap();
    assert_eq!(retry.codes, [GrpcStatus::Unavailable], "codes default");
    let faults: Vec<FaultInjection> = documents(yaml, "FaultInjection");
    let delay = faults[0].spec.delay.as_ref().unwrap();
    assert_eq!(
        delay.percentage,
        Percentage::all(),
        "percentage defaults to 100"
    );
    let policies: Vec<MtlsPolicy> = documents(yaml, "MtlsPolicy");
    assert_eq!(policies[0].spec.mode, MtlsMode::Strict);
    assert!(policies[0].spec.selector.match_labels.is_empty());
}
