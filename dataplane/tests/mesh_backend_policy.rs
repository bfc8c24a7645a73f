//! BackendPolicy end to end, with weft-proxy and with stock Envoy as the client's proxy, both
//! configured by the same controller from the same files (local mode):
//! - outlier detection: of three endpoints, one fails every call; after the configured
//!   consecutive errors it gets no call for the ejection time, then comes back (and is
//!   ejected again), while the client, retrying UNAVAILABLE, sees ≥ 99% of its calls succeed;
//! - circuit breaking: with `maxRequests: N` and N calls held open by the backend, call N+1
//!   fails fast with UNAVAILABLE and a message that names the limit; the N held calls
//!   succeed, and once they are done calls pass again.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use weft_tests::backend::Backend;
use weft_tests::envoy::{Envoy, mesh_bootstrap};
use weft_tests::process::{free_port, wait_until};

/// Which proxy the client calls through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientProxy {
    Weft,
    Envoy,
}

/// A running mesh with one client-side proxy of the given kind.
struct Client {
    mesh: Mesh,
    envoy: Option<Envoy>,
    port: u16,
}

impl Client {
    /// Starts the controller on `mesh`'s files and a client proxy of `kind`, and waits until
    /// the proxy holds the cluster of `greeter` with a connect timeout of `connect_timeout_ms`
    /// (every policy here sets one, so this proves the policy arrived).
    fn start(mut mesh: Mesh, kind: ClientProxy, connect_timeout_ms: u64) -> Client {
        mesh.start_controller();
        match kind {
            ClientProxy::Weft => {
                mesh.start_proxy(ProxyOptions::new("client-0"));
                mesh.proxy(0).wait_config("the BackendPolicy", |dump| {
                    dump["clusters"].as_array().is_some_and(|clusters| {
                        clusters.iter().any(|c| {
                            c["service"] == GREETER && c["connect_timeout_ms"] == connect_timeout_ms
                        })
                    })
                });
                let port = mesh.proxy(0).outbound.port();
                Client {
                    mesh,
                    envoy: None,
                    port,
                }
            }
            ClientProxy::Envoy => {
                let port = free_port();
                let xds = mesh.controller().xds_addr;
                // State-of-the-World: Envoy holds greeter's cluster before the first call
                // (over Delta it would fetch it on that call), so the policy can be
                // checked in its config first.
                let bootstrap =
                    mesh_bootstrap(&format!("envoy-0.{NS}"), port, xds.port(), false, None);
                let envoy = Envoy::start(&bootstrap).unwrap();
                let timeout = format!("{}s", connect_timeout_ms as f64 / 1000.0);
                wait_until(
                    "Envoy's greeter cluster with the policy",
                    CONFIG_TIMEOUT,
                    || {
                        let dump = envoy.config_dump()?.to_string();
                        Ok(dump.contains(&format!("\"connect_timeout\":\"{timeout}\"")))
                    },
                )
                .unwrap();
                wait_until("Envoy's outbound listener", CONFIG_TIMEOUT, || {
                    Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
                })
                .unwrap();
                Client {
                    mesh,
                    envoy: Some(envoy),
                    port,
                }
            }
        }
    }

    /// Outlier ejections the proxy counted so far.
    fn ejections(&self) -> f64 {
        match &self.envoy {
            None => self
                .mesh
                .proxy(0)
                .metrics()
                .sum("weft_proxy_outlier_ejections_total", &[]),
            Some(envoy) => envoy
                .stats()
                .unwrap()
                .iter()
                .filter(|(name, _)| name.ends_with("outlier_detection.ejections_enforced_total"))
                .map(|(_, value)| *value as f64)
                .sum(),
        }
    }
}

/// BackendPolicy `greeter` on Service `greeter` with `settings` (YAML mapping lines,
/// indented 2).
fn backend_policy(settings: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: BackendPolicy\n\
         metadata: {{name: greeter, namespace: {NS}}}\n\
         spec:\n  targetRef: {{kind: Service, name: greeter}}\n{settings}"
    )
}

