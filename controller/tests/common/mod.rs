//! What the end-to-end tests of the controller share: the controller process, an Envoy
//! bootstrap pointing at it, the demo config as YAML, and clients and waits.

#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

pub mod identity;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use weft_tests::backend::pb;
use weft_tests::envoy::Envoy;
pub use weft_tests::envoy::mesh_bootstrap;
use weft_tests::kube::KubeCluster;
use weft_tests::process::{Process, free_port, wait_until};

pub const BIN: &str = env!("CARGO_BIN_EXE_weft-controller");

/// The controller in local mode on `dir`, with its xDS and admin ports.
pub struct Controller {
    pub process: Process,
    pub xds_port: u16,
    pub admin_port: u16,
    /// Kubernetes mode: a token of ServiceAccount `default/envoy` (audience `weft`) that
    /// proxies authenticate with.
    pub token: Option<String>,
    /// Kubernetes mode: xDS over TLS and the certificate service.
    pub tls_port: Option<u16>,
}

impl Controller {
    /// Starts the controller with `source_args` (`--config-dir D` or `--kubeconfig K`),
    /// logging to `log`, and waits until it is ready.
    pub fn start(source_args: &[&str], log: &Path) -> Controller {
        let (xds_port, admin_port) = (free_port(), free_port());
        let mut command = Command::new(BIN);
        command.args(source_args).env("NO_COLOR", "1");
        // Kubernetes mode authenticates proxies and runs the CA (its Secret in `default`,
        // xDS over TLS on a free port); tests' proxies get a real ServiceAccount token.
        let kubeconfig = source_args
            .iter()
            .position(|arg| *arg == "--kubeconfig")
            .and_then(|i| source_args.get(i + 1));
        let tls_port = kubeconfig.map(|_| free_port());
        let token = kubeconfig.map(|kubeconfig| {
            command.args([
                "--namespace",
                "default",
                "--xds-tls-addr",
                &format!("127.0.0.1:{}", tls_port.unwrap_or_default()),
            ]);
            service_account_token(kubeconfig, "envoy")
        });
        command.args([
            "--xds-addr",
            &format!("127.0.0.1:{xds_port}"),
            "--admin-addr",
            &format!("127.0.0.1:{admin_port}"),
            "--log-level",
            "info",
        ]);
        let process = Process::spawn("weft-controller", command, log).unwrap();
        let controller = Controller {
            process,
            xds_port,
            admin_port,
            token,
            tls_port,
        };
        wait_until("controller /ready", Duration::from_secs(20), || {
            Ok(controller
                .admin("/ready")
                .map(|(status, _)| status == 200)
                .unwrap_or(false))
        })
        .unwrap_or_else(|err| panic!("{err}\n{}", controller.process.log_tail(30)));
        controller
    }

    /// Starts stock Envoy as proxy `envoy-0.default` of this controller (Delta or SotW ADS);
    /// returns it with its outbound listener port. Blocking.
    pub fn start_envoy(&self, delta: bool) -> (Envoy, u16) {
        let outbound = free_port();
        let envoy = Envoy::start(&mesh_bootstrap(
            "envoy-0.default",
            outbound,
            self.xds_port,
            delta,
            self.token.as_deref(),
        ))
        .unwrap();
        (envoy, outbound)
    }

    pub fn admin(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let response = ureq::get(&format!("http://127.0.0.1:{}{path}", self.admin_port))
            .config()
            .http_status_as_error(false)
            .build()
            .call()?;
        let status = response.status().as_u16();
        Ok((status, response.into_body().read_to_string()?))
    }
}

/// A token for ServiceAccount `default/<name>` (created if missing), audience `weft`.
pub fn service_account_token(kubeconfig: &str, name: &str) -> String {
    token_for(kubeconfig, "default", name, "weft")
}

/// A token for ServiceAccount `<namespace>/<name>` (created if missing) with `audience`.
pub fn token_for(kubeconfig: &str, namespace: &str, name: &str, audience: &str) -> String {
    let kubectl = || {
        let mut command = Command::new(weft_tests::tools::tool("kubectl"));
        command.args(["--kubeconfig", kubeconfig, "-n", namespace]);
        command
    };
    let created = kubectl()
        .args(["create", "serviceaccount", name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        created.status.success() || stderr.contains("already exists"),
        "kubectl create serviceaccount {name}: {stderr}"
    );
    let token = kubectl()
        .args(["create", "token", name, "--audience", audience])
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "kubectl create token: {}",
        String::from_utf8_lossy(&token.stderr)
    );
    String::from_utf8(token.stdout).unwrap().trim().to_owned()
}

