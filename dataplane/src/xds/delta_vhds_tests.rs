//! Unit tests of VHDS in the Delta protocol logic, with fake conversions: subscribing on
//! demand, answers by alias, "not found" (both ways), removals, NACKs and reconnects.

#![allow(clippy::unwrap_used)]

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, Resource};

use super::*;
use crate::config::MAX_ON_DEMAND_NAMES;
use crate::xds::testutil::{LDS, RDS, VHDS, any, held, names, node, strings};

const NAME: &str = "outbound/default/greeter:50051";
const GREETER: &str = "outbound/default/greeter.default.svc.cluster.local:50051";

/// A VirtualHost resource `name` answering `aliases`; `text` is the fake host
/// (`host=domain`, `!host` fails to convert).
fn host(name: &str, aliases: &[&str], text: &str, version: &str) -> Resource {
    Resource {
        name: name.into(),
        aliases: strings(aliases),
        version: version.into(),
        resource: Some(any(VHDS, text)),
        ..Default::default()
    }
}

fn response(nonce: &str, resources: Vec<Resource>, removed: &[&str]) -> DeltaDiscoveryResponse {
    DeltaDiscoveryResponse {
        system_version_info: format!("sys-{nonce}"),
        resources,
        type_url: VHDS.type_url().into(),
        removed_resources: strings(removed),
        nonce: nonce.into(),
        ..Default::default()
    }
}

/// A client holding listener `out` and the shell `outbound/default` (naming `vhds`).
fn with_shell() -> DeltaState {
    let mut state = DeltaState::new(node(), held());
    state.start();
    let listener = DeltaDiscoveryResponse {
        resources: vec![Resource {
            name: "out".into(),
            resource: Some(any(LDS, "out=outbound/default")),
            ..Default::default()
        }],
        type_url: LDS.type_url().into(),
        nonce: "l".into(),
        ..Default::default()
    };
    state.handle(&listener);
    let shell = DeltaDiscoveryResponse {
        resources: vec![Resource {
            name: "outbound/default".into(),
            resource: Some(any(RDS, "outbound/default=vhds")),
            ..Default::default()
        }],
        type_url: RDS.type_url().into(),
        nonce: "r".into(),
        ..Default::default()
    };
    state.handle(&shell);
    state
}

/// `with_shell`, having asked for `NAME` and been answered with `GREETER` at version v1.
fn holding_greeter() -> DeltaState {
    let mut state = with_shell();
    state.demand(NAME);
    let answer = host(GREETER, &[NAME], "greeter=greeter:50051", "v1");
    state.handle(&response("1", vec![answer], &[]));
    state
}

fn lookups(state: &DeltaState) -> &crate::config::OnDemandLookups {
    &state.held().resources.on_demand
}

fn is_ack(request: &DeltaDiscoveryRequest, nonce: &str) -> bool {
    request.type_url == VHDS.type_url()
        && request.response_nonce == nonce
        && request.error_detail.is_none()
}

#[test]
fn a_demand_subscribes_its_name_once() {
    let mut state = with_shell();
    let (requests, changed) = state.demand(NAME);
    assert!(!changed);
    assert_eq!(requests.len(), 1);
    let subscribe = &requests[0];
    assert_eq!(subscribe.type_url, VHDS.type_url());
    assert_eq!(subscribe.resource_names_subscribe, [NAME]);
    assert!(subscribe.resource_names_unsubscribe.is_empty());
    assert!(subscribe.response_nonce.is_empty());
    assert!(subscribe.initial_resource_versions.is_empty());
    // Concurrent RPCs for the same authority: one subscription.
    for _ in 0..3 {
        assert_eq!(state.demand(NAME), (Vec::new(), false));
    }
    let (requests, _) = state.demand("outbound/default/weather:50051");
    assert_eq!(
        requests[0].resource_names_subscribe,
        ["outbound/default/weather:50051"]
    );
}

#[test]
fn an_answer_by_alias_holds_the_host_under_its_own_name() {
    let mut state = with_shell();
    state.demand(NAME);
    let answer = host(GREETER, &[NAME], "greeter=greeter:50051", "v1");
    let outcome = state.handle(&response("1", vec![answer], &[]));
    assert!(outcome.changed);
    assert_eq!(outcome.verdict.type_name, "VirtualHost");
    assert_eq!(outcome.requests.len(), 1, "an ACK, no subscription change");
    assert!(is_ack(&outcome.requests[0], "1"));
    assert_eq!(names(state.held(), VHDS), [GREETER]);
    assert_eq!(lookups(&state).aliases[NAME], GREETER);
    assert_eq!(state.held().resource_versions[&VHDS][GREETER], "v1");
    assert_eq!(state.held().resources.versions[&VHDS], "sys-1");
    let held = &state.held().resources.virtual_hosts[GREETER];
    assert_eq!(held.host.name, "greeter");

    // A host whose own name repeats its resource name is held under the short one.
    let long = host(GREETER, &[], &format!("{GREETER}=greeter:50051"), "v2");
    state.handle(&response("2", vec![long], &[]));
    let held = &state.held().resources.virtual_hosts[GREETER];
    assert_eq!(held.host.name, "greeter.default.svc.cluster.local:50051");
    // Nothing more to ask: the data path finds the host by its domains now.
    assert_eq!(lookups(&state).aliases[NAME], GREETER);
    assert_eq!(state.demand(NAME), (Vec::new(), false));
}

