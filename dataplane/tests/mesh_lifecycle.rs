//! weft-proxy over the life of RPCs and of the process: a 1 ms deadline gives
//! DEADLINE_EXCEEDED (from the proxy, as Trailers-Only); a bidirectional stream with no
//! deadline stays alive and answering for two minutes (the one slow test); SIGTERM under
//! load lets every in-flight call finish, refuses new connections and exits 0; `/ready` is
//! 503 until the controller has sent a complete config, then 200.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio_stream::wrappers::ReceiverStream;
use weft_tests::backend::Backend;
use weft_tests::process::{free_port, wait_until};

/// Backend `v1` behind Service greeter (all three Services), the controller and one proxy.
async fn one_backend(options: ProxyOptions) -> (Mesh, Backend) {
    let v1 = Backend::start("v1").await.unwrap();
    let mut mesh = Mesh::new();
    mesh.write("services.yaml", &greeter_services(v1.addr(), v1.addr()));
    blocking(|| {
        mesh.start_controller();
        mesh.start_proxy(options);
    });
    (mesh, v1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_millisecond_deadline_gives_deadline_exceeded() {
    let (mesh, backend) = one_backend(ProxyOptions::new("client-0")).await;
    let port = mesh.proxy(0).outbound.port();
    // By hand, so no client-side timer answers first: the proxy must.
    for _ in 0..3 {
        let raw = raw_unary(
            port,
            GREETER,
            "/weft.test.Echo/Unary",
            &slow_request("late", 2000),
            &[("grpc-timeout", "1m")],
        )
        .await
        .unwrap();
        assert_eq!(raw.grpc_status().as_deref(), Some("4"), "{raw:?}");
        assert!(raw.is_trailers_only(), "{raw:?}");
        assert!(
            raw.elapsed < Duration::from_millis(1000),
            "DEADLINE_EXCEEDED took {:?} for a 1 ms deadline",
            raw.elapsed
        );
    }
    // (Not through tonic or grpc-go: their own timer fires at 1 ms too, so whichever answers
    // first wins and the test would not show the proxy's answer.)
    let mut client = client(port, GREETER).await;
    // Plenty of time: fine.
    unary(&mut client, request("on time"), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(backend.calls() >= 1);
    blocking(|| {
        mesh.proxy(0).wait_metric(
            "weft_proxy_rpcs_total",
            &[("grpc_code", "DEADLINE_EXCEEDED")],
            Duration::from_secs(5),
            |v| v >= 3.0,
        )
    });
}

/// How long the idle-ish stream must live, and how often it is pinged.
const STREAM_LIFETIME: Duration = Duration::from_secs(120);
const PING_EVERY: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bidi_stream_without_deadline_lives_for_two_minutes() {
    let (mesh, _backend) = one_backend(ProxyOptions::new("client-0")).await;
    let (mut client, connections) = counted_client(mesh.proxy(0).outbound.port(), GREETER).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(request("ping 0")).await.unwrap();
    // No deadline on the call.
    let mut replies = client
        .bidi_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let started = Instant::now();
    let mut pings = 0u32;
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(5), replies.message())
            .await
            .unwrap_or_else(|_| panic!("ping {pings} unanswered after {:?}", started.elapsed()))
            .unwrap_or_else(|status| {
                panic!("stream failed after {:?}: {status:?}", started.elapsed())
            })
            .unwrap_or_else(|| panic!("stream ended after {:?}", started.elapsed()));
        pings += 1;
        assert_eq!(
            (reply.message.as_str(), reply.received),
            (format!("ping {}", pings - 1).as_str(), pings),
            "{reply:?}"
        );
        if started.elapsed() >= STREAM_LIFETIME {
            break;
        }
        tokio::time::sleep(PING_EVERY).await;
        tx.send(request(&format!("ping {pings}"))).await.unwrap();
    }
    println!("{pings} pings answered over {:?}", started.elapsed());
    // The client ends the stream: it closes with OK.
    drop(tx);
    let end = tokio::time::timeout(Duration::from_secs(5), replies.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_in_flight_calls_finish_and_exits_zero() {
    const CALLS: usize = 20;
    const BACKEND_TIME_MS: u32 = 1000;
    let drain_timeout = Duration::from_secs(5);
    let (mut mesh, backend) = one_backend(ProxyOptions::new("client-0").drain_timeout("5s")).await;
    let port = mesh.proxy(0).outbound.port();
    // Four connections, five calls on each.
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(client(port, GREETER).await);
    }
    let mut tasks = Vec::new();
    for i in 0..CALLS {
        let mut client = clients[i % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            unary(
                &mut client,
                slow_request(&format!("in flight {i}"), BACKEND_TIME_MS),
                Duration::from_secs(20),
            )
            .await
        }));
    }
    blocking(|| {
        wait_until(
            "every call to reach the backend",
            Duration::from_secs(10),
            || Ok(backend.calls() as usize >= CALLS),
        )
    })
    .unwrap();
    blocking(|| {
        mesh.proxy(0).wait_metric(
            "weft_proxy_rpcs_in_flight",
            &[],
            Duration::from_secs(5),
            |v| v == CALLS as f64,
        )
    });

    mesh.proxy(0).terminate();
    let terminated = Instant::now();
    blocking(|| {
        wait_until(
            "the outbound listener to refuse connections",
            Duration::from_millis(1000),
            || Ok(!mesh.proxy(0).outbound_accepts()),
        )
    })
    .unwrap();
    let refused_after = terminated.elapsed();
    let unfinished = tasks.iter().filter(|t| !t.is_finished()).count();

    let mut failures = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(reply) if reply.instance == "v1" => {}
            other => failures.push(format!("call {i}: {other:?}")),
        }
    }
    let calls_done = terminated.elapsed();
    let status = blocking(|| mesh.proxies[0].wait_exit(drain_timeout + Duration::from_secs(3)));
    let exited = terminated.elapsed();
    println!(
        "SIGTERM: new connections refused after {refused_after:?} ({unfinished} of {CALLS} calls \
         still in flight), calls done after {calls_done:?}, exit {status:?} after {exited:?}"
    );
    assert!(
        failures.is_empty(),
        "in-flight calls failed on SIGTERM:\n{}",
        failures.join("\n")
    );
    let status = status.expect("weft-proxy did not exit within the drain timeout (+3 s)");
    assert_eq!(status.code(), Some(0), "weft-proxy exited with {status}");
    assert!(
        TcpProbe::refused(port),
        "something still accepts on the outbound port"
    );
}

