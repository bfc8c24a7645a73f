//! Unit tests of the State-of-the-World protocol logic, one per case, with fake conversions.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::xds::testutil::{CDS, EDS, LDS, RDS, any, held, names, node};

fn response(
    kind: ResourceKind,
    version: &str,
    nonce: &str,
    resources: &[&str],
) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        resources: resources.iter().map(|text| any(kind, text)).collect(),
        type_url: kind.type_url().into(),
        nonce: nonce.into(),
        ..Default::default()
    }
}

/// Holding clusters c1, c2 (EDS e1, e2) at "c-1", endpoints at "e-1", listener `out`
/// (routes r1) at "l-1", routes at "r-1"; the last nonces are n1..n4.
fn populated() -> SotwState {
    let mut state = SotwState::new(node(), held());
    state.start();
    state.handle(&response(CDS, "c-1", "n1", &["c1=e1", "c2=e2"]));
    state.handle(&response(EDS, "e-1", "n2", &["e1", "e2"]));
    state.handle(&response(LDS, "l-1", "n3", &["out=r1"]));
    state.handle(&response(RDS, "r-1", "n4", &["r1"]));
    state
}

fn check(
    request: &DiscoveryRequest,
    kind: ResourceKind,
    version: &str,
    nonce: &str,
    names: &[&str],
) {
    assert_eq!(request.type_url, kind.type_url());
    assert_eq!(request.version_info, version, "version of {request:?}");
    assert_eq!(request.response_nonce, nonce, "nonce of {request:?}");
    assert_eq!(request.resource_names, names, "names of {request:?}");
}

#[test]
fn first_requests_ask_for_all_clusters_then_all_listeners() {
    let mut state = SotwState::new(node(), held());
    let requests = state.start();
    assert_eq!(requests.len(), 2);
    check(&requests[0], CDS, "", "", &[]);
    check(&requests[1], LDS, "", "", &[]);
    assert_eq!(requests[0].node.as_ref().unwrap().id, "proxy-0.default");
    assert!(requests[1].node.is_none());
}

#[test]
fn ack_carries_version_and_nonce_then_subscribes_referenced_names() {
    let mut state = SotwState::new(node(), held());
    state.start();
    let outcome = state.handle(&response(CDS, "c-1", "n1", &["c1=e1", "c2=e2"]));
    assert!(outcome.changed);
    assert_eq!(
        outcome.verdict,
        Verdict {
            type_name: "Cluster",
            rejected: None
        }
    );
    assert_eq!(outcome.requests.len(), 2);
    check(&outcome.requests[0], CDS, "c-1", "n1", &[]);
    assert!(outcome.requests[0].error_detail.is_none());
    check(&outcome.requests[1], EDS, "", "", &["e1", "e2"]);
    assert_eq!(state.held().resources.versions[&CDS], "c-1");

    let outcome = state.handle(&response(LDS, "l-1", "n2", &["out=r1"]));
    check(&outcome.requests[0], LDS, "l-1", "n2", &[]);
    check(&outcome.requests[1], RDS, "", "", &["r1"]);
    let outcome = state.handle(&response(EDS, "e-1", "n3", &["e1", "e2"]));
    assert_eq!(outcome.requests.len(), 1);
    check(&outcome.requests[0], EDS, "e-1", "n3", &["e1", "e2"]);
}

#[test]
fn nack_keeps_the_last_good_version_and_resources() {
    let mut state = populated();
    let outcome = state.handle(&response(CDS, "c-2", "n9", &["c1=e1", "!broken"]));
    assert!(!outcome.changed);
    assert_eq!(outcome.requests.len(), 1);
    let nack = &outcome.requests[0];
    check(nack, CDS, "c-1", "n9", &[]);
    let detail = nack.error_detail.as_ref().unwrap();
    assert_eq!(detail.code, 3);
    assert_eq!(detail.message, "Cluster broken: spec: is bad");
    assert_eq!(
        names(state.held(), CDS),
        ["c1", "c2"],
        "c2 is not removed by a NACKed set"
    );
    assert_eq!(state.held().resources.versions[&CDS], "c-1");
    // A later request of the type carries the NACKed response's nonce.
    let outcome = state.handle(&response(LDS, "l-2", "n10", &["out=r2"]));
    check(&outcome.requests[1], RDS, "r-1", "n4", &["r2"]);
}

