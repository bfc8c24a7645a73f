//! Transparent interception end to end, as in a pod: an unmodified gRPC client (grpcurl,
//! ghz) dials a Service's cluster IP, and `weft-proxy init`'s iptables rules bring the call
//! to weft-proxy, which routes it by the original destination.
//!
//! Two network namespaces the test makes: the "app pod" (client, weft-proxy as uid 1337,
//! weft-controller, the iptables rules) and the "backend pod" (the two test backends), linked
//! by a veth pair on 192.0.2.0/24 (documentation addresses; nothing leaves the namespaces).
//! The backends are on 192.0.2.2, not loopback, so only the `--uid-owner` rule keeps the
//! proxy's own upstream connections from being redirected back into it. The Service
//! `greeter` has cluster IP 192.0.2.10, which no interface has: without interception the
//! client could not reach it at all.
//!
//! Checked: init programs one set of rules however often it runs; calls reach the backends
//! through the proxy with the client's own :authority (the address) and with a name the mesh
//! does not know (routed by the original destination); a GrpcRoute's weights split calls; a
//! FaultInjection abort reaches the client as its status; the proxy's /metrics and the
//! iptables counters count what happened. Everything the test starts is stopped and both
//! namespaces deleted when it ends, also on failure.

#![allow(clippy::unwrap_used)] // test code: a panic is how a failed step is reported

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use weft_tests::backend::Backend;
use weft_tests::netns::Netns;
use weft_tests::process::{Process, wait_until};
use weft_tests::tools::{tool, tools_dir};

