//! What `ads-load` reports for one run (one number of proxies), as JSON read back by
//! `weft-bench`.

use serde::{Deserialize, Serialize};

use crate::stats::Percentiles;

/// One kind of change, repeated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeReport {
    /// `endpoint`, `route` or `new-service`.
    pub kind: String,
    /// Per repetition: from the file change to the last proxy's ACK.
    pub convergence_ms: Vec<f64>,
    /// Per repetition: from the file change to the first response at any proxy (file
    /// polling, debounce and translation).
    pub first_response_ms: Vec<f64>,
    /// Per repetition: from the first response to the last ACK (the fan-out).
    pub fanout_ms: Vec<f64>,
    /// Every proxy's time from the change to its ACK, over all repetitions.
    pub per_proxy_ms: Option<Percentiles>,
    /// Per repetition: mean bytes (encoded responses) sent to one proxy.
    pub bytes_per_proxy: Vec<f64>,
    /// Per repetition: controller CPU time from the change to the last ACK.
    pub cpu_ms: Vec<f64>,
    /// Per repetition: the controller's highest RSS meanwhile (bytes).
    pub peak_rss: Vec<f64>,
    /// Repetitions in which some proxy never got the change within the time limit.
    pub incomplete: u32,
}

/// One run of `ads-load`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub proxies: usize,
    pub services: u32,
    pub endpoints_per_service: u32,
    /// From the first connection until every proxy held a full config.
    pub sync_secs: f64,
    /// Mean bytes a proxy received until it held a full config.
    pub initial_bytes_per_proxy: f64,
    /// Controller RSS (bytes) and CPU (percent of a core) with no proxy connected.
    pub rss_empty: f64,
    pub cpu_empty_percent: f64,
    /// The same with every proxy connected and synced, no changes.
    pub rss_connected: f64,
    pub cpu_connected_percent: f64,
    pub changes: Vec<ChangeReport>,
    /// Streams that ended during the run, with the reason (should be empty).
    pub stream_errors: Vec<String>,
}