#[test]
fn cds_and_lds_are_full_sets_so_absent_names_are_removed() {
    let mut state = populated();
    let outcome = state.handle(&response(CDS, "c-2", "n5", &["c1=e1"]));
    assert!(outcome.changed);
    assert_eq!(names(state.held(), CDS), ["c1"]);
    assert_eq!(
        names(state.held(), EDS),
        ["e1"],
        "endpoints no cluster wants are dropped"
    );
    check(&outcome.requests[1], EDS, "e-1", "n2", &["e1"]);

    let outcome = state.handle(&response(LDS, "l-2", "n6", &[]));
    assert!(names(state.held(), LDS).is_empty());
    assert!(names(state.held(), RDS).is_empty());
    check(&outcome.requests[1], RDS, "r-1", "n4", &[]);
}

#[test]
fn rds_and_eds_responses_carry_only_what_they_carry() {
    let mut state = populated();
    let outcome = state.handle(&response(EDS, "e-2", "n5", &["e1"]));
    assert!(outcome.changed);
    assert_eq!(names(state.held(), EDS), ["e1", "e2"]);
    assert_eq!(state.held().resources.versions[&EDS], "e-2");
    let outcome = state.handle(&response(RDS, "r-2", "n6", &[]));
    assert_eq!(outcome.requests.len(), 1);
    assert_eq!(names(state.held(), RDS), ["r1"]);
}

#[test]
fn reconnect_requests_carry_the_last_versions_without_nonces() {
    let mut state = populated();
    let requests = state.start();
    assert_eq!(requests.len(), 4);
    check(&requests[0], CDS, "c-1", "", &[]);
    check(&requests[1], EDS, "e-1", "", &["e1", "e2"]);
    check(&requests[2], LDS, "l-1", "", &[]);
    check(&requests[3], RDS, "r-1", "", &["r1"]);
    assert!(requests[0].node.is_some());
}

#[test]
fn unknown_type_is_nacked_and_changes_nothing() {
    let mut state = populated();
    let mut unknown = response(CDS, "x-1", "n7", &[]);
    unknown.type_url =
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret".into();
    let outcome = state.handle(&unknown);
    assert!(!outcome.changed);
    assert_eq!(outcome.verdict.type_name, "unknown");
    let nack = &outcome.requests[0];
    assert_eq!(nack.type_url, unknown.type_url);
    assert_eq!(nack.response_nonce, "n7");
    assert_eq!(nack.error_detail.as_ref().unwrap().code, 3);
    assert_eq!(names(state.held(), CDS), ["c1", "c2"]);
    // The known types' nonces are untouched.
    let outcome = state.handle(&response(CDS, "c-1", "n8", &["c1=e1", "c2=e2"]));
    check(&outcome.requests[0], CDS, "c-1", "n8", &[]);
}

#[test]
fn vhds_is_delta_only() {
    use crate::xds::testutil::VHDS;
    let mut state = populated();
    let (requests, changed) = state.demand("outbound/default/greeter:50051");
    assert!(requests.is_empty() && !changed);
    let outcome = state.handle(&response(RDS, "r-2", "n5", &["r1=vhds"]));
    assert!(!outcome.changed);
    let message = &outcome.requests[0].error_detail.as_ref().unwrap().message;
    assert_eq!(
        message,
        "RouteConfiguration r1: vhds: virtual host discovery needs Delta xDS"
    );
    let outcome = state.handle(&response(VHDS, "v-1", "n6", &["greeter"]));
    assert!(!outcome.changed);
    assert_eq!(outcome.verdict.type_name, "unknown");
    assert!(state.held().resources.virtual_hosts.is_empty());
    let requests = state.start();
    assert!(requests.iter().all(|r| r.type_url != VHDS.type_url()));
}
