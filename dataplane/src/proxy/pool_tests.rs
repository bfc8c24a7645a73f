//! Tests for the pool's bookkeeping: P2C over live outstanding counts, the in-flight guard,
//! forgetting endpoints (never while busy), and filling in a request's origin.

use std::collections::HashSet;
use std::net::SocketAddr;

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
