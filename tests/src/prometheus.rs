//! A real Prometheus (Debian `prometheus`, see `tests/env/setup.sh`) as a test component:
//! started on a free loopback port with a caller's scrape targets, its TSDB in a temp dir,
//! queried over its HTTP API (`/api/v1/query`), and stopped when dropped. This module owns
//! starting it, waiting until it is ready and its targets are up, and running PromQL.
//!
//! Every call blocks; from a tokio test use the `multi_thread` flavor or `block_in_place`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::process::{self, Process};
use crate::tools;

/// How long Prometheus gets to answer `/-/ready`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting it (a free port can be taken before Prometheus binds it).
const START_ATTEMPTS: usize = 3;
/// Timeout of one HTTP API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One scrape job: every `targets` address (`127.0.0.1:PORT`) at `metrics_path`.
#[derive(Debug, Clone)]
pub struct ScrapeJob {
    pub name: String,
    pub targets: Vec<SocketAddr>,
    pub metrics_path: String,
    pub interval: Duration,
}

impl ScrapeJob {
    /// Job `name` scraping `/metrics` of `targets` every second.
    pub fn new(name: &str, targets: &[SocketAddr]) -> Self {
        Self {
            name: name.to_string(),
            targets: targets.to_vec(),
            metrics_path: "/metrics".to_string(),
            interval: Duration::from_secs(1),
        }
    }

    fn yaml(&self) -> String {
        let targets: Vec<String> = self.targets.iter().map(|t| format!("\"{t}\"")).collect();
        let interval = format!("{}ms", self.interval.as_millis().max(1));
        format!(
            "- job_name: {name}\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  \
             metrics_path: {path}\n  static_configs: [{{targets: [{targets}]}}]\n",
            name = self.name,
            path = self.metrics_path,
            targets = targets.join(", "),
        )
    }
}

/// One series of a range query: its labels and `(seconds from the range's start, value)`.
pub type RangeSeries = (Value, Vec<(f64, f64)>);

