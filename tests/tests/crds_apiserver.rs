//! The committed weft CRDs (`crds/`) on a real kube-apiserver: they are accepted and become
//! Established, the demo resources in `manifests/local/` are accepted, invalid resources are
//! rejected with a message naming the field (OpenAPI checks and CEL rules alike), and the
//! short names, category, printer columns and status subresource work with kubectl.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use weft_tests::kube::KubeCluster;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `kubectl apply` of `yaml` written to a file in the cluster dir: stdout, or stderr on failure.
fn apply(cluster: &KubeCluster, name: &str, yaml: &str) -> anyhow::Result<Result<String, String>> {
    let path = cluster.dir().join(name);
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    let output = cluster
        .kubectl()
        .arg("apply")
        .arg("-f")
        .arg(&path)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Ok(if output.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    })
}

fn route(name: &str, rule: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {{name: {name}}}\nspec:\n  \
         parentRefs: [{{name: greeter, port: 50051}}]\n  rules:\n  - {rule}\n"
    )
}

fn fault(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: FaultInjection\nmetadata: {{name: {name}}}\n\
         spec: {{targetRef: {{kind: Service, name: greeter}}, {spec}}}\n"
    )
}

/// A BackendPolicy for `greeter` with `settings` (a YAML flow mapping's entries, or none).
fn backend_policy(name: &str, settings: &str) -> String {
    let separator = if settings.is_empty() { "" } else { ", " };
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: BackendPolicy\nmetadata: {{name: {name}}}\n\
         spec: {{targetRef: {{kind: Service, name: greeter}}{separator}{settings}}}\n"
    )
}

const BACKENDS: &str = "backendRefs: [{name: greeter-v1, port: 50051}]";

