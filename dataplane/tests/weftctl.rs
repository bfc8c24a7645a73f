//! weftctl against a real weft-controller (local mode) with a weft-proxy (Delta) and a stock
//! Envoy (State-of-the-World) attached: `proxy-status` shows both SYNCED, then a NACK with
//! its reason; `proxy-config` of the two proxies names the same routes (weft-proxy's
//! `/config_dump` parses as Envoy's ConfigDump); `describe` shows a
//! GrpcRoute's conditions, holders and Envoy resources; `top` shows live per-method rates;
//! `translate` succeeds on the quick start's files and points at file:line:col on a broken
//! one; `completion` prints a script.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use serde_json::Value;
use weft_tests::backend::{Backend, request};
use weft_tests::envoy::{Envoy, mesh_bootstrap};
use weft_tests::process::{free_port, wait_until};

const GREETER_HOST: &str = "greeter.default.svc.cluster.local:50051";

fn weftctl_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| weft_tests::workspace_bin::workspace_bin("weftctl", "weftctl"))
}

fn weftctl(args: &[&str]) -> Output {
    let mut command = Command::new(weftctl_bin());
    clean_env(&mut command);
    command.args(args).env_remove("KUBECONFIG");
    command.output().unwrap()
}

/// stdout of a run that must succeed.
fn weftctl_ok(args: &[&str]) -> String {
    let out = weftctl(args);
    assert!(
        out.status.success(),
        "weftctl {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The route names `proxy-config routes -o json` lists for greeter's virtual host.
fn greeter_routes(admin: &str) -> Vec<String> {
    let json: Value = serde_json::from_str(&weftctl_ok(&[
        "proxy-config",
        "p",
        "routes",
        "--proxy-admin",
        admin,
        "-o",
        "json",
    ]))
    .unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["virtual_host"].as_str().unwrap().ends_with(GREETER_HOST))
        .map(|r| r["route"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weftctl_reads_a_controller_with_weft_proxy_and_envoy_attached() {
    let v1 = Backend::start("v1").await.unwrap();
    let v2 = Backend::start("v2").await.unwrap();
    let mut mesh = Mesh::new();
    mesh.write("services.yaml", &greeter_services(v1.addr(), v2.addr()));
    mesh.write("route.yaml", &weighted_route(100, 0));
    let envoy = blocking(|| {
        mesh.start_controller();
        mesh.start_proxy(ProxyOptions::new("client-0"));
        mesh.proxy(0).warm(GREETER);
        let bootstrap = mesh_bootstrap(
            &format!("envoy-0.{NS}"),
            free_port(),
            mesh.controller().xds_addr.port(),
            false,
            None,
        );
        Envoy::start(&bootstrap).unwrap()
    });
    let controller = mesh.controller().admin_addr.to_string();
    let weft_admin = mesh.proxy(0).admin_addr.to_string();
    let envoy_admin = envoy.admin_addr().to_string();

    // proxy-status: both proxies, everything sent is ACKed.
    blocking(|| {
        let mut out = String::new();
        wait_until("both proxies SYNCED", CONFIG_TIMEOUT, || {
            out = weftctl_ok(&["--controller-addr", &controller, "proxy-status"]);
            let synced = |node: &str| {
                out.lines().any(|l| {
                    l.starts_with(node)
                        && l.contains("SYNCED")
                        && !l.contains("STALE")
                        && !l.contains("NACKED")
                })
            };
            Ok(synced("client-0.default") && synced("envoy-0.default"))
        })
        .unwrap_or_else(|err| panic!("{err:#}\n{out}"));
        println!("{out}");
        assert!(out.starts_with("NAME"), "{out}");
        assert!(out.contains("Delta") && out.contains("Sotw"), "{out}");
    });

    // proxy-config: the same routes for greeter in both proxies.
    let (weft_routes, envoy_routes) = blocking(|| {
        let mut routes = (Vec::new(), Vec::new());
        wait_until("greeter's routes in both proxies", CONFIG_TIMEOUT, || {
            routes = (greeter_routes(&weft_admin), greeter_routes(&envoy_admin));
            Ok(!routes.0.is_empty() && routes.0 == routes.1)
        })
        .unwrap_or_else(|err| panic!("{err:#}: {routes:?}"));
        routes
    });
    assert!(
        weft_routes
            .iter()
            .any(|r| r.starts_with("grpcroute:default/greeter:")),
        "{weft_routes:?}"
    );
    assert_eq!(weft_routes, envoy_routes);
    // weft-proxy's /config_dump is Envoy's ConfigDump, checked against Envoy's descriptors.
    let (_, dump) = blocking(|| mesh.proxy(0).admin("/config_dump").unwrap());
    weft_tests::envoy_protos::parse_json("envoy.admin.v3.ConfigDump", &dump)
        .unwrap_or_else(|err| panic!("{err:#}\n{dump}"));
    let tables = weftctl_ok(&["proxy-config", "envoy-0", "--proxy-admin", &envoy_admin]);
    for section in [
        "Listeners:",
        "Routes:",
        "Clusters:",
        "Endpoints:",
        "Secrets:",
    ] {
        assert!(tables.contains(section), "{tables}");
    }
    assert!(tables.contains("outbound|50051||greeter-v1.default.svc.cluster.local"));

    // describe: conditions, who holds it, what it becomes.
    let described = weftctl_ok(&[
        "--controller-addr",
        &controller,
        "describe",
        "grpcroute/greeter",
    ]);
    println!("{described}");
    for expected in [
        "Kind:        GrpcRoute",
        "  Accepted      True",
        "  ResolvedRefs  True",
        "  Programmed    True",
        "client-0.default (Delta)",
        "envoy-0.default (Sotw)",
        &format!("  virtual host  outbound/default/{GREETER_HOST}"),
        "  routes to     outbound|50051||greeter-v1.default.svc.cluster.local",
    ] {
        assert!(
            described.contains(expected),
            "no {expected:?} in:\n{described}"
        );
    }
    let missing = weftctl(&[
        "--controller-addr",
        &controller,
        "describe",
        "grpcroute/nope",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("GrpcRoute default/nope not found"),
        "{stderr}"
    );

    // top: calls during its window show up per method.
    let port = mesh.proxy(0).outbound.port();
    let traffic = tokio::spawn(async move {
        let mut client = client(port, GREETER).await;
        for _ in 0..200 {
            unary(&mut client, request("top"), Duration::from_secs(5))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let top = blocking(|| {
        weftctl_ok(&[
            "top",
            "--proxy-admin",
            &weft_admin,
            "--interval",
            "1",
            "--once",
        ])
    });
    traffic.await.unwrap();
    println!("{top}");
    let row = top
        .lines()
        .find(|l| l.contains("outbound") && l.contains(GREETER_HOST))
        .unwrap_or_else(|| panic!("no greeter row:\n{top}"));
    assert!(row.contains("100.00%"), "{row}");

    // A NACK shows as NACKED with its reason.
    mesh.write("route.yaml", &nacked_route("greeter-v2"));
    blocking(|| {
        let mut out = String::new();
        wait_until("client-0's NACK in proxy-status", CONFIG_TIMEOUT, || {
            out = weftctl_ok(&["--controller-addr", &controller, "proxy-status"]);
            Ok(out.contains("client-0.default NACKED VHDS"))
        })
        .unwrap_or_else(|err| panic!("{err:#}\n{out}"));
        println!("{out}");
        let row = out
            .lines()
            .find(|l| l.starts_with("client-0.default "))
            .unwrap();
        assert!(row.contains("NACKED"), "{row}");
        assert!(out.contains("is not supported by weft-proxy"), "{out}");
    });
    drop(envoy);
}

#[test]
fn translate_accepts_the_quick_start_and_points_at_a_broken_line() {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/local");
    let names = weftctl_ok(&["translate", "-f", local.to_str().unwrap(), "-o", "names"]);
    assert!(names.contains("RDS outbound/default\n"), "{names}");
    assert!(names.contains("CDS outbound|50051||greeter.default.svc.cluster.local\n"));
    let resources = weftctl_ok(&["translate", "-f", local.to_str().unwrap()]);
    assert!(resources.contains("--- RDS outbound/default\nRouteConfiguration {"));

    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&local).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let route = dir.path().join("route.yaml");
    let text = std::fs::read_to_string(&route).unwrap();
    let broken = text.replacen("spec:\n", "spec:\n  bogus: 1\n", 1);
    assert_ne!(text, broken, "route.yaml has no spec");
    std::fs::write(&route, broken).unwrap();
    let line = text.lines().position(|l| l == "spec:").unwrap() + 2;
    let out = weftctl(&["translate", "-f", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:{line}:3: ", route.display());
    assert!(stderr.contains(&expected), "no {expected:?} in:\n{stderr}");
    assert!(stderr.contains("unknown field"), "{stderr}");

    let completion = weftctl_ok(&["completion", "bash"]);
    assert!(completion.contains("_weftctl()"), "{completion}");
    let bad_flag = weftctl(&["proxy-status", "--bogus"]);
    assert_eq!(bad_flag.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&bad_flag.stderr).lines().count(), 1);
}
