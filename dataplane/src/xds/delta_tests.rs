//! Unit tests of the Delta protocol logic, one per case, with fake conversions.

#![allow(clippy::unwrap_used)]

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, Resource};

use super::*;
use crate::xds::testutil::{CDS, EDS, LDS, RDS, any, held, name_of, names, node, strings};

fn response(
    kind: ResourceKind,
    nonce: &str,
    upserts: &[&str],
    removed: &[&str],
) -> DeltaDiscoveryResponse {
    DeltaDiscoveryResponse {
        system_version_info: format!("sys-{nonce}"),
        resources: upserts
            .iter()
            .map(|text| Resource {
                name: name_of(text).trim_start_matches('!').into(),
                version: format!("v-{nonce}"),
                resource: Some(any(kind, text)),
                ..Default::default()
            })
            .collect(),
        type_url: kind.type_url().into(),
        removed_resources: strings(removed),
        nonce: nonce.into(),
        ..Default::default()
    }
}

/// A client holding clusters c1, c2 (EDS e1, e2), their endpoints, listener `out` and its
/// routes `r1`.
fn populated() -> DeltaState {
    let mut state = DeltaState::new(node(), held());
    state.start();
    state.handle(&response(CDS, "1", &["c1=e1", "c2=e2"], &[]));
    state.handle(&response(EDS, "2", &["e1", "e2"], &[]));
    state.handle(&response(LDS, "3", &["out=r1"], &[]));
    state.handle(&response(RDS, "4", &["r1"], &[]));
    state
}

fn is_ack(request: &DeltaDiscoveryRequest, kind: ResourceKind, nonce: &str) -> bool {
    request.type_url == kind.type_url()
        && request.response_nonce == nonce
        && request.error_detail.is_none()
}

#[test]
fn first_requests_subscribe_cds_then_lds_by_wildcard() {
    let mut state = DeltaState::new(node(), held());
    let requests = state.start();
    let types: Vec<&str> = requests.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, [CDS.type_url(), LDS.type_url()]);
    for request in &requests {
        assert_eq!(request.resource_names_subscribe, ["*"]);
        assert!(request.initial_resource_versions.is_empty());
        assert!(request.response_nonce.is_empty());
    }
    assert_eq!(requests[0].node.as_ref().unwrap().id, "proxy-0.default");
    assert!(
        requests[1].node.is_none(),
        "the node goes in the first request only"
    );
}

#[test]
fn ack_applies_records_versions_and_subscribes_referenced_names() {
    let mut state = DeltaState::new(node(), held());
    state.start();
    let outcome = state.handle(&response(CDS, "1", &["c1=e1", "c2=e2", "c3=static"], &[]));
    assert!(outcome.changed);
    assert_eq!(
        outcome.verdict,
        Verdict {
            type_name: "Cluster",
            rejected: None
        }
    );
    assert_eq!(outcome.requests.len(), 2);
    assert!(is_ack(&outcome.requests[0], CDS, "1"));
    let subscribe = &outcome.requests[1];
    assert_eq!(subscribe.type_url, EDS.type_url());
    // c3 has its endpoints inline: nothing to subscribe to.
    assert_eq!(subscribe.resource_names_subscribe, ["e1", "e2"]);
    assert!(subscribe.response_nonce.is_empty());
    assert_eq!(names(state.held(), CDS), ["c1", "c2", "c3"]);
    assert_eq!(state.held().resources.versions[&CDS], "sys-1");
    assert_eq!(state.held().resource_versions[&CDS]["c1"], "v-1");

    let outcome = state.handle(&response(LDS, "2", &["out=r1"], &[]));
    assert!(is_ack(&outcome.requests[0], LDS, "2"));
    assert_eq!(outcome.requests[1].type_url, RDS.type_url());
    assert_eq!(outcome.requests[1].resource_names_subscribe, ["r1"]);

    // An update that references nothing new is only ACKed.
    let outcome = state.handle(&response(EDS, "3", &["e1"], &[]));
    assert_eq!(outcome.requests.len(), 1);
    assert!(is_ack(&outcome.requests[0], EDS, "3"));
}

#[test]
fn nack_keeps_the_last_good_resources_and_names_every_error() {
    let mut state = populated();
    let before = state.held().resources.versions.clone();
    let outcome = state.handle(&response(
        CDS,
        "9",
        &["c3=e3", "!bad", "c1=e1", "!worse"],
        &["c2"],
    ));
    assert!(!outcome.changed);
    assert_eq!(outcome.requests.len(), 1);
    let nack = &outcome.requests[0];
    assert_eq!(nack.type_url, CDS.type_url());
    assert_eq!(nack.response_nonce, "9");
    let detail = nack.error_detail.as_ref().unwrap();
    assert_eq!(detail.code, 3);
    assert_eq!(
        detail.message,
        "Cluster bad: spec: is bad; Cluster worse: spec: is bad"
    );
    assert_eq!(
        outcome.verdict.rejected.as_deref(),
        Some(detail.message.as_str())
    );
    // Nothing of it applied: no c3, c2 not removed, versions unchanged.
    assert_eq!(names(state.held(), CDS), ["c1", "c2"]);
    assert_eq!(state.held().resources.versions, before);
    assert_eq!(state.held().resource_versions[&CDS]["c1"], "v-1");
}

