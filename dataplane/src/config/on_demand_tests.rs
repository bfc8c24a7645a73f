//! Tests of the VHDS bookkeeping (what is asked, answered, forgotten), of joining held hosts
//! into their table, and of what the held config says about one RPC.

use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::util::pack_any;
use http::HeaderMap;

use super::*;
use crate::config::test_protos::*;
use crate::config::{
    Resources, assemble, parse_cluster, parse_endpoints, parse_listener, parse_route_config,
    parse_virtual_host,
};

const SHELL: &str = "outbound/default";
const GREETER_HOST: &str = "outbound/default/greeter.default.svc.cluster.local:50051";

fn host(name: &str, domains: &[&str], cluster: &str) -> Arc<OnDemandHost> {
    let routes = vec![route(
        "default",
        prefix("/weft.test.Echo/"),
        to_cluster(cluster),
    )];
    Arc::new(parse_virtual_host(&pack_any(vhost(name, domains, routes))).unwrap())
}

fn greeter() -> Arc<OnDemandHost> {
    host(
        "greeter.default.svc.cluster.local:50051",
        &["greeter:50051", "greeter.default.svc.cluster.local:50051"],
        GREETER,
    )
}

fn add_routes(resources: &mut Resources, routes: RouteConfiguration) {
    let table = parse_route_config(&pack_any(routes)).unwrap();
    resources.routes.insert(table.name.clone(), Arc::new(table));
}

/// The outbound listener and the shell of `outbound/default`, nothing else.
fn shell() -> Resources {
    let mut resources = Resources::default();
    let listener = parse_listener(&pack_any(controller_listener("default"))).unwrap();
    resources.listeners.insert(listener.name.clone(), listener);
    add_routes(&mut resources, vhds_shell(SHELL));
    resources
}

fn add_cluster(resources: &mut Resources, name: &str) {
    let cluster = parse_cluster(&pack_any(controller_cluster(name))).unwrap();
    resources.clusters.insert(name.into(), Arc::new(cluster));
}

fn add_endpoints(resources: &mut Resources, name: &str) {
    let set = parse_endpoints(&pack_any(controller_assignment(name, &["127.0.0.1:1"]))).unwrap();
    resources.endpoints.insert(name.into(), Arc::new(set));
}

/// `greeter` held as the answer to `outbound/default/greeter:50051`.
fn hold_greeter(resources: &mut Resources) {
    let alias = "outbound/default/greeter:50051".to_owned();
    resources.on_demand.subscribed.insert(alias.clone());
    resources.on_demand.answered(GREETER_HOST, &[alias]);
    resources
        .virtual_hosts
        .insert(GREETER_HOST.into(), greeter());
}

fn rpc<'a>(authority: &'a str, headers: &'a HeaderMap) -> RpcTarget<'a> {
    RpcTarget {
        authority,
        original_dst: None,
        path: "/weft.test.Echo/Unary",
        headers,
    }
}

/// What `lookup` says, in short: `route <host>`, `no route`, `not found`, `wait`,
/// `wait, ask <name>`.
fn said(resources: &Resources, rpc: &RpcTarget<'_>) -> String {
    let config = assemble(resources.clone());
    match config.lookup(rpc) {
        Lookup::Route(decision) => format!("route {}", decision.virtual_host.name),
        Lookup::NoRoute => "no route".into(),
        Lookup::NotFound => "not found".into(),
        Lookup::Wait { demand: None } => "wait".into(),
        Lookup::Wait { demand: Some(name) } => format!("wait, ask {name}"),
    }
}

#[test]
fn a_name_is_asked_once_and_its_answer_stands() {
    let mut lookups = OnDemandLookups::default();
    let name = "outbound/default/nope:1";
    assert_eq!(lookups.demand(name), Demand::Subscribe);
    assert_eq!(lookups.demand(name), Demand::AlreadyAsked);
    lookups.not_served(name);
    assert!(lookups.known_missing(name));
    assert_eq!(
        lookups.demand(name),
        Demand::AlreadyAsked,
        "the subscription stays: a host serving it later is sent without asking"
    );
    // A removal of a name never asked for is not an answer to anything.
    lookups.not_served("outbound/default/other:1");
    assert!(!lookups.known_missing("outbound/default/other:1"));
}

