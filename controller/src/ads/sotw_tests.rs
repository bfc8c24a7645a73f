//! Unit tests of the sotw state machine: one per protocol case.
use super::*;
use crate::ads::snapshot::tests::snapshot;
use ResourceType::{Cluster, Endpoint, Listener, Route};
use envoy_types::pb::google::rpc::Status;

fn request(ty: ResourceType, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: ty.type_url().into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn nack(ty: ResourceType, version: &str, nonce: &str, message: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(Status {
            code: 3,
            message: message.into(),
            details: vec![],
        }),
        ..request(ty, &[], version, nonce)
    }
}

fn names(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| String::from_utf8_lossy(&any.value).into_owned())
        .collect()
}

#[test]
fn first_request_gets_the_whole_wildcard_type() {
    let snap = snapshot(&[
        (Cluster, "a", "a1"),
        (Cluster, "b", "b1"),
        (Route, "r", "r1"),
    ]);
    let mut stream = SotwStream::new();
    let reply = stream.handle_request(&request(Cluster, &[], "", ""), &snap);
    assert_eq!(reply.responses.len(), 1);
    let response = &reply.responses[0];
    assert_eq!(response.type_url, Cluster.type_url());
    assert_eq!(names(response), ["a1", "b1"]);
    assert!(!response.nonce.is_empty() && !response.version_info.is_empty());
    assert!(reply.events.is_empty());
}

#[test]
fn named_types_send_only_what_is_asked_and_an_empty_first_reply() {
    let snap = snapshot(&[(Endpoint, "a", "a1"), (Endpoint, "b", "b1")]);
    let mut stream = SotwStream::new();
    let reply = stream.handle_request(&request(Endpoint, &["b"], "", ""), &snap);
    assert_eq!(names(&reply.responses[0]), ["b1"]);
    let mut other = SotwStream::new();
    let reply = other.handle_request(&request(Route, &[], "", ""), &snap);
    assert_eq!(
        reply.responses.len(),
        1,
        "a first request is always answered"
    );
    assert!(reply.responses[0].resources.is_empty());
}

#[test]
fn ack_is_recorded_and_sends_nothing() {
    let snap = snapshot(&[(Cluster, "a", "a1")]);
    let mut stream = SotwStream::new();
    let first = stream
        .handle_request(&request(Cluster, &[], "", ""), &snap)
        .responses
        .remove(0);
    let reply = stream.handle_request(
        &request(Cluster, &[], &first.version_info, &first.nonce),
        &snap,
    );
    assert!(reply.responses.is_empty());
    assert_eq!(
        reply.events,
        [ClientEvent::Ack {
            ty: Cluster,
            version: first.version_info.as_str().into()
        }]
    );
    let progress: Vec<_> = stream.progress().collect();
    assert_eq!(
        progress[0].1.acked_version.as_deref(),
        Some(first.version_info.as_str())
    );
}

#[test]
fn nacked_version_is_not_resent_but_the_next_one_is() {
    let bad = snapshot(&[(Cluster, "a", "bad")]);
    let mut stream = SotwStream::new();
    let first = stream
        .handle_request(&request(Cluster, &[], "", ""), &bad)
        .responses
        .remove(0);
    let reply = stream.handle_request(&nack(Cluster, "", &first.nonce, "bad cluster"), &bad);
    assert!(
        reply.responses.is_empty(),
        "a NACKed version must not be re-sent"
    );
    assert_eq!(
        reply.events,
        [ClientEvent::Nack {
            ty: Cluster,
            nack: Nack {
                version: first.version_info.clone(),
                message: "bad cluster".into(),
                resources: vec!["a".into()],
            }
        }]
    );
    // The same snapshot published again changes nothing.
    assert!(stream.handle_snapshot(&bad).is_empty());
    let good = snapshot(&[(Cluster, "a", "good")]);
    let pushed = stream.handle_snapshot(&good);
    assert_eq!(pushed.len(), 1);
    assert_eq!(names(&pushed[0]), ["good"]);
}

#[test]
fn stale_nonce_is_ignored() {
    let snap = snapshot(&[(Cluster, "a", "a1")]);
    let mut stream = SotwStream::new();
    let first = stream
        .handle_request(&request(Cluster, &[], "", ""), &snap)
        .responses
        .remove(0);
    let second = stream
        .handle_snapshot(&snapshot(&[(Cluster, "a", "a2")]))
        .remove(0);
    // The client NACKs the first response after the second went out: stale.
    let reply = stream.handle_request(&nack(Cluster, "", &first.nonce, "late"), &snap);
    assert!(reply.responses.is_empty());
    assert_eq!(
        reply.events,
        [ClientEvent::StaleNonce {
            ty: Cluster,
            nonce: first.nonce.clone()
        }]
    );
    assert!(stream.progress().all(|(_, p)| p.last_nack.is_none()));
    assert_eq!(
        Some(second.version_info.as_str()),
        stream.progress().next().unwrap().1.sent_version.as_deref()
    );
}

