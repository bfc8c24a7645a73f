//! The data-plane benchmark: start the rig (`rig`), check each topology with a real gRPC
//! call (`client`), read the proxies' idle RSS, calibrate the saturation point, then run
//! every workload on every topology in interleaved rounds (`model::schedule`), measuring
//! each run (`measure`); the caller runs the rounds one at a time ([`DataPlane`]). Figures
//! are computed later from the runs (`figures`).

pub mod client;
pub mod envoy;
pub mod figures;
pub mod measure;
pub mod model;
pub mod openloop;
pub mod rig;
pub mod server;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::meshconfig::{self, DATA_NAMESPACE};
use crate::procfs::ProcessProbe;
use measure::{RunFiles, Target, Timing};
use model::{RunResult, TopoId, Workload};
use rig::{Bins, Rig};

/// How the data-plane benchmark runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: u32,
    pub timing: Timing,
    /// Fixed open-loop rates; a higher one is added when calibration shows room for it.
    pub rates: Vec<u32>,
    pub calibration: Duration,
}

/// Everything the data-plane benchmark measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub topologies: Vec<TopoId>,
    /// Topologies that could not be measured, and why.
    pub unavailable: Vec<(TopoId, String)>,
    /// Each proxy's RSS (bytes) with its config loaded, before any traffic.
    pub idle_rss: Vec<(String, f64)>,
    /// Closed-loop calls per second in the calibration run, per topology.
    pub calibration: Vec<(TopoId, f64)>,
    pub workloads: Vec<Workload>,
    pub runs: Vec<RunResult>,
    pub notes: Vec<String>,
    pub rounds: u32,
    pub warmup_secs: f64,
    pub duration_secs: f64,
}

/// The data-plane benchmark in progress: the rig running, every topology probed and
/// calibrated; [`DataPlane::round`] runs one round of the schedule, so the caller can
/// interleave other work (the control-plane rounds) between rounds.
pub struct DataPlane {
    options: Options,
    targets: Vec<Target>,
    unavailable: Vec<(TopoId, String)>,
    idle_rss: Vec<(String, f64)>,
    calibration: Vec<(TopoId, f64)>,
    workloads: Vec<Workload>,
    notes: Vec<String>,
    plan: Vec<(u32, Workload, TopoId)>,
    runs: Vec<RunResult>,
    files: RunFiles,
    // Declared last: the processes stop after everything that refers to them.
    _rig: Rig,
}

