//! Tests of the publisher: endpoint-only and route-only retranslations, what makes a full
//! one, and the debounce.

use super::*;
use crate::ads::ResourceType::{self, Cluster, Endpoint, Route};
use crate::translate::{Member, Members};

use crate::translate::testutil::{
    DOMAIN, greeters, index as index_of, objects, service_yaml, workloads,
};

/// Asserts that `after` holds `before`'s sets of `types` themselves (not made again).
fn assert_kept(before: &Translation, after: &Translation, types: &[ResourceType], step: &str) {
    for ty in types {
        assert!(
            Arc::ptr_eq(
                before.snapshot.shared_resources(*ty),
                after.snapshot.shared_resources(*ty)
            ),
            "{step}: {ty} kept"
        );
    }
}

/// Applies every object of `yaml` to `index`.
fn apply(index: &mut Index, yaml: &str) {
    for object in objects(yaml) {
        index.apply(object);
    }
}

/// The publisher's translation for `proxies` and no other members.
fn for_proxies(
    index: &Index,
    proxies: &Workloads,
    last: &mut Option<LastTranslation>,
) -> Translation {
    translate(index, &shared(proxies, &Members::new()), Some(DOMAIN), last)
}

/// The proxies and members as the publisher holds them.
fn shared(workloads: &Workloads, members: &Members) -> Proxies {
    let mut proxies = Proxies::new(
        watch::channel(workloads.clone()).1,
        watch::channel(members.clone()).1,
    );
    proxies.refresh();
    proxies
}

/// Proxies from a registry that is gone.
fn no_proxies() -> Proxies {
    shared(&Workloads::new(), &Members::new())
}

fn slice(address: &str) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: greeter-1, namespace: default, labels: {{kubernetes.io/service-name: greeter}}}}\n\
         addressType: IPv4\nports: [{{name: grpc, port: 50051}}]\n\
         endpoints: [{{addresses: [\"{address}\"]}}]\n"
    )
}

#[test]
fn an_endpoint_change_remakes_endpoints_only_and_matches_a_full_translation() {
    let mut index = index_of(&format!("{}---\n{}", greeters(), slice("10.0.0.1")));
    let proxies = workloads(&[("client", "team-a", "127.0.0.1:15006")]);
    let mut last = None;
    let first = for_proxies(&index, &proxies, &mut last);
    apply(&mut index, &slice("10.0.0.2"));
    let second = for_proxies(&index, &proxies, &mut last);
    let full = translate::translate_for(&index, &proxies, &Members::new(), Some(DOMAIN));
    assert_eq!(second.snapshot, full.snapshot);
    assert!(
        second.snapshot.for_node("client.team-a").is_some(),
        "the per-proxy listeners are kept"
    );
    assert_eq!(
        (&second.reports, &second.warnings),
        (&full.reports, &full.warnings)
    );
    assert_kept(&first, &second, &[Cluster, Route], "");
    assert_ne!(
        first.snapshot.resources(Endpoint).version(),
        second.snapshot.resources(Endpoint).version()
    );
}

#[test]
fn a_member_alone_remakes_only_the_endpoints_and_marks_its_address() {
    let index = index_of(&format!("{}---\n{}", greeters(), slice("10.0.0.1")));
    let proxies = workloads(&[("client", "team-a", "127.0.0.1:15006")]);
    let mut last = None;
    let first = for_proxies(&index, &proxies, &mut last);
    let member = Member {
        namespace: "default".into(),
        labels: Default::default(),
        inbound_addr: None,
        pod_ip: Some("10.0.0.1".parse().unwrap()),
    };
    let members = Members::from([("pod/default/greeter-1".to_owned(), member)]);
    let second = translate(&index, &shared(&proxies, &members), Some(DOMAIN), &mut last);
    let full = translate::translate_for(&index, &proxies, &members, Some(DOMAIN));
    assert_eq!(second.snapshot, full.snapshot);
    assert_ne!(
        first.snapshot, second.snapshot,
        "the endpoint is marked now"
    );
    assert!(Arc::ptr_eq(
        first.snapshot.shared_resources(Cluster),
        second.snapshot.shared_resources(Cluster)
    ));
}

#[test]
fn a_service_change_or_a_new_proxy_translates_everything() {
    let mut index = index_of(&greeters());
    let mut last = None;
    let first = for_proxies(&index, &Workloads::new(), &mut last);
    let proxies = workloads(&[("client", "team-a", "127.0.0.1:15006")]);
    let second = for_proxies(&index, &proxies, &mut last);
    assert_eq!(
        second.snapshot,
        translate::translate_for(&index, &proxies, &Members::new(), Some(DOMAIN)).snapshot
    );
    assert_ne!(first.snapshot, second.snapshot, "outbound/team-a is new");
    apply(
        &mut index,
        &service_yaml("default", "extra", &[("grpc", 80)]),
    );
    let third = for_proxies(&index, &proxies, &mut last);
    assert_eq!(
        third.snapshot,
        translate::translate_for(&index, &proxies, &Members::new(), Some(DOMAIN)).snapshot
    );
    // Another proxy in a namespace already served: its own listeners are new.
    let more = workloads(&[
        ("client", "team-a", "127.0.0.1:15006"),
        ("other", "team-a", "127.0.0.1:16006"),
    ]);
    let fourth = for_proxies(&index, &more, &mut last);
    assert!(fourth.snapshot.for_node("other.team-a").is_some());
    assert!(!third.snapshot.same_content(&fourth.snapshot));
}

/// A GrpcRoute `name` in `namespace` on `greeter` sending `weft.test.Echo` to its
/// backends (name, weight).
fn route(namespace: &str, name: &str, backends: &[(&str, u32)]) -> String {
    let refs: Vec<String> = backends
        .iter()
        .map(|(b, w)| format!("{{name: {b}, namespace: default, port: 50051, weight: {w}}}"))
        .collect();
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  parentRefs: [{{name: greeter, namespace: default}}]\n  rules:\n  \
         - matches: [{{method: {{service: weft.test.Echo}}}}]\n    backendRefs: [{}]\n",
        refs.join(", ")
    )
}

fn fault(name: &str, target: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: FaultInjection\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{targetRef: {target}, abort: {{grpcStatus: UNAVAILABLE, message: boom}}}}\n"
    )
}

