//! weft-proxy: a gRPC-native sidecar configured over xDS. Today this crate holds the
//! process shell — settings and the admin endpoint — that the xDS client, listeners and
//! per-RPC stack will plug into.

pub mod config;
pub mod proxy;
mod settings;
pub mod xds;

pub use settings::{Settings, XdsProtocol};

use std::sync::Arc;

use http::StatusCode;
use weft_common::admin::{AdminServer, Reply};

/// Runs the proxy until SIGINT or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let admin = AdminServer::bind("--admin-addr", settings.admin_addr).await?;
    let admin_addr = admin.local_addr()?;
    tracing::info!(node = %settings.node_id, %admin_addr, "weft-proxy started");
    eprintln!(
        "weft-proxy {}: admin on http://{admin_addr}; the xDS client ({}) and listeners are not \
         built yet, so /ready answers 503",
        settings.node_id, settings.xds_addr
    );
    tokio::select! {
        result = admin.serve(Arc::new(admin_response)) => result?,
        () = weft_common::shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// The proxy is ready only once it holds a complete config from xDS.
fn admin_response(path: &str) -> Reply {
    match path {
        "/healthz" => Reply::text(StatusCode::OK, "ok\n"),
        "/ready" => Reply::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no config received from xDS\n",
        ),
        "/metrics" => Reply::metrics(format!(
            "# HELP weft_proxy_build_info Build of the running proxy.\n\
             # TYPE weft_proxy_build_info gauge\n\
             weft_proxy_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )),
        _ => Reply::not_found("/healthz, /ready or /metrics"),
    }
}
