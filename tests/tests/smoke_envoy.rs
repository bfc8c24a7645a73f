//! Smoke tests for the Envoy test component: stock Envoy starts from a bootstrap, reports
//! ready and stats, rejects a bad bootstrap loudly, and proxies gRPC to the test backend.

use std::time::Duration;

use weft_tests::backend::{self, pb::EchoRequest};
use weft_tests::envoy::Envoy;

const ADMIN_ONLY: &str = "node: {id: smoke, cluster: smoke}\n";

#[test]
fn envoy_starts_and_reports_ready_and_stats() {
    let first = Envoy::start(ADMIN_ONLY).expect("start Envoy");
    // A second one at the same time: no hot-restart shared memory to clash on.
    let second = Envoy::start(ADMIN_ONLY).expect("start a second Envoy");
    assert_ne!(first.admin_addr(), second.admin_addr());
    assert!(first.admin_addr().ip().is_loopback());

    assert!(first.ready());
    assert_eq!(
        first.admin_get("/ready").expect("GET /ready").trim(),
        "LIVE"
    );
    assert_eq!(first.stat("server.state"), Some(0), "0 = LIVE");
    assert_eq!(first.stat("server.no.such.stat"), None);
    let stats = first.stats().expect("stats");
    assert_eq!(stats.get("server.live"), Some(&1));
    assert_eq!(stats.get("server.concurrency"), Some(&1));

    let dump = first.config_dump().expect("config dump");
    let bootstrap = &dump["configs"][0]["bootstrap"];
    assert_eq!(bootstrap["node"]["id"], "smoke", "{dump:#}");
    assert_eq!(
        bootstrap["admin"]["address"]["socket_address"]["address"],
        "127.0.0.1"
    );
}

#[test]
fn envoy_with_a_bad_bootstrap_fails_with_its_log() {
    let bad = "static_resources: {clusters: [{name: c, type: NO_SUCH_TYPE}]}\n";
    let err = match Envoy::start(bad) {
        Ok(_) => panic!("Envoy accepted a bad bootstrap"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("envoy exited early"), "{err}");
    assert!(
        err.contains("NO_SUCH_TYPE"),
        "the log tail names the problem: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_proxies_grpc_to_the_test_backend() {
    let backend = backend::Backend::start("b1").await.expect("start backend");
    let envoy = Envoy::start(&proxy_bootstrap(backend.addr().port())).expect("start Envoy");
    let listener = envoy.listener_addr("ingress").expect("listener address");
    let mut client = backend::connect(&format!("http://{listener}"))
        .await
        .expect("connect");

    let request = EchoRequest {
        message: "hello".into(),
        ..Default::default()
    };
    let reply = client.unary(request).await.expect("unary through Envoy");
    assert_eq!(reply.get_ref().instance, "b1");
    assert_eq!(reply.get_ref().message, "hello");
    assert_eq!(
        reply
            .metadata()
            .get(backend::INSTANCE_HEADER)
            .map(|v| v.as_bytes()),
        Some(&b"b1"[..])
    );

    let failing = EchoRequest {
        fail_code: tonic::Code::Unavailable as i32,
        fail_message: "backend says no".into(),
        ..Default::default()
    };
    let status = client
        .unary(failing)
        .await
        .expect_err("the backend fails this call");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "backend says no");
    assert_eq!(backend.calls(), 2);

    let total = tokio::task::spawn_blocking(move || {
        envoy.wait_for_stat(
            "cluster.backend.upstream_rq_total",
            Duration::from_secs(10),
            |n| n >= 2,
        )
    })
    .await
    .expect("join")
    .expect("upstream requests counted");
    assert_eq!(total, 2);
}

/// A listener on 127.0.0.1 (port 0) routing every request to the backend over HTTP/2.
fn proxy_bootstrap(backend_port: u16) -> String {
    format!(
        r#"
node: {{id: smoke, cluster: smoke}}
static_resources:
  listeners:
  - name: ingress
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: AUTO
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: 127.0.0.1, port_value: {backend_port}}}}}
"#
    )
}
