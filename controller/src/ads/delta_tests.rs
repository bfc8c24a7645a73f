//! Unit tests of the delta state machine: one per protocol case.
use super::*;
use crate::ads::snapshot::tests::snapshot;
use ResourceType::{Cluster, Endpoint, Listener, Route};
use envoy_types::pb::google::rpc::Status;

fn subscribe(ty: ResourceType, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: ty.type_url().into(),
        resource_names_subscribe: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

fn ack(ty: ResourceType, nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: ty.type_url().into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn nack(ty: ResourceType, nonce: &str, message: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        error_detail: Some(Status {
            code: 3,
            message: message.into(),
            details: vec![],
        }),
        ..ack(ty, nonce)
    }
}

/// ACKs each of `responses` (of any type) in order.
fn ack_all(stream: &mut DeltaStream, responses: &[DeltaDiscoveryResponse], snap: &Snapshot) {
    for response in responses {
        let ty = ResourceType::from_type_url(&response.type_url).unwrap();
        stream.handle_request(&ack(ty, &response.nonce), snap);
    }
}

/// The names a response sends, and those it removes.
fn sent_and_removed(response: &DeltaDiscoveryResponse) -> (Vec<&str>, Vec<&str>) {
    let removed = response
        .removed_resources
        .iter()
        .map(String::as_str)
        .collect();
    (sent(response), removed)
}

fn sent(response: &DeltaDiscoveryResponse) -> Vec<&str> {
    response.resources.iter().map(|r| r.name.as_str()).collect()
}

/// A stream that subscribed to `ty` and ACKed the first response.
fn settled(ty: ResourceType, names: &[&str], snap: &Snapshot) -> DeltaStream {
    let mut stream = DeltaStream::new();
    let first = stream
        .handle_request(&subscribe(ty, names), snap)
        .responses
        .remove(0);
    let reply = stream.handle_request(&ack(ty, &first.nonce), snap);
    assert!(reply.responses.is_empty());
    stream
}

#[test]
fn first_request_gets_all_of_a_wildcard_type() {
    let snap = snapshot(&[(Cluster, "a", "a1"), (Cluster, "b", "b1")]);
    let mut stream = DeltaStream::new();
    let reply = stream.handle_request(&subscribe(Cluster, &[]), &snap);
    assert_eq!(sent(&reply.responses[0]), ["a", "b"]);
    assert!(reply.responses[0].removed_resources.is_empty());
}

#[test]
fn ack_then_only_changes_are_sent() {
    let snap = snapshot(&[(Cluster, "a", "a1"), (Cluster, "b", "b1")]);
    let mut stream = settled(Cluster, &[], &snap);
    let progress = stream.progress().next().unwrap().1.clone();
    assert_eq!(progress.acked_version, progress.sent_version);
    let changed = snapshot(&[(Cluster, "a", "a2"), (Cluster, "b", "b1")]);
    let pushed = stream.handle_snapshot(&changed);
    assert_eq!(pushed.len(), 1);
    assert_eq!(sent(&pushed[0]), ["a"]);
}

#[test]
fn an_unchanged_type_is_skipped_and_going_back_is_a_change() {
    let first = snapshot(&[(Cluster, "a", "a1"), (Listener, "l", "l1")]);
    let mut stream = settled(Cluster, &[], &first);
    let second = snapshot(&[(Cluster, "a", "a2"), (Listener, "l", "l2")]);
    let pushed = stream.handle_snapshot(&second).remove(0);
    assert!(
        stream
            .handle_request(&ack(Cluster, &pushed.nonce), &second)
            .responses
            .is_empty()
    );
    assert!(stream.handle_snapshot(&second).is_empty());
    // Same content, rebuilt: nothing to send either.
    let rebuilt = snapshot(&[(Cluster, "a", "a2"), (Listener, "l", "l3")]);
    assert!(stream.handle_snapshot(&rebuilt).is_empty());
    let back = stream.handle_snapshot(&first);
    assert_eq!(back.len(), 1);
    assert_eq!(sent(&back[0]), ["a"]);
    assert_eq!(
        back[0].resources[0].version,
        *first.resources(Cluster).get("a").unwrap().version
    );
}

#[test]
fn nacked_resource_is_not_resent_until_it_changes() {
    let snap = snapshot(&[(Cluster, "a", "a1")]);
    let mut stream = settled(Cluster, &[], &snap);
    let bad = snapshot(&[(Cluster, "a", "bad")]);
    let pushed = stream.handle_snapshot(&bad).remove(0);
    let reply = stream.handle_request(&nack(Cluster, &pushed.nonce, "bad cluster a"), &bad);
    assert!(
        reply.responses.is_empty(),
        "the NACKed version must not be re-sent"
    );
    assert!(
        matches!(&reply.events[..], [ClientEvent::Nack { nack, .. }] if nack.message == "bad cluster a")
    );
    assert!(stream.handle_snapshot(&bad).is_empty());
    let fixed = snapshot(&[(Cluster, "a", "fixed")]);
    assert_eq!(sent(&stream.handle_snapshot(&fixed)[0]), ["a"]);
}

#[test]
fn stale_nonce_is_reported_but_subscriptions_still_apply() {
    let snap = snapshot(&[(Endpoint, "a", "a1"), (Endpoint, "b", "b1")]);
    let mut stream = settled(Endpoint, &["a"], &snap);
    let req = DeltaDiscoveryRequest {
        resource_names_subscribe: vec!["b".into()],
        ..ack(Endpoint, "999")
    };
    let reply = stream.handle_request(&req, &snap);
    assert_eq!(
        reply.events,
        [ClientEvent::StaleNonce {
            ty: Endpoint,
            nonce: "999".into()
        }]
    );
    assert_eq!(sent(&reply.responses[0]), ["b"]);
}

#[test]
fn removal_is_sent_as_removed_resources() {
    let snap = snapshot(&[(Listener, "l1", "x"), (Listener, "l2", "y")]);
    let mut stream = settled(Listener, &[], &snap);
    let pushed = stream.handle_snapshot(&snapshot(&[(Listener, "l1", "x")]));
    assert_eq!(pushed.len(), 1);
    assert!(pushed[0].resources.is_empty());
    assert_eq!(pushed[0].removed_resources, ["l2"]);
}

#[test]
fn subscribing_to_a_missing_name_answers_that_it_does_not_exist() {
    let snap = snapshot(&[(Route, "r1", "x")]);
    let mut stream = DeltaStream::new();
    let reply = stream.handle_request(&subscribe(Route, &["r1", "nope"]), &snap);
    assert_eq!(sent(&reply.responses[0]), ["r1"]);
    assert_eq!(reply.responses[0].removed_resources, ["nope"]);
    let created = snapshot(&[(Route, "r1", "x"), (Route, "nope", "now")]);
    assert_eq!(sent(&stream.handle_snapshot(&created)[0]), ["nope"]);
}

#[test]
fn unsubscribe_stops_updates() {
    let snap = snapshot(&[(Endpoint, "a", "a1"), (Endpoint, "b", "b1")]);
    let mut stream = settled(Endpoint, &["a", "b"], &snap);
    let req = DeltaDiscoveryRequest {
        type_url: Endpoint.type_url().into(),
        resource_names_unsubscribe: vec!["b".into()],
        ..Default::default()
    };
    assert!(stream.handle_request(&req, &snap).responses.is_empty());
    assert!(
        stream
            .handle_snapshot(&snapshot(&[(Endpoint, "a", "a1"), (Endpoint, "b", "b2")]))
            .is_empty()
    );
}

#[test]
fn reconnect_with_initial_versions_resends_nothing_unchanged() {
    let snap = snapshot(&[(Cluster, "a", "a1"), (Cluster, "b", "b1")]);
    let a_version = snap
        .resources(Cluster)
        .get("a")
        .unwrap()
        .version
        .to_string();
    let mut stream = DeltaStream::new();
    let mut req = subscribe(Cluster, &[]);
    req.initial_resource_versions.insert("a".into(), a_version);
    req.initial_resource_versions
        .insert("gone".into(), "old".into());
    let reply = stream.handle_request(&req, &snap);
    assert_eq!(sent(&reply.responses[0]), ["b"]);
    assert_eq!(reply.responses[0].removed_resources, ["gone"]);
}

#[test]
fn push_order_is_upserts_forward_then_removals_backward() {
    let old = snapshot(&[(Cluster, "old", "o"), (Listener, "l", "to-old")]);
    let mut stream = settled(Cluster, &[], &old);
    let first = stream
        .handle_request(&subscribe(Listener, &[]), &old)
        .responses
        .remove(0);
    stream.handle_request(&ack(Listener, &first.nonce), &old);
    let new = snapshot(&[(Cluster, "new", "n"), (Listener, "l", "to-new")]);
    let pushed = stream.handle_snapshot(&new);
    let summary: Vec<_> = pushed
        .iter()
        .map(|r| {
            (
                ResourceType::from_type_url(&r.type_url).unwrap(),
                sent(r),
                r.removed_resources.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Cluster, vec!["new"], vec![]),
            (Listener, vec!["l"], vec![]),
            (Cluster, vec![], vec!["old".to_string()]),
        ]
    );
}

#[test]
fn in_flight_updates_are_not_sent_twice() {
    let snap = snapshot(&[(Cluster, "a", "a1")]);
    let mut stream = settled(Cluster, &[], &snap);
    let changed = snapshot(&[(Cluster, "a", "a2")]);
    assert_eq!(stream.handle_snapshot(&changed).len(), 1);
    // Published again before the ACK: nothing new to send.
    assert!(stream.handle_snapshot(&changed).is_empty());
}

#[test]
fn unknown_type_is_reported_and_ignored() {
    let mut stream = DeltaStream::new();
    let req = DeltaDiscoveryRequest {
        type_url: "type.googleapis.com/x.Unknown".into(),
        ..Default::default()
    };
    let reply = stream.handle_request(&req, &snapshot(&[]));
    assert!(reply.responses.is_empty());
    assert!(matches!(
        &reply.events[..],
        [ClientEvent::UnknownType { .. }]
    ));
}

#[test]
fn large_pushes_are_split_and_each_part_is_acked_on_its_own() {
    let big = "x".repeat(MAX_RESPONSE_BYTES / 2 + 1);
    let snap = snapshot(&[
        (Cluster, "a", &big),
        (Cluster, "b", &big),
        (Cluster, "c", "c1"),
    ]);
    let mut stream = DeltaStream::new();
    let reply = stream.handle_request(&subscribe(Cluster, &[]), &snap);
    let parts: Vec<Vec<&str>> = reply.responses.iter().map(sent).collect();
    assert_eq!(parts, [vec!["a"], vec!["b", "c"]]);
    for part in &reply.responses {
        let ack = stream.handle_request(&ack(Cluster, &part.nonce), &snap);
        assert!(ack.responses.is_empty());
        assert!(matches!(&ack.events[..], [ClientEvent::Ack { .. }]));
    }
    assert!(stream.handle_snapshot(&snap).is_empty());
}

#[test]
fn a_new_subscription_on_an_up_to_date_stream_gets_just_that_name() {
    let snap = snapshot(&[(Endpoint, "a", "a1"), (Endpoint, "b", "b1")]);
    let mut stream = settled(Endpoint, &["a"], &snap);
    let reply = stream.handle_request(&subscribe(Endpoint, &["b", "missing"]), &snap);
    assert_eq!(reply.responses.len(), 1);
    assert_eq!(sent(&reply.responses[0]), ["b"]);
    assert_eq!(reply.responses[0].removed_resources, ["missing"]);
    // Subscribing again to what the client holds sends nothing.
    let ack_b = ack(Endpoint, &reply.responses[0].nonce);
    assert!(stream.handle_request(&ack_b, &snap).responses.is_empty());
    assert!(
        stream
            .handle_request(&subscribe(Endpoint, &["a", "b"]), &snap)
            .responses
            .is_empty()
    );
}

mod vhds {
    //! VirtualHost subscriptions by authority and clusters that follow the hosts.
    use super::*;
    use crate::ads::snapshot::tests::any;
    use crate::ads::vhds::{HostEntry, NamespaceHosts};
    use ResourceType::VirtualHost;

    const GREETER: &str = "outbound/default/greeter:50051";
    const ECHO: &str = "outbound/default/echo:9000";

    fn host(name: &str, domains: &[&str], clusters: &[&str], content: &str) -> HostEntry {
        HostEntry {
            name: name.into(),
            body: any(VirtualHost.type_url(), content),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// A Delta client's view in namespace `default`: two hosts (contents as given), three
    /// clusters and an inbound one, pinned.
    fn view(greeter: &str, echo: &str, echo_clusters: &[&str]) -> Snapshot {
        view_after(None, greeter, echo, echo_clusters)
    }

    /// [`view`], translated after `previous` (whose host routing it keeps when unchanged).
    fn view_after(
        previous: Option<&Snapshot>,
        greeter: &str,
        echo: &str,
        echo_clusters: &[&str],
    ) -> Snapshot {
        let mut builder = Snapshot::builder();
        for cluster in ["greeter", "echo", "echo-v2", "inbound|app"] {
            builder.add(Cluster, cluster, any(Cluster.type_url(), cluster));
        }
        let hosts = NamespaceHosts::new(
            "outbound/default",
            any(Route.type_url(), "shell"),
            vec![
                host(
                    GREETER,
                    &["greeter:50051", "greeter"],
                    &["greeter"],
                    greeter,
                ),
                host(ECHO, &["echo:9000", "echo"], echo_clusters, echo),
            ],
            previous.and_then(Snapshot::vhds),
        );
        builder
            .build()
            .with_vhds(Arc::new(hosts), &["inbound|app".to_string()])
    }

    pub(super) fn base() -> Snapshot {
        view("g1", "e1", &["echo"])
    }

    /// A stream holding the wildcard clusters (ACKed), nothing else.
    fn with_clusters(snap: &Snapshot) -> DeltaStream {
        let stream = settled(Cluster, &[], snap);
        assert!(stream.types[&Cluster].following.is_some());
        stream
    }

    fn aliases(response: &DeltaDiscoveryResponse) -> Vec<(&str, Vec<&str>, bool)> {
        response
            .resources
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.aliases.iter().map(String::as_str).collect(),
                    r.resource.is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn clusters_start_with_the_pinned_ones_only() {
        let snap = base();
        let mut stream = DeltaStream::new();
        let reply = stream.handle_request(&subscribe(Cluster, &[]), &snap);
        assert_eq!(reply.responses.len(), 1);
        assert_eq!(sent(&reply.responses[0]), ["inbound|app"]);
    }

    #[test]
    fn an_authority_gets_its_host_under_the_host_name_after_the_host_clusters() {
        let snap = base();
        let mut stream = with_clusters(&snap);
        let reply = stream.handle_request(
            &subscribe(VirtualHost, &["outbound/default/greeter"]),
            &snap,
        );
        assert_eq!(reply.responses.len(), 2, "{:?}", reply.responses);
        assert_eq!(reply.responses[0].type_url, Cluster.type_url());
        assert_eq!(sent(&reply.responses[0]), ["greeter"]);
        assert_eq!(
            aliases(&reply.responses[1]),
            [(GREETER, vec!["outbound/default/greeter"], true)]
        );
        // A second alias of the same host resends nothing new but the alias.
        let nonces: Vec<String> = reply.responses.iter().map(|r| r.nonce.clone()).collect();
        stream.handle_request(&ack(Cluster, &nonces[0]), &snap);
        stream.handle_request(&ack(VirtualHost, &nonces[1]), &snap);
        let reply = stream.handle_request(
            &subscribe(VirtualHost, &["outbound/default/greeter:50051"]),
            &snap,
        );
        assert!(
            reply
                .responses
                .iter()
                .all(|r| r.type_url != Cluster.type_url()),
            "no cluster changes"
        );
    }

    #[test]
    fn an_authority_nothing_serves_is_answered_without_a_body() {
        let snap = base();
        let mut stream = with_clusters(&snap);
        let reply =
            stream.handle_request(&subscribe(VirtualHost, &["outbound/default/nope:1"]), &snap);
        assert_eq!(reply.responses.len(), 1);
        assert_eq!(
            aliases(&reply.responses[0]),
            [(
                "outbound/default/nope:1",
                vec!["outbound/default/nope:1"],
                false
            )]
        );
        assert!(reply.responses[0].removed_resources.is_empty());
    }

    #[test]
    fn a_first_request_naming_nothing_gets_the_placeholder() {
        let snap = base();
        let mut stream = DeltaStream::new();
        let reply = stream.handle_request(&subscribe(VirtualHost, &[]), &snap);
        assert_eq!(
            aliases(&reply.responses[0]),
            [("outbound/default/_", vec!["outbound/default/_"], false)]
        );
    }

    /// A stream holding the greeter host and its cluster, everything ACKed.
    fn holding_greeter(snap: &Snapshot) -> DeltaStream {
        let mut stream = with_clusters(snap);
        let reply =
            stream.handle_request(&subscribe(VirtualHost, &["outbound/default/greeter"]), snap);
        for response in reply.responses {
            let ty = ResourceType::from_type_url(&response.type_url).unwrap();
            assert!(
                stream
                    .handle_request(&ack(ty, &response.nonce), snap)
                    .responses
                    .is_empty()
            );
        }
        stream
    }

    /// A stream holding greeter's host, then echo's too, everything ACKed.
    fn holding_greeter_and_echo(snap: &Snapshot) -> DeltaStream {
        let mut stream = holding_greeter(snap);
        let reply =
            stream.handle_request(&subscribe(VirtualHost, &["outbound/default/echo"]), snap);
        ack_all(&mut stream, &reply.responses, snap);
        stream
    }

    #[test]
    fn a_change_to_a_host_reaches_only_the_streams_holding_it() {
        let mut stream = holding_greeter(&base());
        assert!(
            stream
                .handle_snapshot(&view("g1", "e2", &["echo"]))
                .is_empty(),
            "echo is not held"
        );
        let pushed = stream.handle_snapshot(&view("g2", "e2", &["echo"]));
        assert_eq!(pushed.len(), 1);
        assert_eq!(
            aliases(&pushed[0]),
            [(GREETER, vec!["outbound/default/greeter"], true)]
        );
    }

    #[test]
    fn a_rejected_host_holds_back_only_itself() {
        let snap = base();
        let mut stream = holding_greeter(&snap);
        let reply =
            stream.handle_request(&subscribe(VirtualHost, &["outbound/default/echo"]), &snap);
        let echo = reply.responses.last().unwrap().clone();
        assert_eq!(sent(&echo), [ECHO]);
        for response in &reply.responses[..reply.responses.len() - 1] {
            stream.handle_request(&ack(Cluster, &response.nonce), &snap);
        }
        let nacked = stream.handle_request(&nack(VirtualHost, &echo.nonce, "bad echo"), &snap);
        assert!(matches!(nacked.events[..], [ClientEvent::Nack { .. }]));
        // The same echo again is not re-sent; greeter's change still goes out.
        let pushed = stream.handle_snapshot(&view("g2", "e1", &["echo"]));
        assert_eq!(pushed.len(), 1);
        assert_eq!(sent(&pushed[0]), [GREETER]);
    }

    #[test]
    fn a_host_that_moves_to_new_clusters_gets_them_first_and_loses_the_old_after() {
        let snap = base();
        let mut stream = holding_greeter_and_echo(&snap);
        let pushed = stream.handle_snapshot(&view("g1", "e2", &["echo-v2"]));
        let order: Vec<(&str, Vec<&str>, Vec<&str>)> = pushed
            .iter()
            .map(|r| {
                let ty = ResourceType::from_type_url(&r.type_url)
                    .unwrap()
                    .short_name();
                let (sent, removed) = sent_and_removed(r);
                (ty, sent, removed)
            })
            .collect();
        assert_eq!(
            order,
            [
                ("CDS", vec!["echo-v2"], vec![]),
                ("VHDS", vec![ECHO], vec![]),
                ("CDS", vec![], vec!["echo"]),
            ]
        );
    }

    #[test]
    fn a_cluster_pruned_and_acked_is_sent_again_when_a_host_sends_to_it_again() {
        let snap = base();
        let mut stream = holding_greeter_and_echo(&snap);
        let moved = view("g1", "e2", &["echo-v2"]);
        let pushed = stream.handle_snapshot(&moved);
        ack_all(&mut stream, &pushed, &moved);
        // Back to `echo`, which the client removed (and ACKed the removal of).
        let back = view("g1", "e1", &["echo"]);
        let pushed = stream.handle_snapshot(&back);
        let clusters: Vec<(Vec<&str>, Vec<&str>)> = pushed
            .iter()
            .filter(|r| r.type_url == Cluster.type_url())
            .map(sent_and_removed)
            .collect();
        assert_eq!(
            clusters,
            [(vec!["echo"], vec![]), (vec![], vec!["echo-v2"])]
        );
    }

    #[test]
    fn pushes_that_keep_the_routing_skip_following_yet_send_what_changed() {
        let first = base();
        let mut stream = holding_greeter(&first);
        let second = view_after(Some(&first), "g2", "e1", &["echo"]);
        let routing = |snap: &Snapshot| snap.vhds().unwrap().routing().clone();
        assert!(Arc::ptr_eq(&routing(&first), &routing(&second)));
        assert!(
            stream
                .followed
                .as_ref()
                .is_some_and(|f| Arc::ptr_eq(&f.routing, &routing(&first))),
            "the stream remembers what it followed"
        );
        let pushed = stream.handle_snapshot(&second);
        assert_eq!(pushed.len(), 1);
        assert_eq!(sent(&pushed[0]), [GREETER]);
        stream.handle_request(&ack(VirtualHost, &pushed[0].nonce), &second);

        // A new subscription against the same routing is still resolved.
        let reply =
            stream.handle_request(&subscribe(VirtualHost, &["outbound/default/echo"]), &second);
        let order: Vec<Vec<&str>> = reply.responses.iter().map(sent).collect();
        assert_eq!(order, [vec!["echo"], vec![ECHO]]);
        ack_all(&mut stream, &reply.responses, &second);

        // New routing (echo sends elsewhere): followed again.
        let third = view_after(Some(&second), "g2", "e1", &["echo-v2"]);
        assert!(!Arc::ptr_eq(&routing(&second), &routing(&third)));
        let pushed = stream.handle_snapshot(&third);
        let clusters: Vec<(Vec<&str>, Vec<&str>)> = pushed.iter().map(sent_and_removed).collect();
        assert_eq!(
            clusters,
            [(vec!["echo-v2"], vec![]), (vec![], vec!["echo"])]
        );
    }
}

#[test]
fn an_ack_of_a_name_unsubscribed_meanwhile_leaves_it_forgotten() {
    let snap = snapshot(&[(Endpoint, "a", "1")]);
    let mut stream = DeltaStream::new();
    let first = stream
        .handle_request(&subscribe(Endpoint, &["a"]), &snap)
        .responses
        .remove(0);
    let unsubscribe = DeltaDiscoveryRequest {
        type_url: Endpoint.type_url().into(),
        resource_names_unsubscribe: vec!["a".into()],
        ..Default::default()
    };
    stream.handle_request(&unsubscribe, &snap);
    stream.handle_request(&ack(Endpoint, &first.nonce), &snap);
    let again = stream.handle_request(&subscribe(Endpoint, &["a"]), &snap);
    assert_eq!(again.responses.len(), 1);
    assert_eq!(sent(&again.responses[0]), ["a"]);
}

mod vhds_reconnect {
    use super::vhds::base as view;
    use super::*;

    #[test]
    fn a_reconnecting_client_keeps_its_clusters_until_it_names_its_hosts_again() {
        let snap = view();
        let mut stream = DeltaStream::new();
        let reconnect = DeltaDiscoveryRequest {
            type_url: Cluster.type_url().into(),
            initial_resource_versions: [("greeter".to_string(), "old".to_string())].into(),
            ..Default::default()
        };
        let reply = stream.handle_request(&reconnect, &snap);
        assert!(
            reply
                .responses
                .iter()
                .all(|r| r.removed_resources.is_empty()),
            "{:?}",
            reply.responses
        );
        assert_eq!(sent(&reply.responses[0]), ["greeter", "inbound|app"]);
        // Once it names its hosts again, what no host needs goes.
        let reply = stream.handle_request(
            &subscribe(ResourceType::VirtualHost, &["outbound/default/echo"]),
            &snap,
        );
        let removed: Vec<&str> = reply
            .responses
            .iter()
            .flat_map(|r| r.removed_resources.iter().map(String::as_str))
            .collect();
        assert_eq!(removed, ["greeter"]);
    }
}
