//! Tests of what connected proxies add to a translation: per-proxy listeners, inbound
//! clusters, endpoint marking, enforcing policies and tie notes.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Address;
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};

use super::*;
use crate::model::Kind;
use crate::translate::endpoints::socket_address;
use crate::translate::testutil::{decode, index, key, service_yaml, workload};
use crate::translate::tls::{TRANSPORT_SOCKET_MATCH, tls_mode_weft, transport_socket_matches};
use crate::translate::{Translation, translate_for};

const DOMAIN: &str = "example.org";

/// Service `greeter` (port 50051) with endpoints `addrs` (ip) on port `port`.
fn greeter(addrs: &[&str], port: u16) -> String {
    let endpoints: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{addresses: [\"{a}\"]}}"))
        .collect();
    format!(
        "{}---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: greeter-1, namespace: default, labels: {{kubernetes.io/service-name: greeter}}}}\n\
         addressType: IPv4\nports: [{{name: grpc, port: {port}}}]\nendpoints: [{}]\n",
        service_yaml("default", "greeter", &[("grpc", 50051)]),
        endpoints.join(", ")
    )
}

fn policy(name: &str, mode: &str, labels: &str) -> String {
    format!(
        "---\napiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\n\
         metadata: {{name: {name}, namespace: default}}\n\
         spec: {{mode: {mode}, selector: {{matchLabels: {{{labels}}}}}}}\n"
    )
}

fn by_id(list: Vec<Workload>) -> Workloads {
    list.into_iter().map(|w| (w.node_id.clone(), w)).collect()
}

/// (ip, marked) of every endpoint of the greeter cluster.
fn marks(t: &Translation) -> Vec<(String, bool)> {
    let name = "outbound|50051||greeter.default.svc.cluster.local";
    let resource = t.snapshot.resources(ResourceType::Endpoint).get(name);
    let cla: ClusterLoadAssignment = decode(&resource.unwrap().body);
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            let marked = e.metadata.as_ref().is_some_and(|m| {
                m.filter_metadata.get(TRANSPORT_SOCKET_MATCH) == Some(&tls_mode_weft())
            });
            let address = match &e.host_identifier {
                Some(HostIdentifier::Endpoint(Endpoint {
                    address:
                        Some(Address {
                            address: Some(AddressKind::SocketAddress(s)),
                        }),
                    ..
                })) => s.address.clone(),
                other => panic!("not a socket address: {other:?}"),
            };
            (address, marked)
        })
        .collect()
}

#[test]
fn endpoints_of_local_proxies_are_marked_by_inbound_address() {
    let yaml = greeter(&["127.0.0.1", "127.0.0.2"], 50051);
    let proxies = by_id(vec![workload("greeter-0", "default", "127.0.0.1:50051")]);
    let t = translate_for(&index(&yaml), &proxies, &Members::new(), Some(DOMAIN));
    assert_eq!(
        marks(&t),
        [("127.0.0.1".into(), true), ("127.0.0.2".into(), false)]
    );
}

#[test]
fn endpoints_of_pods_are_marked_by_pod_ip_with_any_port() {
    let yaml = greeter(&["10.0.0.1", "10.0.0.2"], 8080);
    let mut w = workload("greeter-0", "default", "127.0.0.1:15006");
    w.pod_ip = Some("10.0.0.2".parse().unwrap());
    let t = translate_for(
        &index(&yaml),
        &by_id(vec![w]),
        &Members::new(),
        Some(DOMAIN),
    );
    assert_eq!(
        marks(&t),
        [("10.0.0.1".into(), false), ("10.0.0.2".into(), true)]
    );
}

#[test]
fn endpoints_of_disable_proxies_are_not_marked() {
    let yaml =
        greeter(&["10.0.0.1", "10.0.0.2"], 8080) + &policy("legacy", "Disable", "app: legacy");
    let mut legacy = workload("legacy-0", "default", "127.0.0.1:15006");
    legacy.pod_ip = Some("10.0.0.1".parse().unwrap());
    legacy.labels.insert("app".into(), "legacy".into());
    let mut web = workload("web-0", "default", "127.0.0.1:15006");
    web.pod_ip = Some("10.0.0.2".parse().unwrap());
    let t = translate_for(
        &index(&yaml),
        &by_id(vec![legacy, web]),
        &Members::new(),
        Some(DOMAIN),
    );
    assert_eq!(
        marks(&t),
        [("10.0.0.1".into(), false), ("10.0.0.2".into(), true)]
    );
    let enforcing = &t.enforcing[&key(Kind::MtlsPolicy, "default", "legacy")];
    assert_eq!(enforcing.iter().collect::<Vec<_>>(), ["legacy-0.default"]);
    assert_eq!(
        t.enforcing.len(),
        1,
        "web-0 has no policy: {:?}",
        t.enforcing
    );
}

