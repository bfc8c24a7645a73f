//! The Helm chart against a real kube-apiserver, and the controller doing its whole job under
//! the chart's own ServiceAccount and RBAC:
//! - `helm install` creates every templated object and Established CRDs; `helm upgrade` with a
//!   changed value rolls it into the Deployment; `helm uninstall` removes the objects;
//! - the controller, started with the Deployment's own arguments (addresses moved to
//!   loopback) and a TokenRequest token of the chart's ServiceAccount, watches, writes status,
//!   reviews a proxy's token, holds the Lease, keeps the webhook's caBundle and injects Pods
//!   that the apiserver sends it, and marks the endpoints of injected pods for mutual TLS
//!   although no proxy of theirs is connected to it; the apiserver's audit log of that ServiceAccount must show
//!   exactly the verbs the chart grants, none refused;
//! - two controllers: one writes status at a time, and killing it hands over within the
//!   lease time.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::identity::{channel, create_certificate, open_ads};
use common::*;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use prost::Message as _;
use serde_json::Value;
use tonic::transport::Channel;
use weft_tests::kube::KubeCluster;
use weft_tests::process::{Process, free_port, wait_until};
use weft_tests::tools::tool;

const NS: &str = "weft-system";
const RELEASE: &str = "weft";
const SA_USER: &str = "system:serviceaccount:weft-system:weft";

fn chart() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/weft")).to_path_buf()
}