#[test]
fn removal_drops_the_resource_and_unsubscribes_what_it_referenced() {
    let mut state = populated();
    let outcome = state.handle(&response(CDS, "5", &[], &["c2"]));
    assert!(outcome.changed);
    assert!(is_ack(&outcome.requests[0], CDS, "5"));
    let unsubscribe = &outcome.requests[1];
    assert_eq!(unsubscribe.type_url, EDS.type_url());
    assert!(unsubscribe.resource_names_subscribe.is_empty());
    assert_eq!(unsubscribe.resource_names_unsubscribe, ["e2"]);
    assert_eq!(names(state.held(), CDS), ["c1"]);
    assert_eq!(
        names(state.held(), EDS),
        ["e1"],
        "endpoints no cluster wants are dropped"
    );

    // A removed RouteConfiguration stays subscribed (the listener still names it).
    let outcome = state.handle(&response(RDS, "6", &[], &["r1"]));
    assert_eq!(outcome.requests.len(), 1);
    assert!(names(state.held(), RDS).is_empty());
}

#[test]
fn changed_references_subscribe_and_unsubscribe_in_one_request() {
    let mut state = populated();
    let outcome = state.handle(&response(CDS, "5", &["c2=e9"], &[]));
    let change = &outcome.requests[1];
    assert_eq!(change.resource_names_subscribe, ["e9"]);
    assert_eq!(change.resource_names_unsubscribe, ["e2"]);
    let outcome = state.handle(&response(LDS, "6", &["out=r2"], &[]));
    let change = &outcome.requests[1];
    assert_eq!(change.type_url, RDS.type_url());
    assert_eq!(change.resource_names_subscribe, ["r2"]);
    assert_eq!(change.resource_names_unsubscribe, ["r1"]);
}

#[test]
fn reconnect_announces_what_is_held() {
    let mut state = populated();
    let requests = state.start();
    let types: Vec<&str> = requests.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(
        types,
        [
            CDS.type_url(),
            EDS.type_url(),
            LDS.type_url(),
            RDS.type_url()
        ]
    );
    assert!(requests[0].node.is_some());
    let cds = &requests[0];
    assert_eq!(cds.resource_names_subscribe, ["*"]);
    assert_eq!(cds.initial_resource_versions.len(), 2);
    assert_eq!(cds.initial_resource_versions["c2"], "v-1");
    let eds = &requests[1];
    assert_eq!(eds.resource_names_subscribe, ["e1", "e2"]);
    assert_eq!(eds.initial_resource_versions["e1"], "v-2");
    assert_eq!(requests[3].resource_names_subscribe, ["r1"]);
    assert_eq!(requests[3].initial_resource_versions["r1"], "v-4");
    assert!(requests.iter().all(|r| r.response_nonce.is_empty()));
    // After the reconnect, subscription diffs start from what was just subscribed.
    let outcome = state.handle(&response(CDS, "7", &[], &["c1"]));
    assert_eq!(outcome.requests[1].resource_names_unsubscribe, ["e1"]);
}

#[test]
fn unknown_type_is_nacked_and_changes_nothing() {
    let mut state = populated();
    let mut unknown = response(CDS, "8", &[], &[]);
    unknown.type_url =
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret".into();
    let outcome = state.handle(&unknown);
    assert!(!outcome.changed);
    assert_eq!(outcome.verdict.type_name, "unknown");
    let nack = &outcome.requests[0];
    assert_eq!(nack.type_url, unknown.type_url);
    assert_eq!(nack.response_nonce, "8");
    let detail = nack.error_detail.as_ref().unwrap();
    assert_eq!(detail.code, 3);
    assert!(
        detail.message.contains("unknown type URL"),
        "{}",
        detail.message
    );
}

#[test]
fn resource_of_the_wrong_type_or_without_a_body_is_nacked() {
    let mut state = populated();
    let mut wrong = response(CDS, "8", &["c3"], &[]);
    wrong.resources[0].resource = Some(any(LDS, "c3"));
    let outcome = state.handle(&wrong);
    let message = &outcome.requests[0].error_detail.as_ref().unwrap().message;
    assert!(message.starts_with("Cluster: @type:"), "{message}");
    wrong.resources[0].resource = None;
    let outcome = state.handle(&wrong);
    let message = &outcome.requests[0].error_detail.as_ref().unwrap().message;
    assert_eq!(message, "Cluster c3: resource: missing");
    assert_eq!(names(state.held(), CDS), ["c1", "c2"]);
}

#[test]
fn real_parser_errors_reach_the_nack_verbatim() {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy,
    };
    use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
    use envoy_types::pb::envoy::config::core::v3::{AggregatedConfigSource, ConfigSource};
    use envoy_types::util::pack_any;

    let cluster = |name: &str, lb_policy: LbPolicy| Resource {
        name: name.into(),
        version: "1".into(),
        resource: Some(pack_any(Cluster {
            name: name.into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig {
                eds_config: Some(ConfigSource {
                    config_source_specifier: Some(ConfigSourceSpecifier::Ads(
                        AggregatedConfigSource::default(),
                    )),
                    ..Default::default()
                }),
                service_name: String::new(),
            }),
            lb_policy: lb_policy as i32,
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut state = DeltaState::new(node(), Held::new(crate::xds::state::Parsers::default()));
    state.start();
    let mut good = response(CDS, "1", &[], &[]);
    good.resources = vec![cluster("good", LbPolicy::RoundRobin)];
    let outcome = state.handle(&good);
    assert_eq!(outcome.verdict.rejected, None);
    assert_eq!(outcome.requests[1].resource_names_subscribe, ["good"]);

    let mut bad = response(CDS, "2", &[], &[]);
    bad.resources = vec![
        cluster("next", LbPolicy::RoundRobin),
        cluster("bad", LbPolicy::RingHash),
    ];
    let outcome = state.handle(&bad);
    let message = &outcome.requests[0].error_detail.as_ref().unwrap().message;
    assert!(message.starts_with("Cluster bad: lb_policy: "), "{message}");
    assert!(
        !message.contains(';'),
        "only the bad resource is named: {message}"
    );
    assert_eq!(names(state.held(), CDS), ["good"]);
}