#[test]
fn weft_crds_on_a_real_apiserver() -> anyhow::Result<()> {
    let cluster = KubeCluster::start()?;
    let crds = repo("crds");
    cluster.kubectl_ok(["apply".as_ref(), "-f".as_ref(), crds.as_os_str()])?;
    cluster.kubectl_ok([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/grpcroutes.weft.dev",
        "crd/faultinjections.weft.dev",
        "crd/mtlspolicies.weft.dev",
        "crd/backendpolicies.weft.dev",
    ])?;

    // The demo config is valid as is.
    for file in ["route.yaml", "fault.yaml", "backend.yaml"] {
        let path = repo(&format!("manifests/local/{file}"));
        cluster.kubectl_ok(["apply".as_ref(), "-f".as_ref(), path.as_os_str()])?;
    }
    let mtls = "apiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\nmetadata: {name: default}\n\
                spec: {selector: {matchLabels: {app: greeter}}, mode: Strict}\n";
    apply(&cluster, "mtls.yaml", mtls)?.map_err(anyhow::Error::msg)?;
    let regex = route(
        "regex",
        &format!(
            "{{matches: [{{method: {{type: RegularExpression, method: 'Say.*'}}}}], {BACKENDS}}}"
        ),
    );
    apply(&cluster, "regex.yaml", &regex)?.map_err(anyhow::Error::msg)?;

    // Defaults are applied by the apiserver.
    let weight = cluster.kubectl_ok([
        "get",
        "grpcroute/regex",
        "-o",
        "jsonpath={.spec.rules[0].backendRefs[0].weight} {.spec.rules[0].matches[0].method.type}",
    ])?;
    assert_eq!(weight, "1 RegularExpression");

    // Invalid resources are rejected, naming the field.
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "percentage over 100",
            fault("pct", "abort: {grpcStatus: UNAVAILABLE, percentage: 150}"),
            &["spec.abort.percentage", "less than or equal to 100"],
        ),
        (
            "negative weight",
            route(
                "weight",
                "{backendRefs: [{name: v1, port: 50051, weight: -1}]}",
            ),
            &[
                "spec.rules[0].backendRefs[0].weight",
                "greater than or equal to 0",
            ],
        ),
        (
            "all weights zero",
            route(
                "zero",
                "{backendRefs: [{name: v1, port: 50051, weight: 0}]}",
            ),
            &[
                "spec.rules[0].backendRefs",
                "at least one backendRef needs a weight above 0",
            ],
        ),
        (
            "unknown grpc status",
            fault("status", "abort: {grpcStatus: NOPE}"),
            &["spec.abort.grpcStatus", "Unsupported value: \"NOPE\""],
        ),
        (
            "abort with OK",
            fault("ok", "abort: {grpcStatus: OK}"),
            &[
                "spec.abort.grpcStatus",
                "an abort needs an error status, not OK",
            ],
        ),
        (
            "retry on OK",
            route(
                "retryok",
                &format!("{{{BACKENDS}, retry: {{attempts: 1, codes: [OK]}}}}"),
            ),
            &["spec.rules[0].retry.codes", "OK is not a failure"],
        ),
        (
            "empty method name",
            route(
                "empty",
                &format!("{{matches: [{{method: {{method: ''}}}}], {BACKENDS}}}"),
            ),
            &[
                "spec.rules[0].matches[0].method.method",
                "at least 1 chars long",
            ],
        ),
        (
            "bad exact method name",
            route(
                "dash",
                &format!("{{matches: [{{method: {{method: Say-Hello}}}}], {BACKENDS}}}"),
            ),
            &[
                "spec.rules[0].matches[0].method.method",
                "protobuf method name",
            ],
        ),
        (
            "method match without service or method",
            route(
                "nothing",
                &format!("{{matches: [{{method: {{type: Exact}}}}], {BACKENDS}}}"),
            ),
            &[
                "spec.rules[0].matches[0].method",
                "one or both of service and method",
            ],
        ),
        (
            "malformed duration",
            route("duration", &format!("{{{BACKENDS}, timeout: 2 seconds}}")),
            &["spec.rules[0].timeout", "should match"],
        ),
        (
            "fault with neither delay nor abort",
            fault("empty", "match: {method: {service: a.B}}"),
            &["spec", "set delay, abort or both"],
        ),
        (
            "too many parentRefs",
            route("parents", BACKENDS).replace(
                "parentRefs: [{name: greeter, port: 50051}]",
                &format!("parentRefs: [{}]", ["{name: p}"; 9].join(", ")),
            ),
            &["spec.parentRefs", "must have at most 8 items"],
        ),
        (
            "unknown mTLS mode",
            mtls.replace("name: default", "name: loose")
                .replace("Strict", "Loose"),
            &["spec.mode", "Unsupported value: \"Loose\""],
        ),
        (
            "backend policy that sets nothing",
            backend_policy("empty", ""),
            &[
                "spec",
                "set at least one of outlierDetection, circuitBreaker, connectTimeout",
            ],
        ),
        (
            "ejection share over 100",
            backend_policy("share", "outlierDetection: {maxEjectionPercent: 150}"),
            &[
                "spec.outlierDetection.maxEjectionPercent",
                "less than or equal to 100",
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for (what, yaml, expected) in cases {
        match apply(&cluster, "invalid.yaml", &yaml)? {
            Ok(out) => wrong.push(format!("{what}: accepted ({out})")),
            Err(err) if expected.iter().all(|e| err.contains(e)) => {
                println!("{what}: rejected: {}", err.trim());
            }
            Err(err) => wrong.push(format!("{what}: expected {expected:?} in:\n{err}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));

    // Short names, the category and printer columns; status is a subresource.
    let status = r#"{"status":{"observedGeneration":1,"conditions":[{"type":"Accepted","status":"True","reason":"Accepted","message":"valid","lastTransitionTime":"2025-01-01T00:00:00Z"},{"type":"Programmed","status":"False","reason":"Pending","message":"0/0 proxies","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}"#;
    cluster.kubectl_ok([
        "patch",
        "grpcroute/greeter",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ])?;
    let routes = cluster.kubectl_ok(["get", "gr"])?;
    let header: Vec<&str> = routes
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "PARENTS", "ACCEPTED", "PROGRAMMED", "AGE"]);
    let greeter = routes
        .lines()
        .find(|l| l.starts_with("greeter"))
        .unwrap_or("");
    let greeter: Vec<&str> = greeter.split_whitespace().collect();
    assert_eq!(
        greeter[..4],
        ["greeter", "greeter", "True", "False"],
        "{routes}"
    );
    let faults = cluster.kubectl_ok(["get", "fi"])?;
    assert!(
        faults.contains("DELAY %") && faults.contains("UNAVAILABLE"),
        "{faults}"
    );
    let policies = cluster.kubectl_ok(["get", "mtls"])?;
    assert!(
        policies.contains("MODE") && policies.contains("Strict"),
        "{policies}"
    );
    let all = cluster.kubectl_ok(["get", "weft"])?;
    for name in [
        "grpcroute.weft.dev/greeter",
        "faultinjection.weft.dev/greeter-chaos",
        "mtlspolicy.weft.dev/default",
    ] {
        assert!(
            all.contains(name),
            "`kubectl get weft` lacks {name}:\n{all}"
        );
    }
    // Writing status through the main resource is ignored (status is a subresource).
    cluster.kubectl_ok([
        "patch",
        "grpcroute/greeter",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":null}}"#,
    ])?;
    let kept = cluster.kubectl_ok([
        "get",
        "grpcroute/greeter",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Accepted")].status}"#,
    ])?;
    assert_eq!(kept, "True");

    // `kubectl explain` shows the field docs (published once the CRD's OpenAPI is built).
    let started = Instant::now();
    loop {
        let out = cluster
            .kubectl()
            .args(["explain", "grpcroutes.spec.rules.retry.attempts"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && text.contains("retry after the first try") {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "kubectl explain: {text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}
