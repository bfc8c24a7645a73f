//! Injection decisions and patches, applied to real Pod JSON with `json-patch` (as the
//! apiserver applies them).

use super::*;
use serde_json::json;

fn config() -> InjectionConfig {
    serde_json::from_value(json!({
        "image": "weft/weft:0.1.0",
        "xdsAddress": "weft-controller.weft-system.svc:15012",
        "xdsServerName": "weft-controller.weft-system.svc",
        "resources": { "requests": { "cpu": "50m" } },
    }))
    .unwrap()
}

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

fn plain_pod() -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "greeter", "namespace": "shop", "labels": { "app": "greeter" } },
        "spec": { "containers": [{ "name": "app", "image": "greeter:1",
                                   "ports": [{ "containerPort": 50051 }] }] },
    })
}

fn apply(original: &serde_json::Value, injection: &Injection) -> serde_json::Value {
    let Injection::Patch(ops) = injection else {
        panic!("expected a patch, got {injection:?}");
    };
    let patch: json_patch::Patch = serde_json::from_value(json!(ops)).unwrap();
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &patch).unwrap();
    doc
}

#[test]
fn a_plain_pod_gets_the_proxy_the_init_container_and_volumes() {
    let original = plain_pod();
    let patched = apply(
        &original,
        &inject(&pod(original.clone()), &config(), "ROOT"),
    );
    let patched_pod: Pod = serde_json::from_value(patched.clone()).unwrap();
    let spec = patched_pod.spec.unwrap();
    let names: Vec<_> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", PROXY_CONTAINER]);
    let init: Vec<_> = spec
        .init_containers
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(init, [INIT_CONTAINER]);
    let proxy = &spec.containers[1];
    let env = |name: &str| {
        proxy
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no env {name}"))
            .clone()
    };
    assert_eq!(
        env("WEFT_NODE_ID").value.as_deref(),
        Some("$(POD_NAME).$(POD_NAMESPACE)")
    );
    assert_eq!(
        env("WEFT_APP_ADDR").value.as_deref(),
        Some("127.0.0.1:50051")
    );
    assert_eq!(
        env("WEFT_WORKLOAD_LABELS").value.as_deref(),
        Some("app=greeter,weft.dev/sidecar=injected")
    );
    assert_eq!(
        patched["metadata"]["labels"][SIDECAR_LABEL],
        SIDECAR_INJECTED
    );
    assert_eq!(
        env("WEFT_XDS_ADDR").value.as_deref(),
        Some("https://weft-controller.weft-system.svc:15012")
    );
    assert_eq!(
        env("POD_NAMESPACE")
            .value_from
            .unwrap()
            .field_ref
            .unwrap()
            .field_path,
        "metadata.namespace"
    );
    let security = proxy.security_context.clone().unwrap();
    assert_eq!(security.run_as_user, Some(1337));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        patched["spec"]["containers"][1]["resources"]["requests"]["cpu"],
        "50m"
    );
    let volumes: Vec<_> = spec
        .volumes
        .unwrap()
        .iter()
        .map(|v| v.name.clone())
        .collect();
    assert_eq!(volumes, ["weft-token", "weft-root"]);
    assert_eq!(
        patched["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "weft"
    );
    assert_eq!(patched["metadata"]["annotations"][ROOT_ANNOTATION], "ROOT");
    let init = &patched["spec"]["initContainers"][0];
    assert_eq!(init["args"][0], "init");
    let args = init["args"].to_string();
    assert!(args.contains(r#""--xds-ports","15012""#), "{args}");
    assert_eq!(
        init["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN", "NET_RAW"])
    );
}

#[test]
fn existing_lists_and_annotations_are_appended_to() {
    let mut original = plain_pod();
    original["metadata"]["annotations"] = json!({ "team": "a/b" });
    // Without labels, the label map is created.
    original["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    original["spec"]["initContainers"] = json!([{ "name": "migrate", "image": "m:1" }]);
    original["spec"]["volumes"] = json!([{ "name": "data", "emptyDir": {} }]);
    let patched = apply(
        &original,
        &inject(&pod(original.clone()), &config(), "ROOT"),
    );
    assert_eq!(patched["metadata"]["annotations"]["team"], "a/b");
    assert_eq!(
        patched["metadata"]["labels"][SIDECAR_LABEL],
        SIDECAR_INJECTED
    );
    assert_eq!(patched["metadata"]["annotations"][ROOT_ANNOTATION], "ROOT");
    assert_eq!(patched["spec"]["initContainers"][0]["name"], "migrate");
    assert_eq!(patched["spec"]["initContainers"][1]["name"], INIT_CONTAINER);
    let volumes: Vec<_> = patched["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].clone())
        .collect();
    assert_eq!(
        volumes,
        [json!("data"), json!("weft-token"), json!("weft-root")]
    );
}

#[test]
fn injecting_twice_is_a_no_op() {
    let original = plain_pod();
    let once = apply(
        &original,
        &inject(&pod(original.clone()), &config(), "ROOT"),
    );
    assert_eq!(
        inject(&pod(once), &config(), "ROOT"),
        Injection::Skip("already injected")
    );
}

#[test]
fn the_opt_out_annotation_and_host_network_are_respected() {
    let mut opted_out = plain_pod();
    opted_out["metadata"]["annotations"] = json!({ INJECT_KEY: "false" });
    assert!(matches!(
        inject(&pod(opted_out), &config(), "R"),
        Injection::Skip(_)
    ));
    let mut host = plain_pod();
    host["spec"]["hostNetwork"] = json!(true);
    assert!(matches!(
        inject(&pod(host), &config(), "R"),
        Injection::Skip(_)
    ));
}

#[test]
fn a_pod_without_ports_gets_no_app_address() {
    let mut original = plain_pod();
    original["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("ports");
    let patched = apply(&original, &inject(&pod(original.clone()), &config(), "R"));
    let env = patched["spec"]["containers"][1]["env"].as_array().unwrap();
    assert!(!env.iter().any(|e| e["name"] == "WEFT_APP_ADDR"));
}

#[test]
fn the_web_port_annotation_adds_a_web_listener_left_out_of_interception() {
    let mut original = plain_pod();
    original["metadata"]["annotations"] = json!({ WEB_PORT_ANNOTATION: "15080" });
    let patched = apply(&original, &inject(&pod(original.clone()), &config(), "R"));
    let proxy = &patched["spec"]["containers"][1];
    let env = proxy["env"].as_array().unwrap();
    let web = env.iter().find(|e| e["name"] == "WEFT_WEB_ADDR").unwrap();
    assert_eq!(web["value"], "0.0.0.0:15080");
    assert!(
        proxy["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "weft-web" && p["containerPort"] == 15080)
    );
    let args = patched["spec"]["initContainers"][0]["args"]
        .as_array()
        .unwrap();
    let at = args
        .iter()
        .position(|a| a == "--exclude-inbound-ports")
        .unwrap();
    assert_eq!(args[at + 1], "15080");

    // Without the annotation: no web listener, nothing excluded.
    let plain = plain_pod();
    let patched = apply(&plain, &inject(&pod(plain.clone()), &config(), "R"));
    let env = patched["spec"]["containers"][1]["env"].as_array().unwrap();
    assert!(!env.iter().any(|e| e["name"] == "WEFT_WEB_ADDR"));
    let args = patched["spec"]["initContainers"][0]["args"]
        .as_array()
        .unwrap();
    assert!(!args.iter().any(|a| a == "--exclude-inbound-ports"));
}

#[test]
fn a_web_port_that_is_not_a_free_port_denies_the_pod_with_the_reason() {
    for (value, reason) in [
        (
            "http",
            "annotation weft.dev/web-port: \"http\" is not a port (1 to 65535)",
        ),
        (
            "0",
            "annotation weft.dev/web-port: \"0\" is not a port (1 to 65535)",
        ),
        (
            "15006",
            "annotation weft.dev/web-port: 15006 is one of the sidecar's own ports (15001, 15006, 15000)",
        ),
    ] {
        let mut original = plain_pod();
        original["metadata"]["annotations"] = json!({ WEB_PORT_ANNOTATION: value });
        assert_eq!(
            inject(&pod(original), &config(), "R"),
            Injection::Deny(reason.to_owned())
        );
    }
}

#[test]
fn the_server_answers_a_review_with_a_json_patch() {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "requestKind": { "group": "", "version": "v1", "kind": "Pod" },
            "requestResource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": "shop", "operation": "CREATE",
            "userInfo": { "username": "admin" },
            "object": plain_pod(), "oldObject": null, "dryRun": false, "options": null,
        }
    });
    let webhook = WebhookServer {
        config: config(),
        root_pem: "ROOT".into(),
    };
    let answer: serde_json::Value =
        serde_json::from_slice(&server::answer(review.to_string().as_bytes(), &webhook).unwrap())
            .unwrap();
    assert_eq!(
        answer["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    // kube-rs writes the patch bytes as a JSON array of numbers, which the apiserver's
    // decoder takes for []byte as well as base64.
    let bytes: Vec<u8> = serde_json::from_value(answer["response"]["patch"].clone()).unwrap();
    let ops: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
    assert!(
        ops.iter().any(|op| op["path"] == "/spec/containers/-"),
        "{ops:?}"
    );
    let err = server::answer(b"{}", &webhook).unwrap_err();
    assert!(err.contains("AdmissionReview"), "{err}");
}
