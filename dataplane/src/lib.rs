//! weft-proxy: a gRPC-native sidecar configured over xDS.
//!
//! The wiring, in the order one RPC meets it: `settings` (flags), `xds` (the ADS client that
//! turns the controller's resources into a typed [`config::ProxyConfig`] and publishes it on a
//! watch channel), `proxy` (listeners and the outbound and inbound stacks that read the
//! config once per RPC), `admin` (`/ready`, `/metrics`, `/config_dump` in Envoy's shape from `config_dump`, `/debug/config`). `init` is the other
//! subcommand: `weft-proxy init` programs iptables for transparent interception.

pub mod admin;
pub mod config;
pub mod config_dump;
pub mod init;
pub mod proxy;
mod settings;
pub mod tls;
pub mod xds;

pub use settings::{Settings, XdsProtocol};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use weft_common::admin::AdminServer;

use crate::config::ProxyConfig;
use crate::proxy::access_log::Destination;
use crate::proxy::admission::InboundAdmission;
use crate::proxy::inbound::Inbound;
use crate::proxy::listener::{self, ListenerSettings};
use crate::proxy::metrics::{MtlsMetrics, ProxyMetrics};
use crate::proxy::on_demand::OnDemand;
use crate::proxy::original_dst::Intercepted;
use crate::proxy::outbound::Outbound;
use crate::proxy::pool::Upstreams;
use crate::proxy::retry::RetryBudget;
use crate::tls::{CertificateManager, TlsConfigs};
use crate::xds::ControlPlane;

/// Runs the proxy until SIGINT or SIGTERM, then drains: stops accepting, sends GOAWAY, and
/// lets in-flight RPCs finish for up to `--drain-timeout`.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // Before anything can report ready: see `shutdown_signal`.
    let shutdown = weft_common::shutdown_signal();
    let admin = AdminServer::bind("--admin-addr", settings.admin_addr).await?;
    let admin_addr = admin.local_addr()?;
    let outbound_listener = bind("--outbound-addr", settings.outbound_addr).await?;
    let inbound_listener = bind("--inbound-addr", settings.inbound_addr).await?;
    let web_listener = match settings.web_addr {
        Some(addr) => Some(bind("--web-addr", addr).await?),
        None => None,
    };

    let mut registry = Registry::default();
    weft_common::metrics::register_process_metrics(
        &mut registry,
        "weft_proxy",
        env!("CARGO_PKG_VERSION"),
    );
    let mut metrics = ProxyMetrics::register(&mut registry);
    if let Some(destination) = Destination::parse(&settings.access_log) {
        metrics = metrics
            .with_access_log(&mut registry, &destination, settings.access_log_sample)
            .map_err(|err| anyhow::anyhow!("--access-log {}: {err}", settings.access_log))?;
    }
    let metrics = Arc::new(metrics);
    let xds_metrics = Arc::new(xds::XdsMetrics::register(&mut registry));
    let (config_tx, config_rx) = watch::channel(Arc::new(ProxyConfig::default()));
    let control_plane = settings.control_plane().map_err(anyhow::Error::msg)?;
    let (on_demand, demands) = OnDemand::channel();
    let xds_client = xds::spawn_with_demands(
        xds::XdsSettings::from_settings(&settings, control_plane.clone()),
        config_tx,
        xds_metrics,
        demands,
    );

    let mtls_metrics = Arc::new(MtlsMetrics::register(&mut registry));
    let workload_tls =
        spawn_certificates(&control_plane, &settings.node_id, settings.cert_lifetime)?;
    tokio::spawn(export_certificate_expiry(
        workload_tls.clone(),
        mtls_metrics.clone(),
    ));
    let upstreams = Upstreams::with_tls(workload_tls.clone());
    tokio::spawn(forget_what_config_dropped(
        config_rx.clone(),
        upstreams.clone(),
        metrics.clone(),
        settings.app_addr,
    ));
    let outbound = Arc::new(Outbound {
        config: config_rx.clone(),
        upstreams: upstreams.clone(),
        metrics: metrics.clone(),
        retry_budget: RetryBudget::new(0.2, 10, std::time::Duration::from_secs(10)),
        on_demand,
    });
    let inbound = Arc::new(Inbound::new(
        settings.app_addr,
        config_rx.clone(),
        upstreams,
        metrics,
    ));
    let inbound_admission = InboundAdmission {
        config: config_rx.clone(),
        tls: workload_tls,
        metrics: mtls_metrics,
    };
    let admin_handler = admin::handler(config_rx, Arc::new(Mutex::new(registry)));
    tokio::spawn(async move {
        if let Err(err) = admin.serve(admin_handler).await {
            tracing::error!(%err, "admin server stopped");
        }
    });

    let listener_settings = ListenerSettings {
        max_concurrent_streams: settings.max_concurrent_streams,
        drain_timeout: settings.drain_timeout,
        max_connections: settings.max_connections,
        handshake_timeout: settings.handshake_timeout,
        idle_timeout: settings.idle_timeout,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let web_server = web_listener.map(|web_listener| {
        tokio::spawn(proxy::web::serve(
            web_listener,
            outbound.clone(),
            listener_settings.clone(),
            stopped(stop_rx.clone()),
        ))
    });
    // Each RPC's handler future is boxed: unboxed, its ~4 KB of state lives inside the
    // per-stream task hyper spawns and is copied whole each time that task is moved
    // (spawn, task cell, completion) — 14% of the proxy's CPU at saturation went to
    // memcpy, most of it these moves. One allocation per RPC is far cheaper.
    let outbound_server = tokio::spawn(listener::serve(
        outbound_listener,
        Intercepted,
        move |request| Box::pin(outbound.clone().handle(request)),
        listener_settings.clone(),
        stopped(stop_rx.clone()),
    ));
    let inbound_server = tokio::spawn(listener::serve(
        inbound_listener,
        inbound_admission,
        move |request| Box::pin(inbound.clone().handle(request)),
        listener_settings,
        stopped(stop_rx),
    ));

    tracing::info!(node = %settings.node_id, %admin_addr, "weft-proxy started");
    let web = settings
        .web_addr
        .map(|addr| format!(", web (gRPC-Web) {addr}"))
        .unwrap_or_default();
    eprintln!(
        "weft-proxy {}: outbound {}, inbound {} → app {}{web}, admin http://{admin_addr}, xDS {}",
        settings.node_id,
        settings.outbound_addr,
        settings.inbound_addr,
        settings.app_addr,
        settings.xds_addr
    );
    shutdown.await;
    eprintln!("weft-proxy: draining (up to {:?})", settings.drain_timeout);
    let _ = stop_tx.send(true);
    let mut cut = outbound_server.await.unwrap_or(0) + inbound_server.await.unwrap_or(0);
    if let Some(web_server) = web_server {
        cut += web_server.await.unwrap_or(0);
    }
    xds_client.abort();
    if cut > 0 {
        eprintln!("weft-proxy: drain timeout; closed {cut} connections with RPCs still open");
    }
    Ok(())
}