/// Proxies in `default` and `team-a`; those of `team-a` speak Delta, so only `default`
/// gets the inline `outbound/default`.
fn mixed_proxies() -> Workloads {
    let mut proxies = workloads(&[
        ("client", "default", "127.0.0.1:15006"),
        ("client", "team-a", "127.0.0.1:16006"),
    ]);
    if let Some(w) = proxies.get_mut("client.team-a") {
        w.speaks_delta = true;
    }
    proxies
}

/// Asserts that `partial` is what a whole translation gives, routing included.
fn assert_whole(partial: &Translation, index: &Index, proxies: &Workloads, step: &str) {
    let full = translate::translate_for(index, proxies, &Members::new(), Some(DOMAIN));
    assert_eq!(partial.snapshot, full.snapshot, "{step}: snapshot");
    assert_eq!(partial.reports, full.reports, "{step}: reports");
    for namespace in ["default", "team-a"] {
        let hosts = |t: &Translation| t.snapshot.namespace_hosts(namespace).cloned().unwrap();
        assert_eq!(
            hosts(partial).routing(),
            hosts(&full).routing(),
            "{step}: routing of {namespace}"
        );
    }
}

#[test]
fn a_route_or_fault_change_remakes_only_the_changed_hosts_and_matches_a_full_translation() {
    let other = service_yaml("default", "other", &[("grpc", 50051), ("admin", 9000)]);
    let mut index = index_of(&format!(
        "{}---\n{other}---\n{}",
        greeters(),
        route(
            "default",
            "split",
            &[("greeter-v1", 90), ("greeter-v2", 10)]
        )
    ));
    let proxies = mixed_proxies();
    let mut last = None;
    let first = for_proxies(&index, &proxies, &mut last);
    let other_host = |t: &Translation| {
        let hosts = t.snapshot.namespace_hosts("team-a").cloned().unwrap();
        hosts
            .hosts()
            .get("outbound/team-a/other.default.svc.cluster.local:50051")
            .cloned()
            .unwrap()
    };
    let steps = [
        (
            "new weights",
            route(
                "default",
                "split",
                &[("greeter-v1", 50), ("greeter-v2", 50)],
            ),
        ),
        (
            "a backend weighted 0",
            route(
                "default",
                "split",
                &[("greeter-v1", 0), ("greeter-v2", 100)],
            ),
        ),
        (
            "the backend back",
            route(
                "default",
                "split",
                &[("greeter-v1", 90), ("greeter-v2", 10)],
            ),
        ),
        (
            "another backend",
            route("default", "split", &[("other", 1)]),
        ),
        (
            "a consumer route",
            route("team-a", "mine", &[("greeter-v2", 1)]),
        ),
        (
            "a fault on the route",
            fault("on-route", "{kind: GrpcRoute, name: split}"),
        ),
        (
            "a fault on the Service",
            fault("on-service", "{kind: Service, name: greeter}"),
        ),
    ];
    let mut before = first;
    for (step, yaml) in steps {
        apply(&mut index, &yaml);
        let after = for_proxies(&index, &proxies, &mut last);
        assert_whole(&after, &index, &proxies, step);
        assert_ne!(after.snapshot, before.snapshot, "{step}: something changed");
        assert!(
            Arc::ptr_eq(&other_host(&before), &other_host(&after)),
            "{step}: the hosts of other Services are kept"
        );
        assert_kept(&before, &after, &[Cluster, Endpoint], step);
        before = after;
    }
    // Removed, then with an endpoint change in the same translation.
    index.delete(&crate::translate::testutil::key(
        Kind::GrpcRoute,
        "default",
        "split",
    ));
    apply(&mut index, &slice("10.0.0.9"));
    let after = for_proxies(&index, &proxies, &mut last);
    assert_whole(
        &after,
        &index,
        &proxies,
        "a route removed and an endpoint changed",
    );
}

