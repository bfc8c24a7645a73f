//! weft-controller: watches weft resources (Kubernetes or a local directory) and serves
//! Envoy v3 xDS over ADS.
//!
//! The wiring, in the order a change travels: a source (`source`) writes the index
//! (`model`); the publisher (`publisher`) debounces changes, translates the index
//! (`translate`) and publishes a snapshot; the ADS server (`ads`) pushes it to every connected
//! proxy, adding each proxy's own listener; in Kubernetes mode the status writer (`status`)
//! reports conditions on each resource, written by the replica that holds the leader Lease
//! (`leader`); the admin endpoint (`admin`) shows readiness,
//! metrics, connected proxies and per-resource reports.

pub mod admin;
pub mod ads;
pub mod api;
pub mod auth;
pub mod ca;
pub mod certs;
mod check_ready;
pub mod inject;
pub mod leader;
pub mod members;
mod mesh_identity;
pub mod model;
pub mod publisher;
mod settings;
pub mod source;
pub mod status;
pub mod translate;

pub use settings::{Settings, SettingsError, SourceMode};

use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use weft_common::admin::AdminServer;

use tokio_stream::wrappers::TcpListenerStream;

use crate::ads::{AdsMetrics, AdsService, EnvoyCertificates, ProxyRegistry};
use crate::certs::{CertificateService, IssuePolicy};
use crate::model::Index;
use crate::source::local::LocalSource;

