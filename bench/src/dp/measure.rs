//! One measured run: the load generator (h2load for unary calls, `weft-bench pingpong` for
//! streams) pinned to the load core, and around it the proxies' CPU time (from the end of
//! the warm-up to the end of the run) and peak RSS, read from /proc.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::client::ClientRun;
use super::model::{RunResult, TopoId, Workload};
use super::rig::{Bins, LOAD_CORE, PROXY_CORE, pinned};
use crate::h2load::{self, LoadSpec, PAYLOAD_BYTES};
use crate::machine;
use crate::procfs::{ProcessProbe, RssSampler};
use crate::stats::Percentiles;

/// Grace beyond a run's planned length before its load generator is killed.
const OVERRUN: Duration = Duration::from_secs(30);
/// Other processes' use of the proxy core (cores) above which a run is flagged.
const FOREIGN_LIMIT: f64 = 0.05;
/// Open loop: HTTP/2 connections.
const OPEN_CONNECTIONS: u32 = 4;
/// Closed loop: connections × streams calls always in flight.
const CLOSED_CONNECTIONS: u32 = 4;
const CLOSED_STREAMS: u32 = 16;
/// Ping-pong: bidi streams on one connection (one: a latency probe that never queues).
pub const PINGPONG_STREAMS: usize = 1;

/// A topology ready to be loaded.
#[derive(Debug, Clone)]
pub struct Target {
    pub topo: TopoId,
    pub addr: SocketAddr,
    pub authority: String,
    pub proxies: Vec<ProcessProbe>,
}

/// How long runs last.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
}

/// Files a run needs.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub h2load: PathBuf,
    pub body: PathBuf,
    pub dir: PathBuf,
    pub bins: Bins,
}

impl RunFiles {
    /// The files of runs in `dir`, with h2load's request body (one framed 1 KB unary
    /// request) written there.
    pub fn new(dir: &Path, bins: &Bins) -> anyhow::Result<Self> {
        let files = Self {
            h2load: weft_tests::tools::tool("h2load"),
            body: dir.join("request.bin"),
            dir: dir.to_path_buf(),
            bins: bins.clone(),
        };
        std::fs::write(&files.body, h2load::grpc_frame(&h2load::unary_request()))?;
        Ok(files)
    }
}

/// A child process killed if still running when dropped.
struct Bounded(Child);

