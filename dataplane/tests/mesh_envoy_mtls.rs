//! Mixed pairs over mutual TLS: stock Envoy and weft-proxy in one mesh, both configured by
//! weft-controller (local mode with a token file), Envoy getting its certificate and the
//! trust bundle as SDS secrets on its ADS stream, MtlsPolicy `Strict`. The gRPC interop
//! cases pass weft-proxy → Envoy (Envoy's inbound listener in front of the interop server)
//! and Envoy → weft-proxy (Envoy's outbound listener, weft-proxy's inbound in front of the
//! server); each side sees the other's SPIFFE identity.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use weft_tests::envoy::Envoy;
use weft_tests::interop::{InteropClient, InteropServer, NO_CREDENTIAL_CASES};
use weft_tests::process::{free_port, wait_until};

const CASE_TIMEOUT: Duration = Duration::from_secs(30);
/// Envoy authenticates as ServiceAccount `other`.
const ENVOY_ID: &str = "spiffe://cluster.local/ns/default/sa/other";

/// Envoy as proxy `envoy-0.default` of the mesh: ADS (Delta) over TLS to the controller,
/// with its token; inbound listener at `inbound` in front of `app`.
fn envoy_bootstrap(
    mesh: &Mesh,
    outbound: SocketAddr,
    inbound: SocketAddr,
    app: SocketAddr,
) -> String {
    let tls = mesh.controller().tls_addr.unwrap();
    let root = mesh.root_cert_path();
    let token = MeshIdentity::token("other");
    format!(
        r#"
node:
  id: envoy-0.{NS}
  cluster: weft-test
  metadata:
    outboundAddr: "{outbound}"
    inboundAddr: "{inbound}"
    appAddr: "{app}"
    labels: {{app: envoy-side}}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{cluster_name: xds}}
      initial_metadata: [{{key: authorization, value: "Bearer {token}"}}]
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
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context: {{trusted_ca: {{filename: "{root}"}}}}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
"#,
        root = root.display(),
        port = tls.port(),
    )
}

/// Runs every interop case against `localhost:<port>` (Envoy drops its listener's own
/// port from `:authority`, weft-proxy any port no route names, so both route by Service
/// `localhost`); fails listing the failures.
fn run_every_case(port: u16, route: &str, server: &InteropServer) {
    let client = InteropClient::new("localhost", port).timeout(CASE_TIMEOUT);
    let started = Instant::now();
    let mut failures = Vec::new();
    for case in NO_CREDENTIAL_CASES {
        if let Err(err) = client.run(case) {
            failures.push(format!("--- {case}\n{err:#}"));
        }
    }
    println!(
        "{route}: {} of {} cases passed in {:?}",
        NO_CREDENTIAL_CASES.len() - failures.len(),
        NO_CREDENTIAL_CASES.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} interop cases failed {route}:\n{}\n--- interop server log\n{}",
        failures.len(),
        failures.join("\n"),
        server.log_tail(20)
    );
}

/// Sum of Envoy counters named `listener.<addr>.<suffix>` for the listener at `addr`.
fn listener_stat(envoy: &Envoy, addr: SocketAddr, suffix: &str) -> u64 {
    let prefix = format!("listener.{}_{}.", addr.ip(), addr.port());
    envoy
        .stats()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix) && name.ends_with(suffix))
        .map(|(_, value)| *value)
        .sum()
}

#[test]
fn interop_cases_pass_between_weft_proxy_and_envoy_over_mtls_both_ways() {
    let server = InteropServer::start().unwrap();
    let mut mesh = Mesh::with_mtls();
    mesh.write(
        "mtls.yaml",
        &format!(
            "apiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\n\
             metadata: {{name: default, namespace: {NS}}}\nspec: {{mode: Strict}}\n"
        ),
    );
    mesh.start_controller();
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let (envoy_out, envoy_in) = (loopback(free_port()), loopback(free_port()));
    let envoy = Envoy::builder(&envoy_bootstrap(&mesh, envoy_out, envoy_in, server.addr()))
        .start()
        .unwrap_or_else(|err| panic!("Envoy did not start: {err:#}"));
    let b = mesh.start_proxy(
        ProxyOptions::new("server-0")
            .service_account("server")
            .app(server.addr())
            .no_wait(),
    );
    let a = mesh.start_proxy(ProxyOptions::new("client-0").service_account("client"));
    mesh.proxies[b].wait_ready();
    let envoy_status = mesh.controller().proxy_status("envoy-0.default").unwrap();
    assert_eq!(envoy_status["identity"], ENVOY_ID, "{envoy_status:#}");

    // weft-proxy A → Envoy's inbound listener (mTLS) → interop server.
    mesh.write("services.yaml", &service_yaml("localhost", &[envoy_in]));
    mesh.proxy(a)
        .wait_config_for("localhost", "Envoy's inbound as an mTLS endpoint", |dump| {
            dump["clusters"].as_array().into_iter().flatten().any(|c| {
                c["mtls_endpoints"]
                    .as_array()
                    .is_some_and(|e| e.contains(&envoy_in.to_string().into()))
            })
        });
    wait_until("Envoy's inbound listener", CONFIG_TIMEOUT, || {
        Ok(std::net::TcpStream::connect(envoy_in).is_ok())
    })
    .unwrap_or_else(|err| panic!("{err:#}\n{}", envoy.log_tail(30)));
    run_every_case(mesh.proxy(a).outbound.port(), "weft-proxy → Envoy", &server);
    let handshakes = listener_stat(&envoy, envoy_in, "ssl.handshake");
    let from_a = mesh.proxy(a).metrics().sum(
        "weft_proxy_rpcs_total",
        &[("direction", "outbound"), ("connection_security", "mtls")],
    );
    println!("Envoy's inbound: {handshakes} TLS handshakes; A's outbound RPCs over mTLS: {from_a}");
    assert!(handshakes >= 1 && from_a >= NO_CREDENTIAL_CASES.len() as f64);

    // Envoy's outbound listener → weft-proxy B's inbound (mTLS) → interop server.
    let b_inbound = mesh.proxy(b).inbound;
    mesh.write("services.yaml", &service_yaml("localhost", &[b_inbound]));
    // Envoy (Delta) fetches Service `localhost`'s host and cluster on its first call, held
    // until they arrive; whichever endpoint that call went to, the subscription then
    // brings B's.
    let _ = InteropClient::new("localhost", envoy_out.port())
        .timeout(CASE_TIMEOUT)
        .run("empty_unary");
    wait_until("Envoy routing to B", CONFIG_TIMEOUT, || {
        let dump = envoy.admin_get("/clusters").unwrap_or_default();
        Ok(dump.contains(&b_inbound.to_string()))
    })
    .unwrap_or_else(|err| panic!("{err:#}\n{}", envoy.log_tail(30)));
    run_every_case(envoy_out.port(), "Envoy → weft-proxy", &server);
    let from_envoy = mesh.proxy(b).metrics().sum(
        "weft_proxy_rpcs_total",
        &[
            ("direction", "inbound"),
            ("connection_security", "mtls"),
            ("peer_identity", ENVOY_ID),
        ],
    );
    println!("B's inbound RPCs over mTLS from Envoy's identity: {from_envoy}");
    assert!(from_envoy >= NO_CREDENTIAL_CASES.len() as f64);
}
