//! Tests for the pool's bookkeeping: P2C over live outstanding counts, the in-flight guard,
//! forgetting endpoints (never while busy), filling in a request's origin, skipping endpoints
//! outlier detection ejected, circuit-breaker counters by cluster, the pending limit, and
//! HTTP/2 keepalive.

use std::collections::HashSet;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::proxy::body::empty;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn set(ports: &[u16]) -> EndpointSet {
    EndpointSet {
        name: "test".into(),
        addrs: ports.iter().copied().map(addr).collect(),
        ..Default::default()
    }
}

#[test]
fn empty_set_picks_nothing() {
    assert!(Upstreams::new().pick(&set(&[])).is_none());
}

#[test]
fn one_endpoint_is_picked_and_shared() {
    let upstreams = Upstreams::new();
    let first = upstreams.pick(&set(&[1])).unwrap();
    let again = upstreams.pick(&set(&[1])).unwrap();
    assert_eq!(first.addr(), addr(1));
    assert!(
        Arc::ptr_eq(&first, &again),
        "one endpoint (and connection) per address"
    );
}

#[test]
fn the_less_loaded_of_two_is_always_picked() {
    let upstreams = Upstreams::new();
    let busy = upstreams.pick(&set(&[1])).unwrap();
    let _load: Vec<InFlight> = (0..3).map(|_| busy.start()).collect();
    assert_eq!(busy.outstanding(), 3);
    for _ in 0..50 {
        assert_eq!(upstreams.pick(&set(&[1, 2])).unwrap().addr(), addr(2));
    }
}

#[test]
fn load_spreads_over_equal_endpoints() {
    let upstreams = Upstreams::new();
    let endpoints = set(&[1, 2, 3, 4]);
    let mut guards = Vec::new();
    for _ in 0..400 {
        guards.push(upstreams.pick(&endpoints).unwrap().start());
    }
    for port in 1..=4 {
        let load = upstreams.pick(&set(&[port])).unwrap().outstanding();
        assert!((80..=120).contains(&load), "port {port} has {load} of 400");
    }
    drop(guards);
    assert_eq!(upstreams.pick(&set(&[1])).unwrap().outstanding(), 0);
}

#[test]
fn retain_forgets_idle_endpoints_and_busy_ones_when_they_finish() {
    let upstreams = Upstreams::new();
    let idle = upstreams.pick(&set(&[1])).unwrap();
    let busy = upstreams.pick(&set(&[2])).unwrap();
    let live = upstreams.pick(&set(&[3])).unwrap();
    let in_flight = busy.start();
    upstreams.retain(&HashSet::from([addr(3)]));
    assert!(!upstreams.contains(idle.addr()));
    assert!(
        upstreams.contains(busy.addr()),
        "kept while a request is in flight"
    );
    assert!(upstreams.contains(live.addr()));
    drop(in_flight);
    assert!(
        !upstreams.contains(busy.addr()),
        "forgotten when its last request ends"
    );
    let request = live.start();
    drop(request);
    assert!(upstreams.contains(live.addr()), "live endpoints stay");
}

#[test]
fn an_endpoint_back_in_a_set_is_no_longer_retired() {
    let upstreams = Upstreams::new();
    let endpoint = upstreams.pick(&set(&[1])).unwrap();
    let in_flight = endpoint.start();
    upstreams.retain(&HashSet::new());
    upstreams.retain(&HashSet::from([addr(1)]));
    drop(in_flight);
    assert!(upstreams.contains(addr(1)));
}

#[test]
fn origin_is_filled_in_only_when_missing() {
    let request = Request::post("/pkg.Svc/Method").body(empty()).unwrap();
    let request = with_origin(request, addr(50051));
    assert_eq!(request.uri(), "http://127.0.0.1:50051/pkg.Svc/Method");

    let request = Request::post("http://greeter:80/pkg.Svc/Method")
        .body(empty())
        .unwrap();
    let request = with_origin(request, addr(50051));
    assert_eq!(request.uri(), "http://greeter:80/pkg.Svc/Method");
}