impl Bounded {
    fn wait(&mut self, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "still running after {limit:?}: killed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bounded {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `command` (stdout to `out`, stderr to `err`) while measuring `proxies` from the end
/// of `timing.warmup`. Returns proxy cores used, cores other processes used on the proxy
/// core, and peak RSS.
fn measured(
    mut command: Command,
    out: &Path,
    err: &Path,
    proxies: &[ProcessProbe],
    timing: Timing,
) -> anyhow::Result<(f64, f64, f64)> {
    command
        .stdin(Stdio::null())
        .stdout(File::create(out)?)
        .stderr(File::create(err)?);
    let mut child = Bounded(command.spawn().context("cannot start the load generator")?);
    let samplers: Vec<RssSampler> = proxies
        .iter()
        .map(|p| RssSampler::start(*p, Duration::from_millis(100)))
        .collect();
    std::thread::sleep(timing.warmup);
    let cpu = |ps: &[ProcessProbe]| -> anyhow::Result<f64> {
        ps.iter().map(|p| Ok(p.cpu_time()?.as_secs_f64())).sum()
    };
    let cpu0 = cpu(proxies)?;
    let core0 = machine::core_busy_secs(PROXY_CORE);
    let t0 = Instant::now();
    let status = child.wait(timing.duration + OVERRUN)?;
    let cpu_secs = cpu(proxies)? - cpu0;
    let core_secs = machine::core_busy_secs(PROXY_CORE)
        .zip(core0)
        .map_or(0.0, |(b, a)| b - a);
    let wall = t0.elapsed().as_secs_f64();
    let peak: f64 = samplers.into_iter().map(|s| s.stop() as f64).sum();
    anyhow::ensure!(
        status.success(),
        "load generator failed ({status}): {}",
        std::fs::read_to_string(err).unwrap_or_default().trim()
    );
    // The proxy core's busy time beyond the proxies' own (which may also run elsewhere).
    let foreign = (core_secs - cpu_secs).max(0.0) / wall;
    Ok((cpu_secs / wall, foreign, peak))
}

/// What a run's load generator reported.
struct Outcome {
    rps: f64,
    ok: u64,
    errors: u64,
    latency: Option<Percentiles>,
    /// Why calls failed, if any did (worded by the load generator's reader).
    failure_note: Option<String>,
}

/// A run's result from its outcome and the proxies' `(cores, foreign cores, peak RSS)`,
/// with notes for an unsustained open-loop rate, failed calls and a busy proxy core.
fn result(
    target: &Target,
    workload: Workload,
    round: u32,
    outcome: Outcome,
    (cores, foreign, peak): (f64, f64, f64),
) -> RunResult {
    let rps = outcome.rps;
    let mut notes = Vec::new();
    if let Workload::Open(rate) = workload
        && rps < 0.97 * f64::from(rate)
    {
        notes.push(format!("rate not sustained: {rps:.0} of {rate} rps"));
    }
    notes.extend(outcome.failure_note);
    if foreign > FOREIGN_LIMIT {
        notes.push(format!(
            "other processes used {:.0}% of the proxy core",
            foreign * 100.0
        ));
    }
    RunResult {
        topo: target.topo,
        workload,
        round,
        rps,
        ok: outcome.ok,
        errors: outcome.errors,
        latency: outcome.latency,
        proxy_cores: cores,
        cpu_per_call_us: if !target.proxies.is_empty() && rps > 0.0 {
            cores / rps * 1e6
        } else {
            f64::NAN
        },
        peak_rss: peak,
        foreign_cores: foreign,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// Where a run's files go: `<dir>/<topology>-<workload>-<round>.*`.
fn run_stem(files: &RunFiles, target: &Target, workload: Workload, round: u32) -> PathBuf {
    files
        .dir
        .join(format!("{:?}-{:?}-{round}", target.topo, workload).replace(['(', ')'], ""))
}

/// A closed-loop unary run with h2load (`workload` is only recorded; open loop is
/// [`rig_client`]'s).
pub fn unary(
    files: &RunFiles,
    target: &Target,
    workload: Workload,
    round: u32,
    timing: Timing,
) -> anyhow::Result<RunResult> {
    let spec = LoadSpec {
        target: target.addr,
        authority: target.authority.clone(),
        connections: CLOSED_CONNECTIONS,
        streams: CLOSED_STREAMS,
        rps: None,
        warmup: timing.warmup,
        duration: timing.duration,
    };
    let stem = run_stem(files, target, workload, round);
    let log = stem.with_extension("log");
    // h2load appends to its log: start each run with none.
    let _ = std::fs::remove_file(&log);
    let mut command = pinned(LOAD_CORE, &files.h2load);
    command.args(spec.args(&files.body, &log));
    let (out, err) = (stem.with_extension("out"), stem.with_extension("err"));
    let usage = measured(command, &out, &err, &target.proxies, timing)?;
    let text = std::fs::read_to_string(&out)?;
    let summary = h2load::parse_summary(&text)
        .with_context(|| format!("cannot read h2load's output:\n{text}"))?;
    let (mut latencies, bad) = h2load::parse_log(&std::fs::read_to_string(&log)?);
    // h2load's log also holds warm-up requests: keep the last `succeeded` ones.
    let keep = (summary.succeeded as usize).min(latencies.len());
    let mut measured_latencies = latencies.split_off(latencies.len() - keep);
    let short = summary.data_bytes < summary.succeeded * PAYLOAD_BYTES as u64;
    let errors = summary.failed + summary.errored + if short { summary.succeeded } else { 0 };
    let outcome = Outcome {
        rps: summary.rps,
        ok: summary.succeeded,
        errors,
        latency: Percentiles::of(&mut measured_latencies),
        failure_note: (errors > 0 || bad > 0).then(|| {
            let short = if short { " (short replies)" } else { "" };
            format!("{errors} failed calls{short}")
        }),
    };
    Ok(result(target, workload, round, outcome, usage))
}

/// A run of the rig's own client: open-loop unary calls or bidi ping-pong.
pub fn rig_client(
    files: &RunFiles,
    target: &Target,
    workload: Workload,
    round: u32,
    timing: Timing,
) -> anyhow::Result<RunResult> {
    let mut command = pinned(LOAD_CORE, &files.bins.get("weft-bench")?);
    match workload {
        Workload::Open(rate) => command.args([
            "openloop",
            "--rate",
            &rate.to_string(),
            "--connections",
            &OPEN_CONNECTIONS.to_string(),
        ]),
        _ => command.args(["pingpong", "--streams", &PINGPONG_STREAMS.to_string()]),
    };
    command
        .args(["--target", &target.addr.to_string()])
        .args(["--authority", &target.authority])
        .args(["--warmup-ms", &timing.warmup.as_millis().to_string()])
        .args(["--duration-ms", &timing.duration.as_millis().to_string()]);
    let stem = run_stem(files, target, workload, round);
    let (out, err) = (stem.with_extension("out"), stem.with_extension("err"));
    let usage = measured(command, &out, &err, &target.proxies, timing)?;
    let text = std::fs::read_to_string(&out)?;
    let report: ClientRun = serde_json::from_str(text.trim())
        .with_context(|| format!("cannot read the client's report: {text}"))?;
    let outcome = Outcome {
        rps: report.calls as f64 / report.seconds.max(1e-9),
        ok: report.calls,
        errors: report.errors,
        latency: report.latency,
        failure_note: (report.errors > 0).then(|| format!("{} failed calls", report.errors)),
    };
    Ok(result(target, workload, round, outcome, usage))
}
