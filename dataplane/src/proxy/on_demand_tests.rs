//! Tests of holding an RPC for VHDS, on tokio's paused clock: the answer arrives (host,
//! cluster, endpoints, in the controller's order), the server says "not found", nothing
//! comes in time.

use std::time::Duration;

use envoy_types::util::pack_any;
use http::HeaderMap;

use super::*;
use crate::config::test_protos::*;
use crate::config::{
    Resources, assemble, parse_cluster, parse_endpoints, parse_listener, parse_route_config,
    parse_virtual_host,
};

const NAME: &str = "outbound/default/greeter:50051";
const GREETER_HOST: &str = "outbound/default/greeter.default.svc.cluster.local:50051";
const STEP: Duration = Duration::from_millis(100);

/// The outbound listener and the shell of `outbound/default`, with `NAME` subscribed.
fn shell() -> Resources {
    let mut resources = Resources::default();
    let listener = parse_listener(&pack_any(controller_listener("default"))).unwrap();
    resources.listeners.insert(listener.name.clone(), listener);
    let table = parse_route_config(&pack_any(vhds_shell("outbound/default"))).unwrap();
    resources.routes.insert(table.name.clone(), Arc::new(table));
    resources.on_demand.subscribed.insert(NAME.into());
    resources
}

fn add_cluster(resources: &mut Resources) {
    let cluster = parse_cluster(&pack_any(controller_cluster(GREETER))).unwrap();
    resources.clusters.insert(GREETER.into(), Arc::new(cluster));
}

fn add_endpoints(resources: &mut Resources) {
    let assignment = controller_assignment(GREETER, &["127.0.0.1:1"]);
    let set = parse_endpoints(&pack_any(assignment)).unwrap();
    resources.endpoints.insert(GREETER.into(), Arc::new(set));
}

fn add_host(resources: &mut Resources) {
    let routes = vec![route("default", prefix("/"), to_cluster(GREETER))];
    let host = vhost(
        "greeter.default.svc.cluster.local:50051",
        &["greeter:50051"],
        routes,
    );
    let host = parse_virtual_host(&pack_any(host)).unwrap();
    resources
        .virtual_hosts
        .insert(GREETER_HOST.into(), Arc::new(host));
    resources.on_demand.answered(GREETER_HOST, &[NAME.into()]);
}

fn publish(config: &watch::Sender<Arc<ProxyConfig>>, resources: &Resources) {
    config.send_replace(Arc::new(assemble(resources.clone())));
}

fn greeter(headers: &HeaderMap) -> RpcTarget<'_> {
    RpcTarget {
        authority: "greeter:50051",
        original_dst: None,
        path: "/weft.test.Echo/Unary",
        headers,
    }
}

/// The shell published (nothing subscribed yet), and the data path's end of VHDS.
fn start() -> (
    watch::Sender<Arc<ProxyConfig>>,
    OnDemand,
    mpsc::Receiver<String>,
) {
    let mut resources = shell();
    resources.on_demand.subscribed.clear();
    let (config, _) = watch::channel(Arc::new(assemble(resources)));
    let (on_demand, demands) = OnDemand::channel();
    (config, on_demand, demands)
}

#[tokio::test(start_paused = true)]
async fn held_until_the_host_its_cluster_and_endpoints_arrive() {
    let (config, on_demand, mut demands) = start();
    let headers = HeaderMap::new();
    let rpc = greeter(&headers);
    let started = Instant::now();
    let control_plane = async {
        assert_eq!(demands.recv().await.unwrap(), NAME);
        let mut resources = shell();
        for step in [add_cluster as fn(&mut Resources), add_host, add_endpoints] {
            tokio::time::sleep(STEP).await;
            step(&mut resources);
            publish(&config, &resources);
        }
    };
    let (held, ()) = tokio::join!(
        on_demand.hold(config.subscribe(), &rpc, None),
        control_plane
    );
    let Hold::Answered(answered) = held else {
        panic!("timed out")
    };
    assert_eq!(started.elapsed(), 3 * STEP, "held until the endpoints came");
    let lookup = answered.lookup(&rpc);
    assert_eq!(outcome(&lookup), VhdsOutcome::Found);
    let decision = lookup.decision().unwrap();
    assert_eq!(decision.route.action.backends[0].cluster, GREETER);
    assert!(
        demands.try_recv().is_err(),
        "asked once, however often the config changed"
    );
}

#[tokio::test(start_paused = true)]
async fn not_found_ends_the_hold_at_once() {
    let (config, on_demand, mut demands) = start();
    let headers = HeaderMap::new();
    let rpc = greeter(&headers);
    let started = Instant::now();
    let control_plane = async {
        assert_eq!(demands.recv().await.unwrap(), NAME);
        tokio::time::sleep(STEP).await;
        let mut resources = shell();
        resources.on_demand.not_served(NAME);
        publish(&config, &resources);
    };
    let (held, ()) = tokio::join!(
        on_demand.hold(config.subscribe(), &rpc, None),
        control_plane
    );
    let Hold::Answered(answered) = held else {
        panic!("timed out")
    };
    assert_eq!(started.elapsed(), STEP);
    let lookup = answered.lookup(&rpc);
    assert_eq!(outcome(&lookup), VhdsOutcome::NotFound);
    assert!(lookup.decision().is_none());
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_the_hold_limit() {
    let (config, on_demand, mut demands) = start();
    let headers = HeaderMap::new();
    let rpc = greeter(&headers);
    let started = Instant::now();
    // The host arrives, but its cluster never does.
    let control_plane = async {
        assert_eq!(demands.recv().await.unwrap(), NAME);
        let mut resources = shell();
        add_host(&mut resources);
        publish(&config, &resources);
    };
    let (held, ()) = tokio::join!(
        on_demand.hold(config.subscribe(), &rpc, None),
        control_plane
    );
    assert!(matches!(held, Hold::TimedOut), "{held:?}");
    assert_eq!(started.elapsed(), HOLD_LIMIT);
}

#[tokio::test(start_paused = true)]
async fn without_an_xds_client_the_hold_times_out() {
    let (config, on_demand, demands) = start();
    drop(demands);
    let headers = HeaderMap::new();
    let started = Instant::now();
    let held = on_demand
        .hold(config.subscribe(), &greeter(&headers), None)
        .await;
    assert!(matches!(held, Hold::TimedOut));
    assert_eq!(started.elapsed(), HOLD_LIMIT);
    // The config's sender gone as well: still the full hold, no busy loop.
    let receiver = config.subscribe();
    drop(config);
    let started = Instant::now();
    let held = on_demand.hold(receiver, &greeter(&headers), None).await;
    assert!(matches!(held, Hold::TimedOut));
    assert_eq!(started.elapsed(), HOLD_LIMIT);
}

#[tokio::test(start_paused = true)]
async fn the_rpc_deadline_ends_the_hold_when_it_comes_first() {
    let (config, on_demand, _demands) = start();
    let headers = HeaderMap::new();
    let started = Instant::now();
    let deadline = started + Duration::from_millis(300);
    let held = on_demand
        .hold(config.subscribe(), &greeter(&headers), Some(deadline))
        .await;
    assert!(matches!(held, Hold::DeadlineExceeded), "{held:?}");
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    // A deadline past the hold limit leaves the limit in force.
    let started = Instant::now();
    let far = started + HOLD_LIMIT * 2;
    let held = on_demand
        .hold(config.subscribe(), &greeter(&headers), Some(far))
        .await;
    assert!(matches!(held, Hold::TimedOut), "{held:?}");
    assert_eq!(started.elapsed(), HOLD_LIMIT);
}
