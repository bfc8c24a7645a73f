//! Tests for the per-RPC metrics: the exposition text has the documented series.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

use super::*;

fn labels(code: &str, fault_injected: bool) -> RpcLabels {
    RpcLabels {
        direction: Direction::Outbound,
        destination_service: "greeter.default.svc.cluster.local:50051".into(),
        grpc_service: "helloworld.Greeter".into(),
        grpc_method: "SayHello".into(),
        grpc_code: code.into(),
        fault_injected,
        connection_security: Security::Mtls,
        peer_identity: "spiffe://cluster.local/ns/default/sa/client".into(),
        protocol: Protocol::Grpc,
    }
}

const OK_LABELS: &str = "direction=\"outbound\",\
    destination_service=\"greeter.default.svc.cluster.local:50051\",\
    grpc_service=\"helloworld.Greeter\",grpc_method=\"SayHello\",grpc_code=\"OK\",\
    fault_injected=\"false\",connection_security=\"mtls\",\
    peer_identity=\"spiffe://cluster.local/ns/default/sa/client\",protocol=\"grpc\"";

fn text(registry: &Registry) -> String {
    let mut out = String::new();
    encode(&mut out, registry).unwrap();
    out
}

fn setup() -> (Registry, ProxyMetrics) {
    let mut registry = Registry::default();
    let metrics = ProxyMetrics::register(&mut registry);
    (registry, metrics)
}

#[test]
fn a_finished_rpc_shows_in_every_per_rpc_series() {
    let (registry, metrics) = setup();
    metrics.record(&labels("OK", false), Duration::from_millis(3), 1, 2);
    metrics.record(&labels("OK", false), Duration::from_millis(40), 3, 4);
    let out = text(&registry);
    let expected = [
        format!("weft_proxy_rpcs_total{{{OK_LABELS}}} 2"),
        format!("weft_proxy_rpc_request_messages_total{{{OK_LABELS}}} 4"),
        format!("weft_proxy_rpc_response_messages_total{{{OK_LABELS}}} 6"),
        format!("weft_proxy_rpc_duration_seconds_count{{{OK_LABELS}}} 2"),
        format!("weft_proxy_rpc_duration_seconds_bucket{{le=\"0.005\",{OK_LABELS}}} 1"),
        format!("weft_proxy_rpc_duration_seconds_bucket{{le=\"0.05\",{OK_LABELS}}} 2"),
        format!("weft_proxy_rpc_duration_seconds_bucket{{le=\"0.0005\",{OK_LABELS}}} 0"),
        format!("weft_proxy_rpc_duration_seconds_bucket{{le=\"30.0\",{OK_LABELS}}} 2"),
        "# TYPE weft_proxy_rpc_duration_seconds histogram".to_owned(),
        "# UNIT weft_proxy_rpc_duration_seconds seconds".to_owned(),
        "# TYPE weft_proxy_rpcs counter".to_owned(),
    ];
    for line in expected {
        assert!(out.contains(&line), "missing {line}\n{out}");
    }
    let sum_line = out
        .lines()
        .find(|line| line.starts_with("weft_proxy_rpc_duration_seconds_sum"))
        .unwrap();
    let sum: f64 = sum_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((sum - 0.043).abs() < 1e-9, "{sum_line}");
}

#[test]
fn codes_and_faults_are_separate_series() {
    let (registry, metrics) = setup();
    metrics.record(&labels("OK", false), Duration::from_millis(1), 1, 1);
    metrics.record(&labels("UNAVAILABLE", true), Duration::from_millis(1), 1, 0);
    let mut inbound = labels("UNAVAILABLE", true);
    inbound.direction = Direction::Inbound;
    metrics.record(&inbound, Duration::from_millis(1), 1, 0);
    let out = text(&registry);
    let rpcs: Vec<&str> = out
        .lines()
        .filter(|line| line.starts_with("weft_proxy_rpcs_total{"))
        .collect();
    assert_eq!(rpcs.len(), 3, "{out}");
    assert!(out.contains(
        "grpc_code=\"UNAVAILABLE\",fault_injected=\"true\",connection_security=\"mtls\""
    ));
    assert!(out.contains("weft_proxy_rpcs_total{direction=\"inbound\","));
}

#[test]
fn retries_are_counted_per_destination() {
    let (registry, metrics) = setup();
    metrics.retry("greeter:50051");
    metrics.retry("greeter:50051");
    metrics.retry("billing:8080");
    let out = text(&registry);
    assert!(out.contains("weft_proxy_retries_total{destination_service=\"greeter:50051\"} 2"));
    assert!(out.contains("weft_proxy_retries_total{destination_service=\"billing:8080\"} 1"));
}

#[test]
fn outlier_ejections_are_counted_per_destination() {
    let (registry, metrics) = setup();
    assert!(!text(&registry).contains("weft_proxy_outlier_ejections_total{"));
    metrics.outlier_ejection("greeter:50051");
    metrics.outlier_ejection("greeter:50051");
    metrics.outlier_ejection("billing:8080");
    let out = text(&registry);
    assert!(
        out.contains("# TYPE weft_proxy_outlier_ejections counter"),
        "{out}"
    );
    assert!(
        out.contains("weft_proxy_outlier_ejections_total{destination_service=\"greeter:50051\"} 2")
    );
    assert!(
        out.contains("weft_proxy_outlier_ejections_total{destination_service=\"billing:8080\"} 1")
    );
}

