//! Stock Envoy over Delta ADS with per-Service virtual hosts (VHDS): it fetches a
//! Service's routes and clusters on its first RPC there and holds nothing else, and a
//! virtual host it rejects holds back only that Service, with the rejection on that
//! route's status alone.
#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::time::Duration;

use common::*;
use weft_tests::backend::{Backend, pb};
use weft_tests::envoy::Envoy;
use weft_tests::process::{free_port, wait_until};

/// Services beyond the demo's three, all in `default`: the proxy must not get them.
const OTHERS: usize = 20;

fn other_services(port: u16) -> String {
    let mut yaml = String::new();
    for i in 0..OTHERS {
        yaml += &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: default}}\n\
             spec: {{ports: [{{name: grpc, port: 50051}}]}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: svc-{i}-local, namespace: default, labels: {{kubernetes.io/service-name: svc-{i}}}}}\n\
             addressType: IPv4\nports: [{{name: grpc, port: {port}}}]\n\
             endpoints: [{{addresses: [\"127.0.0.1\"], conditions: {{ready: true}}}}]\n---\n"
        );
    }
    yaml
}

/// A route on `svc-0` whose method regex is within the controller's RE2 limit but over
/// the limit the Envoy below is started with.
const HEAVY_REGEX_ROUTE: &str = r#"apiVersion: weft.dev/v1alpha1
kind: GrpcRoute
metadata: {name: heavy, namespace: default}
spec:
  parentRefs: [{name: svc-0, port: 50051}]
  rules:
  - matches: [{method: {type: RegularExpression, service: "weft\\.test\\.Echo", method: "(Unary|ServerStream|ClientStream|BidiStream)"}}]
    backendRefs: [{name: svc-0, port: 50051}]
"#;

async fn echo_client(
    outbound: u16,
    authority: &str,
) -> pb::echo_client::EchoClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{outbound}"))
        .unwrap()
        .origin(format!("http://{authority}").parse().unwrap())
        .connect()
        .await
        .unwrap();
    pb::echo_client::EchoClient::new(channel)
}

/// `(Programmed status, reason, message)` of `resource` at `/debug/resources` (all empty
/// while the controller has not read it yet).
fn programmed(controller: &Controller, resource: &str) -> (String, String, String) {
    let (_, body) = controller.admin("/debug/resources").unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entry = json["resources"]
        .as_array()
        .and_then(|list| list.iter().find(|r| r["resource"] == resource));
    let p = &entry.map_or(serde_json::Value::Null, |e| e["programmed"].clone());
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    (text(&p["status"]), text(&p["reason"]), text(&p["message"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_fetches_only_what_it_calls_and_a_rejected_host_holds_back_only_its_service() {
    let v1 = Backend::start("v1").await.unwrap();
    let v2 = Backend::start("v2").await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("config");
    std::fs::create_dir(&dir).unwrap();
    let services = services_yaml(v1.addr().port(), v2.addr().port());
    write_config(
        &dir,
        "services.yaml",
        &(services + &other_services(v1.addr().port())),
    );
    write_config(&dir, "route.yaml", &route_yaml(100, 0));
    let controller = Controller::start(
        &["--config-dir", dir.to_str().unwrap()],
        &work.path().join("controller.log"),
    );
    let outbound = free_port();
    // RE2 programs over 20 are rejected by this Envoy (its default, and the controller's
    // limit, is 100).
    let bootstrap = bootstrap("envoy-0.default", outbound, controller.xds_port, true)
        + "layered_runtime:\n  layers:\n  - name: static\n    static_layer: {re2.max_program_size.error_level: 20}\n";
    let envoy = tokio::task::block_in_place(|| Envoy::start(&bootstrap).unwrap());
    tokio::task::block_in_place(|| {
        wait_until("Envoy's outbound listener", Duration::from_secs(20), || {
            Ok(std::net::TcpStream::connect(("127.0.0.1", outbound)).is_ok())
        })
    })
    .unwrap_or_else(|err| panic!("{err}\n{}", envoy.log_tail(30)));

    // The first RPC to greeter waits for its host and clusters, then succeeds.
    let mut greeter = echo_client(outbound, "greeter.default.svc.cluster.local:50051").await;
    let reply = greeter
        .unary(request("first"))
        .await
        .unwrap_or_else(|status| panic!("{status}\n{}", envoy.log_tail(30)));
    assert_eq!(reply.into_inner().instance, "v1");

    // Envoy holds greeter's host and the clusters its routes use, none of the others.
    let routes = envoy
        .admin_get("/config_dump?resource=dynamic_route_configs")
        .unwrap();
    assert!(
        routes.contains("outbound/default/greeter.default.svc.cluster.local:50051"),
        "{routes}"
    );
    assert!(!routes.contains("svc-"), "{routes}");
    let clusters = envoy
        .admin_get("/config_dump?resource=dynamic_active_clusters")
        .unwrap();
    assert!(
        clusters.contains("outbound|50051||greeter-v1.default"),
        "{clusters}"
    );
    assert!(!clusters.contains("svc-"), "{clusters}");
    let (status, _, message) = programmed(&controller, "GrpcRoute default/greeter");
    assert_eq!(status, "True", "{message}");

    // svc-0 too, by its short name.
    let mut svc0 = echo_client(outbound, "svc-0:50051").await;
    svc0.unary(request("svc-0"))
        .await
        .unwrap_or_else(|status| panic!("{status}\n{}", envoy.log_tail(30)));

    // A route Envoy rejects holds back svc-0's host only ...
    write_config(&dir, "heavy.yaml", HEAVY_REGEX_ROUTE);
    let rejected = || {
        let (status, reason, message) = programmed(&controller, "GrpcRoute default/heavy");
        (status == "False" && reason == "Rejected").then_some(message)
    };
    let mut message = None;
    tokio::task::block_in_place(|| {
        wait_until(
            "the heavy route to be rejected",
            Duration::from_secs(10),
            || {
                message = rejected();
                Ok(message.is_some())
            },
        )
    })
    .unwrap_or_else(|err| panic!("{err}\n{}", envoy.log_tail(30)));
    let message = message.unwrap_or_default();
    assert!(
        message.contains("envoy-0.default") && message.contains("program size"),
        "{message}"
    );

    // ... and greeter's next change is applied by the same Envoy within a second.
    write_config(&dir, "route.yaml", &route_yaml(0, 100));
    let changed = std::time::Instant::now();
    wait_async(
        "greeter's weight change through Envoy",
        Duration::from_secs(1),
        || {
            let mut greeter = greeter.clone();
            async move {
                greeter
                    .unary(request("after"))
                    .await
                    .is_ok_and(|reply| reply.into_inner().instance == "v2")
            }
        },
    )
    .await;
    eprintln!("greeter's change applied in {:?}", changed.elapsed());
    let (status, reason, message) = programmed(&controller, "GrpcRoute default/greeter");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "Programmed"),
        "{message}"
    );
    assert!(message.starts_with("1 of 1 proxies"), "{message}");
    // svc-0 still answers with the host Envoy had.
    svc0.unary(request("svc-0 again")).await.unwrap();
}
