//! End to end, local mode: weft-controller reads a directory of YAML, stock Envoy connects
//! to it over ADS (State-of-the-World and Delta), and RPCs through Envoy reach the right
//! backend by service and method; a weight change shifts traffic; a delay fault slows only
//! matched calls; an abort fault returns the configured code; removing it restores calls.
//! Envoy must never reject an update (`update_rejected` stays 0).

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::time::{Duration, Instant};

use common::*;
use weft_tests::backend::Backend;
use weft_tests::process::wait_until;

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
    let controller = Controller::start(
        &["--config-dir", dir.to_str().unwrap()],
        &work.path().join("controller.log"),
    );

    let (envoy, outbound) = tokio::task::block_in_place(|| controller.start_envoy(delta));
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
            .unwrap_or_else(|status| panic!("{status}\n{}", envoy.log_tail(30)))
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

/// A proxy in a namespace that holds no Service and no route still gets `outbound/<ns>`
/// (with every Service's fully qualified names) and can call across namespaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_in_an_empty_namespace_gets_its_route_config() {
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
    let controller = Controller::start(
        &["--config-dir", dir.to_str().unwrap()],
        &work.path().join("controller.log"),
    );
    let outbound = weft_tests::process::free_port();
    let envoy = tokio::task::block_in_place(|| {
        weft_tests::envoy::Envoy::start(&bootstrap(
            "envoy-0.lonely",
            outbound,
            controller.xds_port,
            true,
        ))
        .unwrap()
    });
    wait_for_routes(&envoy, "outbound/lonely", |routes| {
        routes.contains("outbound/lonely")
    });
    let mut client = client(outbound).await;
    let reply = client.unary(request("hi")).await.unwrap().into_inner();
    assert!(["v1", "v2"].contains(&reply.instance.as_str()), "{reply:?}");
}

/// An Envoy that names its namespace only in node metadata (its id has no `.<namespace>`)
/// gets its namespace's config; frozen (SIGSTOP: its TCP connection stays open, nothing
/// answers), it is dropped by the controller's HTTP/2 keepalive within twice the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_in_metadata_only_gets_config_and_a_frozen_proxy_is_dropped() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("config");
    std::fs::create_dir(&dir).unwrap();
    write_config(&dir, "services.yaml", &services_yaml(7001, 7002));
    let controller = Controller::start(
        &[
            "--config-dir",
            dir.to_str().unwrap(),
            "--xds-keepalive",
            "1s",
        ],
        &work.path().join("controller.log"),
    );
    let bootstrap = bootstrap(
        "envoy-meta",
        weft_tests::process::free_port(),
        controller.xds_port,
        false,
    )
    .replace(
        "metadata: {outboundAddr:",
        "metadata: {namespace: lonely, outboundAddr:",
    );
    let envoy =
        tokio::task::block_in_place(|| weft_tests::envoy::Envoy::start(&bootstrap).unwrap());
    wait_for_routes(&envoy, "outbound/lonely", |routes| {
        routes.contains("outbound/lonely")
    });
    let connected = |controller: &Controller| {
        let (_, body) = controller.admin("/debug/proxies").unwrap();
        let proxies: serde_json::Value = serde_json::from_str(&body).unwrap();
        proxies.as_array().unwrap().len()
    };
    assert_eq!(connected(&controller), 1);
    // Without the keepalive nothing would notice: TCP stays up while Envoy is frozen.

    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &envoy.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    };
    signal("STOP");
    let frozen_at = Instant::now();
    let dropped = wait_until("the frozen Envoy dropped", Duration::from_secs(10), || {
        Ok(connected(&controller) == 0)
    });
    signal("CONT");
    dropped.unwrap_or_else(|err| panic!("{err}\n{}", controller.process.log_tail(20)));
    eprintln!(
        "a frozen proxy was dropped after {:?} (keepalive 1s)",
        frozen_at.elapsed()
    );
}