#[test]
fn only_errors_before_the_request_are_safe_to_retry() {
    let a = addr(1);
    let reason = String::from("x");
    assert!(UpstreamError::ConnectRefused { addr: a }.is_before_request());
    let timeout = Duration::from_secs(1);
    assert!(UpstreamError::ConnectTimeout { addr: a, timeout }.is_before_request());
    assert!(
        UpstreamError::Refused {
            addr: a,
            reason: reason.clone()
        }
        .is_before_request()
    );
    assert!(
        !UpstreamError::Reset {
            addr: a,
            reason: reason.clone()
        }
        .is_before_request()
    );
    assert!(!UpstreamError::Canceled { addr: a, reason }.is_before_request());
    assert_eq!(
        UpstreamError::ConnectTimeout { addr: a, timeout }.message(),
        "upstream 127.0.0.1:1: connect timed out after 1s"
    );
}

fn cluster(name: &str, outlier_detection: Option<OutlierDetection>) -> ClusterConfig {
    ClusterConfig {
        name: name.into(),
        service: format!("{name}:50051"),
        outlier_detection,
        ..Default::default()
    }
}

/// Ejects at the first 5xx, up to every endpoint.
fn eject_at_once() -> OutlierDetection {
    OutlierDetection {
        consecutive_5xx: 1,
        max_ejection_percent: 100,
        ..Default::default()
    }
}

fn picked_addrs(
    upstreams: &Upstreams,
    cluster: &ClusterConfig,
    set: &EndpointSet,
) -> HashSet<SocketAddr> {
    (0..200)
        .map(|_| upstreams.pick_for(cluster, set).unwrap().endpoint.addr())
        .collect()
}

#[test]
fn ejected_endpoints_are_skipped_until_every_one_is() {
    let upstreams = Upstreams::new();
    let endpoints = set(&[1, 2, 3]);
    let config = eject_at_once();
    let with_detection = cluster("c", Some(config));
    let one = upstreams.pick(&set(&[1])).unwrap();
    assert_eq!(
        upstreams.record_outlier(&one, &endpoints, &config, 200),
        None
    );
    let ejection = upstreams.record_outlier(&one, &endpoints, &config, 503);
    assert!(ejection.is_some());
    assert!(one.ejected());
    assert_eq!(
        picked_addrs(&upstreams, &with_detection, &endpoints),
        HashSet::from([addr(2), addr(3)])
    );
    // A cluster without outlier detection balances over every endpoint.
    let without = cluster("plain", None);
    assert!(picked_addrs(&upstreams, &without, &endpoints).contains(&addr(1)));
    assert!((0..200).any(|_| upstreams.pick(&endpoints).unwrap().addr() == addr(1)));
    // Every endpoint ejected: balance over all of them (panic mode).
    for port in [2, 3] {
        let endpoint = upstreams.pick(&set(&[port])).unwrap();
        assert!(
            upstreams
                .record_outlier(&endpoint, &endpoints, &config, 500)
                .is_some()
        );
    }
    assert_eq!(
        picked_addrs(&upstreams, &with_detection, &endpoints).len(),
        3
    );
}

#[test]
fn the_ejection_limit_counts_the_clusters_ejected_endpoints() {
    let upstreams = Upstreams::new();
    let endpoints = set(&[1, 2, 3]);
    let config = OutlierDetection {
        max_ejection_percent: 50,
        ..eject_at_once()
    };
    let one = upstreams.pick(&set(&[1])).unwrap();
    let two = upstreams.pick(&set(&[2])).unwrap();
    assert!(
        upstreams
            .record_outlier(&one, &endpoints, &config, 502)
            .is_some()
    );
    // 100 × 2 / 3 > 50
    assert_eq!(
        upstreams.record_outlier(&two, &endpoints, &config, 502),
        None
    );
    assert!(!two.ejected());
    // Seen from a cluster with more endpoints, there is room.
    let larger = set(&[1, 2, 3, 4]);
    assert!(
        upstreams
            .record_outlier(&two, &larger, &config, 502)
            .is_some()
    );
}

