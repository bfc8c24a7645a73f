//! What `ads-load` reports for one run (one number of proxies), as JSON read back by
//! `weft-bench`.

use serde::{Deserialize, Serialize};

use crate::stats::{Percentiles, median_by};

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

impl LoadReport {
    /// The controller's highest RSS (bytes): connected and idle, or during any change.
    pub fn peak_rss(&self) -> f64 {
        self.changes
            .iter()
            .flat_map(|c| c.peak_rss.iter().copied())
            .fold(self.rss_connected, f64::max)
    }

    /// Runs of several rounds with the same number of proxies as one: each repeated change
    /// pooled over the rounds, the scalar figures (sync time, RSS, idle CPU) their median
    /// over the rounds, per-proxy percentiles the median of the rounds'. `None` when empty.
    pub fn pool(rounds: &[&LoadReport]) -> Option<LoadReport> {
        let first = rounds.first()?;
        let all_changes = || rounds.iter().flat_map(|r| &r.changes);
        let mut kinds: Vec<&str> = Vec::new();
        for change in all_changes() {
            if !kinds.contains(&change.kind.as_str()) {
                kinds.push(&change.kind);
            }
        }
        let changes = kinds
            .into_iter()
            .filter_map(|kind| {
                let mut same = all_changes().filter(|c| c.kind == kind);
                let mut pooled = ChangeReport {
                    per_proxy_ms: None,
                    ..same.next()?.clone()
                };
                same.for_each(|c| pooled.extend(c));
                let per_proxy: Vec<Percentiles> = all_changes()
                    .filter(|c| c.kind == kind)
                    .filter_map(|c| c.per_proxy_ms)
                    .collect();
                pooled.per_proxy_ms =
                    (!per_proxy.is_empty()).then(|| Percentiles::median_of(&per_proxy));
                Some(pooled)
            })
            .collect();
        Some(LoadReport {
            proxies: first.proxies,
            services: first.services,
            endpoints_per_service: first.endpoints_per_service,
            sync_secs: median_by(rounds, |r| r.sync_secs),
            initial_bytes_per_proxy: median_by(rounds, |r| r.initial_bytes_per_proxy),
            rss_empty: median_by(rounds, |r| r.rss_empty),
            cpu_empty_percent: median_by(rounds, |r| r.cpu_empty_percent),
            rss_connected: median_by(rounds, |r| r.rss_connected),
            cpu_connected_percent: median_by(rounds, |r| r.cpu_connected_percent),
            changes,
            stream_errors: rounds
                .iter()
                .flat_map(|r| r.stream_errors.iter().cloned())
                .collect(),
        })
    }
}

impl ChangeReport {
    /// Appends another round's repetitions of the same kind of change.
    fn extend(&mut self, other: &ChangeReport) {
        self.convergence_ms.extend(&other.convergence_ms);
        self.first_response_ms.extend(&other.first_response_ms);
        self.fanout_ms.extend(&other.fanout_ms);
        self.bytes_per_proxy.extend(&other.bytes_per_proxy);
        self.cpu_ms.extend(&other.cpu_ms);
        self.peak_rss.extend(&other.peak_rss);
        self.incomplete += other.incomplete;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(proxies: usize, rss: f64, convergence: &[f64], p50: f64) -> LoadReport {
        LoadReport {
            proxies,
            services: 10,
            endpoints_per_service: 2,
            sync_secs: rss / 100.0,
            initial_bytes_per_proxy: 1000.0,
            rss_empty: 1.0,
            cpu_empty_percent: 0.0,
            rss_connected: rss,
            cpu_connected_percent: 0.0,
            changes: vec![ChangeReport {
                kind: "route".into(),
                convergence_ms: convergence.to_vec(),
                first_response_ms: convergence.to_vec(),
                fanout_ms: vec![0.0; convergence.len()],
                per_proxy_ms: Some(Percentiles {
                    p50,
                    p99: p50 * 2.0,
                    p999: p50 * 3.0,
                    count: 10,
                }),
                bytes_per_proxy: vec![5.0; convergence.len()],
                cpu_ms: vec![1.0; convergence.len()],
                peak_rss: vec![rss; convergence.len()],
                incomplete: 1,
            }],
            stream_errors: vec![format!("e{rss}")],
        }
    }

    #[test]
    fn pools_rounds() {
        let pooled = LoadReport::pool(&[
            &run(100, 300.0, &[1.0, 2.0], 10.0),
            &run(100, 100.0, &[3.0], 30.0),
            &run(100, 200.0, &[4.0, 5.0], 20.0),
        ])
        .unwrap();
        assert_eq!(pooled.rss_connected, 200.0);
        assert_eq!(pooled.sync_secs, 2.0);
        assert_eq!(pooled.changes.len(), 1);
        let route = &pooled.changes[0];
        assert_eq!(route.convergence_ms, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(route.incomplete, 3);
        let p = route.per_proxy_ms.unwrap();
        assert_eq!((p.p50, p.p99, p.count), (20.0, 40.0, 30));
        assert_eq!(pooled.stream_errors.len(), 3);
        assert!(LoadReport::pool(&[]).is_none());
    }
}
