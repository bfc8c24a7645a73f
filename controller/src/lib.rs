//! weft-controller: watches weft resources (Kubernetes or a local directory) and serves
//! Envoy v3 xDS over ADS.
//!
//! The wiring, in the order a change travels: a source (`source`) writes the index
//! (`model`); the publisher (`publisher`) debounces changes, translates the index
//! (`xds`) and publishes a snapshot; the ADS server (`ads`) pushes it to every connected
//! proxy, adding each proxy's own listener; in Kubernetes mode the status writer (`status`)
//! reports conditions on each resource; the admin endpoint (`admin`) shows readiness,
//! metrics, connected proxies and per-resource reports.

pub mod admin;
pub mod ads;
pub mod api;
pub mod model;
pub mod publisher;
mod settings;
pub mod source;
pub mod status;
pub mod xds;

pub use settings::{Settings, SettingsError, SourceMode};

use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::core::v3::Node;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use weft_common::admin::AdminServer;

use crate::ads::{
    AdsMetrics, AdsService, NodeResourcesFn, ProxyRegistry, ResourceType, TypeResources,
};
use crate::model::Index;
use crate::source::local::LocalSource;

/// Runs the controller until SIGINT or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let mode = settings.source_mode()?;
    let admin = AdminServer::bind("--admin-addr", settings.admin_addr).await?;
    let admin_addr = admin.local_addr()?;
    let xds_listener = tokio::net::TcpListener::bind(settings.xds_addr)
        .await
        .map_err(|err| anyhow::anyhow!("--xds-addr {}: cannot listen: {err}", settings.xds_addr))?;
    let xds_addr = xds_listener.local_addr()?;

    let index = Arc::new(Mutex::new(Index::new()));
    let (snapshot_tx, snapshot_rx) = watch::channel(None);
    let (published_tx, published_rx) = watch::channel(publisher::Published::default());
    let mut metrics_registry = Registry::default();
    let ads_metrics = Arc::new(AdsMetrics::register(&mut metrics_registry));
    let resource_gauges = admin::register_resource_gauges(&mut metrics_registry);
    let proxies = ProxyRegistry::new();
    let ads = AdsService::new(
        snapshot_rx,
        node_resources_fn(),
        proxies.clone(),
        ads_metrics,
    );

    let (revisions, source_errors, _source): (
        _,
        admin::SourceErrors,
        Box<dyn std::any::Any + Send>,
    ) = match &mode {
        SourceMode::Local(dir) => {
            let source = Arc::new(LocalSource::new(dir.clone()).start(index.clone()).await?);
            let errors = source.clone();
            let errors: admin::SourceErrors = Arc::new(move || {
                errors
                    .current_errors()
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            });
            (source.subscribe(), errors, Box::new(source))
        }
        SourceMode::Kubernetes(kubeconfig) => {
            let client = kube_client(kubeconfig.as_deref()).await?;
            eprintln!("weft-controller: {mode}; waiting for the first full listing");
            let source = source::kube::start(client.clone(), index.clone()).await;
            let writer =
                status::run_writer(client, index.clone(), published_rx.clone(), proxies.clone());
            tokio::spawn(writer);
            (source.subscribe(), Arc::new(Vec::new), Box::new(source))
        }
    };
    tokio::spawn(publisher::run(
        index,
        revisions,
        proxies.namespaces(),
        snapshot_tx,
        published_tx,
    ));
    let admin_handler = admin::handler(admin::AdminState {
        metrics: Arc::new(Mutex::new(metrics_registry)),
        proxies,
        published: published_rx,
        source_errors,
        resource_gauges,
    });

    tracing::info!(%mode, %admin_addr, %xds_addr, "weft-controller started");
    eprintln!("weft-controller: {mode}; admin on http://{admin_addr}; xDS (ADS) on {xds_addr}");
    let xds_server = tonic::transport::Server::builder()
        .add_service(ads.into_server())
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(xds_listener));
    tokio::select! {
        result = admin.serve(admin_handler) => result?,
        result = xds_server => result?,
        () = weft_common::shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// A client from `--kubeconfig`, or the ambient configuration (in-cluster or $KUBECONFIG).
async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|err| anyhow::anyhow!("--kubeconfig {}: {err}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|err| anyhow::anyhow!("--kubeconfig {}: {err}", path.display()))?
        }
        None => kube::Config::infer().await.map_err(|err| {
            anyhow::anyhow!("no Kubernetes configuration (use --kubeconfig or --config-dir): {err}")
        })?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Each proxy gets the shared snapshot plus its own outbound listener.
fn node_resources_fn() -> NodeResourcesFn {
    Arc::new(|node: &Node| {
        let info = xds::NodeInfo::from_node(node)?;
        let listeners = TypeResources::from_bodies([xds::outbound_listener(&info)]);
        Ok(vec![(ResourceType::Listener, Arc::new(listeners))])
    })
}