/// A TCP probe of a loopback port.
struct TcpProbe;

impl TcpProbe {
    fn refused(port: u16) -> bool {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(200),
        )
        .is_err()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_waits_for_an_open_stream_no_longer_than_the_drain_timeout() {
    let drain_timeout = Duration::from_secs(2);
    let (mut mesh, _backend) = one_backend(ProxyOptions::new("client-0").drain_timeout("2s")).await;
    let mut client = client(mesh.proxy(0).outbound.port(), GREETER).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(request("open")).await.unwrap();
    let mut replies = client
        .bidi_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), replies.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.received, 1);

    // The stream never ends by itself: the proxy waits for it up to the drain timeout.
    mesh.proxy(0).terminate();
    let terminated = Instant::now();
    let status = blocking(|| mesh.proxies[0].wait_exit(drain_timeout + Duration::from_secs(3)));
    let exited = terminated.elapsed();
    println!("SIGTERM with an open stream: exit {status:?} after {exited:?}");
    let status = status.expect("weft-proxy outlived its drain timeout (+3 s)");
    assert_eq!(status.code(), Some(0), "weft-proxy exited with {status}");
    assert!(
        exited >= drain_timeout - Duration::from_millis(100),
        "weft-proxy exited after {exited:?}, before the {drain_timeout:?} drain timeout, with a \
         stream in flight"
    );
    // The client learns the stream is over (an error, not a hang).
    let end = tokio::time::timeout(Duration::from_secs(5), replies.message())
        .await
        .expect("the cut stream hangs at the client");
    assert!(end.is_err() || matches!(end, Ok(None)), "{end:?}");
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ready_is_503_until_the_controller_has_sent_config() {
    let v1 = Backend::start("v1").await.unwrap();
    let mut mesh = Mesh::new();
    mesh.write("services.yaml", &greeter_services(v1.addr(), v1.addr()));
    let (xds, admin) = (
        std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
        std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    // The proxy starts first, pointed at a controller that is not there yet.
    blocking(|| {
        mesh.start_proxy_at(
            ProxyOptions::new("client-0").no_wait(),
            &format!("http://{xds}"),
        );
    });
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let (status, text) = blocking(|| mesh.proxy(0).ready());
        assert_eq!(status, 503, "ready without config: {text}");
        assert!(
            !text.trim().is_empty(),
            "503 without saying what is missing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, text) = blocking(|| mesh.proxy(0).ready());
    println!("before the controller: /ready 503 {text:?}");

    let started = Instant::now();
    blocking(|| {
        mesh.restart_controller(xds, admin);
        mesh.proxies[0].wait_ready();
    });
    println!("ready {:?} after the controller started", started.elapsed());
    let mut client = client(mesh.proxy(0).outbound.port(), GREETER).await;
    let reply = unary(&mut client, request("hi"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.instance, "v1");
}
