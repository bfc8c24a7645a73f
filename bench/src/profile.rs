//! CPU profiles for RESULTS.md's closing notes (`--profile`): `perf record` (sampling
//! cpu-clock, no call graphs) of each one-hop proxy under closed-loop load, and of
//! weft-controller while `ads-load` connects its proxies and makes changes; shown as
//! `perf report`'s flat list of the hottest symbols.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use weft_tests::process::{Process, free_port};

use crate::dp::measure::{self, RunFiles, Target, Timing};
use crate::dp::model::{TopoId, Workload};
use crate::dp::rig::{self, Bins, LOAD_CORE, PROXY_CORE, Rig};
use crate::meshconfig::{self, ControlPlaneConfig, DATA_NAMESPACE};
use crate::procfs::ProcessProbe;

/// Lines of `perf report` kept per profile.
const TOP_LINES: usize = 30;

fn perf_record(pid: u32, out: &Path, log: &Path) -> anyhow::Result<Process> {
    let mut command = Command::new("perf");
    command
        .args(["record", "-F", "999", "-p", &pid.to_string(), "-o"])
        .arg(out);
    Process::spawn("perf record", command, log)
}

/// `perf report`'s hottest symbols in `data`.
pub fn perf_top(data: &Path) -> anyhow::Result<String> {
    let output = Command::new("perf")
        .args([
            "report",
            "--stdio",
            "--no-children",
            "--sort",
            "dso,symbol",
            "--percent-limit",
            "0.8",
            "-i",
        ])
        .arg(data)
        .output()
        .context("cannot run perf report")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && (!l.starts_with('#') || l.starts_with("# Samples")))
        .take(TOP_LINES)
        .map(tidy)
        .collect();
    anyhow::ensure!(
        !lines.is_empty(),
        "perf report printed nothing: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(lines.join("\n"))
}

/// One `perf report` line without its padding and empty trailing columns (`-`).
pub fn tidy(line: &str) -> String {
    let mut words: Vec<&str> = line.split_whitespace().collect();
    while words.len() > 1 && words.last() == Some(&"-") {
        words.pop();
    }
    words.join(" ")
}

/// Profiles each one-hop proxy for 8 s of closed-loop load on a fresh rig.
pub fn proxies(bins: &Bins) -> anyhow::Result<Vec<(String, String)>> {
    eprintln!("[profile] one-hop proxies at saturation");
    let rig = Rig::start(bins)?;
    let files = RunFiles::new(rig.work.path(), bins)?;
    let mut out = Vec::new();
    for (pair, topo, name) in [
        (&rig.weft, TopoId::WeftHop, "weft-proxy"),
        (&rig.envoy, TopoId::EnvoyHop, "Envoy"),
    ] {
        let Ok(pair) = pair else { continue };
        let target = Target {
            topo,
            addr: ([127, 0, 0, 1], pair.hop_outbound).into(),
            authority: meshconfig::authority("echo", DATA_NAMESPACE),
            proxies: vec![ProcessProbe::new(pair.hop.pid())],
        };
        let data = rig.work.path().join(format!("{name}.perf"));
        let mut perf = perf_record(pair.hop.pid(), &data, &rig.work.path().join("perf.log"))?;
        let timing = Timing {
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(8),
        };
        let run = measure::unary(&files, &target, Workload::Closed, 0, timing)?;
        perf.stop();
        let title = format!(
            "{name} (one hop) at saturation, {:.0} calls/s, {:.2} cores",
            run.rps, run.proxy_cores
        );
        out.push((title, perf_top(&data)?));
    }
    Ok(out)
}

/// Profiles weft-controller while `ads-load` connects `proxies` simulated proxies and makes
/// three changes of each kind.
pub fn controller(
    bins: &Bins,
    config: ControlPlaneConfig,
    proxies: usize,
) -> anyhow::Result<(String, String)> {
    eprintln!("[profile] weft-controller with {proxies} simulated proxies");
    let work = tempfile::Builder::new()
        .prefix("weft-bench-prof-")
        .tempdir()?;
    let dir = work.path().join("config");
    std::fs::create_dir(&dir)?;
    for (name, text) in config.files() {
        meshconfig::write_atomically(&dir, &name, &text)?;
    }
    let xds = free_port();
    let (controller, _) = rig::start_controller(
        bins,
        &dir,
        xds,
        PROXY_CORE,
        &[],
        &work.path().join("controller.log"),
    )?;
    let data = work.path().join("controller.perf");
    let mut perf = perf_record(controller.pid(), &data, &work.path().join("perf.log"))?;
    let mut command = rig::pinned(LOAD_CORE, &bins.get("ads-load")?);
    command
        .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
        .arg("--config-dir")
        .arg(&dir)
        .args(["--controller-pid", &controller.pid().to_string()])
        .args([
            "--proxies",
            &proxies.to_string(),
            "--repeats",
            "3",
            "--idle-secs",
            "1",
        ])
        .args(["--namespaces", &config.namespaces.to_string()])
        .args([
            "--services-per-namespace",
            &config.services_per_namespace.to_string(),
        ])
        .args(["--endpoints", &config.endpoints.to_string()]);
    let status = command
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot run ads-load")?;
    perf.stop();
    anyhow::ensure!(status.success(), "ads-load failed ({status})");
    let title = format!(
        "weft-controller: {proxies} simulated proxies connecting, then 3 changes of each kind ({} Services)",
        config.total_services()
    );
    Ok((title, perf_top(&data)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tidies_perf_lines() {
        let line = "    14.92%  libc.so.6          [.] __memmove_avx     -      -            ";
        assert_eq!(super::tidy(line), "14.92% libc.so.6 [.] __memmove_avx");
    }
}
