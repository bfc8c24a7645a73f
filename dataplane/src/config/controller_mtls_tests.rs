//! The real weft-controller's mTLS translation for connected proxies, one per MtlsPolicy
//! mode, converted by these parsers and assembled as each proxy would: its own `outbound`
//! and `inbound` listeners, the shared clusters (with their transport socket matches and the
//! `inbound|` clusters) and the endpoints marked for mTLS. Also the helpers the parsers'
//! own tests use to get the controller's exact shapes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use weft_controller::ads::ResourceType;
use weft_controller::model::Index;
use weft_controller::source::local::parse_file;
use weft_controller::translate::{Members, Translation, Workload, Workloads, translate_for};

use crate::config::{
    InboundMode, ProxyConfig, Resources, UpstreamMtls, assemble, parse_cluster, parse_endpoints,
    parse_listener, parse_route_config,
};

/// The trust domain of these translations.
pub(super) const DOMAIN: &str = "example.org";

/// A proxy `<pod>.<namespace>` with its inbound listener at `inbound`.
pub(super) fn workload(
    pod: &str,
    namespace: &str,
    inbound: &str,
    labels: &[(&str, &str)],
) -> Workload {
    Workload {
        node_id: format!("{pod}.{namespace}"),
        namespace: namespace.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        inbound_addr: inbound.parse().unwrap(),
        serves_inbound: true,
        app_addr: "127.0.0.1:8080".parse().unwrap(),
        pod_ip: None,
        outbound_addr: "127.0.0.1:15001".parse().unwrap(),
        web_addr: None,
        speaks_delta: false,
    }
}

/// The controller's translation of `yaml` (local-mode manifests) for `workloads`.
pub(super) fn translate_yaml(yaml: &str, workloads: &[Workload]) -> Translation {
    let mut index = Index::new();
    for located in parse_file(Path::new("input.yaml"), yaml).unwrap().objects {
        index.apply(located.object);
    }
    let workloads: Workloads = workloads
        .iter()
        .map(|w| (w.node_id.clone(), w.clone()))
        .collect();
    translate_for(&index, &workloads, &Members::new(), Some(DOMAIN))
}

/// The config proxy `node` assembles from everything the controller sends it.
fn proxy_config(translation: &Translation, node: &str) -> ProxyConfig {
    let snapshot = translation.snapshot.for_node(node).unwrap();
    let mut resources = Resources::default();
    for resource in snapshot.resources(ResourceType::Listener).iter() {
        let listener = parse_listener(&resource.body).unwrap();
        resources.listeners.insert(listener.name.clone(), listener);
    }
    for resource in snapshot.resources(ResourceType::Route).iter() {
        let table = parse_route_config(&resource.body).unwrap();
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

fn demo_with_policies() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../controller/src/translate/testdata/demo/input.yaml");
    let demo = std::fs::read_to_string(path).unwrap();
    format!(
        "{demo}\n---\napiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\n\
         metadata: {{name: v1, namespace: default}}\n\
         spec: {{mode: Strict, selector: {{matchLabels: {{app: greeter-v1}}}}}}\n\
         ---\napiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\n\
         metadata: {{name: v2, namespace: default}}\n\
         spec: {{mode: Disable, selector: {{matchLabels: {{app: greeter-v2}}}}}}\n"
    )
}

#[test]
fn each_mode_reaches_the_proxy_and_endpoints_say_who_speaks_mtls() {
    // The demo's greeter-v1 and -v2 run behind proxies at 127.0.0.1:50051 and :50052.
    let proxies = [
        workload("v1", "default", "127.0.0.1:50051", &[("app", "greeter-v1")]),
        workload("v2", "default", "127.0.0.1:50052", &[("app", "greeter-v2")]),
        workload("client", "team-a", "127.0.0.1:15006", &[]),
    ];
    let translation = translate_yaml(&demo_with_policies(), &proxies);
    let modes: BTreeMap<&str, InboundMode> = [
        ("v1.default", InboundMode::Strict),
        ("v2.default", InboundMode::Disable),
        ("client.team-a", InboundMode::Permissive),
    ]
    .into();
    for (node, mode) in modes {
        let config = proxy_config(&translation, node);
        assert!(config.complete, "{node}: {:?}", config.missing());
        assert_eq!(config.inbound_mode(), mode, "{node}");
        let namespace = node.split_once('.').unwrap().1;
        assert_eq!(
            config.outbound.as_ref().unwrap().name,
            format!("outbound/{namespace}")
        );
    }

    let config = proxy_config(&translation, "client.team-a");
    let mtls = Some(UpstreamMtls {
        trust_domain_prefix: "spiffe://example.org/".into(),
    });
    for (name, cluster) in &config.clusters {
        if name.starts_with("outbound|") {
            assert_eq!(cluster.mtls, mtls, "{name}");
        }
    }
    let inbound = &config.clusters["inbound|127.0.0.1:8080"];
    assert_eq!(inbound.mtls, None);
    assert_eq!(
        inbound.inline_endpoints.as_ref().unwrap().addrs,
        ["127.0.0.1:8080".parse().unwrap()]
    );

    let v1 = "outbound|50051||greeter-v1.default.svc.cluster.local";
    let v2 = "outbound|50051||greeter-v2.default.svc.cluster.local";
    let addr = |a: &str| a.parse().unwrap();
    let (v1_set, v2_set) = (&config.endpoints[v1], &config.endpoints[v2]);
    assert!(
        v1_set.uses_mtls(&config.clusters[v1], addr("127.0.0.1:50051")),
        "Strict: mTLS"
    );
    assert!(v2_set.mtls.is_empty(), "Disable: plaintext");
    assert!(!v2_set.uses_mtls(&config.clusters[v2], addr("127.0.0.1:50052")));
}

#[test]
fn without_proxies_nothing_is_marked_and_clusters_still_offer_mtls() {
    let translation = translate_yaml(&demo_with_policies(), &[]);
    for resource in translation
        .snapshot
        .resources(ResourceType::Endpoint)
        .iter()
    {
        assert!(parse_endpoints(&resource.body).unwrap().mtls.is_empty());
    }
    for resource in translation.snapshot.resources(ResourceType::Cluster).iter() {
        assert!(parse_cluster(&resource.body).unwrap().mtls.is_some());
    }
}