#[test]
fn no_host_is_answered_either_way() {
    // Envoy's way: a resource of the name asked for, itself as alias, without a body.
    let mut state = with_shell();
    state.demand(NAME);
    let unserved = Resource {
        name: NAME.into(),
        aliases: vec![NAME.into()],
        ..Default::default()
    };
    let outcome = state.handle(&response("1", vec![unserved], &[]));
    assert!(outcome.changed);
    assert!(is_ack(&outcome.requests[0], "1"));
    assert!(lookups(&state).known_missing(NAME));
    assert!(names(state.held(), VHDS).is_empty());
    let versions = state.held().resource_versions.get(&VHDS);
    assert!(versions.is_none_or(|versions| versions.is_empty()));
    // The subscription stands: asking again sends nothing.
    assert_eq!(state.demand(NAME), (Vec::new(), false));

    // Or in `removed_resources`.
    let mut state = with_shell();
    state.demand(NAME);
    let outcome = state.handle(&response("1", vec![], &[NAME]));
    assert!(is_ack(&outcome.requests[0], "1"));
    assert!(lookups(&state).known_missing(NAME));

    // A host serving it later is taken without asking, and clears the answer.
    let answer = host(GREETER, &[NAME], "greeter=greeter:50051", "v1");
    state.handle(&response("2", vec![answer], &[]));
    assert!(!lookups(&state).known_missing(NAME));
    assert_eq!(names(state.held(), VHDS), [GREETER]);

    // A body-less resource naming a held host removes it.
    let gone = Resource {
        name: GREETER.into(),
        ..Default::default()
    };
    state.handle(&response("3", vec![gone], &[]));
    assert!(names(state.held(), VHDS).is_empty());
    assert!(lookups(&state).known_missing(NAME));
}

#[test]
fn a_removal_by_alias_or_by_name_drops_the_host() {
    let mut state = holding_greeter();
    let outcome = state.handle(&response("2", vec![], &[NAME]));
    assert!(is_ack(&outcome.requests[0], "2"));
    assert!(names(state.held(), VHDS).is_empty());
    assert!(!state.held().resource_versions[&VHDS].contains_key(GREETER));
    assert!(lookups(&state).aliases.is_empty());
    assert!(
        lookups(&state).known_missing(NAME),
        "RPCs for it fail at once rather than wait"
    );

    let mut state = holding_greeter();
    state.handle(&response("2", vec![], &[GREETER]));
    assert!(names(state.held(), VHDS).is_empty());
    assert!(lookups(&state).known_missing(NAME));
}

#[test]
fn a_bad_host_is_nacked_and_every_held_host_keeps_working() {
    let mut state = holding_greeter();
    state.demand("outbound/default/weather:50051");
    let outcome = state.handle(&response(
        "2",
        vec![
            host(GREETER, &[], "greeter=greeter:50051", "v2"),
            host(
                "outbound/default/weather:50051",
                &["outbound/default/weather:50051"],
                "!weather",
                "v2",
            ),
        ],
        &[],
    ));
    assert!(!outcome.changed);
    let nack = &outcome.requests[0];
    assert_eq!(nack.response_nonce, "2");
    let detail = nack.error_detail.as_ref().unwrap();
    assert_eq!(detail.code, 3);
    assert_eq!(
        detail.message, "VirtualHost outbound/default/weather:50051: spec: is bad",
        "named by its resource name"
    );
    assert_eq!(names(state.held(), VHDS), [GREETER]);
    assert_eq!(
        state.held().resource_versions[&VHDS][GREETER],
        "v1",
        "the last good version stays"
    );
    assert!(!lookups(&state).known_missing("outbound/default/weather:50051"));

    // A host without a resource name cannot be held, updated or removed: NACKed.
    let mut nameless = host("", &[NAME], "greeter=greeter:50051", "v3");
    nameless.name.clear();
    let outcome = state.handle(&response("3", vec![nameless], &[]));
    let message = &outcome.requests[0].error_detail.as_ref().unwrap().message;
    assert_eq!(message, "VirtualHost : name: missing");
}

#[test]
fn reconnect_announces_held_hosts_and_resubscribes_every_name() {
    let mut state = holding_greeter();
    state.demand("outbound/default/pending:1");
    state.demand("outbound/default/nope:1");
    state.handle(&response("2", vec![], &["outbound/default/nope:1"]));
    let requests = state.start();
    let vhds: Vec<&DeltaDiscoveryRequest> = requests
        .iter()
        .filter(|r| r.type_url == VHDS.type_url())
        .collect();
    assert_eq!(vhds.len(), 1);
    assert_eq!(
        requests[0].type_url,
        VHDS.type_url(),
        "first, so a server whose CDS follows the held hosts knows them"
    );
    assert!(
        requests[0].node.is_some(),
        "the node goes in the first request"
    );
    assert!(requests[1..].iter().all(|r| r.node.is_none()));
    let vhds = vhds[0];
    assert_eq!(
        vhds.resource_names_subscribe,
        [
            NAME,
            "outbound/default/nope:1",
            "outbound/default/pending:1"
        ],
        "the names asked for, not the hosts' own names"
    );
    assert_eq!(vhds.initial_resource_versions.len(), 1);
    assert_eq!(vhds.initial_resource_versions[GREETER], "v1");
    // Nothing is dropped on reconnect, and names stay subscribed without asking again.
    assert_eq!(names(state.held(), VHDS), [GREETER]);
    assert_eq!(
        state.demand("outbound/default/pending:1"),
        (Vec::new(), false)
    );
}

#[test]
fn past_the_limit_a_name_is_refused_and_published() {
    let mut state = with_shell();
    for i in 0..MAX_ON_DEMAND_NAMES {
        state.demand(&format!("outbound/default/s{i}:1"));
    }
    let (requests, changed) = state.demand("outbound/default/one-more:1");
    assert!(requests.is_empty());
    assert!(changed, "published, so the RPC waiting for it fails");
    assert!(lookups(&state).known_missing("outbound/default/one-more:1"));
}