fn helm(cluster: &KubeCluster, args: &[&str]) -> String {
    let out = Command::new(tool("helm"))
        .args(args)
        .args(["--kubeconfig", cluster.kubeconfig_path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `tlsMode` mark of each endpoint of `cluster`, as the proxy `node_id` (with `token`)
/// gets it over SotW ADS: (address, marked).
async fn endpoint_marks(
    channel: &Channel,
    token: &str,
    node_id: &str,
    cluster: &str,
) -> Vec<(String, bool)> {
    let eds = weft_common::xds::type_url::ENDPOINT;
    let mut stream = open_ads(channel, Some(token), node_id, eds, &[cluster])
        .await
        .unwrap();
    let response = stream.next().await.unwrap();
    let mut marks = Vec::new();
    for any in &response.resources {
        let assignment = ClusterLoadAssignment::decode(&any.value[..]).unwrap();
        for endpoint in assignment.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
            let marked = endpoint.metadata.as_ref().is_some_and(|m| {
                m.filter_metadata
                    .get("envoy.transport_socket_match")
                    .is_some_and(|s| s.fields.contains_key("tlsMode"))
            });
            marks.push((format!("{:?}", endpoint.host_identifier), marked));
        }
    }
    marks
}

fn kubectl_json(cluster: &KubeCluster, args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&cluster.kubectl_ok(all).unwrap()).unwrap()
}

/// A kubeconfig that authenticates with `token` (the chart's ServiceAccount).
fn token_kubeconfig(cluster: &KubeCluster, token: &str, name: &str) -> PathBuf {
    let path = cluster.dir().join(name);
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\n\
         users:\n- name: u\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n\
         current-context: x\n",
        cluster.server_url(),
        cluster.ca_cert_path().display()
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A controller started with the chart Deployment's arguments, addresses moved to loopback.
struct ChartController {
    process: Process,
    xds_port: u16,
    admin_port: u16,
}

impl ChartController {
    /// The controller's `/debug/proxies` page (connected proxies by node id).
    fn debug_proxies(&self) -> String {
        let url = format!("http://127.0.0.1:{}/debug/proxies", self.admin_port);
        match ureq::get(&url).call() {
            Ok(response) => response.into_body().read_to_string().unwrap_or_default(),
            Err(err) => format!("unreachable: {err}"),
        }
    }
}

/// weftctl with the cluster's kubeconfig: (exit code, stdout and stderr).
fn weftctl(cluster: &KubeCluster, args: &[&str]) -> (Option<i32>, String) {
    let bin = weft_tests::workspace_bin::workspace_bin("weftctl", "weftctl");
    let out = Command::new(bin)
        .args(["--kubeconfig", cluster.kubeconfig_path().to_str().unwrap()])
        .args(args)
        .env_remove("WEFTCTL_CONTROLLER_ADDR")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `weftctl check`, the controller's readiness asked of `127.0.0.1:<admin_port>`.
fn weftctl_check(cluster: &KubeCluster, admin_port: u16) -> (Option<i32>, String) {
    let admin = format!("127.0.0.1:{admin_port}");
    weftctl(
        cluster,
        &["--controller-addr", &admin, "--timeout", "3", "check"],
    )
}

fn start_chart_controller(
    cluster: &KubeCluster,
    replica: &str,
    webhook_port: u16,
    lease: &str,
) -> ChartController {
    let deployment = kubectl_json(cluster, &["-n", NS, "get", "deploy", RELEASE]);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let injection = cluster
        .kubectl_ok([
            "-n",
            NS,
            "get",
            "cm",
            "weft-injection",
            "-o",
            "jsonpath={.data.config\\.json}",
        ])
        .unwrap();
    let injection_path = cluster.dir().join("injection.json");
    std::fs::write(&injection_path, injection).unwrap();
    let token = token_for(
        cluster.kubeconfig_path().to_str().unwrap(),
        NS,
        "weft",
        weft_tests::kube::SA_ISSUER,
    );
    let kubeconfig = token_kubeconfig(cluster, &token, &format!("kubeconfig-{replica}"));
    let (admin_port, xds_port) = (free_port(), free_port());
    let mut args = vec!["--kubeconfig".to_owned(), kubeconfig.display().to_string()];
    for arg in container["args"].as_array().unwrap() {
        let arg = arg.as_str().unwrap();
        let (flag, value) = arg.split_once('=').unwrap();
        let value = match flag {
            "--namespace" => NS.to_owned(),
            "--replica-id" => replica.to_owned(),
            "--xds-tls-addr" => format!("127.0.0.1:{xds_port}"),
            "--admin-addr" => format!("127.0.0.1:{admin_port}"),
            "--webhook-addr" => format!("127.0.0.1:{webhook_port}"),
            "--injection-config" => injection_path.display().to_string(),
            "--lease-duration" => lease.to_owned(),
            "--log-level" => "info".to_owned(),
            _ => value.to_owned(),
        };
        args.push(format!("{flag}={value}"));
    }
    let mut command = Command::new(BIN);
    command.args(&args).env("NO_COLOR", "1");
    let log = cluster.dir().join(format!("controller-{replica}.log"));
    let process = Process::spawn("weft-controller", command, &log).unwrap();
    let controller = ChartController {
        process,
        xds_port,
        admin_port,
    };
    wait_until("controller /ready", Duration::from_secs(30), || {
        let url = format!("http://127.0.0.1:{admin_port}/ready");
        Ok(ureq::get(&url).call().is_ok())
    })
    .unwrap_or_else(|err| panic!("{err}\n{}", controller.process.log_tail(30)));
    controller
}

fn install(cluster: &KubeCluster, webhook_port: u16) {
    let url = format!("injection.url=https://127.0.0.1:{webhook_port}/inject");
    let chart = chart();
    helm(
        cluster,
        &[
            "install",
            RELEASE,
            chart.to_str().unwrap(),
            "-n",
            NS,
            "--create-namespace",
            "--set",
            &url,
        ],
    );
}

fn pod_yaml(namespace: &str, name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}{annotations}}}\n\
         spec: {{containers: [{{name: app, image: greeter:1, ports: [{{containerPort: 50051}}]}}]}}\n"
    )
}

fn container_names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// (apiGroup, resource[/subresource], verb) the ServiceAccount's requests used, and any refused.
fn audited(cluster: &KubeCluster) -> (BTreeSet<(String, String, String)>, Vec<String>) {
    let log = std::fs::read_to_string(cluster.audit_log_path()).unwrap();
    let mut used = BTreeSet::new();
    let mut refused = Vec::new();
    for line in log.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        if event["user"]["username"] != SA_USER || event["objectRef"].is_null() {
            continue;
        }
        let object = &event["objectRef"];
        let mut resource = object["resource"].as_str().unwrap_or_default().to_owned();
        if let Some(sub) = object["subresource"].as_str() {
            resource = format!("{resource}/{sub}");
        }
        let entry = (
            object["apiGroup"].as_str().unwrap_or_default().to_owned(),
            resource,
            event["verb"].as_str().unwrap().to_owned(),
        );
        if event["responseStatus"]["code"].as_u64() == Some(403) {
            refused.push(format!("{entry:?}"));
        }
        used.insert(entry);
    }
    (used, refused)
}

