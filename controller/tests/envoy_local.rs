//! End to end, local mode: weft-controller reads a directory of YAML, stock Envoy connects
//! to it over ADS (State-of-the-World and Delta), and RPCs through Envoy reach the right
//! backend by service and method; a weight change shifts traffic; a delay fault slows only
//! matched calls; an abort fault returns the configured code; removing it restores calls.
//! Envoy must never reject an update (`update_rejected` stays 0).

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use weft_tests::backend::{Backend, pb};
use weft_tests::envoy::Envoy;
use weft_tests::process::{Process, free_port, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_weft-controller");

/// The controller in local mode on `dir`, with its xDS and admin ports.
struct Controller {
    process: Process,
    xds_port: u16,
    admin_port: u16,
}

impl Controller {
    fn start(dir: &Path) -> Controller {
        let (xds_port, admin_port) = (free_port(), free_port());
        let mut command = Command::new(BIN);
        command.args([
            "--config-dir",
            dir.to_str().unwrap(),
            "--xds-addr",
            &format!("127.0.0.1:{xds_port}"),
            "--admin-addr",
            &format!("127.0.0.1:{admin_port}"),
            "--log-level",
            "info",
        ]);
        let process =
            Process::spawn("weft-controller", command, &dir.join("../controller.log")).unwrap();
        let controller = Controller {
            process,
            xds_port,
            admin_port,
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

    fn admin(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let response = ureq::get(&format!("http://127.0.0.1:{}{path}", self.admin_port))
            .config()
            .http_status_as_error(false)
            .build()
            .call()?;
        let status = response.status().as_u16();
        Ok((status, response.into_body().read_to_string()?))
    }
}

fn bootstrap(node_id: &str, outbound_port: u16, xds_port: u16, delta: bool) -> String {
    let api_type = if delta { "DELTA_GRPC" } else { "GRPC" };
    format!(
        r#"
node:
  id: {node_id}
  cluster: weft-test
  metadata: {{outboundAddr: "127.0.0.1:{outbound_port}"}}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {xds_port}}}}}}}
"#
    )
}