#[test]
fn an_answer_maps_its_aliases_and_a_removal_turns_them_into_not_found() {
    let mut lookups = OnDemandLookups::default();
    let (a, b) = ("outbound/default/greeter:50051", "outbound/default/greeter");
    lookups.demand(a);
    lookups.demand(b);
    lookups.not_served(b);
    lookups.answered(GREETER_HOST, &[a.to_owned(), b.to_owned()]);
    assert_eq!(lookups.aliases[a], GREETER_HOST);
    assert_eq!(lookups.aliases[GREETER_HOST], GREETER_HOST);
    assert!(
        lookups.not_found.is_empty(),
        "a host answering clears its names"
    );
    // An update listing no aliases keeps the names answered before.
    lookups.answered(GREETER_HOST, &[]);
    assert_eq!(lookups.aliases[b], GREETER_HOST);

    lookups.host_removed(GREETER_HOST);
    assert!(lookups.aliases.is_empty());
    assert!(lookups.known_missing(a) && lookups.known_missing(b));
    assert!(
        !lookups.not_found.contains(GREETER_HOST),
        "never asked for by its own name"
    );
}

#[test]
fn past_the_limit_new_names_are_refused_without_asking() {
    let mut lookups = OnDemandLookups {
        subscribed: (0..MAX_ON_DEMAND_NAMES)
            .map(|i| format!("outbound/default/s{i}:1"))
            .collect(),
        ..OnDemandLookups::default()
    };
    assert_eq!(
        lookups.demand("outbound/default/s0:1"),
        Demand::AlreadyAsked
    );
    assert_eq!(lookups.demand("outbound/default/new:1"), Demand::Refused);
    assert!(lookups.known_missing("outbound/default/new:1"));
    assert!(!lookups.subscribed.contains("outbound/default/new:1"));
    assert_eq!(
        lookups.demand("outbound/default/new:1"),
        Demand::AlreadyAsked
    );
    // Refusals stay bounded: a full set starts over.
    lookups.refused = (0..MAX_ON_DEMAND_NAMES).map(|i| format!("r{i}")).collect();
    assert_eq!(lookups.demand("outbound/default/x:1"), Demand::Refused);
    assert_eq!(lookups.refused.len(), 1);
}

#[test]
fn held_hosts_join_their_table_after_the_inline_ones() {
    let mut shell = vhds_shell(SHELL);
    shell.virtual_hosts = vec![vhost(
        "inline",
        &["inline:1", "greeter:50051"],
        vec![route("r", prefix("/"), to_cluster("c"))],
    )];
    let table = Arc::new(parse_route_config(&pack_any(shell)).unwrap());
    let mut hosts = BTreeMap::new();
    hosts.insert(GREETER_HOST.to_owned(), greeter());
    hosts.insert(
        "outbound/defaulted/x:1".to_owned(),
        host("x:1", &["x:1"], "cx"),
    );
    hosts.insert(
        "outbound/default/y:1".to_owned(),
        host("y:1", &["y:1"], "cy"),
    );
    let joined = with_held_hosts(&table, &hosts);
    let names: Vec<&str> = joined
        .virtual_hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["inline", "greeter.default.svc.cluster.local:50051", "y:1"],
        "only this table's hosts, by resource name"
    );
    assert_eq!(
        joined.domains["greeter:50051"], 0,
        "the inline host keeps its domain"
    );
    assert_eq!(joined.domains["greeter.default.svc.cluster.local:50051"], 1);
    assert_eq!(joined.domains["y:1"], 2);
    assert!(
        joined.named.services.contains("weft.test.Echo"),
        "{:?}",
        joined.named
    );
    assert!(joined.vhds);

    let plain = Arc::new(parse_route_config(&pack_any(route_config(SHELL, vec![]))).unwrap());
    assert!(Arc::ptr_eq(&with_held_hosts(&plain, &hosts), &plain));
}

#[test]
fn an_unknown_authority_is_asked_for_then_waited_for() {
    let headers = HeaderMap::new();
    let mut resources = shell();
    assert_eq!(
        said(&resources, &rpc("Greeter:50051", &headers)),
        "wait, ask outbound/default/greeter:50051",
        "the authority as sent, lower-cased"
    );
    resources
        .on_demand
        .subscribed
        .insert("outbound/default/greeter:50051".into());
    assert_eq!(
        said(&resources, &rpc("greeter:50051", &headers)),
        "wait",
        "asked already: nothing to ask"
    );
}

#[test]
fn a_held_host_routes_once_its_clusters_have_endpoints() {
    let headers = HeaderMap::new();
    let mut resources = shell();
    hold_greeter(&mut resources);
    let greeter = rpc("greeter:50051", &headers);
    assert_eq!(said(&resources, &greeter), "wait", "no cluster yet");
    add_cluster(&mut resources, GREETER);
    assert_eq!(said(&resources, &greeter), "wait", "no endpoints yet");
    add_endpoints(&mut resources, GREETER);
    assert_eq!(
        said(&resources, &greeter),
        "route greeter.default.svc.cluster.local:50051"
    );
    // A host that answers but has no route for the path is the usual "no route".
    let other_path = RpcTarget {
        path: "/other.S/M",
        ..greeter
    };
    assert_eq!(said(&resources, &other_path), "no route");
}

