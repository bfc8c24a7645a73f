//! The control-plane scenario `ads-load` runs against a controller already serving the
//! config in `config_dir`: measure the controller idle with no proxy; connect N simulated
//! proxies and wait until each holds a full config; measure it idle again; then, for each
//! kind of change (one endpoint, one route, a new Service every proxy must receive), make
//! the change `repeats` times by rewriting a file, and follow it to the last proxy's ACK
//! while sampling the controller's CPU time and RSS.
//!
//! Each simulated proxy calls [`CALLS_PER_PROXY`] Services: `svc-0` of the first namespace
//! (the one every change touches, so every proxy must receive each change) and others
//! spread over the mesh, and it asks for the new Services before they exist (as an app
//! retrying a Service about to be deployed), so each new Service reaches every proxy.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use super::report::{ChangeReport, LoadReport};
use super::sim::{ProxySim, XdsKind};
use super::stream::{Report, run_proxy};
use super::track::{ChangeTracker, Outcome};
use crate::meshconfig::{self, ControlPlaneConfig};
use crate::procfs::{ProcessProbe, RssSampler};
use crate::stats::Percentiles;

/// Longest wait for every proxy's first full config.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for one change to reach every proxy.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between changes: longer than the local source's stability check when it falls back
/// to polling (two polls 250 ms apart) plus the debounce, so each change is detected on its own.
const CHANGE_GAP: Duration = Duration::from_millis(800);

/// Services each simulated proxy calls (their virtual hosts and clusters are what it holds).
pub const CALLS_PER_PROXY: u32 = 10;

/// The updates one proxy must receive for a change.
type Expected = BTreeSet<(XdsKind, String)>;

/// A change kind and the name it is reported under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Endpoint,
    Route,
    NewService,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 3] = [Self::Endpoint, Self::Route, Self::NewService];

    pub fn name(self) -> &'static str {
        match self {
            Self::Endpoint => "endpoint",
            Self::Route => "route",
            Self::NewService => "new-service",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub xds_addr: SocketAddr,
    pub config_dir: PathBuf,
    pub config: ControlPlaneConfig,
    pub proxies: usize,
    pub repeats: u32,
    pub controller_pid: u32,
    /// Window over which idle CPU is measured.
    pub idle_window: Duration,
}

impl Scenario {
    fn namespace_of(&self, proxy: usize) -> String {
        self.config.namespace(proxy as u32 % self.config.namespaces)
    }

    /// The authorities proxy `i` calls: `svc-0` of the first namespace, then others
    /// spread over every namespace.
    fn calls_of(&self, i: usize) -> Vec<String> {
        let config = &self.config;
        let mut calls = vec![meshconfig::authority("svc-0", &config.namespace(0))];
        for j in 1..CALLS_PER_PROXY.min(config.total_services()) {
            let n =
                (i as u32).wrapping_mul(7919).wrapping_add(j * 104_729) % config.total_services();
            let (ns, svc) = (
                n / config.services_per_namespace,
                n % config.services_per_namespace,
            );
            let authority = meshconfig::authority(&format!("svc-{svc}"), &config.namespace(ns));
            if !calls.contains(&authority) {
                calls.push(authority);
            }
        }
        calls
    }

    /// The new Services every proxy asks for before they exist.
    fn awaited(&self) -> Vec<String> {
        (1..=self.repeats)
            .map(|k| meshconfig::authority(&format!("extra-{k}"), &self.config.namespace(0)))
            .collect()
    }

    /// The virtual host serving `authority` to proxy `i` (named like the controller does:
    /// `outbound/<client ns>/<authority>`, the authority being the Service's FQDN and port).
    fn host_of(&self, i: usize, authority: &str) -> String {
        format!(
            "{}/{authority}",
            meshconfig::route_config_name(&self.namespace_of(i))
        )
    }

