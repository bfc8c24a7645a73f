//! The xDS client against the real weft-controller, run in-process in local mode on a
//! temporary config directory: over Delta, over State-of-the-World, and with `Auto` against
//! a server without Delta. Each run checks the first complete config, a file change arriving
//! as an update, a restarted controller being reconnected to, and that the config stays in
//! force while the controller is down. Over Delta the virtual hosts come over VHDS, so the
//! run asks for each Service's as the data path would (SotW ignores the asking).

#![allow(clippy::unwrap_used)] // a panic is how a failed step is reported

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use weft_proxy::XdsProtocol;
use weft_proxy::config::ProxyConfig;
use weft_proxy::xds::{ControlPlane, XdsMetrics, XdsSettings, node_from, spawn_with_demands};
use weft_tests::process::free_port;

const GREETER: &str = "outbound|50051||greeter.default.svc.cluster.local";
const WEATHER: &str = "outbound|50051||weather.default.svc.cluster.local";
const WAIT: Duration = Duration::from_secs(20);

/// The controller on its own thread and runtime: stopping it drops every task, so its
/// connections close as if the process had died.
struct Controller {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Controller {
    fn start(dir: &Path, xds_port: u16) -> Controller {
        let settings = weft_controller::Settings::try_parse_from([
            "weft-controller",
            "--config-dir",
            dir.to_str().unwrap(),
            "--xds-addr",
            &format!("127.0.0.1:{xds_port}"),
            "--admin-addr",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                tokio::select! {
                    result = weft_controller::run(settings) => panic!("controller ended: {result:?}"),
                    _ = stopped => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(2));
        });
        Controller {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Services `names` in namespace default, each with one ready endpoint 127.0.0.1:`port`.
fn services_yaml(names: &[&str], port: u16) -> String {
    let mut yaml = String::new();
    for name in names {
        yaml += &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{ports: [{{name: grpc, port: 50051}}]}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}-local, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: grpc, port: {port}}}]\n\
             endpoints: [{{addresses: [\"127.0.0.1\"], conditions: {{ready: true}}}}]\n---\n"
        );
    }
    yaml
}

/// Writes a config file the way an editor does: a new file renamed over the old one.
fn write_config(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A complete config routing to `cluster`, whose endpoints are 127.0.0.1:`port`.
fn serves(config: &ProxyConfig, cluster: &str, port: u16) -> bool {
    let host = cluster.rsplit("||").next().unwrap_or_default();
    config.complete
        && config.outbound.as_ref().is_some_and(|table| {
            table.name == "outbound/default" && table.domains.keys().any(|d| d.starts_with(host))
        })
        && config.clusters.contains_key(cluster)
        && config
            .endpoints
            .get(cluster)
            .is_some_and(|set| set.addrs.iter().any(|a| a.port() == port))
}

async fn wait_for(
    rx: &mut watch::Receiver<Arc<ProxyConfig>>,
    what: &str,
    check: impl FnMut(&Arc<ProxyConfig>) -> bool,
) {
    let waited = tokio::time::timeout(WAIT, rx.wait_for(check))
        .await
        .map(|result| result.is_ok());
    if !matches!(waited, Ok(true)) {
        panic!(
            "timed out waiting for {what}; config now: {:#?}",
            rx.borrow().resources
        );
    }
}

fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

/// The whole story against a controller at `xds_port` (or `server`, a front for it).
async fn scenario(protocol: XdsProtocol, front: Option<(u16, u16)>) {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (free_port(), free_port());
    write_config(
        dir.path(),
        "services.yaml",
        &services_yaml(&["greeter"], v1),
    );
    let (xds_port, server_port) = front.unwrap_or_else(|| {
        let port = free_port();
        (port, port)
    });
    let controller = Controller::start(dir.path(), xds_port);

    let proxy =
        weft_proxy::Settings::try_parse_from(["weft-proxy", "--node-id", "proxy-0.default"])
            .unwrap();
    let settings = XdsSettings {
        control_plane: ControlPlane::plaintext(
            format!("http://127.0.0.1:{server_port}").parse().unwrap(),
        ),
        node: node_from(&proxy),
        protocol,
    };
    let (tx, mut rx) = watch::channel(Arc::new(ProxyConfig::default()));
    let mut registry = Registry::default();
    let metrics = Arc::new(XdsMetrics::register(&mut registry));
    let (demand, demands) = mpsc::channel(8);
    let client = spawn_with_demands(settings, tx, metrics.clone(), demands);
    demand
        .send("outbound/default/greeter:50051".to_owned())
        .await
        .unwrap();

    wait_for(&mut rx, "greeter", |c| serves(c, GREETER, v1)).await;
    let versions = rx.borrow().resources.versions.clone();
    let types = if protocol == XdsProtocol::Delta { 5 } else { 4 };
    assert_eq!(versions.len(), types, "a version per type: {versions:?}");
    let text = metrics_text(&registry);
    assert!(text.contains("weft_proxy_xds_connected 1"), "{text}");
    assert!(text.contains("result=\"ack\""), "{text}");
    assert!(!text.contains("result=\"nack\""), "{text}");

    // A new Service and new endpoints arrive as an update; a removed Service goes.
    write_config(
        dir.path(),
        "services.yaml",
        &services_yaml(&["weather"], v2),
    );
    demand
        .send("outbound/default/weather:50051".to_owned())
        .await
        .unwrap();
    wait_for(&mut rx, "weather instead of greeter", |c| {
        serves(c, WEATHER, v2) && !c.clusters.contains_key(GREETER)
    })
    .await;

    // The controller goes away: the config stays, nothing is published.
    drop(controller);
    tokio::time::timeout(WAIT, async {
        while metrics.connected.get() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    rx.mark_unchanged();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!rx.has_changed().unwrap(), "published while disconnected");
    assert!(serves(&rx.borrow(), WEATHER, v2));

    // A new controller on the same port with a changed config: reconnected and updated.
    write_config(
        dir.path(),
        "services.yaml",
        &services_yaml(&["weather", "greeter"], v1),
    );
    let _controller = Controller::start(dir.path(), xds_port);
    wait_for(&mut rx, "greeter after the restart", |c| {
        serves(c, GREETER, v1) && c.clusters.contains_key(WEATHER)
    })
    .await;
    assert!(metrics.connects.get() >= 2);
    client.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_follows_the_controller_and_survives_its_absence() {
    scenario(XdsProtocol::Delta, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_follows_the_controller_and_survives_its_absence() {
    scenario(XdsProtocol::Sotw, None).await;
}

/// An ADS server without Delta: State-of-the-World is relayed to the controller.
struct SotwOnly {
    upstream: String,
    delta_calls: Arc<AtomicUsize>,
}

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for SotwOnly {
    type StreamAggregatedResourcesStream = Responses<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = Responses<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let mut client = AggregatedDiscoveryServiceClient::connect(self.upstream.clone())
            .await
            .map_err(|err| Status::unavailable(err.to_string()))?;
        let requests = request.into_inner().filter_map(Result::ok);
        let responses = client.stream_aggregated_resources(requests).await?;
        Ok(Response::new(Box::pin(responses.into_inner())))
    }

    async fn delta_aggregated_resources(
        &self,
        _: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        self.delta_calls.fetch_add(1, Ordering::SeqCst);
        Err(Status::unimplemented("no Delta here"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_sotw_and_stays_there() {
    let (xds_port, front_port) = (free_port(), free_port());
    let delta_calls = Arc::new(AtomicUsize::new(0));
    let front = SotwOnly {
        upstream: format!("http://127.0.0.1:{xds_port}"),
        delta_calls: delta_calls.clone(),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", front_port))
        .await
        .unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AggregatedDiscoveryServiceServer::new(front))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // Includes a controller restart: the reconnect must not try Delta again.
    scenario(XdsProtocol::Auto, Some((xds_port, front_port))).await;
    assert_eq!(delta_calls.load(Ordering::SeqCst), 1);
    server.abort();
}