#[test]
fn circuit_breaker_counters_are_kept_by_cluster_name() {
    let upstreams = Upstreams::new();
    let first = upstreams.pick_for(&cluster("a", None), &set(&[1])).unwrap();
    let in_flight = first
        .endpoint
        .start_in(RequestSlot::acquire(&first.breakers, 10).unwrap());
    // The same cluster after a config update (other settings, other endpoints).
    let updated = ClusterConfig {
        connect_timeout: Duration::from_secs(9),
        ..cluster("a", Some(eject_at_once()))
    };
    let again = upstreams.pick_for(&updated, &set(&[2])).unwrap();
    assert!(Arc::ptr_eq(&first.breakers, &again.breakers));
    assert_eq!(again.breakers.requests.in_use(), 1);
    let other = upstreams.pick_for(&cluster("b", None), &set(&[1])).unwrap();
    assert!(!Arc::ptr_eq(&first.breakers, &other.breakers));
    assert_eq!(other.breakers.requests.in_use(), 0);

    upstreams.retain_clusters(|name| name == "b");
    assert!(upstreams.breakers("a").is_none());
    assert!(upstreams.breakers("b").is_some());
    drop(in_flight);
    assert_eq!(
        first.breakers.requests.in_use(),
        0,
        "given back when the attempt ends"
    );
    assert_eq!(first.endpoint.outstanding(), 0);
    let fresh = upstreams.pick_for(&cluster("a", None), &set(&[1])).unwrap();
    assert!(!Arc::ptr_eq(&first.breakers, &fresh.breakers));
}

#[tokio::test]
async fn waiting_for_a_connection_counts_against_the_pending_limit() {
    let endpoint = Upstreams::new().pick(&set(&[1])).unwrap();
    let breakers = ClusterBreakers::default();
    let options = |max| ConnectOptions {
        timeout: Duration::from_secs(1),
        keepalive: None,
        pending: Some(PendingLimit {
            breakers: &breakers,
            max,
        }),
    };
    let request = || Request::post("/pkg.Svc/Method").body(empty()).unwrap();
    let err = endpoint.send(request(), options(0)).await.unwrap_err();
    assert_eq!(
        err,
        UpstreamError::PendingOverflow {
            addr: addr(1),
            waiting: 0,
            max: 0
        }
    );
    assert!(err.is_before_request());
    assert_eq!(err.outlier_status(), None, "no fault of the endpoint");

    // One caller waits for a connect someone else holds: a second is over a limit of 1.
    let connecting = endpoint.connecting.lock().await;
    let first = endpoint.send(request(), options(1));
    tokio::pin!(first);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut first)
            .await
            .is_err()
    );
    assert_eq!(breakers.pending.in_use(), 1);
    let second = endpoint.send(request(), options(1)).await.unwrap_err();
    assert!(matches!(
        second,
        UpstreamError::PendingOverflow {
            waiting: 1,
            max: 1,
            ..
        }
    ));
    drop(connecting);
    // Port 1 refuses: the waiting caller connects and fails, and stops waiting.
    let err = first.await.unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::ConnectRefused { .. } | UpstreamError::Connect { .. }
        ),
        "{err}"
    );
    assert_eq!(err.outlier_status(), Some(503));
    assert_eq!(breakers.pending.in_use(), 0);
}

/// A server that completes the HTTP/2 handshake (its SETTINGS) and then never answers
/// anything, PINGs included; it reads until the client closes.
async fn silent_h2_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let empty_settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
                socket.write_all(&empty_settings).await.unwrap();
                let mut buf = [0u8; 1024];
                while socket.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn keepalive_closes_a_connection_whose_pings_go_unanswered() {
    let server = silent_h2_server().await;
    let set_of = |addr| EndpointSet {
        name: "silent".into(),
        addrs: vec![addr],
        ..Default::default()
    };
    let keepalive = Upstreams::new().pick(&set_of(server)).unwrap();
    let options = ConnectOptions {
        timeout: Duration::from_secs(1),
        keepalive: Some(Http2Keepalive {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(50),
        }),
        pending: None,
    };
    let pinging = keepalive.sender(options).await.unwrap();
    let without = Upstreams::new().pick(&set_of(server)).unwrap();
    let silent = without.sender(Duration::from_secs(1).into()).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while !pinging.is_closed() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the unanswered PING closed the connection");
    assert!(keepalive.live().is_none());
    assert!(
        !silent.is_closed(),
        "no keepalive: the connection stays open"
    );
}