async fn bind(flag: &str, addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| anyhow::anyhow!("{flag} {addr}: cannot listen: {err}"))
}

/// The workload certificate, kept fresh from the controller when the proxy has a token to
/// prove who it is; without one (local development) the watch stays `None`: no mTLS, and
/// the inbound listener admits plaintext only.
fn spawn_certificates(
    control_plane: &ControlPlane,
    node_id: &str,
    validity: Option<std::time::Duration>,
) -> anyhow::Result<watch::Receiver<Option<Arc<TlsConfigs>>>> {
    let (tx, rx) = watch::channel(None);
    if control_plane.token_file.is_some() {
        let channel = control_plane.endpoint()?.connect_lazy();
        let plane = control_plane.clone();
        let token = Arc::new(move || match plane.token() {
            Ok(Some(token)) => Ok(token),
            Ok(None) => Err("no --token-file".to_owned()),
            Err(err) => Err(err.to_string()),
        });
        CertificateManager {
            channel,
            token,
            node_id: node_id.to_owned(),
            validity,
        }
        .spawn_rotation(tx);
    }
    Ok(rx)
}

/// Keeps `weft_proxy_certificate_expiry_timestamp_seconds` on the current certificate.
async fn export_certificate_expiry(
    mut tls: watch::Receiver<Option<Arc<TlsConfigs>>>,
    metrics: Arc<MtlsMetrics>,
) {
    loop {
        if let Some(tls) = tls.borrow_and_update().as_ref() {
            metrics.certificate_expires(tls.not_after);
        }
        if tls.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// On every config change, forgets what the config dropped: pooled connections (and outlier
/// state) of endpoints that left every cluster (in-flight RPCs keep theirs until they end),
/// the circuit-breaker counters of clusters that left (kept by cluster name, so a cluster's
/// survive every update that keeps it), and the metric series of destination Services it no
/// longer routes to. Only a complete config is trusted to say which Services are gone (a
/// partial one may lack hosts still served).
async fn forget_what_config_dropped(
    mut config: watch::Receiver<Arc<ProxyConfig>>,
    upstreams: Upstreams,
    metrics: Arc<ProxyMetrics>,
    app_addr: std::net::SocketAddr,
) {
    while config.changed().await.is_ok() {
        let config = config.borrow_and_update().clone();
        let mut live: HashSet<_> = config
            .endpoints
            .values()
            .flat_map(|set| set.addrs.iter().copied())
            .collect();
        live.insert(app_addr);
        upstreams.retain(&live);
        upstreams.retain_clusters(|name| config.clusters.contains_key(name));
        if let Some(table) = config.outbound.as_ref().filter(|_| config.complete) {
            let served: HashSet<&str> = table
                .virtual_hosts
                .iter()
                .map(|v| v.name.as_str())
                .collect();
            metrics.retain_destinations(|name| served.contains(name));
        }
    }
}