/// (apiGroup, resource, verb) the chart's ClusterRole and Role grant.
fn granted(cluster: &KubeCluster) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for role in [
        kubectl_json(cluster, &["get", "clusterrole", "weft-weft-system"]),
        kubectl_json(cluster, &["-n", NS, "get", "role", RELEASE]),
    ] {
        for rule in role["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        granted.insert((
                            group.as_str().unwrap().to_owned(),
                            resource.as_str().unwrap().to_owned(),
                            verb.as_str().unwrap().to_owned(),
                        ));
                    }
                }
            }
        }
    }
    granted
}

fn lease_holder(cluster: &KubeCluster) -> Option<String> {
    let lease = kubectl_json(cluster, &["-n", NS, "get", "lease", "weft-leader"]);
    lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_and_its_controller_does_its_whole_job_with_the_charts_rbac() {
    let cluster = KubeCluster::start().unwrap();
    let webhook_port = free_port();
    // `weftctl check` before the install: the CRDs, RBAC and webhook are missing.
    let (code, before) = weftctl_check(&cluster, free_port());
    assert_eq!(code, Some(1), "{before}");
    for expected in [
        "[ok]   API server v1.",
        "[FAIL] CRD grpcroutes.weft.dev is missing",
        "[FAIL] RBAC: system:serviceaccount:weft-system:weft may not watch services (core)",
        "[FAIL] injection webhook: no MutatingWebhookConfiguration",
        "[FAIL] controller is not ready",
    ] {
        assert!(before.contains(expected), "no {expected:?} in:\n{before}");
    }
    install(&cluster, webhook_port);

    // Every object the release made exists; the CRDs are Established.
    for crd in [
        "grpcroutes",
        "faultinjections",
        "mtlspolicies",
        "backendpolicies",
    ] {
        cluster
            .kubectl_ok([
                "wait",
                "--for=condition=Established",
                &format!("crd/{crd}.weft.dev"),
                "--timeout=60s",
            ])
            .unwrap();
    }
    let manifest = cluster.dir().join("release.yaml");
    std::fs::write(
        &manifest,
        helm(&cluster, &["get", "manifest", RELEASE, "-n", NS]),
    )
    .unwrap();
    let objects = cluster
        .kubectl_ok(["get", "-f", manifest.to_str().unwrap(), "-o", "name"])
        .unwrap();
    let manifest_text = std::fs::read_to_string(&manifest).unwrap();
    let expected = manifest_text.matches("\nkind: ").count();
    assert_eq!(objects.lines().count(), expected, "objects: {objects}");
    for kind in [
        "deployment.apps/weft",
        "service/weft",
        "serviceaccount/weft",
        "poddisruptionbudget.policy/weft",
        "configmap/weft-injection",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/weft-weft-system",
        "clusterrole.rbac.authorization.k8s.io/weft-weft-system",
        "role.rbac.authorization.k8s.io/weft",
    ] {
        assert!(objects.contains(kind), "{kind} missing from {objects}");
    }

    // The controller under the chart's ServiceAccount.
    let controller = start_chart_controller(&cluster, "replica-a", webhook_port, "15s");

    // Watches and status writes: resources of every kind get conditions.
    apply(
        &cluster,
        "services.yaml",
        &services_yaml_at("192.0.2.1", 50051, 50052),
    );
    apply(&cluster, "route.yaml", &route_yaml(50, 50));
    apply(
        &cluster,
        "fault.yaml",
        &fault_yaml(
            "  targetRef: {kind: Service, name: greeter}\n  abort: {grpcStatus: UNAVAILABLE, percentage: 100}\n",
        ),
    );
    apply(
        &cluster,
        "mtls.yaml",
        "apiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\nmetadata: {name: strict, namespace: default}\nspec: {mode: Strict}\n",
    );
    apply(
        &cluster,
        "backend.yaml",
        "apiVersion: weft.dev/v1alpha1\nkind: BackendPolicy\nmetadata: {name: greeter, namespace: default}\n\
         spec: {targetRef: {kind: Service, name: greeter}, circuitBreaker: {maxRequests: 100}}\n",
    );
    for (kind, name) in [
        ("grpcroute", "greeter"),
        ("faultinjection", "chaos"),
        ("mtlspolicy", "strict"),
        ("backendpolicy", "greeter"),
    ] {
        wait_until(
            &format!("{kind}/{name} status"),
            Duration::from_secs(30),
            || {
                let object = kubectl_json(&cluster, &["get", kind, name]);
                Ok(object["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty()))
            },
        )
        .unwrap_or_else(|err| panic!("{err}\n{}", controller.process.log_tail(30)));
    }

    // TokenReview: a proxy's token gets a certificate for its identity.
    let ca = kubectl_json(&cluster, &["-n", NS, "get", "secret", "weft-ca"]);
    let root = ca["data"]["tls.crt"].as_str().unwrap();
    let root = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, root).unwrap(),
    )
    .unwrap();
    let proxy_token = service_account_token(cluster.kubeconfig_path().to_str().unwrap(), "web");
    let tls = channel(controller.xds_port, &root).await;
    create_certificate(&tls, Some(&proxy_token), Some("web-1.default"), &[])
        .await
        .unwrap();

    // The Lease and the webhook's caBundle.
    wait_until(
        "the Lease held by replica-a",
        Duration::from_secs(20),
        || Ok(lease_holder(&cluster).as_deref() == Some("replica-a")),
    )
    .unwrap();
    wait_until("the webhook's caBundle", Duration::from_secs(20), || {
        let hook = kubectl_json(
            &cluster,
            &["get", "mutatingwebhookconfiguration", "weft-weft-system"],
        );
        Ok(hook["webhooks"][0]["clientConfig"]["caBundle"]
            .as_str()
            .is_some_and(|b| !b.is_empty()))
    })
    .unwrap();

    // `weftctl check` passes now; `weftctl describe` reads the conditions the status has.
    let (code, after) = weftctl_check(&cluster, controller.admin_port);
    assert_eq!(code, Some(0), "{after}");
    assert!(after.ends_with("all checks passed\n"), "{after}");
    let admin = format!("127.0.0.1:{}", controller.admin_port);
    let described = weftctl(
        &cluster,
        &[
            "--controller-addr",
            &admin,
            "describe",
            "faultinjection/chaos",
        ],
    );
    assert_eq!(described.0, Some(0), "{}", described.1);
    let route = kubectl_json(&cluster, &["get", "faultinjection", "chaos"]);
    for condition in route["status"]["conditions"].as_array().unwrap() {
        let line = format!(
            "  {:<13} {}",
            condition["type"].as_str().unwrap(),
            condition["status"].as_str().unwrap()
        );
        assert!(
            described.1.contains(&line),
            "no {line:?} in:\n{}",
            described.1
        );
    }

    // Injection through the real apiserver.
    cluster.kubectl_ok(["create", "namespace", "shop"]).unwrap();
    cluster
        .kubectl_ok(["label", "namespace", "shop", "weft.dev/inject=enabled"])
        .unwrap();
    cluster
        .kubectl_ok(["create", "namespace", "plain"])
        .unwrap();
    // No controller-manager here to create the namespaces' `default` ServiceAccounts.
    for ns in ["shop", "plain"] {
        cluster
            .kubectl_ok(["-n", ns, "create", "serviceaccount", "default"])
            .unwrap();
    }
    apply(&cluster, "pod-shop.yaml", &pod_yaml("shop", "greeter", ""));
    let injected = kubectl_json(&cluster, &["-n", "shop", "get", "pod", "greeter"]);
    assert_eq!(
        container_names(&injected, "containers"),
        ["app", "weft-proxy"]
    );
    assert_eq!(container_names(&injected, "initContainers"), ["weft-init"]);
    // The injected init step's arguments are ones weft-proxy accepts (checked with the real
    // binary, printing the rules it would program).
    let init = &injected["spec"]["initContainers"][0];
    let args: Vec<&str> = init["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let proxy = weft_tests::workspace_bin::workspace_bin("weft-proxy", "weft-proxy");
    let dry_run = Command::new(&proxy)
        .args(&args)
        .arg("--dry-run")
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&dry_run.stdout);
    assert!(
        dry_run.status.success()
            && rules.contains("--to-ports 15001")
            && rules.contains("--uid-owner 1337"),
        "weft-proxy {args:?} --dry-run: {rules}{}",
        String::from_utf8_lossy(&dry_run.stderr)
    );
    apply(
        &cluster,
        "pod-plain.yaml",
        &pod_yaml("plain", "greeter", ""),
    );
    let plain = kubectl_json(&cluster, &["-n", "plain", "get", "pod", "greeter"]);
    assert_eq!(container_names(&plain, "containers"), ["app"]);
    apply(
        &cluster,
        "pod-out.yaml",
        &pod_yaml(
            "shop",
            "opted-out",
            ", annotations: {weft.dev/inject: \"false\"}",
        ),
    );
    // A gateway Pod asks for a web listener (browsers' gRPC-Web) on a port, which the init
    // step then leaves out of inbound interception; a port that cannot be one is refused
    // with the reason, in kubectl's own error.
    apply(
        &cluster,
        "pod-gateway.yaml",
        &pod_yaml(
            "shop",
            "gateway",
            ", annotations: {weft.dev/web-port: \"15080\"}",
        ),
    );
    let gateway = kubectl_json(&cluster, &["-n", "shop", "get", "pod", "gateway"]);
    let proxy_env = gateway["spec"]["containers"][1]["env"].to_string();
    assert!(
        proxy_env.contains("\"WEFT_WEB_ADDR\",\"value\":\"0.0.0.0:15080\""),
        "{proxy_env}"
    );
    let gateway_args: Vec<&str> = gateway["spec"]["initContainers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let dry_run = Command::new(&proxy)
        .args(&gateway_args)
        .arg("--dry-run")
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&dry_run.stdout);
    assert!(
        dry_run.status.success() && rules.contains("--dport 15080 -j RETURN"),
        "weft-proxy {gateway_args:?} --dry-run: {rules}"
    );
    let bad = cluster.dir().join("pod-bad-web.yaml");
    std::fs::write(
        &bad,
        pod_yaml(
            "shop",
            "bad-web",
            ", annotations: {weft.dev/web-port: \"http\"}",
        ),
    )
    .unwrap();
    let refused = cluster
        .kubectl_ok(["apply", "-f", bad.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("annotation weft.dev/web-port:") && refused.contains("is not a port"),
        "{refused}"
    );
    let opted_out = kubectl_json(&cluster, &["-n", "shop", "get", "pod", "opted-out"]);
    assert_eq!(container_names(&opted_out, "containers"), ["app"]);
    assert!(opted_out["spec"]["initContainers"].is_null());
    // The injected Pod, as a new object, passes server-side validation (and the webhook, a
    // second time, leaves it as it is).
    let mut again = injected.clone();
    again["metadata"] = serde_json::json!({
        "name": "greeter-again", "namespace": "shop",
        "annotations": injected["metadata"]["annotations"],
    });
    again.as_object_mut().unwrap().remove("status");
    let again_path = cluster.dir().join("pod-again.json");
    std::fs::write(&again_path, again.to_string()).unwrap();
    let dry = cluster
        .kubectl_ok([
            "apply",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            again_path.to_str().unwrap(),
        ])
        .unwrap();
    let dry: Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(container_names(&dry, "containers"), ["app", "weft-proxy"]);
    assert_eq!(container_names(&dry, "initContainers"), ["weft-init"]);

    // The injected pod, once it has an IP, is a mesh member: the Service endpoint at that
    // IP is marked for mutual TLS, though no proxy of the pod is connected to this replica
    // (it could be connected to another).
    let greeter = "outbound|50051||greeter.default.svc.cluster.local";
    let marks = endpoint_marks(&tls, &proxy_token, "web-1.default", greeter).await;
    assert!(
        marks.len() == 1 && !marks[0].1,
        "before the pod has its IP: {marks:?}"
    );
    cluster
        .kubectl_ok([
            "-n",
            "shop",
            "patch",
            "pod",
            "greeter",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running","podIP":"192.0.2.1","podIPs":[{"ip":"192.0.2.1"}]}}"#,
        ])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let marks = endpoint_marks(&tls, &proxy_token, "web-1.default", greeter).await;
        if marks.len() == 1 && marks[0].1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the injected pod's endpoint is not marked: {marks:?}\n{}",
            controller.process.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // RBAC: the ServiceAccount used exactly what the chart grants, and nothing was refused.
    let (used, refused) = audited(&cluster);
    assert!(refused.is_empty(), "refused: {refused:?}");
    let granted = granted(&cluster);
    let unused: Vec<_> = granted.difference(&used).collect();
    let ungranted: Vec<_> = used.difference(&granted).collect();
    assert!(
        unused.is_empty(),
        "the chart grants what the controller never uses: {unused:?}"
    );
    assert!(
        ungranted.is_empty(),
        "the controller uses what the chart does not grant: {ungranted:?}"
    );

    // Upgrade with a changed value, then uninstall.
    drop(controller);
    let chart = chart();
    helm(
        &cluster,
        &[
            "upgrade",
            RELEASE,
            chart.to_str().unwrap(),
            "-n",
            NS,
            "--reuse-values",
            "--set",
            "controller.logLevel=debug",
        ],
    );
    let deployment = kubectl_json(&cluster, &["-n", NS, "get", "deploy", RELEASE]);
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--log-level=debug"), "{args}");
    helm(&cluster, &["uninstall", RELEASE, "-n", NS]);
    let left = Command::new(tool("kubectl"))
        .args([
            "--kubeconfig",
            cluster.kubeconfig_path().to_str().unwrap(),
            "-n",
            NS,
            "get",
            "deploy",
            RELEASE,
        ])
        .output()
        .unwrap();
    assert!(
        !left.status.success(),
        "the Deployment outlived helm uninstall"
    );
    // Helm keeps CRDs (and so the users' resources) on uninstall.
    cluster
        .kubectl_ok(["get", "crd", "grpcroutes.weft.dev"])
        .unwrap();
}

/// A stand-in for the controllers' Service address: each connection goes to the first
/// replica that accepts it (as kube-proxy sends new connections only to live endpoints).
async fn service_address(replicas: Vec<u16>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let replicas = replicas.clone();
            tokio::spawn(async move {
                for replica in replicas {
                    if let Ok(mut upstream) =
                        tokio::net::TcpStream::connect(("127.0.0.1", replica)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await;
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Envoy's bootstrap with ADS over TLS (trusting the mesh root in `root`) and `token`.
fn tls_bootstrap(outbound: u16, xds_port: u16, token: &str, root: &Path) -> String {
    let mut yaml = mesh_bootstrap("envoy-0.default", outbound, xds_port, true, Some(token));
    yaml += &format!(
        r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context: {{trusted_ca: {{filename: "{}"}}}}
"#,
        root.display()
    );
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_one_status_writer_and_a_handover_under_load_without_a_failed_rpc() {
    let cluster = KubeCluster::start().unwrap();
    let webhook_port = free_port();
    install(&cluster, webhook_port);
    for crd in [
        "grpcroutes",
        "faultinjections",
        "mtlspolicies",
        "backendpolicies",
    ] {
        cluster
            .kubectl_ok([
                "wait",
                "--for=condition=Established",
                &format!("crd/{crd}.weft.dev"),
                "--timeout=60s",
            ])
            .unwrap();
    }
    // The backends live at 192.0.2.10 in a network namespace of this test: a real endpoint
    // address for the EndpointSlices (the apiserver refuses loopback ones).
    let address: std::net::Ipv4Addr = "192.0.2.10".parse().unwrap();
    let netns = weft_tests::netns::Netns::create(&format!("weft-ctl-{}", std::process::id()));
    netns.link_host('c', &[address]);
    let v1 = weft_tests::backend::Backend::start_with("v1", netns.listen((address, 50051).into()))
        .await
        .unwrap();
    let v2 = weft_tests::backend::Backend::start_with("v2", netns.listen((address, 50052).into()))
        .await
        .unwrap();

    let lease = Duration::from_secs(4);
    let mut a = start_chart_controller(&cluster, "replica-a", webhook_port, "4s");
    wait_until("replica-a leads", Duration::from_secs(20), || {
        Ok(lease_holder(&cluster).as_deref() == Some("replica-a"))
    })
    .unwrap();
    let b = start_chart_controller(&cluster, "replica-b", free_port(), "4s");

    // Both serve; only the leader writes status (the follower says it does not lead).
    apply(
        &cluster,
        "services.yaml",
        &services_yaml_at("192.0.2.10", 50051, 50052),
    );
    apply(&cluster, "route.yaml", &route_yaml(50, 50));
    wait_until("grpcroute status", Duration::from_secs(30), || {
        let object = kubectl_json(&cluster, &["get", "grpcroute", "greeter"]);
        Ok(object["status"]["conditions"]
            .as_array()
            .is_some_and(|c| !c.is_empty()))
    })
    .unwrap();

    // Stock Envoy, connected through the Service stand-in (so to replica-a, listed first),
    // carries calls to the backends in the namespace.
    let vip = service_address(vec![a.xds_port, b.xds_port]).await;
    let ca = kubectl_json(&cluster, &["-n", NS, "get", "secret", "weft-ca"]);
    let root = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            ca["data"]["tls.crt"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let root_path = cluster.dir().join("mesh-root.pem");
    std::fs::write(&root_path, root).unwrap();
    let token = service_account_token(cluster.kubeconfig_path().to_str().unwrap(), "envoy");
    let outbound = free_port();
    let envoy =
        weft_tests::envoy::Envoy::start(&tls_bootstrap(outbound, vip, &token, &root_path)).unwrap();
    let mut client = client(outbound).await;
    wait_async("a call through Envoy", Duration::from_secs(30), || {
        let mut client = client.clone();
        async move { client.unary(request("first")).await.is_ok() }
    })
    .await;
    let (to_v1, to_v2) = unary_split(&mut client, 40).await;
    assert!(to_v1 > 0 && to_v2 > 0, "50/50 split gave {to_v1}/{to_v2}");
    assert!(
        a.debug_proxies().contains("envoy-0.default"),
        "{}",
        a.debug_proxies()
    );

    std::thread::sleep(lease);
    assert_eq!(lease_holder(&cluster).as_deref(), Some("replica-a"));
    assert!(
        a.process
            .log_tail(200)
            .contains("leading: the status writer")
    );
    assert!(
        !b.process
            .log_tail(200)
            .contains("leading: the status writer"),
        "{}",
        b.process.log_tail(50)
    );

    // Steady load while the leader is killed: no call may fail.
    let load = {
        let mut client = client.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let started = Instant::now();
            // Bounded: at most 20 s or 20 000 calls, at about 200 calls/s.
            while started.elapsed() < Duration::from_secs(20) && ok < 20_000 {
                match client.unary(request("steady")).await {
                    Ok(_) => ok += 1,
                    Err(status) => failed.push(status.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = Instant::now();
    Command::new("kill")
        .args(["-9", &a.process.pid().to_string()])
        .status()
        .unwrap();
    wait_until("replica-b leads", lease * 3, || {
        Ok(lease_holder(&cluster).as_deref() == Some("replica-b"))
    })
    .unwrap();
    let handover = killed.elapsed();
    assert!(
        handover <= lease + lease / 8 + Duration::from_secs(2),
        "handover took {handover:?}"
    );
    eprintln!("handover after {handover:?} (lease {lease:?})");
    wait_until("replica-b says it leads", Duration::from_secs(5), || {
        Ok(b.process
            .log_tail(200)
            .contains("leading: the status writer"))
    })
    .unwrap();
    // Envoy reconnects through the Service address, to replica-b.
    wait_until(
        "Envoy connected to replica-b",
        Duration::from_secs(30),
        || Ok(b.debug_proxies().contains("envoy-0.default")),
    )
    .unwrap();
    let (ok, failed) = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 100, "only {ok} calls in the load window");
    eprintln!("{ok} calls during the handover, none failed");

    // The new leader writes status: a changed route gets a new observedGeneration, and
    // Envoy, now fed by replica-b, follows it.
    apply(&cluster, "route.yaml", &route_yaml(100, 0));
    wait_until(
        "status of the changed route",
        Duration::from_secs(30),
        || {
            let object = kubectl_json(&cluster, &["get", "grpcroute", "greeter"]);
            let generation = object["metadata"]["generation"].as_i64();
            let conditions = object["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            Ok(conditions
                .iter()
                .all(|c| c["observedGeneration"].as_i64() == generation)
                && !conditions.is_empty())
        },
    )
    .unwrap_or_else(|err| panic!("{err}\n{}", b.process.log_tail(30)));
    // A zero weight drops the backend: the route names one cluster, with no split left.
    wait_for_routes(&envoy, "the 100/0 route from replica-b", |routes| {
        !routes.contains("\"weight\": 50")
    });
    let before = v2.calls();
    let (to_v1, _) = unary_split(&mut client, 20).await;
    assert_eq!((to_v1, v2.calls() - before), (20, 0));
    assert!(v1.calls() > 0);
    a.process.stop();
    drop(netns);
}
