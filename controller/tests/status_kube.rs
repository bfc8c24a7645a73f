//! Status against a real kube-apiserver: five kinds of invalid resource that the schema
//! cannot catch each get a condition whose message says what is wrong, visible with
//! `kubectl get -o yaml`, while a valid route beside them stays Accepted; with a proxy
//! connected, `Programmed` counts its ACK; a proxy's 100 KB NACK reason is quoted cut.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::time::Duration;

use common::identity::open_ads;
use common::*;
use weft_tests::kube::KubeCluster;
use weft_tests::process::wait_until;

fn route(name: &str, parent: &str, rule: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: {parent}, port: 50051}}]\n  rules:\n{rule}---\n"
    )
}

/// `status` and `reason: message` of a condition, read with kubectl as a user would.
fn condition(cluster: &KubeCluster, resource: &str, kind: &str) -> String {
    let path = format!(
        "jsonpath={{.status.conditions[?(@.type==\"{kind}\")].status}} {{.status.conditions[?(@.type==\"{kind}\")].reason}}: {{.status.conditions[?(@.type==\"{kind}\")].message}}"
    );
    cluster.kubectl_ok(["get", resource, "-o", &path]).unwrap()
}

fn wait_condition(cluster: &KubeCluster, resource: &str, kind: &str, expect: &str) -> String {
    let mut last = String::new();
    let found = wait_until(
        &format!("{resource} {kind}"),
        Duration::from_secs(20),
        || {
            last = condition(cluster, resource, kind);
            Ok(last.contains(expect))
        },
    );
    assert!(
        found.is_ok(),
        "{resource} {kind}: expected {expect:?}, got {last:?}"
    );
    last
}