const CONSECUTIVE_ERRORS: u64 = 3;
/// The route's `retry.attempts` (see `retrying_route`).
const RETRIES: u64 = 3;
const BASE_EJECTION: Duration = Duration::from_secs(4);
/// Envoy returns an ejected endpoint at the first interval tick after its ejection time.
const INTERVAL: Duration = Duration::from_secs(1);
/// Bounds on the calls of one phase, whatever happens.
const MAX_CALLS_PER_PHASE: usize = 2_000;
/// Between calls, so a phase of a few seconds stays a few hundred calls.
const PAUSE: Duration = Duration::from_millis(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outlier_detection_ejects_a_failing_endpoint_through_weft_proxy() {
    outlier_detection(ClientProxy::Weft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outlier_detection_ejects_a_failing_endpoint_through_envoy() {
    outlier_detection(ClientProxy::Envoy).await;
}

async fn outlier_detection(kind: ClientProxy) {
    let healthy = [
        Backend::start("a").await.unwrap(),
        Backend::start("b").await.unwrap(),
    ];
    let broken = Backend::start("broken").await.unwrap();
    broken.set_failure(Some((Code::Unavailable, "broken instance")));
    let mesh = Mesh::new();
    let endpoints = [healthy[0].addr(), healthy[1].addr(), broken.addr()];
    mesh.write("services.yaml", &service_yaml("greeter", &endpoints));
    mesh.write("route.yaml", &retrying_route());
    mesh.write(
        "policy.yaml",
        &backend_policy(&format!(
            "  connectTimeout: 2s\n  outlierDetection: {{consecutiveErrors: {CONSECUTIVE_ERRORS}, \
             interval: {}s, baseEjectionTime: {}s, maxEjectionPercent: 34}}\n",
            INTERVAL.as_secs(),
            BASE_EJECTION.as_secs()
        )),
    );
    let proxy = blocking(|| Client::start(mesh, kind, 2000));
    let mut client = client(proxy.port, GREETER).await;
    let mut calls = Calls::default();

    // Until the broken endpoint has failed the configured number of times.
    let start = Instant::now();
    while broken.calls() < CONSECUTIVE_ERRORS && calls.total < MAX_CALLS_PER_PHASE {
        calls.one(&mut client).await;
    }
    let ejected_at = Instant::now();
    // weft-proxy ejects on the attempt that reaches the count, before the next one is
    // balanced. Envoy's ejection is asynchronous (its main thread ejects, then tells the
    // worker), so a retry of that same call may still reach the endpoint: at most its
    // remaining retries.
    let at_ejection = broken.calls();
    let allowed = match kind {
        ClientProxy::Weft => CONSECUTIVE_ERRORS,
        ClientProxy::Envoy => CONSECUTIVE_ERRORS + RETRIES,
    };
    assert!(
        (CONSECUTIVE_ERRORS..=allowed).contains(&at_ejection),
        "{kind:?}: the broken endpoint failed {at_ejection} times (expected \
         {CONSECUTIVE_ERRORS} to {allowed}) in {} calls ({:?})",
        calls.total,
        start.elapsed()
    );

    // Ejected: no call reaches it for the ejection time (less a margin for the slack of
    // measuring from here rather than from the ejection itself).
    let quiet = BASE_EJECTION - Duration::from_millis(500);
    let phase = calls.total;
    while ejected_at.elapsed() < quiet && calls.total - phase < MAX_CALLS_PER_PHASE {
        calls.one(&mut client).await;
        tokio::time::sleep(PAUSE).await;
    }
    assert_eq!(
        broken.calls(),
        at_ejection,
        "{kind:?}: the ejected endpoint got calls within {quiet:?} of its ejection"
    );
    assert!(
        calls.total - phase > 100,
        "{kind:?}: only {} calls while ejected",
        calls.total - phase
    );
    let ejections = blocking(|| proxy.ejections());
    assert!(ejections >= 1.0, "{kind:?}: ejections counted: {ejections}");

    // Back in service after the ejection time (and, for Envoy, the next interval tick): it
    // fails again and is ejected again.
    let back_by = BASE_EJECTION + INTERVAL * 2 + Duration::from_secs(2);
    let phase = calls.total;
    while broken.calls() == at_ejection
        && ejected_at.elapsed() < back_by
        && calls.total - phase < MAX_CALLS_PER_PHASE
    {
        calls.one(&mut client).await;
        tokio::time::sleep(PAUSE).await;
    }
    let returned_after = ejected_at.elapsed();
    assert!(
        broken.calls() > at_ejection,
        "{kind:?}: the endpoint did not come back within {back_by:?}"
    );
    assert!(
        returned_after >= BASE_EJECTION - Duration::from_millis(500),
        "{kind:?}: the endpoint came back after {returned_after:?}"
    );
    println!(
        "{kind:?}: {} calls, {} failed; broken endpoint called {} times; back after {returned_after:?}",
        calls.total,
        calls.failed.len(),
        broken.calls()
    );
    let success = 1.0 - calls.failed.len() as f64 / calls.total as f64;
    assert!(
        success >= 0.99,
        "{kind:?}: success ratio {success:.4}: {:?}",
        calls.failed
    );
    drop(proxy);
}

/// The outcome of a run of calls.
#[derive(Default)]
struct Calls {
    total: usize,
    failed: Vec<String>,
}

impl Calls {
    async fn one(&mut self, client: &mut EchoClient<tonic::transport::Channel>) {
        self.total += 1;
        let message = request(&format!("call {}", self.total));
        if let Err(status) = unary(client, message, Duration::from_secs(5)).await {
            self.failed
                .push(format!("{:?}: {}", status.code(), status.message()));
        }
    }
}

const MAX_REQUESTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_circuit_breaker_fails_the_call_over_its_limit_through_weft_proxy() {
    circuit_breaker(ClientProxy::Weft, "maxRequests 4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_circuit_breaker_fails_the_call_over_its_limit_through_envoy() {
    // Envoy says which limit only as "overflow" (its reset reason).
    circuit_breaker(ClientProxy::Envoy, "overflow").await;
}

async fn circuit_breaker(kind: ClientProxy, names_the_limit: &str) {
    let backend = Backend::start("slow").await.unwrap();
    let mesh = Mesh::new();
    mesh.write("services.yaml", &service_yaml("greeter", &[backend.addr()]));
    mesh.write(
        "policy.yaml",
        &backend_policy(&format!(
            "  connectTimeout: 3s\n  circuitBreaker: {{maxRequests: {MAX_REQUESTS}}}\n"
        )),
    );
    let proxy = blocking(|| Client::start(mesh, kind, 3000));
    let client = client(proxy.port, GREETER).await;

    // N calls the backend holds for 2 s.
    let held: Vec<_> = (0..MAX_REQUESTS)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move {
                unary(
                    &mut client,
                    slow_request(&format!("held {i}"), 2000),
                    Duration::from_secs(10),
                )
                .await
            })
        })
        .collect();
    wait_async("the backend holding every call", CONFIG_TIMEOUT, || {
        let calls = backend.calls();
        async move { calls == MAX_REQUESTS as u64 }
    })
    .await;

    // Call N+1 fails fast, naming the limit, and never reaches the backend.
    let started = Instant::now();
    let over = unary(
        &mut client.clone(),
        request("over"),
        Duration::from_secs(10),
    )
    .await;
    let status = over.expect_err("the call over the limit succeeded");
    println!(
        "{kind:?}: over the limit: {status:?} after {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Code::Unavailable, "{kind:?}: {status:?}");
    assert!(
        status.message().contains(names_the_limit),
        "{kind:?}: {:?} does not name the limit ({names_the_limit:?})",
        status.message()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{kind:?}: the call over the limit took {:?}",
        started.elapsed()
    );
    assert_eq!(backend.calls(), MAX_REQUESTS as u64);

    // The held calls finish well; then calls pass again.
    for call in held {
        let reply = call.await.unwrap();
        assert!(reply.is_ok(), "{kind:?}: a held call failed: {reply:?}");
    }
    let after = unary(
        &mut client.clone(),
        request("after"),
        Duration::from_secs(10),
    )
    .await;
    assert!(after.is_ok(), "{kind:?}: after the held calls: {after:?}");
    drop(proxy);
}
