//! The controller's admin endpoint (default 127.0.0.1:15014):
//! `/healthz`, `/ready` (200 once the first full config is served), `/metrics`
//! (Prometheus), `/debug/proxies` (each connected proxy: per type the version sent, ACKed
//! and the last NACK) and `/debug/resources` (each weft resource: accepted, references
//! resolved, `Programmed` and proxy counts as the status writer computes them, notes, the
//! Envoy resources it becomes (VHDS virtual hosts, clusters, clusters its routes send to); plus
//! source errors such as malformed local files). Local mode has no status subresource, so
//! this is where its users read what Kubernetes users read with `kubectl get -o yaml`.

use std::sync::{Arc, Mutex};

use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::sync::watch;
use weft_common::admin::{AdminRequest, Handler, Reply};

use crate::ads::ProxyRegistry;
use crate::api::CONDITION_PROGRAMMED;
use crate::publisher::Published;
use crate::status;

/// Reads the errors a source reports now (e.g. a malformed file), one line each.
pub type SourceErrors = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// `weft_controller_resources{kind, condition, status}`: user resources by condition, computed from the
/// latest reports at scrape time.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ResourceLabels {
    pub kind: &'static str,
    pub condition: &'static str,
    pub status: &'static str,
}

pub type ResourceGauges = prometheus_client::metrics::family::Family<
    ResourceLabels,
    prometheus_client::metrics::gauge::Gauge,
>;

/// Registers the resources-by-condition gauge (in the controller's prefixed registry).
pub fn register_resource_gauges(registry: &mut Registry) -> ResourceGauges {
    let gauges = ResourceGauges::default();
    registry.register(
        "resources",
        "weft resources by kind and condition state",
        gauges.clone(),
    );
    gauges
}

/// Everything the admin endpoint reads.
pub struct AdminState {
    pub metrics: Arc<Mutex<Registry>>,
    pub proxies: Arc<ProxyRegistry>,
    pub published: watch::Receiver<Published>,
    /// Errors the source currently reports (e.g. a malformed file), one line each.
    pub source_errors: SourceErrors,
    pub resource_gauges: ResourceGauges,
}

pub fn handler(state: AdminState) -> Handler {
    Arc::new(move |request: &AdminRequest| match request.path {
        "/healthz" => Reply::text(StatusCode::OK, "ok\n"),
        "/ready" => ready(&state),
        "/metrics" => metrics(&state, request),
        "/debug/proxies" => json_reply(&state.proxies.snapshot()),
        "/debug/resources" => resources(&state),
        _ => Reply::not_found("/healthz, /ready, /metrics, /debug/proxies or /debug/resources"),
    })
}

fn ready(state: &AdminState) -> Reply {
    if state.published.borrow().snapshot.is_some() {
        Reply::text(StatusCode::OK, "ready\n")
    } else {
        Reply::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the first full sync of the config source\n",
        )
    }
}

fn metrics(state: &AdminState, request: &AdminRequest) -> Reply {
    update_resource_gauges(state);
    let registry = state.metrics.lock().unwrap_or_else(|p| p.into_inner());
    Reply::metrics(&registry, request)
}

fn update_resource_gauges(state: &AdminState) {
    let published = state.published.borrow().clone();
    state.resource_gauges.clear();
    for (key, report) in published.reports.iter() {
        let status = |ok: bool| if ok { "True" } else { "False" };
        for (condition, ok) in [
            ("Accepted", report.accepted.is_ok()),
            ("ResolvedRefs", report.resolved_refs.is_ok()),
        ] {
            let labels = ResourceLabels {
                kind: key.kind.name(),
                condition,
                status: status(ok),
            };
            state.resource_gauges.get_or_create(&labels).inc();
        }
    }
}

fn resources(state: &AdminState) -> Reply {
    let published = state.published.borrow().clone();
    let connected = state.proxies.snapshot();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let resources: Vec<_> = published
        .reports
        .iter()
        .map(|(key, report)| {
            // The same `Programmed` the status writer puts on the object in Kubernetes mode.
            let governed = status::governed(key, &published.enforcing);
            let status = status::desired_status(report, &connected, governed, None, &now);
            let programmed = status
                .conditions
                .iter()
                .find(|c| c.type_ == CONDITION_PROGRAMMED)
                .map(|c| json!({"status": c.status, "reason": c.reason, "message": c.message}));
            json!({
                "resource": key.to_string(),
                "generation": report.generation,
                "accepted": report.accepted.as_ref().err().map_or(json!(true), |e| json!(e)),
                "resolvedRefs": report.resolved_refs.as_ref().err().map_or(json!(true), |e| json!(e)),
                "programmed": programmed,
                "proxies": status.proxies,
                "notes": report.notes,
                "becomes": {
                    "virtualHosts": report.attachments.hosts,
                    "clusters": report.attachments.clusters,
                    "routesTo": report.attachments.backends,
                },
            })
        })
        .collect();
    json_reply(&json!({ "resources": resources, "sourceErrors": (state.source_errors)() }))
}

fn json_reply(value: &impl serde::Serialize) -> Reply {
    match serde_json::to_string_pretty(value) {
        Ok(body) => Reply::json(body + "\n"),
        Err(err) => Reply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding JSON: {err}\n"),
        ),
    }
}
