//! The control-plane benchmark's orchestration: for each number of simulated proxies, a
//! fresh config directory (`meshconfig::ControlPlaneConfig`) and a fresh weft-controller
//! in local mode pinned to one core, and `ads-load` pinned to the other; reads back
//! `ads-load`'s JSON report. The caller runs rounds interleaved with the data plane's.

use std::fs::File;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use weft_tests::process::free_port;

use crate::ads::report::LoadReport;
use crate::dp::rig::{self, Bins, LOAD_CORE, PROXY_CORE};
use crate::meshconfig::{self, ControlPlaneConfig};

/// Longest one `ads-load` run may take.
const RUN_LIMIT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone)]
pub struct Options {
    pub proxies: Vec<usize>,
    pub config: ControlPlaneConfig,
    pub repeats: u32,
    pub idle_secs: u64,
}

/// All control-plane runs: one per number of proxies per round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub runs: Vec<LoadReport>,
    pub failures: Vec<String>,
    /// Changes of each kind per run.
    pub repeats: u32,
    /// Rounds run (each a fresh controller per number of proxies).
    pub rounds: u32,
}

impl Report {
    pub fn new(repeats: u32) -> Self {
        Self {
            runs: Vec::new(),
            failures: Vec::new(),
            repeats,
            rounds: 0,
        }
    }

    /// One round: for each number of proxies, a fresh controller and an `ads-load` run.
    pub fn round(&mut self, bins: &Bins, options: &Options) {
        self.rounds += 1;
        for &n in &options.proxies {
            eprintln!(
                "[control plane] round {}: {n} simulated proxies, {} services",
                self.rounds,
                options.config.total_services()
            );
            match one(bins, options, n) {
                Ok(report) => self.runs.push(report),
                Err(err) => {
                    eprintln!("[control plane] {n} proxies failed: {err:#}");
                    self.failures
                        .push(format!("round {}, {n} proxies: {err:#}", self.rounds));
                }
            }
        }
    }

    /// The runs of every round pooled, one per number of proxies (ascending).
    pub fn pooled(&self) -> Vec<LoadReport> {
        let mut counts: Vec<usize> = self.runs.iter().map(|r| r.proxies).collect();
        counts.sort_unstable();
        counts.dedup();
        counts
            .into_iter()
            .filter_map(|n| LoadReport::pool(&self.runs_with(n)))
            .collect()
    }

    /// Every round's run with `proxies` simulated proxies.
    pub fn runs_with(&self, proxies: usize) -> Vec<&LoadReport> {
        self.runs.iter().filter(|r| r.proxies == proxies).collect()
    }
}

fn one(bins: &Bins, options: &Options, proxies: usize) -> anyhow::Result<LoadReport> {
    let work = tempfile::Builder::new()
        .prefix("weft-bench-cp-")
        .tempdir()?;
    let config = work.path().join("config");
    std::fs::create_dir(&config)?;
    for (name, text) in options.config.files() {
        meshconfig::write_atomically(&config, &name, &text)?;
    }
    let xds = free_port();
    let log = work.path().join("controller.log");
    let (controller, _admin) = rig::start_controller(bins, &config, xds, PROXY_CORE, &[], &log)?;
    let mut command = rig::pinned(LOAD_CORE, &bins.get("ads-load")?);
    command
        .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
        .arg("--config-dir")
        .arg(&config)
        .args(["--controller-pid", &controller.pid().to_string()])
        .args(["--proxies", &proxies.to_string()])
        .args(["--namespaces", &options.config.namespaces.to_string()])
        .args([
            "--services-per-namespace",
            &options.config.services_per_namespace.to_string(),
        ])
        .args(["--endpoints", &options.config.endpoints.to_string()])
        .args(["--repeats", &options.repeats.to_string()])
        .args(["--idle-secs", &options.idle_secs.to_string()]);
    let out = work.path().join("ads-load.json");
    command
        .stdin(Stdio::null())
        .stdout(File::create(&out)?)
        .stderr(Stdio::inherit());
    let mut child = command.spawn().context("cannot start ads-load")?;
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("ads-load still running after {RUN_LIMIT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    anyhow::ensure!(
        status.success(),
        "ads-load failed ({status}); controller log tail:\n{}",
        controller.log_tail(20)
    );
    let text = std::fs::read_to_string(&out)?;
    serde_json::from_str(text.trim())
        .with_context(|| format!("cannot read ads-load's report: {text}"))
}