/// Runs the controller until SIGINT or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    if let Some(url) = &settings.check_ready {
        return check_ready::check_ready(url).await;
    }
    // Before anything can report ready: see `shutdown_signal`.
    let shutdown = weft_common::shutdown_signal();
    let mode = settings.source_mode()?;
    if settings.xds_addr.0.is_none() && settings.xds_tls_addr.0.is_none() {
        anyhow::bail!("--xds-addr and --xds-tls-addr are both off: proxies could not connect");
    }
    let admin = AdminServer::bind("--admin-addr", settings.admin_addr).await?;
    let admin_addr = admin.local_addr()?;
    let plaintext_listener = bind("--xds-addr", settings.xds_addr.0).await?;

    let client = match &mode {
        SourceMode::Kubernetes(kubeconfig) => Some(kube_client(kubeconfig.as_deref()).await?),
        SourceMode::Local(_) => None,
    };
    let auth = mesh_identity::authenticator(&settings, client.as_ref())?;
    let auth_on = auth.is_enabled();
    // Identity (the CA, certificates, xDS over TLS) needs proxies that prove who they are:
    // without authentication (local development) none of it runs.
    let (ca, tls_listener) = if auth_on {
        let ca = mesh_identity::certificate_authority(&settings, &mode, client.as_ref()).await?;
        let listener = bind("--xds-tls-addr", settings.xds_tls_addr.0).await?;
        (Some(ca), listener)
    } else {
        (None, None)
    };

    let index = Arc::new(Mutex::new(Index::new()));
    let (snapshot_tx, snapshot_rx) = watch::channel(None);
    let (published_tx, published_rx) = watch::channel(publisher::Published::default());
    let mut metrics_registry = Registry::default();
    weft_common::metrics::register_process_metrics(
        &mut metrics_registry,
        "weft_controller",
        env!("CARGO_PKG_VERSION"),
    );
    let controller_metrics = metrics_registry.sub_registry_with_prefix("weft_controller");
    let ads_metrics = Arc::new(AdsMetrics::register(controller_metrics));
    let resource_gauges = admin::register_resource_gauges(controller_metrics);
    let proxies = ProxyRegistry::new();
    let lifetime = settings.cert_lifetime;
    let envoy_certs = ca.clone().map(|ca| EnvoyCertificates { ca, lifetime });
    let ads = AdsService::new(
        snapshot_rx,
        proxies.clone(),
        ads_metrics,
        auth.clone(),
        envoy_certs,
    );
    let certificates = ca
        .clone()
        .map(|ca| CertificateService::new(ca, auth, IssuePolicy { lifetime }, proxies.clone()));

    let (revisions, source_errors, _source): (
        _,
        admin::SourceErrors,
        Box<dyn std::any::Any + Send>,
    ) = match (&mode, client.clone()) {
        (SourceMode::Local(dir), _) => {
            if auth_on {
                members::store::restore_and_keep(&mesh_identity::state_dir(&settings), &proxies);
            }
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
        (SourceMode::Kubernetes(_), client) => {
            let client = client.ok_or_else(|| anyhow::anyhow!("no Kubernetes client"))?;
            eprintln!("weft-controller: {mode}; waiting for the first full listing");
            let source = source::kube::start(client.clone(), index.clone()).await;
            members::pods::watch(client.clone(), proxies.clone());
            let election = leader::run(
                client.clone(),
                leader::LeaderSettings {
                    namespace: settings.namespace.clone(),
                    name: settings.lease_name.clone(),
                    identity: settings.replica_id(),
                    duration: settings.lease_duration,
                },
            );
            let writer = status::run_writer(
                client,
                index.clone(),
                published_rx.clone(),
                proxies.clone(),
                election,
            );
            tokio::spawn(writer);
            (source.subscribe(), Arc::new(Vec::new), Box::new(source))
        }
    };
    tokio::spawn(publisher::run(
        index,
        revisions,
        proxies.workloads(),
        proxies.members(),
        auth_on.then(|| settings.trust_domain.clone()),
        snapshot_tx,
        published_tx,
    ));
    tokio::spawn(prune_departed_members(proxies.clone()));
    let admin_handler = admin::handler(admin::AdminState {
        metrics: Arc::new(Mutex::new(metrics_registry)),
        proxies,
        published: published_rx,
        source_errors,
        resource_gauges,
    });

    let mut servers = tokio::task::JoinSet::new();
    let mut listening = Vec::new();
    if let Some(listener) = plaintext_listener {
        listening.push(format!("xDS (ADS) on {}", listener.local_addr()?));
        let router = xds_server(settings.xds_keepalive)
            .add_service(ads.clone().into_server())
            .add_optional_service(certificates.clone().map(CertificateService::into_server));
        servers.spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    }
    if let (Some(listener), Some(ca)) = (tls_listener, &ca) {
        let addr = listener.local_addr()?;
        listening.push(format!("xDS over TLS and certificates on {addr}"));
        let serving = mesh_identity::serving_identity(&settings, ca, addr)?;
        let incoming = certs::tls_incoming(listener, serving.server_config()?);
        let router = xds_server(settings.xds_keepalive)
            .add_service(ads.into_server())
            .add_optional_service(certificates.map(CertificateService::into_server));
        servers.spawn(router.serve_with_incoming(incoming));
    }

    if let Some(addr) = settings.webhook_addr.0 {
        let ca = ca.as_ref().ok_or_else(|| {
            anyhow::anyhow!("--webhook-addr needs authenticated proxies (Kubernetes mode or --token-file): injected sidecars get certificates")
        })?;
        let webhook = mesh_identity::webhook(&settings, ca)?;
        let listener = bind("--webhook-addr", Some(addr))
            .await?
            .ok_or_else(|| anyhow::anyhow!("--webhook-addr"))?;
        let addr = listener.local_addr()?;
        listening.push(format!(
            "sidecar injection webhook on https://{addr}/inject"
        ));
        let serving = mesh_identity::webhook_identity(&settings, ca, addr)?;
        tokio::spawn(inject::serve(
            listener,
            serving.http1_server_config()?,
            webhook,
        ));
    }
    if let (Some(name), Some(client), Some(ca)) = (&settings.webhook_config_name, &client, &ca) {
        tokio::spawn(inject::keep_ca_bundle(
            client.clone(),
            name.clone(),
            ca.trust_bundle_pem().to_owned(),
        ));
    }
    if !auth_on {
        listening.push(
            "proxies not authenticated (no --token-file), no certificates: local development only"
                .into(),
        );
    }
    tracing::info!(%mode, %admin_addr, "weft-controller started");
    eprintln!(
        "weft-controller: {mode}; admin on http://{admin_addr}; {}",
        listening.join("; ")
    );
    tokio::select! {
        result = admin.serve(admin_handler) => result?,
        Some(result) = servers.join_next() => result??,
        () = shutdown => tracing::info!("shutting down"),
    }
    Ok(())
}

/// Forgets proxies that left more than `ads::registry::MEMBER_LINGER` ago, checking often
/// enough that one is forgotten at most a few seconds late.
async fn prune_departed_members(proxies: Arc<ProxyRegistry>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        ticks.tick().await;
        proxies.prune_departed(std::time::Instant::now());
    }
}

/// An xDS server (plaintext or TLS): it pings each connection every `keepalive` and closes
/// one that answers no ping within as long again; its streams end and the registry forgets
/// their proxies.
fn xds_server(keepalive: std::time::Duration) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(keepalive))
}

/// Binds an optional listener, naming the flag on failure.
async fn bind(
    flag: &str,
    addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| anyhow::anyhow!("{flag} {addr}: cannot listen: {err}"))?;
    Ok(Some(listener))
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