pub fn bootstrap(node_id: &str, outbound_port: u16, xds_port: u16, delta: bool) -> String {
    mesh_bootstrap(node_id, outbound_port, xds_port, delta, None)
}

/// The demo Services and their EndpointSlices, all endpoints on 127.0.0.1.
pub fn services_yaml(v1_port: u16, v2_port: u16) -> String {
    services_yaml_at("127.0.0.1", v1_port, v2_port)
}

/// The same with endpoints at `address` (the apiserver refuses loopback addresses).
pub fn services_yaml_at(address: &str, v1_port: u16, v2_port: u16) -> String {
    let mut yaml = String::new();
    for name in ["greeter", "greeter-v1", "greeter-v2"] {
        yaml += &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{ports: [{{name: grpc, port: 50051}}]}}\n---\n"
        );
    }
    for (name, port) in [
        ("greeter", v1_port),
        ("greeter-v1", v1_port),
        ("greeter-v2", v2_port),
    ] {
        yaml += &format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}-local, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: grpc, port: {port}}}]\n\
             endpoints: [{{addresses: [\"{address}\"], conditions: {{ready: true}}}}]\n---\n"
        );
    }
    yaml
}

/// Unary → v1 and v2 by weight; ServerStream → v2 only.
pub fn route_yaml(v1_weight: u32, v2_weight: u32) -> String {
    format!(
        r#"apiVersion: weft.dev/v1alpha1
kind: GrpcRoute
metadata: {{name: greeter, namespace: default}}
spec:
  parentRefs: [{{name: greeter, port: 50051}}]
  rules:
  - matches: [{{method: {{service: weft.test.Echo, method: ServerStream}}}}]
    backendRefs: [{{name: greeter-v2, port: 50051}}]
  - matches: [{{method: {{service: weft.test.Echo, method: Unary}}}}]
    backendRefs:
    - {{name: greeter-v1, port: 50051, weight: {v1_weight}}}
    - {{name: greeter-v2, port: 50051, weight: {v2_weight}}}
"#
    )
}

pub fn fault_yaml(spec: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: FaultInjection\n\
         metadata: {{name: chaos, namespace: default}}\nspec:\n{spec}"
    )
}

/// Writes a config file the way an editor does: a new file renamed over the old one.
pub fn write_config(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

pub async fn client(outbound_port: u16) -> pb::echo_client::EchoClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{outbound_port}"))
        .unwrap()
        .origin(
            "http://greeter.default.svc.cluster.local:50051"
                .parse()
                .unwrap(),
        )
        .connect()
        .await
        .unwrap();
    pb::echo_client::EchoClient::new(channel)
}

pub use weft_tests::backend::request;

/// Calls Unary `calls` times and counts answers per instance.
pub async fn unary_split(
    client: &mut pb::echo_client::EchoClient<Channel>,
    calls: usize,
) -> (usize, usize) {
    let mut v1 = 0;
    for _ in 0..calls {
        let reply = client.unary(request("split")).await.unwrap().into_inner();
        if reply.instance == "v1" {
            v1 += 1;
        }
    }
    (v1, calls - v1)
}

pub async fn wait_async<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until Envoy's route configuration (from its config dump) satisfies `check`: the
/// update is in force, whatever the machine's load does to call timings.
pub fn wait_for_routes(envoy: &Envoy, what: &str, check: impl Fn(&str) -> bool) {
    tokio::task::block_in_place(|| {
        wait_until(what, Duration::from_secs(10), || {
            let dump = envoy.admin_get("/config_dump?resource=dynamic_route_configs")?;
            Ok(check(&dump))
        })
    })
    .unwrap_or_else(|err| panic!("{err}\n{}", envoy.log_tail(30)));
}

pub fn rejected_updates(envoy: &Envoy) -> u64 {
    let stats = envoy.stats().unwrap();
    stats
        .iter()
        .filter(|(name, _)| name.ends_with("update_rejected"))
        .map(|(_, v)| v)
        .sum()
}

/// `kubectl apply` of `yaml`, written to the cluster's directory as `name`.
pub fn apply(cluster: &KubeCluster, name: &str, yaml: &str) {
    let path = cluster.dir().join(name);
    std::fs::write(&path, yaml).unwrap();
    cluster
        .kubectl_ok(["apply", "-f", path.to_str().unwrap()])
        .unwrap();
}

/// Applies the generated CRDs and waits until each is Established.
pub fn install_crds(cluster: &KubeCluster) {
    let crds = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../crds"));
    cluster
        .kubectl_ok(["apply", "-f", crds.to_str().unwrap()])
        .unwrap();
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
}