#[test]
fn a_route_in_a_namespace_that_had_none_translates_everything() {
    let mut index = index_of(&greeters());
    let proxies = mixed_proxies();
    let mut last = None;
    for_proxies(&index, &proxies, &mut last);
    apply(&mut index, &route("team-b", "new", &[("greeter-v1", 1)]));
    let after = for_proxies(&index, &proxies, &mut last);
    assert!(
        after.snapshot.namespace_hosts("team-b").is_some(),
        "outbound/team-b is new"
    );
    assert_whole(&after, &index, &proxies, "a new client namespace");
}

#[test]
fn a_config_change_after_a_quiet_spell_is_published_at_once_and_the_rest_of_a_burst_waits() {
    assert!(publishes_at_once(true, QUIET));
    assert!(!publishes_at_once(true, QUIET / 2), "the rest of a burst");
    assert!(
        !publishes_at_once(false, QUIET * 10),
        "proxies connecting always wait"
    );
}

#[tokio::test(start_paused = true)]
async fn quiet_period_ends_a_debounce() {
    let (_tx, mut rx) = watch::channel(0u64);
    let start = Instant::now();
    debounce(&mut rx, &mut no_proxies()).await;
    assert_eq!(start.elapsed(), QUIET);
}

#[tokio::test(start_paused = true)]
async fn a_steady_stream_of_changes_is_cut_at_max_delay() {
    let (tx, mut rx) = watch::channel(0u64);
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(QUIET / 2).await; // never quiet for long enough
            tx.send_modify(|revision| *revision += 1);
        }
    });
    let start = Instant::now();
    debounce(&mut rx, &mut no_proxies()).await;
    ticker.abort();
    let waited = start.elapsed();
    assert!(
        waited >= MAX_DELAY && waited < MAX_DELAY + QUIET,
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn proxies_connecting_extend_the_debounce_and_a_closed_registry_does_not_spin() {
    let (_tx, mut rx) = watch::channel(0u64);
    let (proxies, proxies_rx) = watch::channel(Workloads::new());
    let connecting = tokio::spawn(async move {
        for _ in 0..3 {
            tokio::time::sleep(QUIET / 2).await;
            proxies.send_modify(|_| {});
        }
        // `proxies` dropped here: the registry is gone.
    });
    let start = Instant::now();
    let mut held = Proxies::new(proxies_rx, watch::channel(Members::new()).1);
    held.refresh();
    debounce(&mut rx, &mut held).await;
    connecting.await.unwrap();
    assert_eq!(start.elapsed(), QUIET / 2 * 3 + QUIET);
    assert!(held.workloads_changed && !held.members_changed);
    let start = Instant::now();
    debounce(&mut rx, &mut held).await;
    assert_eq!(start.elapsed(), QUIET);
}

#[tokio::test]
async fn proxies_are_copied_again_only_when_they_changed() {
    let (registry, workloads_rx) =
        watch::channel(workloads(&[("a", "default", "127.0.0.1:15006")]));
    let (_members, members_rx) = watch::channel(Members::new());
    let mut proxies = Proxies::new(workloads_rx, members_rx);
    proxies.refresh();
    assert_eq!(proxies.workloads.len(), 1);
    let (copied, members_copied) = (proxies.workloads.clone(), proxies.members.clone());
    proxies.refresh();
    assert!(Arc::ptr_eq(&copied, &proxies.workloads), "unchanged: kept");

    // A change not yet seen, and one `changed()` already marked seen, are both copied.
    registry.send_modify(|w| w.extend(workloads(&[("b", "team-a", "127.0.0.2:15006")])));
    proxies.refresh();
    assert_eq!(proxies.workloads.len(), 2);
    registry.send_modify(|w| {
        w.remove("b.team-a");
    });
    proxies.changed().await;
    assert!(!proxies.workloads_rx.has_changed().unwrap());
    proxies.refresh();
    assert_eq!(proxies.workloads.len(), 1);
    assert!(!proxies.workloads_changed);
    assert!(
        Arc::ptr_eq(&members_copied, &proxies.members),
        "members never changed"
    );
}