#[test]
fn circuit_breaker_overflows_are_counted_per_destination_and_limit() {
    let (registry, metrics) = setup();
    metrics.circuit_breaker_overflow("greeter:50051", Limit::Requests);
    metrics.circuit_breaker_overflow("greeter:50051", Limit::Requests);
    metrics.circuit_breaker_overflow("greeter:50051", Limit::Pending);
    let out = text(&registry);
    assert!(
        out.contains("# TYPE weft_proxy_circuit_breaker_overflows counter"),
        "{out}"
    );
    assert!(out.contains(
        "weft_proxy_circuit_breaker_overflows_total{destination_service=\"greeter:50051\",\
         limit=\"requests\"} 2"
    ));
    assert!(out.contains(
        "weft_proxy_circuit_breaker_overflows_total{destination_service=\"greeter:50051\",\
         limit=\"pending\"} 1"
    ));
}

#[test]
fn vhds_requests_are_counted_by_outcome() {
    let (registry, metrics) = setup();
    metrics.vhds_request(VhdsOutcome::Found);
    metrics.vhds_request(VhdsOutcome::Found);
    metrics.vhds_request(VhdsOutcome::NotFound);
    metrics.vhds_request(VhdsOutcome::Timeout);
    let out = text(&registry);
    for line in [
        "# TYPE weft_proxy_vhds_requests counter",
        "weft_proxy_vhds_requests_total{outcome=\"found\"} 2",
        "weft_proxy_vhds_requests_total{outcome=\"not_found\"} 1",
        "weft_proxy_vhds_requests_total{outcome=\"timeout\"} 1",
    ] {
        assert!(out.contains(line), "{line} missing from\n{out}");
    }
}

#[test]
fn in_flight_rpcs_are_gauged_until_dropped() {
    let (registry, metrics) = setup();
    let out = text(&registry);
    assert!(out.contains("weft_proxy_rpcs_in_flight{direction=\"outbound\"} 0"));
    assert!(out.contains("weft_proxy_rpcs_in_flight{direction=\"inbound\"} 0"));
    let first = metrics.in_flight(Direction::Outbound);
    let second = metrics.in_flight(Direction::Outbound);
    let inbound = metrics.in_flight(Direction::Inbound);
    let out = text(&registry);
    assert!(out.contains("weft_proxy_rpcs_in_flight{direction=\"outbound\"} 2"));
    assert!(out.contains("weft_proxy_rpcs_in_flight{direction=\"inbound\"} 1"));
    drop((first, second, inbound));
    let out = text(&registry);
    assert!(out.contains("weft_proxy_rpcs_in_flight{direction=\"outbound\"} 0"));
    assert!(out.contains("weft_proxy_rpcs_in_flight{direction=\"inbound\"} 0"));
}

#[test]
fn recording_from_many_threads_loses_nothing() {
    let (registry, metrics) = setup();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..1000 {
                    metrics.record(&labels("OK", false), Duration::from_micros(100), 1, 1);
                }
            });
        }
    });
    let out = text(&registry);
    assert!(
        out.contains(&format!("weft_proxy_rpcs_total{{{OK_LABELS}}} 8000")),
        "{out}"
    );
    assert!(out.contains(&format!(
        "weft_proxy_rpc_duration_seconds_count{{{OK_LABELS}}} 8000"
    )));
}

#[test]
fn timeouts_are_counted_by_cause() {
    let (registry, metrics) = setup();
    metrics.timed_out(
        &labels("DEADLINE_EXCEEDED", false),
        TimeoutCause::RouteTimeout,
    );
    let out = text(&registry);
    assert!(
        out.contains(
            "weft_proxy_rpc_timeouts_total{direction=\"outbound\",\
             destination_service=\"greeter.default.svc.cluster.local:50051\",\
             grpc_service=\"helloworld.Greeter\",grpc_method=\"SayHello\",\
             cause=\"route_timeout\"} 1"
        ),
        "{out}"
    );
}

#[test]
fn a_removed_services_series_are_dropped_and_others_kept() {
    let (registry, metrics) = setup();
    let greeter = labels("OK", false);
    let billing = RpcLabels {
        destination_service: "billing.default.svc.cluster.local:8080".into(),
        ..labels("OK", false)
    };
    let inbound = RpcLabels {
        direction: Direction::Inbound,
        ..labels("OK", false)
    };
    for rpc in [&greeter, &billing, &inbound] {
        metrics.record(rpc, Duration::from_millis(1), 1, 1);
    }
    metrics.timed_out(&greeter, TimeoutCause::ClientDeadline);
    metrics.retry(&greeter.destination_service);
    metrics.outlier_ejection(&greeter.destination_service);
    metrics.circuit_breaker_overflow(&greeter.destination_service, Limit::Pending);

    metrics.retain_destinations(|name| name == billing.destination_service);
    let out = text(&registry);
    let outbound_greeter = "direction=\"outbound\",\
                            destination_service=\"greeter.default.svc.cluster.local:50051\"";
    assert!(!out.contains(outbound_greeter), "{out}");
    assert!(
        !out.contains("{destination_service=\"greeter.default.svc.cluster.local:50051\""),
        "{out}"
    );
    assert!(out.contains("destination_service=\"billing.default.svc.cluster.local:8080\""));
    assert!(out.contains("direction=\"inbound\",destination_service=\"greeter"));

    // A later RPC to a Service that comes back starts its series afresh.
    metrics.record(&greeter, Duration::from_millis(1), 1, 1);
    assert!(text(&registry).contains(&format!("weft_proxy_rpcs_total{{{OK_LABELS}}} 1")));
}