/// A running Prometheus on 127.0.0.1; stopped (and its data removed) when dropped.
pub struct Prometheus {
    process: Process,
    addr: SocketAddr,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` and waits until it answers `/-/ready`.
    pub fn start(jobs: &[ScrapeJob]) -> anyhow::Result<Self> {
        Self::start_with_rules(jobs, &[])
    }

    /// Starts Prometheus scraping `jobs` and evaluating the rule files `rules` (alerts and
    /// recording rules, every second), and waits until it answers `/-/ready`.
    pub fn start_with_rules(jobs: &[ScrapeJob], rules: &[&Path]) -> anyhow::Result<Self> {
        let mut config = String::from("global: {scrape_interval: 1s, evaluation_interval: 1s}\n");
        if !rules.is_empty() {
            config += "rule_files:\n";
            for rule_file in rules {
                config += &format!("- {:?}\n", rule_file.display().to_string());
            }
        }
        config += "scrape_configs:\n";
        for job in jobs {
            config += &job.yaml();
        }
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&config, process::free_port()) {
                Ok(prometheus) => return Ok(prometheus),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("Prometheus never started")))
    }

    fn start_once(config: &str, port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("weft-prometheus-")
            .tempdir()
            .context("cannot create Prometheus's temp dir")?;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = Command::new(tools::tool("prometheus"));
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        let process = Process::spawn("prometheus", command, &dir.path().join("prometheus.log"))?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut prometheus = Self {
            process,
            addr,
            agent,
            _dir: dir,
        };
        prometheus.wait_ready()?;
        Ok(prometheus)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let mut exited = None;
        process::wait_until("Prometheus /-/ready", START_TIMEOUT, || {
            if let Err(err) = self.process.ensure_running() {
                exited = Some(err);
                return Ok(true);
            }
            Ok(matches!(self.get("/-/ready"), Ok((200, _))))
        })
        .with_context(|| self.process.log_tail(20))?;
        exited.map_or(Ok(()), Err)
    }

    /// The HTTP API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The last `lines` lines Prometheus logged, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Runs an instant PromQL query now; returns `data.result` (for a vector, an array of
    /// `{"metric": {...}, "value": [time, "value"]}`). Fails when the query is rejected.
    pub fn query(&self, promql: &str) -> anyhow::Result<Value> {
        self.api_query("query", promql, &[])
    }

    /// `GET /api/v1/<endpoint>?query=<promql>&<params>`: `data.result`, or an error when
    /// Prometheus rejects the query.
    fn api_query(
        &self,
        endpoint: &str,
        promql: &str,
        params: &[(&str, String)],
    ) -> anyhow::Result<Value> {
        let url = format!("http://{}/api/v1/{endpoint}", self.addr);
        let mut request = self.agent.get(&url).query("query", promql);
        for (name, value) in params {
            request = request.query(*name, value);
        }
        let mut response = request
            .call()
            .with_context(|| format!("GET {url}?query={promql}"))?;
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("Prometheus answer to {promql}"))?;
        let body: Value = serde_json::from_str(&text)
            .with_context(|| format!("Prometheus answer to {promql}: {text}"))?;
        anyhow::ensure!(
            body["status"] == "success",
            "Prometheus rejected {promql}: {body}"
        );
        Ok(body["data"]["result"].clone())
    }

    /// The values of an instant vector query, each with its labels.
    pub fn query_vector(&self, promql: &str) -> anyhow::Result<Vec<(Value, f64)>> {
        let result = self.query(promql)?;
        let series = result
            .as_array()
            .with_context(|| format!("{promql} is not a vector: {result}"))?;
        series
            .iter()
            .map(|s| {
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .with_context(|| format!("no value in {s}"))?;
                Ok((s["metric"].clone(), value))
            })
            .collect()
    }

    /// Runs `promql` over the last `seconds` seconds at `step` seconds; per series its labels
    /// and `(seconds from the range's start, value)` points.
    pub fn query_range(
        &self,
        promql: &str,
        seconds: f64,
        step: f64,
    ) -> anyhow::Result<Vec<RangeSeries>> {
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64();
        let start = end - seconds;
        let result = self.api_query(
            "query_range",
            promql,
            &[
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
                ("step", format!("{step}")),
            ],
        )?;
        Ok(result
            .as_array()
            .into_iter()
            .flatten()
            .map(|series| {
                let points = series["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| {
                        let t = p[0].as_f64()?;
                        let v = p[1].as_str()?.parse::<f64>().ok()?;
                        Some((t - start, v))
                    })
                    .collect();
                (series["metric"].clone(), points)
            })
            .collect())
    }

    /// The names of the alerts firing now (`/api/v1/alerts`, state `firing`).
    pub fn firing_alerts(&self) -> anyhow::Result<Vec<String>> {
        let (status, body) = self.get("/api/v1/alerts")?;
        anyhow::ensure!(status == 200, "/api/v1/alerts answered {status}: {body}");
        let alerts: Value = serde_json::from_str(&body)?;
        Ok(alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
            .collect())
    }

    /// The values of label `label` on series matching `selector` (as Grafana's
    /// `label_values(selector, label)` lists them).
    pub fn label_values(&self, selector: &str, label: &str) -> anyhow::Result<Vec<String>> {
        let result = self.query(&format!("count by ({label}) ({selector})"))?;
        let mut values: Vec<String> = result
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["metric"][label].as_str().map(str::to_owned))
            .collect();
        values.sort();
        Ok(values)
    }

    /// Waits up to `timeout` until every scrape target reports `up` (scraped successfully).
    pub fn wait_targets_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut last = String::new();
        process::wait_until("Prometheus scrape targets up", timeout, || {
            let (status, body) = self.get("/api/v1/targets")?;
            last = body;
            anyhow::ensure!(status == 200, "targets answered {status}");
            let targets: Value = serde_json::from_str(&last)?;
            let active = targets["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            Ok(!active.is_empty() && active.iter().all(|t| t["health"] == "up"))
        })
        .with_context(|| format!("last /api/v1/targets: {last}"))
    }

    fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let url = format!("http://{}{path}", self.addr);
        let mut response = self.agent.get(&url).call()?;
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_string()?))
    }
}
