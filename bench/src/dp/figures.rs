//! Figures from the runs, as pure functions: a value per round summarised as median
//! [min–max], and added latency (a proxied percentile minus the direct one of the same
//! round and workload, so each difference pairs runs made back to back).

use super::model::{RunResult, TopoId, Workload};
use crate::stats::{self, Percentiles, Summary};

/// `f` of each run of `topo` under `workload`, in round order.
pub fn per_round(
    runs: &[RunResult],
    topo: TopoId,
    workload: Workload,
    f: impl Fn(&RunResult) -> f64,
) -> Vec<f64> {
    let mut picked: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.topo == topo && r.workload == workload)
        .collect();
    picked.sort_by_key(|r| r.round);
    picked.into_iter().map(f).collect()
}

pub fn summary(
    runs: &[RunResult],
    topo: TopoId,
    workload: Workload,
    f: impl Fn(&RunResult) -> f64,
) -> Option<Summary> {
    Summary::of(&per_round(runs, topo, workload, f))
}

/// Which percentile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pct {
    P50,
    P99,
    P999,
}

impl Pct {
    pub const ALL: [Pct; 3] = [Pct::P50, Pct::P99, Pct::P999];

    pub fn label(self) -> &'static str {
        match self {
            Pct::P50 => "p50",
            Pct::P99 => "p99",
            Pct::P999 => "p99.9",
        }
    }

    pub fn of(self, p: &Percentiles) -> f64 {
        match self {
            Pct::P50 => p.p50,
            Pct::P99 => p.p99,
            Pct::P999 => p.p999,
        }
    }
}

/// Calls (or round trips) per second per core the run's proxies used.
pub fn calls_per_core(run: &RunResult) -> f64 {
    stats::ratio(run.rps, run.proxy_cores)
}

/// A latency percentile of one run (µs), NaN when the run has none.
pub fn latency(run: &RunResult, pct: Pct) -> f64 {
    run.latency.as_ref().map_or(f64::NAN, |p| pct.of(p))
}

/// Added latency of `topo` at `pct` (µs): per round, its percentile minus T0's.
pub fn added_latency(
    runs: &[RunResult],
    topo: TopoId,
    workload: Workload,
    pct: Pct,
) -> Option<Summary> {
    let diffs: Vec<f64> = runs
        .iter()
        .filter(|r| r.topo == topo && r.workload == workload)
        .filter_map(|r| added(runs, r, pct))
        .collect();
    Summary::of(&diffs)
}

/// Round by round, `value` of `a`'s run over `value` of `b`'s (same workload, same
/// round): the spread of a ratio whose two sides shared each round's conditions.
pub fn ratio_by_round(
    runs: &[RunResult],
    a: TopoId,
    b: TopoId,
    workload: Workload,
    value: impl Fn(&RunResult) -> Option<f64>,
) -> Option<Summary> {
    let ratios: Vec<f64> = runs
        .iter()
        .filter(|r| r.topo == a && r.workload == workload)
        .filter_map(|ra| {
            let rb = runs
                .iter()
                .find(|r| r.topo == b && r.workload == workload && r.round == ra.round)?;
            Some(stats::ratio(value(ra)?, value(rb)?))
        })
        .collect();
    Summary::of(&ratios)
}

/// A run's latency percentile minus the direct run's of the same workload and round.
pub fn added(runs: &[RunResult], run: &RunResult, pct: Pct) -> Option<f64> {
    let direct = runs
        .iter()
        .find(|d| d.topo == TopoId::Direct && d.workload == run.workload && d.round == run.round)?;
    Some(latency(run, pct) - latency(direct, pct))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(topo: TopoId, round: u32, p50: f64) -> RunResult {
        RunResult {
            topo,
            workload: Workload::Open(1000),
            round,
            rps: 1000.0,
            ok: 1,
            errors: 0,
            latency: Some(Percentiles {
                p50,
                p99: p50 * 2.0,
                p999: p50 * 3.0,
                count: 1,
            }),
            proxy_cores: 0.1,
            cpu_per_call_us: 100.0,
            peak_rss: 1.0,
            foreign_cores: 0.0,
            note: None,
        }
    }

    #[test]
    fn added_latency_pairs_runs_of_the_same_round() {
        let runs = vec![
            run(TopoId::Direct, 0, 100.0),
            run(TopoId::WeftHop, 0, 130.0),
            run(TopoId::Direct, 1, 200.0),
            run(TopoId::WeftHop, 1, 210.0),
            run(TopoId::WeftHop, 2, 999.0), // no direct run in round 2: left out
        ];
        let s = added_latency(&runs, TopoId::WeftHop, Workload::Open(1000), Pct::P50).unwrap();
        assert_eq!((s.median, s.min, s.max, s.rounds), (20.0, 10.0, 30.0, 2));
        let s = added_latency(&runs, TopoId::WeftHop, Workload::Open(1000), Pct::P99).unwrap();
        assert_eq!(s.median, 40.0);
        assert!(added_latency(&runs, TopoId::EnvoyHop, Workload::Open(1000), Pct::P50).is_none());
    }

    #[test]
    fn per_round_is_in_round_order() {
        let runs = vec![run(TopoId::EnvoyHop, 1, 2.0), run(TopoId::EnvoyHop, 0, 1.0)];
        let values = per_round(&runs, TopoId::EnvoyHop, Workload::Open(1000), |r| {
            latency(r, Pct::P50)
        });
        assert_eq!(values, vec![1.0, 2.0]);
        assert!(summary(&runs, TopoId::EnvoyHop, Workload::Closed, |r| r.rps).is_none());
    }

    #[test]
    fn ratios_pair_runs_of_the_same_round() {
        let runs = vec![
            run(TopoId::WeftHop, 0, 50.0),
            run(TopoId::EnvoyHop, 0, 100.0),
            run(TopoId::WeftHop, 1, 90.0),
            run(TopoId::EnvoyHop, 1, 100.0),
            run(TopoId::WeftHop, 2, 10.0), // no Envoy run in round 2: left out
        ];
        let w = Workload::Open(1000);
        let s = ratio_by_round(&runs, TopoId::WeftHop, TopoId::EnvoyHop, w, |r| {
            Some(latency(r, Pct::P50))
        })
        .unwrap();
        assert_eq!((s.min, s.max, s.rounds), (0.5, 0.9, 2));
        assert!(ratio_by_round(&runs, TopoId::WeftHop, TopoId::EnvoyHop, w, |_| None).is_none());
    }
}
