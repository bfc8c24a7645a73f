//! Every resource the real weft-controller produces for its golden cases
//! (`controller/src/translate/testdata/{demo,mesh}/input.yaml`), converted by these parsers and
//! assembled, then routed: the controller's exact shapes rather than hand-made copies.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use weft_controller::ads::ResourceType;
use weft_controller::model::Index;
use weft_controller::source::local::parse_file;
use weft_controller::translate::{NodeInfo, Translation, outbound_listener, translate};

use crate::config::{
    Http2Keepalive, OutlierDetection, ProxyConfig, Resources, assemble, parse_cluster,
    parse_endpoints, parse_listener, parse_route_config,
};

pub(crate) fn translation(case: &str) -> Translation {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../controller/src/translate/testdata")
        .join(case)
        .join("input.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut index = Index::new();
    for located in parse_file(&path, &text).unwrap().objects {
        index.apply(located.object);
    }
    translate(&index)
}

/// The config of a proxy in `namespace`, from every resource of the translation.
pub(crate) fn proxy_config(translation: &Translation, namespace: &str) -> ProxyConfig {
    let mut resources = Resources::default();
    let node = NodeInfo::new("client-0", namespace, "127.0.0.1:15001".parse().unwrap());
    let listener = parse_listener(&outbound_listener(&node).1).unwrap();
    resources.listeners.insert(listener.name.clone(), listener);
    let snapshot = &translation.snapshot;
    for resource in snapshot.resources(ResourceType::Route).iter() {
        let table = parse_route_config(&resource.body).unwrap();
        assert_eq!(table.name, *resource.name);
        resources.routes.insert(table.name.clone(), Arc::new(table));
    }
    for resource in snapshot.resources(ResourceType::Cluster).iter() {
        let cluster = parse_cluster(&resource.body).unwrap();
        resources
            .clusters
            .insert(cluster.name.clone(), Arc::new(cluster));
    }
    for resource in snapshot.resources(ResourceType::Endpoint).iter() {
        let set = parse_endpoints(&resource.body).unwrap();
        resources.endpoints.insert(set.name.clone(), Arc::new(set));
    }
    assemble(resources)
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map
}

#[test]
fn the_demo_config_is_complete_and_routes() {
    let config = proxy_config(&translation("demo"), "default");
    assert!(config.complete, "{:?}", config.missing());
    let table = config.outbound.as_ref().unwrap();
    assert_eq!(table.name, "outbound/default");
    assert_eq!(
        config.endpoints["outbound|50051||greeter-v2.default.svc.cluster.local"].addrs,
        vec!["127.0.0.1:50052".parse().unwrap()]
    );

    let faulted = table
        .select("greeter:50051", "/weft.test.Echo/Unary", &HeaderMap::new())
        .unwrap();
    let abort = faulted
        .route
        .fault
        .as_ref()
        .unwrap()
        .abort
        .as_ref()
        .unwrap();
    assert_eq!(
        (abort.grpc_status, abort.message.as_str(), abort.per_million),
        (14, "injected by weft", 50_000)
    );
    let action = &faulted.route.action;
    assert_eq!(action.total_weight, 100);
    assert_eq!(action.timeout, Some(Duration::from_secs(2)));
    assert_eq!(action.retry.as_ref().unwrap().retries, 3);

    let plain = table
        .select(
            "localhost:15001",
            "/weft.test.Echo/Stream",
            &HeaderMap::new(),
        )
        .map(|d| d.route.name.clone());
    assert_eq!(plain, None, "no virtual host answers to localhost");
    let other = table
        .select(
            "greeter.default.svc.cluster.local",
            "/a.B/C",
            &HeaderMap::new(),
        )
        .unwrap();
    assert_eq!(other.route.name, "default");
    assert_eq!(other.route.action.timeout, None);
    assert_eq!(other.route.fault, None);

    assert_eq!(
        table.named.labels("/weft.test.Echo/Unary"),
        ("weft.test.Echo", "Unary")
    );
    assert_eq!(
        table.named.labels("/weft.test.Echo/Stream"),
        ("weft.test.Echo", "other")
    );
    assert_eq!(table.named.labels("/a.B/C"), ("other", "other"));
}

#[test]
fn the_demo_backend_policy_reaches_its_cluster() {
    let config = proxy_config(&translation("demo"), "default");
    let v1 = &config.clusters["outbound|50051||greeter-v1.default.svc.cluster.local"];
    assert_eq!(v1.connect_timeout, Duration::from_secs(1));
    assert_eq!(v1.circuit_breakers.max_requests, 100);
    assert_eq!(
        v1.outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
            // Gateway failures are not set: detected (at Envoy's 5), never enforced.
            consecutive_gateway_failure: 5,
            enforcing_consecutive_gateway_failure: 0,
            ..OutlierDetection::default()
        })
    );
    assert_eq!(
        v1.keepalive,
        Some(Http2Keepalive {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        })
    );
    // A cluster without a policy: no outlier detection, no pings.
    let v2 = &config.clusters["outbound|50051||greeter-v2.default.svc.cluster.local"];
    assert_eq!(v2.outlier_detection, None);
    assert_eq!(v2.keepalive, None);
}

