//! A real Prometheus scrapes one weft-proxy's `/metrics` every second; after traffic (a
//! fault aborts 20% of Unary calls), the dashboard queries work: the per-method request
//! rate is positive for the method a route names, and the error ratio is close to the
//! injected percentage.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use weft_tests::backend::Backend;
use weft_tests::process::wait_until;
use weft_tests::prometheus::{Prometheus, ScrapeJob};

const ABORT_PERCENT: f64 = 20.0;
const CLIENTS: usize = 4;
const TRAFFIC_FOR: Duration = Duration::from_secs(6);
const MAX_CALLS_PER_CLIENT: usize = 20_000;

const RATE_BY_METHOD: &str = "sum by (grpc_method) (rate(weft_proxy_rpcs_total[30s]))";
const ERROR_RATIO: &str = "sum(rate(weft_proxy_rpcs_total{grpc_code!=\"OK\"}[30s])) / \
                           sum(rate(weft_proxy_rpcs_total[30s]))";

const P99: &str = "histogram_quantile(0.99, sum by (le) \
                   (rate(weft_proxy_rpc_duration_seconds_bucket{grpc_code=\"OK\"}[30s])))";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_computes_per_method_rate_and_error_ratio() {
    let started = Instant::now();
    let v1 = Backend::start("v1").await.unwrap();
    let v2 = Backend::start("v2").await.unwrap();
    let mut mesh = Mesh::new();
    mesh.write("services.yaml", &greeter_services(v1.addr(), v2.addr()));
    mesh.write("route.yaml", &weighted_route(100, 0));
    mesh.write(
        "fault.yaml",
        &fault_yaml(
            "chaos",
            &format!(
                "  targetRef: {{kind: Service, name: greeter}}\n  \
                 match: {{method: {{service: weft.test.Echo, method: Unary}}}}\n  \
                 abort: {{grpcStatus: UNAVAILABLE, message: chaos, percentage: {ABORT_PERCENT}}}\n"
            ),
        ),
    );
    let prometheus = blocking(|| {
        mesh.start_controller();
        mesh.start_proxy(ProxyOptions::new("client-0"));
        mesh.proxy(0).wait_config("the 20% abort", |dump| {
            routes(dump)
                .iter()
                .any(|r| r["fault"]["abort"]["per_million"] == 200_000)
        });
        let prometheus =
            Prometheus::start(&[ScrapeJob::new("weft-proxy", &[mesh.proxy(0).admin_addr])])
                .unwrap();
        prometheus
            .wait_targets_up(Duration::from_secs(15))
            .unwrap_or_else(|err| panic!("{err:#}\n{}", prometheus.log_tail(20)));
        prometheus
    });

    // Steady traffic: every Unary call either answers OK or is aborted by the fault.
    let port = mesh.proxy(0).outbound.port();
    let (ok, aborted) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic_started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = client(port, GREETER).await;
        let (ok, aborted) = (ok.clone(), aborted.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..MAX_CALLS_PER_CLIENT {
                if traffic_started.elapsed() >= TRAFFIC_FOR {
                    break;
                }
                match unary(&mut client, request("load"), Duration::from_secs(5)).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(status) if status.code() == Code::Unavailable => {
                        aborted.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(status) => panic!("unexpected failure: {status:?}"),
                };
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (ok, aborted) = (ok.load(Ordering::Relaxed), aborted.load(Ordering::Relaxed));
    let total = ok + aborted;
    let observed = aborted as f64 / total as f64;
    println!(
        "traffic: {total} calls, {aborted} aborted ({:.1}%)",
        observed * 100.0
    );
    assert!(total >= 200, "only {total} calls in {TRAFFIC_FOR:?}");

    // The proxy counted exactly what the clients saw.
    let metrics = blocking(|| mesh.proxy(0).metrics());
    let counted = |code| {
        metrics.sum(
            "weft_proxy_rpcs_total",
            &[("grpc_method", "Unary"), ("grpc_code", code)],
        )
    };
    assert_eq!(
        (counted("OK"), counted("UNAVAILABLE")),
        (ok as f64, aborted as f64),
        "weft_proxy_rpcs_total disagrees with the clients:\n{}",
        metrics.text
    );

    // Prometheus has scraped the final counts.
    blocking(|| {
        let own = mesh.proxy(0).metrics().sum("weft_proxy_rpcs_total", &[]);
        let mut seen = 0.0;
        wait_until(
            "Prometheus to scrape the final counts",
            Duration::from_secs(10),
            || {
                let result = prometheus.query_vector("sum(weft_proxy_rpcs_total)")?;
                seen = result.first().map_or(0.0, |(_, v)| *v);
                Ok(seen == own)
            },
        )
        .unwrap_or_else(|err| panic!("{err:#}: proxy says {own}, Prometheus {seen}"));
    });

    let by_method = blocking(|| prometheus.query_vector(RATE_BY_METHOD)).unwrap();
    println!("{RATE_BY_METHOD}\n  = {by_method:?}");
    let unary_rate = by_method
        .iter()
        .find(|(labels, _)| labels["grpc_method"] == "Unary")
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no grpc_method=\"Unary\" series in {by_method:?}"));
    assert!(unary_rate > 0.0, "Unary rate {unary_rate}");

    let ratio = blocking(|| prometheus.query_vector(ERROR_RATIO)).unwrap();
    println!("{ERROR_RATIO}\n  = {ratio:?}");
    let ratio = ratio.first().map(|(_, v)| *v).expect("no error ratio");
    assert!(ratio > 0.0 && ratio < 1.0, "error ratio {ratio}");
    // The injected 20% ± 7 points (≈ 5σ at 200 calls), and what the clients saw ± 5 points
    // (Prometheus misses what happened before a series' first scrape).
    assert!(
        (ratio - ABORT_PERCENT / 100.0).abs() < 0.07,
        "error ratio {ratio}, injected {ABORT_PERCENT}%"
    );
    assert!(
        (ratio - observed).abs() < 0.05,
        "error ratio {ratio}, clients saw {observed}"
    );

    // The latency histogram works for a dashboard's p99 (the backend answers at once).
    let p99 = blocking(|| prometheus.query_vector(P99)).unwrap();
    println!("{P99}\n  = {p99:?}");
    let p99 = p99.first().map(|(_, v)| *v).expect("no p99");
    assert!(
        p99.is_finite() && p99 > 0.0 && p99 < 1.0,
        "p99 latency {p99} s"
    );
    println!("whole test: {:?}", started.elapsed());
}