#[test]
fn endpoints_of_members_not_connected_here_are_marked_unless_disable() {
    let yaml = greeter(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "127.0.0.1"], 8080)
        + &policy("legacy", "Disable", "app: legacy");
    let member = |ip: &str, labels: &[(&str, &str)]| Member {
        namespace: "default".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        inbound_addr: None,
        pod_ip: Some(ip.parse().unwrap()),
    };
    let mut members = Members::new();
    members.insert("pod/default/web".into(), member("10.0.0.1", &[]));
    members.insert(
        "pod/default/legacy".into(),
        member("10.0.0.2", &[("app", "legacy")]),
    );
    // A local proxy that left a moment ago: marked by its inbound address.
    let mut local = member("10.9.9.9", &[]);
    (local.pod_ip, local.inbound_addr) = (None, Some("127.0.0.1:8080".parse().unwrap()));
    members.insert("greeter-0.default".into(), local);
    let t = translate_for(&index(&yaml), &Workloads::new(), &members, Some(DOMAIN));
    assert_eq!(
        marks(&t),
        [
            ("10.0.0.1".into(), true),
            ("10.0.0.2".into(), false),
            ("10.0.0.3".into(), false),
            ("127.0.0.1".into(), true)
        ]
    );
    // Members add no listeners: only connected proxies get config.
    assert!(t.snapshot.for_node("greeter-0.default").is_none());
}

#[test]
fn without_proxies_nothing_is_marked() {
    let yaml = greeter(&["127.0.0.1"], 50051);
    let t = translate_for(
        &index(&yaml),
        &Workloads::new(),
        &Members::new(),
        Some(DOMAIN),
    );
    assert_eq!(marks(&t), [("127.0.0.1".into(), false)]);
}

fn listeners_of(t: &Translation, node: &str) -> Vec<Listener> {
    let snapshot = t
        .snapshot
        .for_node(node)
        .unwrap_or_else(|| panic!("no {node}"));
    snapshot
        .resources(ResourceType::Listener)
        .iter()
        .map(|r| decode(&r.body))
        .collect()
}

fn chain_names(listener: &Listener) -> Vec<&str> {
    listener
        .filter_chains
        .iter()
        .map(|c: &FilterChain| c.name.as_str())
        .collect()
}

#[test]
fn each_proxy_gets_its_listeners_in_its_mode_and_apps_get_clusters() {
    let yaml = greeter(&["127.0.0.1"], 50051) + &policy("strict", "Strict", "app: greeter");
    let mut a = workload("greeter-0", "default", "127.0.0.1:50051");
    a.labels.insert("app".into(), "greeter".into());
    a.app_addr = "127.0.0.1:50061".parse().unwrap();
    let mut b = workload("client-0", "team-a", "127.0.0.1:50052");
    b.outbound_addr = "127.0.0.1:16001".parse().unwrap();
    let t = translate_for(
        &index(&yaml),
        &by_id(vec![a, b]),
        &Members::new(),
        Some(DOMAIN),
    );
    assert!(
        t.snapshot.resources(ResourceType::Listener).is_empty(),
        "no shared listeners"
    );

    let greeter = listeners_of(&t, "greeter-0.default");
    let names: Vec<&str> = greeter.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["inbound", "outbound"]);
    assert_eq!(chain_names(&greeter[0]), ["tls"], "Strict by its policy");
    let client = listeners_of(&t, "client-0.team-a");
    assert_eq!(
        chain_names(&client[0]),
        ["tls", "plaintext"],
        "Permissive by default"
    );
    assert_eq!(
        client[1].address,
        Some(socket_address("127.0.0.1:16001".parse().unwrap()))
    );
    assert!(t.snapshot.for_node("nobody.default").is_none());
    // team-a has no Service, but its proxy gets outbound/team-a.
    t.route_config("team-a");

    let clusters: Vec<Cluster> = t
        .snapshot
        .resources(ResourceType::Cluster)
        .iter()
        .map(|r| decode(&r.body))
        .collect();
    let inbound: Vec<&str> = clusters
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| n.starts_with("inbound|"))
        .collect();
    assert_eq!(
        inbound,
        ["inbound|127.0.0.1:50061", "inbound|127.0.0.1:8080"]
    );
    let outbound = clusters
        .iter()
        .find(|c| c.name.starts_with("outbound|"))
        .unwrap();
    assert_eq!(
        outbound.transport_socket_matches,
        transport_socket_matches(DOMAIN)
    );
    assert_eq!(
        t.enforcing[&key(Kind::MtlsPolicy, "default", "strict")]
            .iter()
            .collect::<Vec<_>>(),
        ["greeter-0.default"]
    );
}

