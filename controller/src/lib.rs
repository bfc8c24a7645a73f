//! weft-controller: watches weft resources (Kubernetes or a local directory) and serves
//! Envoy v3 xDS over ADS. Today this crate holds the process shell — settings and the
//! admin endpoint — that the sources, translation and ADS server will plug into.

pub mod ads;
pub mod api;
pub mod model;
mod settings;

pub use settings::{Settings, SettingsError, SourceMode};

use std::sync::Arc;

use http::StatusCode;
use weft_common::admin::AdminServer;

/// Runs the controller until SIGINT or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let source = settings.source_mode()?;
    let admin = AdminServer::bind("--admin-addr", settings.admin_addr).await?;
    let admin_addr = admin.local_addr()?;
    tracing::info!(%source, %admin_addr, "weft-controller started");
    eprintln!(
        "weft-controller: {source}; admin on http://{admin_addr}; \
         the xDS server ({}) is not built yet, so /ready answers 503",
        settings.xds_addr
    );
    tokio::select! {
        result = admin.serve(Arc::new(admin_response)) => result?,
        () = weft_common::shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// Readiness stays false until a source has completed its first full sync and config
/// is served; no source exists yet, so it says so.
fn admin_response(path: &str) -> (StatusCode, String) {
    match path {
        "/healthz" => (StatusCode::OK, "ok\n".into()),
        "/ready" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no config source has synced\n".into(),
        ),
        "/metrics" => (
            StatusCode::OK,
            format!(
                "# HELP weft_controller_build_info Build of the running controller.\n\
                 # TYPE weft_controller_build_info gauge\n\
                 weft_controller_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "not found; try /healthz, /ready or /metrics\n".into(),
        ),
    }
}