impl DataPlane {
    /// Starts the rig, probes each topology with a real call, reads idle RSS, calibrates.
    pub fn start(bins: &Bins, options: &Options) -> anyhow::Result<Self> {
        eprintln!(
            "[data plane] starting the server, weft-controller, weft-proxy ×4 and Envoy ×4 (a plaintext and an mTLS pair each)"
        );
        let rig = Rig::start(bins)?;
        let mut unavailable = Vec::new();
        let mut targets = vec![Target {
            topo: TopoId::Direct,
            addr: rig.backend,
            authority: meshconfig::authority("echo", DATA_NAMESPACE),
            proxies: vec![],
        }];
        let mut idle_rss = Vec::new();
        std::thread::sleep(Duration::from_secs(2));
        for (pair, hop, two, name) in [
            (&rig.weft, Some(TopoId::WeftHop), TopoId::WeftPair, "weft"),
            (
                &rig.envoy,
                Some(TopoId::EnvoyHop),
                TopoId::EnvoyPair,
                "envoy",
            ),
            (&rig.weft_mtls, None, TopoId::WeftPairMtls, "weft-mtls"),
            (&rig.envoy_mtls, None, TopoId::EnvoyPairMtls, "envoy-mtls"),
        ] {
            match pair {
                Ok(pair) => {
                    let a = ProcessProbe::new(pair.hop.pid());
                    let b = ProcessProbe::new(pair.inbound_side.pid());
                    idle_rss.push((format!("{name}-a"), a.rss()? as f64));
                    idle_rss.push((format!("{name}-b"), b.rss()? as f64));
                    let addr = ([127, 0, 0, 1], pair.hop_outbound).into();
                    if let Some(hop) = hop {
                        targets.push(Target {
                            topo: hop,
                            addr,
                            authority: meshconfig::authority("echo", DATA_NAMESPACE),
                            proxies: vec![a],
                        });
                    }
                    targets.push(Target {
                        topo: two,
                        addr,
                        authority: meshconfig::authority(
                            &format!("echo-{name}-pair"),
                            DATA_NAMESPACE,
                        ),
                        proxies: vec![a, b],
                    });
                }
                Err(why) => {
                    eprintln!("[data plane] {name} proxies did not start: {why}");
                    unavailable.extend(hop.map(|hop| (hop, why.clone())));
                    unavailable.push((two, why.clone()));
                }
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        targets.retain(
            |t| match runtime.block_on(client::probe(t.addr, &t.authority)) {
                Ok(()) => true,
                Err(err) => {
                    eprintln!(
                        "[data plane] {} fails its probe call: {err:#}",
                        t.topo.label()
                    );
                    unavailable.push((t.topo, format!("probe call failed: {err:#}")));
                    false
                }
            },
        );
        drop(runtime);

        let files = RunFiles::new(rig.work.path(), bins)?;
        let calibration_timing = Timing {
            warmup: Duration::from_secs(1),
            duration: options.calibration,
        };
        let mut calibration = Vec::new();
        for target in &targets {
            let run = measure::unary(&files, target, Workload::Closed, 0, calibration_timing)?;
            eprintln!(
                "[data plane] calibration {}: {:.0} calls/s closed loop",
                target.topo.label(),
                run.rps
            );
            calibration.push((target.topo, run.rps));
        }
        let (workloads, notes) = workloads(options, &calibration);
        let topos: Vec<TopoId> = targets.iter().map(|t| t.topo).collect();
        let plan = model::schedule(options.rounds, &workloads, &topos);
        Ok(Self {
            options: options.clone(),
            targets,
            unavailable,
            idle_rss,
            calibration,
            workloads,
            notes,
            plan,
            runs: Vec::new(),
            files,
            _rig: rig,
        })
    }

    /// Runs every workload on every topology once: round `round` of the schedule.
    pub fn round(&mut self, round: u32) -> anyhow::Result<()> {
        let total = self.plan.len();
        for (i, &(r, workload, topo)) in self.plan.iter().enumerate() {
            if r != round {
                continue;
            }
            let Some(target) = self.targets.iter().find(|t| t.topo == topo) else {
                continue;
            };
            if let Workload::Open(rate) = workload
                && !within_capacity(rate, topo, &self.calibration)
            {
                continue;
            }
            let timing = self.options.timing;
            let run = match workload {
                Workload::Closed => measure::unary(&self.files, target, workload, round, timing)?,
                _ => measure::rig_client(&self.files, target, workload, round, timing)?,
            };
            eprintln!("[data plane] {}/{total} {}", i + 1, describe(&run));
            self.runs.push(run);
        }
        Ok(())
    }

    /// Stops the rig; everything measured.
    pub fn finish(self) -> Report {
        Report {
            topologies: self.targets.iter().map(|t| t.topo).collect(),
            unavailable: self.unavailable,
            idle_rss: self.idle_rss,
            calibration: self.calibration,
            workloads: self.workloads,
            runs: self.runs,
            notes: self.notes,
            rounds: self.options.rounds,
            warmup_secs: self.options.timing.warmup.as_secs_f64(),
            duration_secs: self.options.timing.duration.as_secs_f64(),
        }
    }
}

/// An open-loop rate is run on a topology only below 85% of its calibrated saturation
/// (above it, latency measures the queue, not the proxy).
fn within_capacity(rate: u32, topo: TopoId, calibration: &[(TopoId, f64)]) -> bool {
    calibration
        .iter()
        .find(|(t, _)| *t == topo)
        .is_none_or(|(_, sat)| f64::from(rate) <= 0.85 * sat)
}

/// The workloads to run: the fixed rates, twice the highest of them if every one-hop
/// proxy has room for it (at most 60% of the slowest one's saturation), closed loop,
/// ping-pong. The higher rate is one fixed step, not fitted to the calibration, so two
/// runs on the same machine measure the same rates unless the machine's speed moved
/// across that one threshold.
pub fn workloads(options: &Options, calibration: &[(TopoId, f64)]) -> (Vec<Workload>, Vec<String>) {
    let mut workloads: Vec<Workload> = options.rates.iter().map(|r| Workload::Open(*r)).collect();
    let mut notes = Vec::new();
    let slowest_hop = calibration
        .iter()
        .filter(|(t, _)| matches!(t, TopoId::WeftHop | TopoId::EnvoyHop))
        .map(|(_, rps)| *rps)
        .fold(f64::INFINITY, f64::min);
    let highest = options.rates.iter().copied().max().unwrap_or(0);
    if slowest_hop.is_finite() {
        let high = 2 * highest;
        if highest > 0 && f64::from(high) <= 0.6 * slowest_hop {
            workloads.push(Workload::Open(high));
            notes.push(format!("Higher open-loop rate: {high} rps (within 60% of the slowest one-hop proxy's calibrated saturation, {slowest_hop:.0} calls/s)."));
        } else {
            notes.push(format!("No rate above {highest} rps: {high} rps would be above 60% of the slowest one-hop proxy's calibrated saturation ({slowest_hop:.0} calls/s)."));
        }
    }
    for (topo, rps) in calibration {
        for w in &workloads {
            if let Workload::Open(rate) = w
                && f64::from(*rate) > 0.85 * rps
            {
                notes.push(format!("{} is not run at {rate} rps: above 85% of its calibrated saturation ({rps:.0} calls/s).", topo.label()));
            }
        }
    }
    workloads.push(Workload::Closed);
    workloads.push(Workload::PingPong);
    (workloads, notes)
}

fn describe(run: &RunResult) -> String {
    let latency = run.latency.map_or("no latency".to_string(), |p| {
        format!(
            "p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs",
            p.p50, p.p99, p.p999
        )
    });
    format!(
        "round {} · {} · {}: {:.0}/s, {latency}, proxy {:.2} cores{}",
        run.round + 1,
        run.workload.label(),
        run.topo.label(),
        run.rps,
        run.proxy_cores,
        run.note
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            rounds: 1,
            timing: Timing {
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(1),
            },
            rates: vec![1000, 5000],
            calibration: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_higher_rate_when_there_is_room() {
        let calibration = [
            (TopoId::WeftHop, 40_000.0),
            (TopoId::EnvoyHop, 20_500.0),
            (TopoId::EnvoyPair, 9000.0),
        ];
        let (workloads, notes) = workloads(&options(), &calibration);
        assert_eq!(
            workloads,
            [
                Workload::Open(1000),
                Workload::Open(5000),
                Workload::Open(10000),
                Workload::Closed,
                Workload::PingPong
            ]
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("T2 Envoy pair is not run at 10000"))
        );
        assert!(!within_capacity(10000, TopoId::EnvoyPair, &calibration));
        assert!(within_capacity(10000, TopoId::Direct, &calibration));
    }

    #[test]
    fn no_higher_rate_on_a_slow_machine() {
        let (workloads, notes) = workloads(&options(), &[(TopoId::EnvoyHop, 7000.0)]);
        assert_eq!(workloads.len(), 4);
        assert!(notes[0].starts_with("No rate above 5000"));
    }
}