#[test]
fn not_found_fails_at_once() {
    let headers = HeaderMap::new();
    let mut resources = shell();
    let name = "outbound/default/nope:1";
    resources.on_demand.demand(name);
    assert_eq!(said(&resources, &rpc("nope:1", &headers)), "wait");
    resources.on_demand.not_served(name);
    assert_eq!(said(&resources, &rpc("nope:1", &headers)), "not found");
    // Answered by a host that does not list the authority: no host serves it.
    resources.on_demand.not_found.clear();
    resources
        .on_demand
        .answered(GREETER_HOST, &[name.to_owned()]);
    resources
        .virtual_hosts
        .insert(GREETER_HOST.into(), greeter());
    assert_eq!(said(&resources, &rpc("nope:1", &headers)), "not found");
}

#[test]
fn an_intercepted_rpc_asks_for_its_original_destination_after_its_authority() {
    let headers = HeaderMap::new();
    let mut resources = shell();
    let intercepted = RpcTarget {
        original_dst: Some("10.96.0.1:50051".parse().unwrap()),
        ..rpc("example.com", &headers)
    };
    assert_eq!(
        said(&resources, &intercepted),
        "wait, ask outbound/default/example.com"
    );
    for name in [
        "outbound/default/example.com",
        "outbound/default/10.96.0.1:50051",
    ] {
        resources.on_demand.demand(name);
        resources.on_demand.not_served(name);
        let expected = if name.ends_with("com") {
            "wait, ask outbound/default/10.96.0.1:50051"
        } else {
            "not found"
        };
        assert_eq!(said(&resources, &intercepted), expected);
    }
}

#[test]
fn without_vhds_nothing_is_asked_or_waited_for() {
    let headers = HeaderMap::new();
    let mut resources = shell();
    add_routes(&mut resources, demo_route_config());
    assert_eq!(said(&resources, &rpc("nope:1", &headers)), "no route");
    // Routed at once even before the clusters arrive (it fails later, as it always has).
    assert_eq!(
        said(&resources, &rpc("greeter:50051", &headers)),
        "route greeter.default.svc.cluster.local:50051"
    );
    let nothing = Resources {
        on_demand: resources.on_demand,
        ..Resources::default()
    };
    assert_eq!(said(&nothing, &rpc("greeter:50051", &headers)), "wait");
}

#[test]
fn a_host_named_like_its_resource_is_named_as_inline() {
    let long = host(GREETER_HOST, &["greeter:50051"], GREETER);
    let held = long.named_within(GREETER_HOST);
    assert_eq!(held.host.name, "greeter.default.svc.cluster.local:50051");
    assert_eq!(held.host.domains, ["greeter:50051"]);
    let short = greeter();
    assert!(Arc::ptr_eq(
        &Arc::clone(&short).named_within(GREETER_HOST),
        &short
    ));
    let other = host("outbound/other/x:1", &["x:1"], GREETER);
    assert_eq!(
        other.named_within(GREETER_HOST).host.name,
        "outbound/other/x:1",
        "another route configuration's prefix is part of the name"
    );
}

#[test]
fn an_authority_is_settled_before_a_held_host_listing_the_address_dialled() {
    let headers = HeaderMap::new();
    let mut resources = shell();
    add_cluster(&mut resources, GREETER);
    add_endpoints(&mut resources, GREETER);
    resources.virtual_hosts.insert(
        GREETER_HOST.into(),
        host(
            "greeter.default.svc.cluster.local:50051",
            &["greeter:50051", "10.96.0.1:50051"],
            GREETER,
        ),
    );
    let named = RpcTarget {
        original_dst: Some("10.96.0.1:50051".parse().unwrap()),
        ..rpc("greeter-v2", &headers)
    };
    assert_eq!(
        said(&resources, &named),
        "wait, ask outbound/default/greeter-v2",
        "the named Service may be another than the one at the address"
    );
    resources.on_demand.demand("outbound/default/greeter-v2");
    resources
        .on_demand
        .not_served("outbound/default/greeter-v2");
    assert_eq!(
        said(&resources, &named),
        "route greeter.default.svc.cluster.local:50051",
        "once the name serves nothing, the address decides"
    );
}