    /// The file to write for repetition `k` (from 1) of `kind`, and what each proxy must get.
    fn change(&self, kind: ChangeKind, k: u32) -> ((String, String), Vec<Expected>) {
        let ns0 = self.config.namespace(0);
        let (file, fixed): (_, Vec<(XdsKind, String)>) = match kind {
            ChangeKind::Endpoint => (
                self.config.endpoints_file(0, k),
                vec![(XdsKind::Eds, meshconfig::cluster_name("svc-0", &ns0))],
            ),
            ChangeKind::Route => (self.config.routes_file(0, k), vec![]),
            ChangeKind::NewService => {
                let cluster = meshconfig::cluster_name(&format!("extra-{k}"), &ns0);
                (
                    self.config.new_service_file(k),
                    vec![(XdsKind::Cds, cluster.clone()), (XdsKind::Eds, cluster)],
                )
            }
        };
        let changed_host = match kind {
            ChangeKind::Endpoint => None,
            ChangeKind::Route => Some(meshconfig::authority("svc-0", &ns0)),
            ChangeKind::NewService => Some(meshconfig::authority(&format!("extra-{k}"), &ns0)),
        };
        let expected = (0..self.proxies)
            .map(|i| {
                let mut set: BTreeSet<_> = fixed.iter().cloned().collect();
                if let Some(authority) = &changed_host {
                    set.insert((XdsKind::Vhds, self.host_of(i, authority)));
                }
                set
            })
            .collect();
        (file, expected)
    }
}

/// HTTP/2 receive window each simulated proxy advertises, stream and connection alike:
/// Envoy's default for its xDS gRPC client (`Http2ProtocolOptions.initial_stream_window_size`
/// and `initial_connection_window_size`, 256 MiB). With the HTTP/2 default of 64 KiB, a
/// 272 KB RouteConfiguration needs four WINDOW_UPDATE round trips, which no Envoy waits for.
const XDS_WINDOW: u32 = 256 << 20;