#[test]
fn subscription_change_is_answered() {
    let snap = snapshot(&[(Endpoint, "a", "a1"), (Endpoint, "b", "b1")]);
    let mut stream = SotwStream::new();
    let first = stream
        .handle_request(&request(Endpoint, &["a"], "", ""), &snap)
        .responses
        .remove(0);
    let reply = stream.handle_request(
        &request(Endpoint, &["a", "b"], &first.version_info, &first.nonce),
        &snap,
    );
    assert_eq!(names(&reply.responses[0]), ["a1", "b1"]);
}

#[test]
fn snapshot_push_is_ordered_and_skips_unchanged_types() {
    let old = snapshot(&[
        (Cluster, "c", "c1"),
        (Endpoint, "c", "e1"),
        (Listener, "l", "l1"),
        (Route, "r", "r1"),
    ]);
    let mut stream = SotwStream::new();
    for (ty, names) in [
        (Route, vec!["r"]),
        (Listener, vec![]),
        (Endpoint, vec!["c"]),
        (Cluster, vec![]),
    ] {
        stream.handle_request(&request(ty, &names, "", ""), &old);
    }
    let new = snapshot(&[
        (Cluster, "c", "c2"),
        (Endpoint, "c", "e1"),
        (Listener, "l", "l2"),
        (Route, "r", "r2"),
    ]);
    let pushed = stream.handle_snapshot(&new);
    let order: Vec<_> = pushed
        .iter()
        .map(|r| ResourceType::from_type_url(&r.type_url).unwrap())
        .collect();
    assert_eq!(
        order,
        [Cluster, Listener, Route],
        "EDS did not change and is not sent"
    );
}

#[test]
fn cluster_removal_waits_until_routes_moved() {
    let old = snapshot(&[(Cluster, "old", "old"), (Route, "r", "to-old")]);
    let mut stream = SotwStream::new();
    stream.handle_request(&request(Cluster, &[], "", ""), &old);
    stream.handle_request(&request(Route, &["r"], "", ""), &old);
    let new = snapshot(&[(Cluster, "new", "new"), (Route, "r", "to-new")]);
    let pushed = stream.handle_snapshot(&new);
    let summary: Vec<_> = pushed
        .iter()
        .map(|r| (ResourceType::from_type_url(&r.type_url).unwrap(), names(r)))
        .collect();
    assert_eq!(
        summary,
        [
            (Cluster, vec!["new".to_string(), "old".to_string()]),
            (Route, vec!["to-new".to_string()]),
            (Cluster, vec!["new".to_string()]),
        ]
    );
}

#[test]
fn reconnect_is_a_fresh_stream_that_gets_everything_again() {
    let snap = snapshot(&[(Cluster, "a", "a1")]);
    let mut stream = SotwStream::new();
    let first = stream
        .handle_request(&request(Cluster, &[], "", ""), &snap)
        .responses
        .remove(0);
    // The client reconnects and presents the version it holds; SotW resends state.
    let mut again = SotwStream::new();
    let reply = again.handle_request(&request(Cluster, &[], &first.version_info, ""), &snap);
    assert_eq!(reply.responses.len(), 1);
    assert_eq!(reply.responses[0].version_info, first.version_info);
}

#[test]
fn removal_of_everything_sends_an_empty_wildcard_set() {
    let snap = snapshot(&[(Listener, "l", "l1")]);
    let mut stream = SotwStream::new();
    stream.handle_request(&request(Listener, &[], "", ""), &snap);
    let pushed = stream.handle_snapshot(&snapshot(&[]));
    assert_eq!(pushed.len(), 1);
    assert!(pushed[0].resources.is_empty());
}

#[test]
fn unknown_type_is_reported_and_ignored() {
    let mut stream = SotwStream::new();
    let req = DiscoveryRequest {
        type_url: "type.googleapis.com/x.Unknown".into(),
        ..Default::default()
    };
    let reply = stream.handle_request(&req, &snapshot(&[]));
    assert!(reply.responses.is_empty());
    assert_eq!(
        reply.events,
        [ClientEvent::UnknownType {
            type_url: req.type_url.clone()
        }]
    );
}
