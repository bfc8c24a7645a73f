//! The standard gRPC interop cases (grpc-go's interop client and server, every case in
//! `NO_CREDENTIAL_CASES`) pass through weft-proxy: through one proxy (client → outbound
//! listener → interop server) and through two in a row (client → proxy A outbound → proxy
//! B inbound → interop server), and through two over mutual TLS (a mesh whose controller
//! authenticates proxies and issues their certificates, MtlsPolicy `Strict`). The client dials
//! `localhost:<outbound port>`, so the proxy routes by the Service named `localhost`.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::time::{Duration, Instant};

use common::*;
use weft_tests::interop::{InteropClient, InteropServer, NO_CREDENTIAL_CASES};

/// How long one case may take through the proxies (the soak cases take a few seconds).
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs every case against the proxy's outbound port; prints each result and fails listing
/// the failing cases.
fn run_every_case(port: u16, route: &str, server: &InteropServer) {
    let client = InteropClient::new("localhost", port).timeout(CASE_TIMEOUT);
    let mut failures = Vec::new();
    let started = Instant::now();
    for case in NO_CREDENTIAL_CASES {
        let case_started = Instant::now();
        let result = client.run(case);
        println!(
            "{route}: {case}: {} in {:?}",
            if result.is_ok() { "ok" } else { "FAILED" },
            case_started.elapsed()
        );
        if let Err(err) = result {
            failures.push((case, format!("{err:#}")));
        }
    }
    println!(
        "{route}: {} of {} cases passed in {:?}",
        NO_CREDENTIAL_CASES.len() - failures.len(),
        NO_CREDENTIAL_CASES.len(),
        started.elapsed()
    );
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().map(|(case, _)| **case).collect();
        let details: Vec<String> = failures
            .iter()
            .map(|(case, err)| format!("--- {case}\n{err}"))
            .collect();
        panic!(
            "{} interop cases failed {route}: {}\n{}\n--- interop server log\n{}",
            failures.len(),
            names.join(", "),
            details.join("\n"),
            server.log_tail(20)
        );
    }
}

#[test]
fn interop_cases_pass_through_one_proxy() {
    let server = InteropServer::start().unwrap();
    let mut mesh = Mesh::new();
    mesh.write(
        "services.yaml",
        &service_yaml("localhost", &[server.addr()]),
    );
    mesh.start_controller();
    let a = mesh.start_proxy(ProxyOptions::new("client-0"));
    run_every_case(mesh.proxy(a).outbound.port(), "through one proxy", &server);
    let outbound = mesh
        .proxy(a)
        .metrics()
        .sum("weft_proxy_rpcs_total", &[("direction", "outbound")]);
    assert!(
        outbound >= NO_CREDENTIAL_CASES.len() as f64,
        "the proxy counted only {outbound} outbound RPCs"
    );
}

#[test]
fn interop_cases_pass_through_two_proxies() {
    let mut mesh = Mesh::new();
    through_two_proxies(&mut mesh, "through two proxies");
}

#[test]
fn interop_cases_pass_through_two_proxies_over_mtls() {
    let mut mesh = Mesh::with_mtls();
    mesh.write(
        "mtls.yaml",
        &format!(
            "apiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\n\
             metadata: {{name: default, namespace: {NS}}}\nspec: {{mode: Strict}}\n"
        ),
    );
    let (a, b) = through_two_proxies(&mut mesh, "through two proxies over mTLS");
    let mtls = mesh.proxy(b).metrics().sum(
        "weft_proxy_rpcs_total",
        &[
            ("direction", "inbound"),
            ("connection_security", "mtls"),
            (
                "peer_identity",
                "spiffe://cluster.local/ns/default/sa/default",
            ),
        ],
    );
    let plaintext = mesh.proxy(a).metrics().sum(
        "weft_proxy_rpcs_total",
        &[
            ("direction", "outbound"),
            ("connection_security", "plaintext"),
        ],
    );
    assert!(
        mtls >= NO_CREDENTIAL_CASES.len() as f64 && plaintext == 0.0,
        "B's inbound RPCs over mTLS from A's identity: {mtls}; A's outbound over plaintext: {plaintext}"
    );
}

/// Proxy B sits in front of the interop server; Service `localhost` points at B's inbound
/// listener, so A's outbound calls reach the server through B. B speaks State-of-the-World
/// xDS, A the default (Delta). Returns the proxies' indexes.
fn through_two_proxies(mesh: &mut Mesh, route: &str) -> (usize, usize) {
    let server = InteropServer::start().unwrap();
    mesh.start_controller();
    let b = mesh.start_proxy(
        ProxyOptions::new("server-0")
            .app(server.addr())
            .xds_protocol("sotw")
            .no_wait(),
    );
    let b_inbound = mesh.proxy(b).inbound;
    mesh.write("services.yaml", &service_yaml("localhost", &[b_inbound]));
    let a = mesh.start_proxy(ProxyOptions::new("client-0"));
    mesh.proxies[b].wait_ready();
    mesh.proxy(a)
        .wait_config_for("localhost", "proxy B's inbound as the endpoint", |dump| {
            endpoints_of(dump, "localhost") == vec![b_inbound.to_string()]
        });
    run_every_case(mesh.proxy(a).outbound.port(), route, &server);
    let outbound = mesh
        .proxy(a)
        .metrics()
        .sum("weft_proxy_rpcs_total", &[("direction", "outbound")]);
    let inbound = mesh
        .proxy(b)
        .metrics()
        .sum("weft_proxy_rpcs_total", &[("direction", "inbound")]);
    println!("proxy A outbound RPCs: {outbound}, proxy B inbound RPCs: {inbound}");
    assert!(
        outbound >= NO_CREDENTIAL_CASES.len() as f64 && inbound >= NO_CREDENTIAL_CASES.len() as f64,
        "the calls did not go through both proxies (A outbound {outbound}, B inbound {inbound})"
    );
    (a, b)
}