#[test]
fn the_mesh_config_routes_per_namespace() {
    let translation = translation("mesh");
    let default = proxy_config(&translation, "default");
    assert!(default.complete, "{:?}", default.missing());
    let table = default.outbound.as_ref().unwrap();

    let slow = table
        .select(
            "greeter:50051",
            "/helloworld.Greeter/SayHello",
            &headers(&[("x-chaos", "on")]),
        )
        .unwrap();
    assert!(slow.route.name.ends_with("+fault:default/slow-say"));
    let delay = slow.route.fault.as_ref().unwrap().delay.as_ref().unwrap();
    assert_eq!(
        (delay.delay, delay.per_million),
        (Duration::from_millis(100), 5_000)
    );

    let say = table
        .select(
            "10.96.0.10:50051",
            "/helloworld.Greeter/SayHi",
            &HeaderMap::new(),
        )
        .unwrap();
    assert_eq!(
        say.route.name,
        "grpcroute:default/greeter:rules[0].matches[0]"
    );
    // UNKNOWN has no retry_on name; the controller keeps UNAVAILABLE only.
    assert_eq!(
        say.route.action.retry.as_ref().unwrap().codes,
        BTreeSet::from([14])
    );
    let check = table
        .select("greeter.default", "/any.Svc/Check", &HeaderMap::new())
        .unwrap();
    assert_eq!(
        check.route.name,
        "grpcroute:default/greeter:rules[1].matches[0]"
    );
    assert_eq!(
        default.endpoints["outbound|50051||greeter.default.svc.cluster.local"].addrs,
        vec![
            "10.1.0.1:8080".parse().unwrap(),
            "10.1.0.2:8080".parse().unwrap()
        ]
    );
    assert!(
        default.endpoints["outbound|50051||greeter-v2.default.svc.cluster.local"]
            .addrs
            .is_empty()
    );

    let team_a = proxy_config(&translation, "team-a");
    assert!(team_a.complete, "{:?}", team_a.missing());
    let table = team_a.outbound.as_ref().unwrap();
    assert_eq!(table.name, "outbound/team-a");
    let canary = table
        .select(
            "greeter.default:50051",
            "/helloworld.Greeter/SayHi",
            &headers(&[("x-canary", "yes")]),
        )
        .unwrap();
    assert_eq!(
        canary.route.action.backends[0].cluster,
        "outbound|50051||greeter-v2.default.svc.cluster.local"
    );
    let not_canary = table
        .select(
            "greeter.default:50051",
            "/helloworld.Greeter/SayHi",
            &headers(&[("x-canary", "yess")]),
        )
        .unwrap();
    assert_eq!(
        not_canary.route.name,
        "grpcroute:default/greeter:rules[0].matches[0]"
    );
}

/// The demo translation, made once for the property tests.
fn demo() -> &'static Translation {
    static DEMO: std::sync::OnceLock<Translation> = std::sync::OnceLock::new();
    DEMO.get_or_init(|| translation("demo"))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Any corruption of a resource the controller sends (a byte changed, the end cut off) is
    /// an error or a config, never a panic.
    #[test]
    fn corrupted_resources_never_panic_the_parsers(
        pick in 0usize..1000,
        at in 0usize..100_000,
        byte in proptest::prelude::any::<u8>(),
        keep in 0usize..100_000,
    ) {
        let snapshot = &demo().snapshot;
        let mut all = Vec::new();
        for ty in [ResourceType::Route, ResourceType::Cluster, ResourceType::Endpoint] {
            all.extend(snapshot.resources(ty).iter().map(|r| (ty, r.body.clone())));
        }
        let (ty, mut body) = all[pick % all.len()].clone();
        if !body.value.is_empty() {
            let at = at % body.value.len();
            body.value[at] = byte;
            body.value.truncate(keep % (body.value.len() + 1));
        }
        match ty {
            ResourceType::Route => _ = parse_route_config(&body),
            ResourceType::Cluster => _ = parse_cluster(&body),
            _ => _ = parse_endpoints(&body),
        }
    }

    /// Any request (authority, path, a header) is routed without a panic, and the same way
    /// every time.
    #[test]
    fn any_request_routes_without_panicking_and_deterministically(
        authority in "(greeter|greeter-v1|greeter\\.default|[a-z.:0-9]{0,12})(:50051)?",
        path in "/([a-zA-Z.]{0,12}/[a-zA-Z]{0,8})?(\\?.{0,5})?",
        header in "[ -~]{0,12}",
    ) {
        let config = proxy_config(demo(), "default");
        let table = config.outbound.as_ref().unwrap();
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&header) {
            headers.insert("x-canary", value);
        }
        let first = table.select(&authority, &path, &headers).map(|d| d.route.name.clone());
        let again = table.select(&authority, &path, &headers).map(|d| d.route.name.clone());
        proptest::prop_assert_eq!(first, again);
    }
}