#[test]
fn a_tie_between_selectors_is_noted_on_the_loser() {
    let yaml = policy("a-app", "Strict", "app: web") + &policy("b-tier", "Disable", "tier: front");
    let mut w = workload("web-0", "default", "127.0.0.1:15006");
    w.labels.insert("app".into(), "web".into());
    w.labels.insert("tier".into(), "front".into());
    let t = translate_for(
        &index(&yaml),
        &by_id(vec![w]),
        &Members::new(),
        Some(DOMAIN),
    );
    assert!(
        t.report(Kind::MtlsPolicy, "default", "a-app")
            .notes
            .is_empty()
    );
    assert_eq!(
        t.report(Kind::MtlsPolicy, "default", "b-tier").notes,
        [
            "MtlsPolicy default/a-app selects proxy web-0.default with as many matchLabels and \
          wins (first by name), so this policy does not apply there"
        ]
    );
    let listeners = listeners_of(&t, "web-0.default");
    assert_eq!(chain_names(&listeners[0]), ["tls"]);
}

#[test]
fn proxy_lists_are_cut() {
    assert_eq!(proxy_list(&["a"]), "proxy a");
    assert_eq!(
        proxy_list(&["a", "b", "c", "d", "e", "f", "g"]),
        "proxies a, b, c, d, e and 2 more"
    );
}

fn delta(mut workload: Workload) -> Workload {
    workload.speaks_delta = true;
    workload
}

#[test]
fn inline_routes_are_needed_unless_every_proxy_of_the_namespace_speaks_delta() {
    let a = || workload("a-0", "default", "127.0.0.1:50051");
    let b = || workload("b-0", "default", "127.0.0.2:50051");
    assert!(!ProxySummary::of(&Workloads::new()).delta_only("default"));
    assert!(!ProxySummary::of(&by_id(vec![a()])).delta_only("default"));
    assert!(!ProxySummary::of(&by_id(vec![delta(a()), b()])).delta_only("default"));
    assert!(!ProxySummary::of(&by_id(vec![a(), delta(b())])).delta_only("default"));
    assert!(ProxySummary::of(&by_id(vec![delta(a()), delta(b())])).delta_only("default"));
    // Proxies of other namespaces do not count.
    assert!(!ProxySummary::of(&by_id(vec![delta(a())])).delta_only("other"));
}

#[test]
fn a_namespace_of_delta_proxies_gets_its_hosts_but_no_inline_route_configuration() {
    let yaml = greeter(&["127.0.0.1"], 50051);
    let names = |t: &Translation| -> Vec<String> {
        let routes = t.snapshot.resources(ResourceType::Route);
        routes.iter().map(|r| r.name.to_string()).collect()
    };
    let sotw = by_id(vec![workload("client-0", "default", "127.0.0.9:50051")]);
    let t = translate_for(&index(&yaml), &sotw, &Members::new(), None);
    assert_eq!(names(&t), ["outbound/default"]);

    let all_delta = by_id(vec![delta(workload(
        "client-0",
        "default",
        "127.0.0.9:50051",
    ))]);
    let t = translate_for(&index(&yaml), &all_delta, &Members::new(), None);
    assert!(names(&t).is_empty(), "{:?}", names(&t));
    let hosts = t.snapshot.namespace_hosts("default").expect("VHDS view");
    assert_eq!(
        hosts
            .routing()
            .resolve("outbound/default/greeter:50051")
            .map(|h| h.to_string()),
        Some("outbound/default/greeter.default.svc.cluster.local:50051".to_owned())
    );
}