/// Runs the scenario; progress goes to stderr.
pub async fn run(scenario: &Scenario) -> anyhow::Result<LoadReport> {
    let probe = ProcessProbe::new(scenario.controller_pid);
    let (cpu_empty_percent, rss_empty) = idle(&probe, scenario.idle_window).await?;

    let tracking = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let uri = format!("http://{}", scenario.xds_addr);
    let start = Instant::now();
    for i in 0..scenario.proxies {
        let channel = Endpoint::from_shared(uri.clone())?
            .initial_stream_window_size(XDS_WINDOW)
            .initial_connection_window_size(XDS_WINDOW)
            .connect()
            .await
            .with_context(|| format!("proxy {i} cannot connect to {uri}"))?;
        let sim = ProxySim::new(
            &format!("sim-{i}"),
            &scenario.namespace_of(i),
            scenario.calls_of(i),
            scenario.awaited(),
        );
        // Each simulated proxy names its own (never bound) outbound address.
        let outbound = format!("127.0.0.1:{}", 20000 + i);
        tokio::spawn(run_proxy(
            i,
            channel,
            sim,
            outbound,
            tracking.clone(),
            tx.clone(),
        ));
    }
    let mut errors = Vec::new();
    let mut synced = 0;
    let mut initial_bytes = 0u64;
    let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
    while synced < scenario.proxies {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Report::Synced(_, bytes))) => {
                synced += 1;
                initial_bytes += bytes;
            }
            Ok(Some(Report::Ended(i, why))) => errors.push(format!("proxy {i}: {why}")),
            Ok(Some(Report::Event(_))) => {}
            Ok(None) | Err(_) => anyhow::bail!(
                "only {synced} of {} proxies got a full config within {SYNC_TIMEOUT:?}; {errors:?}",
                scenario.proxies
            ),
        }
    }
    let sync_secs = start.elapsed().as_secs_f64();
    eprintln!(
        "[ads-load] {} proxies synced in {sync_secs:.2}s",
        scenario.proxies
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu_connected_percent, rss_connected) = idle(&probe, scenario.idle_window).await?;

    // The kinds take turns (endpoint, route, new Service, endpoint, …) so that a slow
    // spell of the machine touches every kind alike.
    let mut changes: Vec<ChangeReport> = ChangeKind::ALL
        .iter()
        .map(|kind| ChangeReport {
            kind: kind.name().to_string(),
            convergence_ms: vec![],
            first_response_ms: vec![],
            fanout_ms: vec![],
            per_proxy_ms: None,
            bytes_per_proxy: vec![],
            cpu_ms: vec![],
            peak_rss: vec![],
            incomplete: 0,
        })
        .collect();
    let mut per_proxy: Vec<Vec<f64>> = vec![Vec::new(); changes.len()];
    for k in 1..=scenario.repeats {
        for (i, &kind) in ChangeKind::ALL.iter().enumerate() {
            let ((name, text), expected) = scenario.change(kind, k);
            tracking.store(true, Ordering::Relaxed);
            let sampler = RssSampler::start(probe, Duration::from_millis(10));
            let cpu0 = probe.cpu_time()?;
            let t0 = Instant::now();
            meshconfig::write_atomically(&scenario.config_dir, &name, &text)
                .with_context(|| format!("cannot write {name}"))?;
            let mut tracker = ChangeTracker::new(t0, expected);
            let deadline = tokio::time::Instant::now() + CHANGE_TIMEOUT;
            while !tracker.complete() {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Report::Event(event))) => tracker.observe(&event),
                    Ok(Some(Report::Ended(i, why))) => errors.push(format!("proxy {i}: {why}")),
                    Ok(Some(Report::Synced(..))) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            let cpu = probe.cpu_time()?.saturating_sub(cpu0);
            let peak = sampler.stop();
            tracking.store(false, Ordering::Relaxed);
            let outcome = tracker.outcome();
            let took = match (outcome.convergence, outcome.first_response) {
                (Some(all), Some(first)) => format!(
                    "last ACK after {:.1} ms (first response {:.1} ms)",
                    ms(all),
                    ms(first)
                ),
                _ => format!("{} proxies never got it", outcome.incomplete),
            };
            eprintln!(
                "[ads-load] {} proxies, {} change {k}/{}: {took}",
                scenario.proxies,
                kind.name(),
                scenario.repeats
            );
            record(&mut changes[i], &mut per_proxy[i], outcome, cpu, peak);
            tokio::time::sleep(CHANGE_GAP).await;
            while let Ok(message) = rx.try_recv() {
                if let Report::Ended(i, why) = message {
                    errors.push(format!("proxy {i}: {why}"));
                }
            }
        }
    }
    for (report, samples) in changes.iter_mut().zip(&mut per_proxy) {
        report.per_proxy_ms = Percentiles::of(samples);
    }
    Ok(LoadReport {
        proxies: scenario.proxies,
        services: scenario.config.total_services(),
        endpoints_per_service: scenario.config.endpoints,
        sync_secs,
        initial_bytes_per_proxy: initial_bytes as f64 / scenario.proxies.max(1) as f64,
        rss_empty: rss_empty as f64,
        cpu_empty_percent,
        rss_connected: rss_connected as f64,
        cpu_connected_percent,
        changes,
        stream_errors: errors,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn record(
    report: &mut ChangeReport,
    per_proxy: &mut Vec<f64>,
    outcome: Outcome,
    cpu: Duration,
    peak: u64,
) {
    per_proxy.extend(outcome.per_proxy.iter().copied().map(ms));
    match (outcome.convergence, outcome.first_response) {
        (Some(all), Some(first)) => {
            report.convergence_ms.push(ms(all));
            report.first_response_ms.push(ms(first));
            report.fanout_ms.push(ms(all.saturating_sub(first)));
        }
        _ => report.incomplete += 1,
    }
    report.bytes_per_proxy.push(outcome.bytes_per_proxy);
    report.cpu_ms.push(ms(cpu));
    report.peak_rss.push(peak as f64);
}

/// CPU (percent of one core) over `window` and RSS at its end.
async fn idle(probe: &ProcessProbe, window: Duration) -> anyhow::Result<(f64, u64)> {
    let cpu0 = probe.cpu_time()?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let cpu = probe.cpu_time()?.saturating_sub(cpu0);
    let percent = 100.0 * cpu.as_secs_f64() / t0.elapsed().as_secs_f64();
    Ok((percent, probe.rss()?))
}