/// An apiserver with the CRDs and the demo Services (endpoints in 192.0.2.0/24).
fn cluster_with_services() -> KubeCluster {
    let cluster = KubeCluster::start().unwrap();
    install_crds(&cluster);
    apply(
        &cluster,
        "services.yaml",
        &services_yaml_at("192.0.2.10", 7001, 7002),
    );
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resources_are_reported_on_their_own_status() {
    tokio::task::block_in_place(|| {
        let cluster = cluster_with_services();
        let backend =
            |name: &str, port: u16| format!("  - backendRefs: [{{name: {name}, port: {port}}}]\n");
        let mut yaml = route("good", "greeter", &backend("greeter-v1", 50051));
        yaml += &route("missing-backend", "greeter", &backend("greeter-v9", 50051));
        yaml += &route("missing-port", "greeter", &backend("greeter-v1", 9999));
        yaml += &route("missing-parent", "nosuch", &backend("greeter-v1", 50051));
        yaml += &route(
            "bad-regex",
            "greeter",
            "  - matches: [{method: {type: RegularExpression, service: 'weft\\.test\\.(?=Echo)'}}]\n    backendRefs: [{name: greeter-v1, port: 50051}]\n",
        );
        yaml += "apiVersion: weft.dev/v1alpha1\nkind: FaultInjection\nmetadata: {name: orphan, namespace: default}\n\
                 spec:\n  targetRef: {kind: GrpcRoute, name: nosuch}\n  abort: {grpcStatus: UNAVAILABLE, percentage: 100}\n";
        apply(&cluster, "routes.yaml", &yaml);

        let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_string();
        let controller = Controller::start(
            &["--kubeconfig", &kubeconfig],
            &cluster.dir().join("controller.log"),
        );

        let seen = [
            wait_condition(
                &cluster,
                "grpcroute/missing-backend",
                "ResolvedRefs",
                "greeter-v9",
            ),
            wait_condition(&cluster, "grpcroute/missing-port", "ResolvedRefs", "9999"),
            wait_condition(
                &cluster,
                "grpcroute/missing-parent",
                "ResolvedRefs",
                "nosuch",
            ),
            wait_condition(
                &cluster,
                "grpcroute/bad-regex",
                "Accepted",
                "False Invalid: spec.rules[0].matches[0].method",
            ),
            wait_condition(&cluster, "faultinjection/orphan", "ResolvedRefs", "nosuch"),
        ];
        for line in &seen {
            assert!(
                line.starts_with("False "),
                "an invalid resource must say False: {line}"
            );
        }
        eprintln!("conditions users see:\n{}", seen.join("\n"));

        // The valid route beside them is accepted and, once a proxy ACKs, programmed.
        wait_condition(&cluster, "grpcroute/good", "Accepted", "True Accepted");
        // Over State-of-the-World Envoy holds every route of its namespace uncalled.
        let (envoy, _outbound) = controller.start_envoy(false);
        let programmed = wait_condition(
            &cluster,
            "grpcroute/good",
            "Programmed",
            "True Programmed: 1 of 1 proxies holding it ACKed",
        );
        eprintln!("good: {programmed}");
        let yaml = cluster
            .kubectl_ok(["get", "grpcroute/good", "-o", "yaml"])
            .unwrap();
        assert!(yaml.contains("observedGeneration: 1"), "{yaml}");
        assert_eq!(rejected_updates(&envoy), 0, "{}", envoy.log_tail(30));

        // The same picture in the controller's metrics.
        let (_, metrics) = controller.admin("/metrics").unwrap();
        for line in [
            "weft_controller_resources{kind=\"GrpcRoute\",condition=\"Accepted\",status=\"False\"} 1",
            "weft_controller_resources{kind=\"GrpcRoute\",condition=\"ResolvedRefs\",status=\"False\"} 3",
            "weft_controller_resources{kind=\"FaultInjection\",condition=\"ResolvedRefs\",status=\"False\"} 1",
            "weft_controller_xds_connected_proxies 1",
        ] {
            assert!(metrics.contains(line), "/metrics lacks {line}:\n{metrics}");
        }
        assert!(
            metrics.contains("weft_controller_xds_push_to_ack_seconds_count{type=\"RDS\"}"),
            "{metrics}"
        );
    });
}

/// A proxy that NACKs with a 100 KB reason: the route's status is still written, says
/// `Rejected` and quotes the reason cut to about 1 KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_nack_reason_is_cut_and_status_stays_writable() {
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use envoy_types::pb::google::rpc::Status;

    let cluster = tokio::task::block_in_place(|| {
        let cluster = cluster_with_services();
        apply(
            &cluster,
            "route.yaml",
            &route(
                "good",
                "greeter",
                "  - backendRefs: [{name: greeter-v1, port: 50051}]\n",
            ),
        );
        cluster
    });
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_string();
    let controller = tokio::task::block_in_place(|| {
        Controller::start(
            &["--kubeconfig", &kubeconfig],
            &cluster.dir().join("controller.log"),
        )
    });
    let cds = weft_common::xds::type_url::CLUSTER;
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "http://127.0.0.1:{}",
        controller.xds_port
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    let node = "nacker-0.default";
    let mut stream = open_ads(&channel, controller.token.as_deref(), node, cds, &[])
        .await
        .unwrap();
    let first = stream.next().await.unwrap();
    let reason = format!("cluster rejected: {}", "y".repeat(100 * 1024));
    stream
        .requests
        .send(DiscoveryRequest {
            type_url: cds.into(),
            response_nonce: first.nonce.clone(),
            error_detail: Some(Status {
                code: 3,
                message: reason,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();

    let programmed = tokio::task::block_in_place(|| {
        wait_condition(
            &cluster,
            "grpcroute/good",
            "Programmed",
            "False Rejected: 1 of 1 proxies rejected the config: nacker-0.default: cluster rejected: yyy",
        )
    });
    assert!(
        programmed.ends_with("yyy … (cut, 102418 bytes in all)"),
        "{}",
        &programmed[programmed.len().saturating_sub(80)..]
    );
    assert!(programmed.len() < 1200, "{} bytes", programmed.len());
    eprintln!(
        "a 100 KB NACK became a {}-byte Programmed condition",
        programmed.len()
    );
    drop(stream);
}
