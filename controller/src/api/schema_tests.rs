//! The generated CRDs carry the checks the apiserver enforces without CEL (ranges, enums,
//! duration patterns, list bounds), the status subresource, and the names, categories and
//! printer columns `kubectl get` uses.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;

fn spec_schema(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0].schema.as_ref().unwrap();
    let schema = serde_json::to_value(schema.open_api_v3_schema.as_ref().unwrap()).unwrap();
    schema["properties"]["spec"].clone()
}

/// The schema at a dotted path of property names, `[]` stepping into list items.
fn at(schema: &Value, path: &str) -> Value {
    let mut node = schema;
    for part in path.split('.') {
        let (name, items) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        node = &node["properties"][name];
        if items {
            node = &node["items"];
        }
        assert!(!node.is_null(), "no schema at {path} (stopped at {part})");
    }
    node.clone()
}

const DURATION: &str = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$";

#[test]
fn route_schema_bounds() {
    let spec = spec_schema(&GrpcRoute::crd());
    assert_eq!(spec["required"], json!(["parentRefs", "rules"]));
    assert_eq!(at(&spec, "parentRefs")["maxItems"], 8);
    assert_eq!(at(&spec, "rules")["maxItems"], 16);
    assert_eq!(at(&spec, "rules[].matches")["maxItems"], 8);
    assert_eq!(at(&spec, "rules[].matches[].headers")["maxItems"], 16);
    assert_eq!(at(&spec, "rules[].backendRefs")["maxItems"], 16);
    let weight = at(&spec, "rules[].backendRefs[].weight");
    assert_eq!(
        (&weight["minimum"], &weight["maximum"]),
        (&json!(0.0), &json!(1e6))
    );
    assert_eq!(weight["default"], 1);
    let port = at(&spec, "rules[].backendRefs[].port");
    assert_eq!(
        (&port["minimum"], &port["maximum"]),
        (&json!(1.0), &json!(65535.0))
    );
    for duration in [
        "rules[].timeout",
        "rules[].retry.perTryTimeout",
        "rules[].retry.backoff",
    ] {
        assert_eq!(at(&spec, duration)["pattern"], DURATION, "{duration}");
    }
    let codes = at(&spec, "rules[].retry.codes");
    assert_eq!(codes["items"]["enum"].as_array().unwrap().len(), 17);
    assert_eq!(codes["x-kubernetes-list-type"], "set");
    let method = at(&spec, "rules[].matches[].method");
    assert_eq!(
        method["properties"]["type"]["enum"],
        json!(["Exact", "RegularExpression"])
    );
    assert_eq!(method["properties"]["method"]["minLength"], 1);
    assert_eq!(method["properties"]["service"]["minLength"], 1);
}

#[test]
fn fault_schema_bounds() {
    let spec = spec_schema(&FaultInjection::crd());
    for percentage in ["delay.percentage", "abort.percentage"] {
        let schema = at(&spec, percentage);
        assert_eq!(schema["type"], "number", "{percentage} allows fractions");
        assert_eq!(
            (&schema["minimum"], &schema["maximum"]),
            (&json!(0.0), &json!(100.0))
        );
        assert_eq!(schema["default"], 100.0);
    }
    assert_eq!(at(&spec, "delay.fixedDelay")["pattern"], DURATION);
    let status = at(&spec, "abort.grpcStatus");
    assert_eq!(status["enum"][0], "OK");
    assert_eq!(status["enum"][14], "UNAVAILABLE");
    assert_eq!(
        at(&spec, "targetRef.kind")["enum"],
        json!(["Service", "GrpcRoute"])
    );
    assert_eq!(at(&spec, "match.headers")["maxItems"], 16);
}

#[test]
fn mtls_schema() {
    let spec = spec_schema(&MtlsPolicy::crd());
    assert_eq!(spec["required"], json!(["mode"]));
    assert_eq!(
        at(&spec, "mode")["enum"],
        json!(["Strict", "Permissive", "Disable"])
    );
    assert_eq!(at(&spec, "selector.matchLabels")["maxProperties"], 16);
}

#[test]
fn names_columns_and_status() {
    let cases = [
        (
            GrpcRoute::crd(),
            vec!["grpcr", "gr"],
            vec!["Parents", "Accepted", "Programmed", "Age"],
        ),
        (
            FaultInjection::crd(),
            vec!["fi", "fault"],
            vec![
                "Target",
                "Delay %",
                "Abort",
                "Accepted",
                "Programmed",
                "Age",
            ],
        ),
        (
            MtlsPolicy::crd(),
            vec!["mtls"],
            vec!["Mode", "Accepted", "Age"],
        ),
    ];
    for (crd, short_names, columns) in cases {
        let kind = &crd.spec.names.kind;
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.short_names.as_ref().unwrap(),
            &short_names,
            "{kind}"
        );
        assert_eq!(
            crd.spec.names.categories.as_ref().unwrap(),
            &[CATEGORY],
            "{kind}"
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, VERSION);
        assert!(
            version.subresources.as_ref().unwrap().status.is_some(),
            "{kind}"
        );
        let shown: Vec<&str> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(shown, columns, "{kind}");
    }
}

#[test]
fn rendered_yaml_round_trips() {
    for (file, crd) in crd_files().unwrap().iter().zip(crds()) {
        assert!(
            file.contents
                .starts_with("# generated by weft-crdgen; do not edit.")
        );
        assert!(file.contents.contains(REGENERATE_COMMAND));
        let parsed: CustomResourceDefinition = serde_saphyr::from_str(&file.contents).unwrap();
        assert_eq!(parsed, crd, "{}", file.name);
        assert_eq!(file.name, format!("{}.yaml", crd.metadata.name.unwrap()));
    }
}