const CLUSTER_IP: &str = "192.0.2.10";
const SERVICE: &str = "192.0.2.10:50051";
/// The app pod's and the backend pod's ends of the link.
const APP_CIDR: &str = "192.0.2.1/24";
const BACKEND_POD_IP: &str = "192.0.2.2";
const BACKEND_CIDR: &str = "192.0.2.2/24";
const PROXY_UID: u32 = 1337;
/// Inside the app pod every port is ours: the defaults, as in a real pod.
const PROXY_ADMIN: &str = "127.0.0.1:15000";
const CONTROLLER_XDS: &str = "127.0.0.1:15010";
const CONTROLLER_ADMIN: &str = "127.0.0.1:15014";
/// The name of greeter's virtual host (its metrics' `destination_service`).
const GREETER_HOST: &str = "greeter.default.svc.cluster.local:50051";
const PROTO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/proto");
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the test started, stopped in field order: processes, backends, the mesh dir
/// (which prints the logs when the test failed), then the namespaces.
struct Pods {
    proxy: Process,
    controller: Process,
    v1: Backend,
    v2: Backend,
    mesh: Mesh,
    _bin_dir: tempfile::TempDir,
    app: Netns,
    _backend_pod: Netns,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unmodified_client_reaches_services_through_interception() {
    let started = Instant::now();
    require_tools();
    let mut pods = start().await;
    println!("[intercept] pods ready in {:?}", started.elapsed());

    // The client names the address it dials (grpc-go's default :authority): the virtual
    // host lists the cluster IP and port among its domains. ServerStream goes to v2 only.
    let out = blocking(|| grpcurl(&pods, None, SERVICE, "ServerStream", r#"{"message":"hi"}"#));
    assert_ok(&out, "v2");

    // A name the mesh does not know (as from the app's own resolver): the original
    // destination picks the Service. Unary is split 75/25 between v1 and v2.
    let unknown = Some("greeter.example.com");
    let out = blocking(|| grpcurl(&pods, unknown, SERVICE, "Unary", r#"{"message":"hi"}"#));
    assert!(out.status.success(), "{}", describe(&out));
    let reply = stdout(&out);
    assert!(
        reply.contains(r#""instance": "v1""#) || reply.contains(r#""instance": "v2""#),
        "{reply}"
    );

    // An authority that names a Service wins over the address dialled.
    let out = blocking(|| grpcurl(&pods, Some("greeter-v2"), SERVICE, "Unary", "{}"));
    assert_ok(&out, "v2");

    // An address no Service has is intercepted too, and is no route.
    let out = blocking(|| grpcurl(&pods, None, "192.0.2.99:50051", "Unary", "{}"));
    assert_eq!(out.status.code(), Some(64 + 12), "{}", describe(&out));
    assert!(
        stderr(&out).contains("Unimplemented")
            && stderr(&out).contains("original destination 192.0.2.99:50051"),
        "{}",
        describe(&out)
    );

    // Weights: 200 calls at 75/25 from one ghz run; v1 must get 150 ± 30 (σ ≈ 6.1).
    let (v1_before, v2_before) = (pods.v1.calls(), pods.v2.calls());
    let report = blocking(|| ghz(&pods, unknown, 200));
    assert_eq!(report["statusCodeDistribution"]["OK"], 200, "{report:#}");
    let (v1, v2) = (pods.v1.calls() - v1_before, pods.v2.calls() - v2_before);
    println!("[intercept] 75/25 over 200 calls: v1 {v1}, v2 {v2}");
    assert_eq!(v1 + v2, 200);
    assert!((120..=180).contains(&v1), "75/25 gave v1 {v1}, v2 {v2}");

    // A FaultInjection abort on the route reaches the client as its status, and the call
    // reaches no backend.
    pods.mesh.write(
        "fault.yaml",
        &fault_yaml(
            "abort-unary",
            "  targetRef: {kind: Service, name: greeter}\n  \
             match: {method: {service: weft.test.Echo, method: Unary}}\n  \
             abort: {grpcStatus: RESOURCE_EXHAUSTED, message: injected by weft, percentage: 100}\n",
        ),
    );
    blocking(|| {
        wait_until("the abort in the proxy's config", READY_TIMEOUT, || {
            let (_, body) = admin_get(&pods.app, PROXY_ADMIN, "/debug/config")?;
            let dump: Value = serde_json::from_str(&body)?;
            Ok(routes(&dump)
                .iter()
                .any(|r| r["fault"]["abort"]["grpc_status"] == 8))
        })
        .unwrap();
    });
    let calls_before = pods.v1.calls() + pods.v2.calls();
    let out = blocking(|| grpcurl(&pods, unknown, SERVICE, "Unary", "{}"));
    assert_eq!(out.status.code(), Some(64 + 8), "{}", describe(&out));
    assert!(
        stderr(&out).contains("ResourceExhausted") && stderr(&out).contains("injected by weft"),
        "{}",
        describe(&out)
    );
    assert_eq!(pods.v1.calls() + pods.v2.calls(), calls_before);

    // The proxy counted every RPC, by the virtual host that served it.
    let metrics = blocking(|| {
        let (status, body) = admin_get(&pods.app, PROXY_ADMIN, "/metrics").unwrap();
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    });
    let rpcs = |labels: &[(&str, &str)]| metrics.sum("weft_proxy_rpcs_total", labels);
    let greeter = ("destination_service", GREETER_HOST);
    assert_eq!(
        rpcs(&[greeter, ("grpc_code", "OK")]),
        202.0,
        "{}",
        metrics.text
    );
    assert_eq!(
        rpcs(&[
            greeter,
            ("grpc_code", "RESOURCE_EXHAUSTED"),
            ("fault_injected", "true")
        ]),
        1.0,
        "{}",
        metrics.text
    );
    assert_eq!(
        rpcs(&[
            ("destination_service", "unknown"),
            ("grpc_code", "UNIMPLEMENTED")
        ]),
        1.0,
        "{}",
        metrics.text
    );
    assert_eq!(
        rpcs(&[("direction", "outbound")]),
        205.0,
        "{}",
        metrics.text
    );

    // The kernel's side: calls were redirected, and the proxy's own connections (to the
    // controller on loopback and to the backends on the link) were let through by its uid.
    let counters = blocking(|| iptables_save(&pods.app, &["-c"]));
    for rule in [
        format!("-A WEFT_OUTPUT -m owner --uid-owner {PROXY_UID} -j RETURN"),
        "-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001".to_owned(),
    ] {
        let packets = rule_packets(&counters, &rule);
        assert!(packets > 0, "no packets on `{rule}`:\n{counters}");
    }
    // Both ran throughout, and the proxy (uid 1337) drains and exits cleanly.
    pods.controller.ensure_running().unwrap();
    let status = pods.proxy.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "weft-proxy exit: {status:?}"
    );
    println!("[intercept] done in {:?}", started.elapsed());
}

/// Fails loudly, with the install command, when `ip` or iptables is missing.
fn require_tools() {
    let ip = Command::new("ip").arg("-V").output();
    assert!(
        ip.is_ok_and(|out| out.status.success()),
        "the interception test needs `ip` (apt-get install iproute2)"
    );
    for name in ["iptables-restore", "iptables-save", "grpcurl", "ghz"] {
        tool(name);
    }
}

/// Both namespaces, the rules, the backends, the controller and a ready proxy.
async fn start() -> Pods {
    let pid = std::process::id();
    let app = Netns::create(&format!("weft-itest-{pid}"));
    let backend_pod = Netns::create(&format!("weft-itest-{pid}-b"));
    app.link(
        ("weft-app", APP_CIDR),
        &backend_pod,
        ("weft-backend", BACKEND_CIDR),
    );

    init_twice(&app);

    let listeners = backend_pod.run(|| {
        let bind = || std::net::TcpListener::bind((BACKEND_POD_IP, 0)).unwrap();
        (bind(), bind())
    });
    let v1 = Backend::start_with("v1", listeners.0).await.unwrap();
    let v2 = Backend::start_with("v2", listeners.1).await.unwrap();

    let mut mesh = Mesh::new();
    let (a1, a2) = (v1.addr(), v2.addr());
    mesh.write(
        "services.yaml",
        &(service_yaml_at("greeter", Some(CLUSTER_IP), &[a1])
            + &service_yaml_at("greeter-v1", Some("192.0.2.11"), &[a1])
            + &service_yaml_at("greeter-v2", Some("192.0.2.12"), &[a2])),
    );
    mesh.write("route.yaml", &weighted_route(75, 25));

    let bin_dir = proxy_bin_for_uid();
    let (controller, proxy) = blocking(|| {
        let controller = start_controller(&app, &mut mesh);
        let proxy = start_proxy(&app, &mut mesh, bin_dir.path());
        (controller, proxy)
    });
    Pods {
        proxy,
        controller,
        v1,
        v2,
        mesh,
        _bin_dir: bin_dir,
        app,
        _backend_pod: backend_pod,
    }
}

/// `weft-proxy init` as an init container runs it (`ip netns exec`), twice: one set of
/// rules remains. Also `--dry-run`, which needs no namespace.
fn init_twice(app: &Netns) {
    let dry = Command::new(PROXY_BIN)
        .args(["init", "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", describe(&dry));
    assert!(
        stdout(&dry).contains("-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN"),
        "{}",
        describe(&dry)
    );
    for _ in 0..2 {
        let out = app.exec(
            Command::new(PROXY_BIN)
                .arg("init")
                .env("PATH", tools_path()),
        );
        assert!(out.status.success(), "weft-proxy init: {}", describe(&out));
        assert!(
            stderr(&out).contains("outbound TCP → 15001"),
            "{}",
            describe(&out)
        );
    }
    let rules = iptables_save(app, &[]);
    for rule in [
        "-A OUTPUT -p tcp -j WEFT_OUTPUT",
        "-A PREROUTING -p tcp -j WEFT_INBOUND",
        "-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001",
        "-A WEFT_INBOUND -p tcp -j REDIRECT --to-ports 15006",
    ] {
        let count = rules.lines().filter(|line| line.trim() == rule).count();
        assert_eq!(count, 1, "`{rule}` after two runs:\n{rules}");
    }
}

/// A copy of weft-proxy that uid 1337 can run: the build's own path may sit under a
/// directory only root can enter (a checkout in /root), so it is copied to a directory
/// everyone can read.
fn proxy_bin_for_uid() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("weft-itest-bin-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("weft-proxy");
    std::fs::copy(PROXY_BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn start_controller(app: &Netns, mesh: &mut Mesh) -> Process {
    let log = mesh.log_path("controller");
    let mut command = Command::new(controller_bin());
    command
        .arg("--config-dir")
        .arg(&mesh.config_dir)
        .args([
            "--xds-addr",
            CONTROLLER_XDS,
            "--admin-addr",
            CONTROLLER_ADMIN,
        ])
        .args(["--log-level", "info"])
        .env("NO_COLOR", "1");
    clean_env(&mut command);
    let mut process = app.run(|| Process::spawn("weft-controller", command, &log).unwrap());
    wait_until("weft-controller /ready", READY_TIMEOUT, || {
        if let Err(exited) = process.ensure_running() {
            panic!("{exited:#}");
        }
        Ok(matches!(
            admin_get(app, CONTROLLER_ADMIN, "/ready"),
            Ok((200, _))
        ))
    })
    .unwrap();
    process
}

/// weft-proxy as uid/gid 1337 with its default listener ports, ready (it has the routes).
fn start_proxy(app: &Netns, mesh: &mut Mesh, bin_dir: &Path) -> Process {
    let log = mesh.log_path("client-0.default");
    let mut command = Command::new(bin_dir.join("weft-proxy"));
    command
        .args(["--node-id", "client-0.default"])
        .args(["--xds-addr", &format!("http://{CONTROLLER_XDS}")])
        .args(["--log-level", "info"])
        .env("NO_COLOR", "1")
        .uid(PROXY_UID)
        .gid(PROXY_UID);
    clean_env(&mut command);
    let mut process = app.run(|| Process::spawn("weft-proxy", command, &log).unwrap());
    wait_until("weft-proxy /ready", READY_TIMEOUT, || {
        if let Err(exited) = process.ensure_running() {
            panic!("{exited:#}");
        }
        Ok(matches!(
            admin_get(app, PROXY_ADMIN, "/ready"),
            Ok((200, _))
        ))
    })
    .unwrap();
    process
}

/// GET `path` from an admin server inside `ns`.
fn admin_get(ns: &Netns, addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let url = format!("http://{addr}{path}");
    ns.run(|| {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut response = agent.get(&url).call()?;
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_string()?))
    })
}

/// One grpcurl call from inside the app pod to `target` (`weft.test.Echo/<method>`), with
/// `-authority` when given; bounded by `-max-time`.
fn grpcurl(pods: &Pods, authority: Option<&str>, target: &str, method: &str, data: &str) -> Output {
    let mut command = Command::new(tool("grpcurl"));
    command
        .args(["-plaintext", "-connect-timeout", "5", "-max-time", "10"])
        .args([
            "-import-path",
            PROTO_DIR,
            "-proto",
            "echo.proto",
            "-d",
            data,
        ]);
    if let Some(authority) = authority {
        command.args(["-authority", authority]);
    }
    command.args([target, &format!("weft.test.Echo/{method}")]);
    pods.app.run(|| command.output().unwrap())
}

/// `calls` unary calls from one ghz run inside the app pod; its JSON report.
fn ghz(pods: &Pods, authority: Option<&str>, calls: u32) -> Value {
    let mut command = Command::new(tool("ghz"));
    command
        .args(["--insecure", "--import-paths", PROTO_DIR])
        .arg("--proto")
        .arg(Path::new(PROTO_DIR).join("echo.proto"))
        .args([
            "--call",
            "weft.test.Echo.Unary",
            "-d",
            r#"{"message":"split"}"#,
        ])
        .args([
            "-n",
            &calls.to_string(),
            "-c",
            "4",
            "--timeout",
            "10s",
            "-O",
            "json",
        ]);
    if let Some(authority) = authority {
        command.args(["--authority", authority]);
    }
    command.arg(SERVICE);
    let out = pods.app.run(|| command.output().unwrap());
    assert!(out.status.success(), "ghz: {}", describe(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("ghz printed no JSON ({err}): {}", describe(&out)))
}

/// `iptables-save -t nat` (plus `extra` flags) inside `ns`.
fn iptables_save(ns: &Netns, extra: &[&str]) -> String {
    let out = ns.exec(
        Command::new(tool("iptables-save"))
            .args(["-t", "nat"])
            .args(extra),
    );
    assert!(out.status.success(), "iptables-save: {}", describe(&out));
    stdout(&out)
}

/// The packet count of `rule` in `iptables-save -c` output (`[packets:bytes] -A ...`).
fn rule_packets(save: &str, rule: &str) -> u64 {
    save.lines()
        .find_map(|line| {
            let (counters, spec) = line.split_once("] ")?;
            (spec.trim() == rule).then(|| counters.trim_start_matches('[').split(':').next())?
        })
        .and_then(|packets| packets.parse().ok())
        .unwrap_or(0)
}

/// `PATH` with the test tools first, so init finds the pinned iptables.
fn tools_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}:/usr/sbin:/sbin", tools_dir().display())
}

fn assert_ok(out: &Output, instance: &str) {
    assert!(out.status.success(), "{}", describe(out));
    assert!(
        stdout(out).contains(&format!(r#""instance": "{instance}""#)),
        "expected instance {instance}: {}",
        describe(out)
    );
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        stdout(out),
        stderr(out)
    )
}