fn services_yaml(v1_port: u16, v2_port: u16) -> String {
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
             endpoints: [{{addresses: [\"127.0.0.1\"], conditions: {{ready: true}}}}]\n---\n"
        );
    }
    yaml
}

/// Unary → v1 and v2 by weight; ServerStream → v2 only.
fn route_yaml(v1_weight: u32, v2_weight: u32) -> String {
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

fn fault_yaml(spec: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: FaultInjection\n\
         metadata: {{name: chaos, namespace: default}}\nspec:\n{spec}"
    )
}

/// Writes a config file the way an editor does: a new file renamed over the old one.
fn write_config(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn client(outbound_port: u16) -> pb::echo_client::EchoClient<Channel> {
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

fn request(message: &str) -> pb::EchoRequest {
    pb::EchoRequest {
        message: message.into(),
        ..Default::default()
    }
}

/// Calls Unary `calls` times and counts answers per instance.
async fn unary_split(
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

async fn wait_async<F, Fut>(what: &str, timeout: Duration, mut check: F)
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
fn wait_for_routes(envoy: &Envoy, what: &str, check: impl Fn(&str) -> bool) {
    tokio::task::block_in_place(|| {
        wait_until(what, Duration::from_secs(10), || {
            let dump = envoy.admin_get("/config_dump?resource=dynamic_route_configs")?;
            Ok(check(&dump))
        })
    })
    .unwrap_or_else(|err| panic!("{err}\n{}", envoy.log_tail(30)));
}

fn rejected_updates(envoy: &Envoy) -> u64 {
    let stats = envoy.stats().unwrap();
    stats
        .iter()
        .filter(|(name, _)| name.ends_with("update_rejected"))
        .map(|(_, v)| v)
        .sum()
}

async fn scenario(delta: bool) {
    let v1 = Backend::start("v1").await.unwrap();
    let v2 = Backend::start("v2").await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("config");
    std::fs::create_dir(&dir).unwrap();
    write_config(
        &dir,
        "services.yaml",
        &services_yaml(v1.addr().port(), v2.addr().port()),
    );
    write_config(&dir, "route.yaml", &route_yaml(100, 0));
    let controller = Controller::start(&dir);

    let outbound = free_port();
    let envoy = tokio::task::block_in_place(|| {
        Envoy::start(&bootstrap(
            "envoy-0.default",
            outbound,
            controller.xds_port,
            delta,
        ))
    })
    .unwrap();
    wait_until("Envoy's outbound listener", Duration::from_secs(20), || {
        Ok(std::net::TcpStream::connect(("127.0.0.1", outbound)).is_ok())
    })
    .unwrap_or_else(|err| panic!("{err}\n{}", envoy.log_tail(30)));
    let mut client = client(outbound).await;

    // Routing by method: Unary → v1 (weight 100/0), ServerStream → v2.
    assert_eq!(
        client
            .unary(request("hi"))
            .await
            .unwrap()
            .into_inner()
            .instance,
        "v1"
    );
    let mut stream = client
        .server_stream(request("hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().instance, "v2");

    // A weight change shifts traffic: 50/50 over 200 calls, within ±15 percentage points.
    write_config(&dir, "route.yaml", &route_yaml(50, 50));
    wait_async("traffic to reach v2", Duration::from_secs(5), || {
        let mut client = client.clone();
        async move {
            client
                .unary(request("probe"))
                .await
                .is_ok_and(|r| r.into_inner().instance == "v2")
        }
    })
    .await;
    let (to_v1, to_v2) = unary_split(&mut client, 200).await;
    assert!(
        (70..=130).contains(&to_v1),
        "50/50 split gave v1={to_v1} v2={to_v2}"
    );

    // A 500 ms delay on Unary only.
    write_config(&dir, "route.yaml", &route_yaml(100, 0));
    write_config(
        &dir,
        "fault.yaml",
        &fault_yaml(
            "  targetRef: {kind: Service, name: greeter}\n  match: {method: {service: weft.test.Echo, method: Unary}}\n  delay: {fixedDelay: 500ms, percentage: 100}\n",
        ),
    );
    wait_for_routes(&envoy, "the delay fault", |routes| {
        routes.contains("fixed_delay")
    });
    let start = Instant::now();
    client.unary(request("slow")).await.unwrap();
    // Envoy's timers have millisecond granularity and may fire a fraction early: 490 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(490),
        "matched call not delayed: {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    let mut stream = client
        .server_stream(request("fast"))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "unmatched call delayed: {:?}",
        start.elapsed()
    );

    // An abort fault returns the configured gRPC code.
    write_config(
        &dir,
        "fault.yaml",
        &fault_yaml(
            "  targetRef: {kind: Service, name: greeter}\n  abort: {grpcStatus: RESOURCE_EXHAUSTED, message: injected by weft, percentage: 100}\n",
        ),
    );
    wait_for_routes(&envoy, "the abort fault", |routes| {
        routes.contains("grpc_status") && !routes.contains("fixed_delay")
    });
    let status = client.unary(request("aborted")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.message(), "injected by weft", "{status:?}");
    let calls_before = v1.calls();
    assert!(client.unary(request("aborted")).await.is_err());
    assert_eq!(
        v1.calls(),
        calls_before,
        "an aborted call must not reach the backend"
    );

    // Removing the fault restores normal calls.
    std::fs::remove_file(dir.join("fault.yaml")).unwrap();
    wait_for_routes(&envoy, "the fault's removal", |routes| {
        !routes.contains("grpc_status")
    });
    assert_eq!(
        client
            .unary(request("back"))
            .await
            .unwrap()
            .into_inner()
            .instance,
        "v1"
    );

    assert_eq!(
        rejected_updates(&envoy),
        0,
        "Envoy rejected an update:\n{}",
        envoy.log_tail(40)
    );
    let (_, proxies) = controller.admin("/debug/proxies").unwrap();
    assert!(proxies.contains("envoy-0.default"), "{proxies}");
    assert!(
        !proxies.contains("\"last_nack\": {"),
        "a NACK was recorded: {proxies}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_over_sotw_follows_local_config() {
    scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_over_delta_follows_local_config() {
    scenario(true).await;
}
