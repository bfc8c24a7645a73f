//! Routing through weft-proxy, configured by weft-controller in local mode (the scenarios
//! the controller's Envoy tests run, now with the real sidecar): calls reach the right
//! backend by service (every authority form) and by method; a weight change shifts traffic;
//! a delay fault slows only matched calls; an abort fault returns the configured code and
//! message as a Trailers-Only response, and removing it restores calls; a route timeout caps
//! a long client deadline; retries on UNAVAILABLE reach a healthy backend; per-method metric
//! series carry the right labels (`other` for methods no route names).

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use weft_tests::backend::Backend;

/// Two backends, Services greeter/greeter-v1/greeter-v2, `route` (if any), the controller
/// and one ready proxy.
struct Greeter {
    mesh: Mesh,
    v1: Backend,
    v2: Backend,
    /// The proxy's outbound port.
    port: u16,
}

async fn greeter(route: Option<String>) -> Greeter {
    let v1 = Backend::start("v1").await.unwrap();
    let v2 = Backend::start("v2").await.unwrap();
    let mut mesh = Mesh::new();
    mesh.write("services.yaml", &greeter_services(v1.addr(), v2.addr()));
    if let Some(route) = route {
        mesh.write("route.yaml", &route);
    }
    blocking(|| {
        mesh.start_controller();
        mesh.start_proxy(ProxyOptions::new("client-0"));
    });
    let port = mesh.proxy(0).outbound.port();
    Greeter { mesh, v1, v2, port }
}

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_reach_the_right_backend_by_service_and_method() {
    let g = greeter(Some(weighted_route(100, 0))).await;

    // By service, in every authority form; a port no virtual host lists is stripped.
    for (authority, expected) in [
        (GREETER, "v1"),
        ("greeter", "v1"),
        ("greeter.default", "v1"),
        ("greeter.default.svc", "v1"),
        ("greeter-v2.default.svc.cluster.local:50051", "v2"),
        ("greeter-v2", "v2"),
        ("greeter-v2.default:50051", "v2"),
        ("greeter-v2.default:31999", "v2"),
        ("greeter-v1.default", "v1"),
    ] {
        let mut client = client(g.port, authority).await;
        let reply = unary(&mut client, request("hi"), DEADLINE)
            .await
            .unwrap_or_else(|status| panic!("authority {authority}: {status:?}"));
        assert_eq!(reply.instance, expected, "authority {authority}");
    }

    // By method on greeter: Unary → v1 (100/0), ServerStream → v2, methods no rule names
    // (ClientStream, BidiStream) → the Service itself (v1).
    let mut client = client(g.port, GREETER).await;
    let reply = unary(&mut client, request("hi"), DEADLINE).await.unwrap();
    assert_eq!(reply.instance, "v1");
    let mut stream = client
        .server_stream(with_deadline(
            EchoRequest {
                count: 3,
                ..request("stream")
            },
            DEADLINE,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut replies = Vec::new();
    while let Some(reply) = stream.message().await.unwrap() {
        replies.push(reply);
    }
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(replies.iter().all(|r| r.instance == "v2"), "{replies:?}");
    let reply = client
        .client_stream(with_deadline(
            tokio_stream::iter(vec![request("a"), request("b")]),
            DEADLINE,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.instance.as_str(), reply.received), ("v1", 2));

    // A name no virtual host answers to: a gRPC error naming it, as Trailers-Only.
    let authority = "nosuch.default.svc.cluster.local:50051";
    let mut client = common::client(g.port, authority).await;
    let status = unary(&mut client, request("lost"), DEADLINE)
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::Unimplemented | Code::Unavailable),
        "{status:?}"
    );
    assert!(status.message().contains("nosuch"), "{status:?}");
    let raw = raw_unary(
        g.port,
        authority,
        "/weft.test.Echo/Unary",
        &request("x"),
        &[],
    )
    .await
    .unwrap();
    assert!(raw.is_trailers_only(), "{raw:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_weight_change_shifts_traffic() {
    let g = greeter(Some(weighted_route(100, 0))).await;
    let mut client = client(g.port, GREETER).await;
    let before = unary_split(&mut client, 20).await;
    assert_eq!(before.get("v1"), Some(&20), "100/0 gave {before:?}");

    g.mesh.write("route.yaml", &weighted_route(90, 10));
    blocking(|| {
        g.mesh.proxy(0).wait_config("weights 90/10", |dump| {
            backend_weights(dump)
                .iter()
                .any(|w| w.values().copied().collect::<BTreeSet<_>>() == BTreeSet::from([10, 90]))
        });
    });
    // 300 calls at 90/10: v1 must get 90% ± 7 points (249..=291; σ ≈ 1.7 points).
    let calls = 300;
    let split = unary_split(&mut client, calls).await;
    let v1 = split.get("v1").copied().unwrap_or(0);
    let v2 = split.get("v2").copied().unwrap_or(0);
    println!("90/10 over {calls} calls: {split:?}");
    assert_eq!(v1 + v2, calls, "some calls failed: {split:?}");
    assert!((249..=291).contains(&v1), "90/10 gave {split:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delay_fault_slows_only_matched_calls() {
    let g = greeter(Some(weighted_route(100, 0))).await;
    g.mesh.write(
        "fault.yaml",
        &fault_yaml(
            "slow-unary",
            "  targetRef: {kind: Service, name: greeter}\n  \
             match: {method: {service: weft.test.Echo, method: Unary}}\n  \
             delay: {fixedDelay: 500ms, percentage: 100}\n",
        ),
    );
    blocking(|| {
        g.mesh.proxy(0).wait_config("the 500 ms delay", |dump| {
            routes(dump)
                .iter()
                .any(|r| r["fault"]["delay"]["delay_ms"] == 500)
        });
    });
    let mut client = client(g.port, GREETER).await;
    for _ in 0..2 {
        let start = Instant::now();
        unary(&mut client, request("slow"), DEADLINE).await.unwrap();
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(500),
            "matched call not delayed: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(3),
            "delayed far too long: {elapsed:?}"
        );
    }
    for _ in 0..2 {
        let start = Instant::now();
        let mut stream = client
            .server_stream(with_deadline(request("fast"), DEADLINE))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stream.message().await.unwrap().unwrap().instance, "v2");
        let elapsed = start.elapsed();
        assert!(
            elapsed < Duration::from_millis(400),
            "unmatched call delayed: {elapsed:?}"
        );
    }
    let metrics = blocking(|| g.mesh.proxy(0).metrics());
    assert!(
        metrics.sum(
            "weft_proxy_rpcs_total",
            &[("grpc_method", "Unary"), ("fault_injected", "true")]
        ) >= 2.0,
        "delayed calls are not labelled fault_injected=\"true\":\n{}",
        metrics.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abort_fault_returns_its_code_and_message_until_removed() {
    let g = greeter(Some(weighted_route(100, 0))).await;
    let mut client = client(g.port, GREETER).await;
    unary(&mut client, request("before"), DEADLINE)
        .await
        .unwrap();

    g.mesh.write(
        "fault.yaml",
        &fault_yaml(
            "chaos",
            "  targetRef: {kind: Service, name: greeter}\n  \
             abort: {grpcStatus: RESOURCE_EXHAUSTED, message: injected by weft, percentage: 100}\n",
        ),
    );
    blocking(|| {
        g.mesh.proxy(0).wait_config("the abort fault", |dump| {
            routes(dump)
                .iter()
                .any(|r| r["fault"]["abort"]["grpc_status"] == 8)
        });
    });
    let calls_before = g.v1.calls() + g.v2.calls();
    let status = unary(&mut client, request("aborted"), DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.message(), "injected by weft", "{status:?}");
    // On the wire: Trailers-Only, exact status and message.
    let raw = raw_unary(
        g.port,
        GREETER,
        "/weft.test.Echo/Unary",
        &request("raw"),
        &[],
    )
    .await
    .unwrap();
    assert!(raw.is_trailers_only(), "{raw:?}");
    assert_eq!(raw.grpc_status().as_deref(), Some("8"), "{raw:?}");
    assert_eq!(
        raw.grpc_message().as_deref(),
        Some("injected by weft"),
        "{raw:?}"
    );
    assert_eq!(
        g.v1.calls() + g.v2.calls(),
        calls_before,
        "an aborted call must not reach a backend"
    );

    // A message that needs percent-encoding arrives intact.
    let message = "weft chaos: 100% of calls fail — réessayez";
    g.mesh.write(
        "fault.yaml",
        &fault_yaml(
            "chaos",
            &format!(
                "  targetRef: {{kind: Service, name: greeter}}\n  \
                 abort: {{grpcStatus: UNAVAILABLE, message: \"{message}\", percentage: 100}}\n"
            ),
        ),
    );
    blocking(|| {
        g.mesh
            .proxy(0)
            .wait_config("the UNAVAILABLE abort", |dump| {
                routes(dump)
                    .iter()
                    .any(|r| r["fault"]["abort"]["grpc_status"] == 14)
            });
    });
    let status = unary(&mut client, request("aborted"), DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");

    // Removing the fault restores normal calls.
    g.mesh.remove("fault.yaml");
    blocking(|| {
        g.mesh.proxy(0).wait_config("no fault", |dump| {
            !has_fault(dump) && !routes(dump).is_empty()
        });
    });
    let reply = unary(&mut client, request("back"), DEADLINE).await.unwrap();
    assert_eq!(reply.instance, "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_route_timeout_caps_a_long_client_deadline() {
    let route = route_yaml(
        "greeter",
        "  - matches: [{method: {service: weft.test.Echo, method: Unary}}]\n    \
         backendRefs: [{name: greeter-v1, port: 50051}]\n    timeout: 300ms\n",
    );
    let g = greeter(Some(route)).await;
    blocking(|| {
        g.mesh
            .proxy(0)
            .wait_config("the 300 ms route timeout", |dump| {
                routes(dump).iter().any(|r| r["timeout_ms"] == 300)
            });
    });
    let mut client = client(g.port, GREETER).await;
    // Within the timeout: fine.
    unary(&mut client, slow_request("quick", 50), DEADLINE)
        .await
        .unwrap();
    // The backend would take 3 s and the client allows 10 s: the route's 300 ms wins.
    for _ in 0..2 {
        let start = Instant::now();
        let status = unary(&mut client, slow_request("slow", 3000), DEADLINE)
            .await
            .unwrap_err();
        let elapsed = start.elapsed();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500),
            "DEADLINE_EXCEEDED after {elapsed:?}, expected near the route's 300 ms"
        );
    }
    // A client that sets no deadline gets the route's timeout as its deadline.
    let raw = raw_unary(
        g.port,
        GREETER,
        "/weft.test.Echo/Unary",
        &slow_request("no deadline", 3000),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(raw.grpc_status().as_deref(), Some("4"), "{raw:?}");
    assert!(
        raw.elapsed >= Duration::from_millis(300) && raw.elapsed < Duration::from_millis(1500),
        "DEADLINE_EXCEEDED after {:?} without a client deadline, expected near 300 ms",
        raw.elapsed
    );
    // ServerStream is not under the rule: no cap.
    let start = Instant::now();
    let mut stream = client
        .server_stream(with_deadline(slow_request("uncapped", 600), DEADLINE))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_on_unavailable_reach_a_healthy_backend() {
    let good = Backend::start("good").await.unwrap();
    let bad = Backend::start("bad").await.unwrap();
    bad.set_failure(Some((Code::Unavailable, "bad instance")));
    let no_retry = route_yaml(
        "greeter",
        "  - matches: [{method: {service: weft.test.Echo, method: Unary}}]\n    \
         backendRefs: [{name: greeter, port: 50051}]\n",
    );
    let mut mesh = Mesh::new();
    mesh.write(
        "services.yaml",
        &service_yaml("greeter", &[good.addr(), bad.addr()]),
    );
    mesh.write("route.yaml", &no_retry);
    blocking(|| {
        mesh.start_controller();
        mesh.start_proxy(ProxyOptions::new("client-0"));
        mesh.proxy(0).wait_config("both endpoints", |dump| {
            endpoints_of(dump, "greeter").len() == 2
        });
    });
    let port = mesh.proxy(0).outbound.port();
    let mut client = client(port, GREETER).await;

    // Without retries about half the calls fail (P(no failure in 20) = 2^-20).
    let split = unary_split(&mut client, 20).await;
    println!("no retries: {split:?}");
    assert!(
        split.get("error: Unavailable").copied().unwrap_or(0) > 0,
        "the failing instance never failed a call: {split:?}"
    );

    mesh.write(
        "route.yaml",
        &route_yaml(
            "greeter",
            "  - matches: [{method: {service: weft.test.Echo, method: Unary}}]\n    \
             backendRefs: [{name: greeter, port: 50051}]\n    \
             retry: {attempts: 10, codes: [UNAVAILABLE], backoff: 5ms}\n",
        ),
    );
    blocking(|| {
        mesh.proxy(0).wait_config("the retry policy", |dump| {
            routes(dump).iter().any(|r| r["retry"]["retries"] == 10)
        });
    });
    let retries_before = blocking(|| mesh.proxy(0).metrics().sum("weft_proxy_retries_total", &[]));
    let bad_before = bad.calls();
    // With 10 retries a call fails only if 11 picks in a row hit the bad instance (≈ 2^-11
    // if picks were independent); allow one such call in 40.
    let calls = 40;
    let split = unary_split(&mut client, calls).await;
    println!("10 retries: {split:?}");
    let ok = split.get("good").copied().unwrap_or(0);
    assert!(
        ok >= calls - 1,
        "retries did not reach the healthy backend: {split:?}"
    );
    assert!(
        bad.calls() > bad_before,
        "no attempt reached the failing instance"
    );
    let retries = blocking(|| mesh.proxy(0).metrics().sum("weft_proxy_retries_total", &[]));
    println!("weft_proxy_retries_total {retries_before} → {retries}");
    assert!(
        retries - retries_before >= (bad.calls() - bad_before) as f64 - 1.0,
        "weft_proxy_retries_total grew by {} but {} attempts failed at the bad instance",
        retries - retries_before,
        bad.calls() - bad_before
    );
    assert!(
        retries > retries_before,
        "weft_proxy_retries_total did not grow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_method_metric_series_have_the_right_labels() {
    let g = greeter(Some(weighted_route(100, 0))).await;
    let mut client = client(g.port, GREETER).await;
    for _ in 0..3 {
        unary(&mut client, request("named"), DEADLINE)
            .await
            .unwrap();
    }
    let failed = EchoRequest {
        fail_code: Code::NotFound as i32,
        fail_message: "no such thing".into(),
        ..request("fails")
    };
    let status = unary(&mut client, failed, DEADLINE).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // ClientStream is named by no route: counted as `other`, 4 messages per call.
    for _ in 0..2 {
        client
            .client_stream(with_deadline(
                tokio_stream::iter(vec![request("m"); 4]),
                DEADLINE,
            ))
            .await
            .unwrap();
    }

    let unary_ok = [
        ("direction", "outbound"),
        ("grpc_service", "weft.test.Echo"),
        ("grpc_method", "Unary"),
        ("grpc_code", "OK"),
        ("fault_injected", "false"),
    ];
    let wait = |name: &'static str, labels: Vec<(&'static str, &'static str)>, want: f64| {
        blocking(|| {
            g.mesh
                .proxy(0)
                .wait_metric(name, &labels, Duration::from_secs(5), |v| v == want)
        })
    };
    wait("weft_proxy_rpcs_total", unary_ok.to_vec(), 3.0);
    wait(
        "weft_proxy_rpcs_total",
        vec![("grpc_method", "Unary"), ("grpc_code", "NOT_FOUND")],
        1.0,
    );
    wait(
        "weft_proxy_rpcs_total",
        vec![
            ("direction", "outbound"),
            ("grpc_method", "other"),
            ("grpc_code", "OK"),
        ],
        2.0,
    );
    wait(
        "weft_proxy_rpc_request_messages_total",
        vec![("grpc_method", "other")],
        8.0,
    );
    wait(
        "weft_proxy_rpc_response_messages_total",
        vec![("grpc_method", "other")],
        2.0,
    );
    wait(
        "weft_proxy_rpc_request_messages_total",
        vec![("grpc_method", "Unary")],
        4.0,
    );
    wait(
        "weft_proxy_rpc_duration_seconds_count",
        vec![("grpc_method", "Unary")],
        4.0,
    );
    wait("weft_proxy_rpcs_in_flight", vec![], 0.0);

    let metrics = blocking(|| g.mesh.proxy(0).metrics());
    let series = metrics.series("weft_proxy_rpcs_total", &unary_ok);
    assert_eq!(series.len(), 1, "{}", metrics.text);
    let destination = &series[0].labels["destination_service"];
    assert!(
        destination.contains("greeter"),
        "destination_service={destination:?}"
    );
    assert!(
        metrics
            .series("weft_proxy_rpcs_total", &[("grpc_method", "ClientStream")])
            .is_empty(),
        "a method no route names got its own series:\n{}",
        metrics.text
    );
    assert!(
        metrics.has("weft_proxy_rpc_duration_seconds_bucket"),
        "no duration histogram:\n{}",
        metrics.text
    );
}
