//! The targets, each with where we stand: the measured figures behind it, and
//! whether it is met (`–` when a figure is missing, e.g. a topology that did not run).

use super::table::{MB, Table, num};
use crate::cp;
use crate::dp::Report;
use crate::dp::figures::{self, Pct, added_latency};
use crate::dp::model::{TopoId, Workload};
use crate::stats::{self, Summary, nearest_rank};

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "–",
    }
}

fn medians(a: Option<Summary>, b: Option<Summary>) -> Option<(f64, f64, f64)> {
    let (a, b) = (a?.median, b?.median);
    Some((a, b, stats::ratio(a, b)))
}

fn ratio_row(
    t: &mut Table,
    what: &str,
    unit: &str,
    pair: Option<(f64, f64, f64)>,
    ok: impl Fn(f64) -> bool,
) {
    match pair {
        // A median added latency at or below zero means the run's noise was larger than the
        // proxy's cost: no ratio of such figures says anything.
        Some((w, e, _)) if w <= 0.0 || e <= 0.0 => t.row([
            what.to_string(),
            format!(
                "weft {} {unit}, Envoy {} {unit}: a median at or below zero, the run's noise exceeds the proxy's cost",
                num(w),
                num(e)
            ),
            "**inconclusive**".to_string(),
        ]),
        Some((w, e, r)) => t.row([
            what.to_string(),
            format!(
                "weft {} {unit}, Envoy {} {unit}: {}×",
                num(w),
                num(e),
                num(r)
            ),
            verdict(r.is_finite().then(|| ok(r))).to_string(),
        ]),
        None => t.row([
            what.to_string(),
            "not measured".to_string(),
            verdict(None).to_string(),
        ]),
    }
}

pub fn render(dp: Option<&Report>, cp: Option<&cp::Report>) -> String {
    let mut t = Table::new(["target", "where we stand", "verdict"]);
    let w1000 = Workload::Open(1000);
    let runs = dp.map(|d| d.runs.as_slice()).unwrap_or(&[]);
    for pct in [Pct::P50, Pct::P99] {
        ratio_row(
            &mut t,
            &format!(
                "weft-proxy added {} at 1000 rps ≤ 0.5 × Envoy's",
                pct.label()
            ),
            "µs",
            medians(
                added_latency(runs, TopoId::WeftHop, w1000, pct),
                added_latency(runs, TopoId::EnvoyHop, w1000, pct),
            ),
            |r| r <= 0.5,
        );
    }
    ratio_row(
        &mut t,
        "one bidi stream: added p50 ≤ 0.6 × Envoy's",
        "µs",
        medians(
            added_latency(runs, TopoId::WeftHop, Workload::PingPong, Pct::P50),
            added_latency(runs, TopoId::EnvoyHop, Workload::PingPong, Pct::P50),
        ),
        |r| r <= 0.6,
    );
    let per_core = figures::calls_per_core;
    let sat = |topo| figures::summary(runs, topo, Workload::Closed, per_core);
    ratio_row(
        &mut t,
        "saturation calls/s per core ≥ 2.5 × Envoy's",
        "/s",
        medians(sat(TopoId::WeftHop), sat(TopoId::EnvoyHop)),
        |r| r >= 2.5,
    );
    let cpu = |topo| figures::summary(runs, topo, Workload::Closed, |r| r.cpu_per_call_us);
    ratio_row(
        &mut t,
        "CPU per call (closed loop) ≤ 0.3 × Envoy's",
        "µs",
        medians(cpu(TopoId::WeftHop), cpu(TopoId::EnvoyHop)),
        |r| r <= 0.3,
    );
    ratio_row(
        &mut t,
        "mTLS pair: CPU per call (closed loop) ≤ 0.5 × Envoy's mTLS pair",
        "µs",
        medians(cpu(TopoId::WeftPairMtls), cpu(TopoId::EnvoyPairMtls)),
        |r| r <= 0.5,
    );
    ratio_row(
        &mut t,
        "mTLS pair: added p50 at 1000 rps ≤ 0.5 × Envoy's mTLS pair",
        "µs",
        medians(
            added_latency(runs, TopoId::WeftPairMtls, w1000, Pct::P50),
            added_latency(runs, TopoId::EnvoyPairMtls, w1000, Pct::P50),
        ),
        |r| r <= 0.5,
    );
    let idle = |name: &str| {
        dp.and_then(|d| {
            d.idle_rss
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v * MB)
        })
        .and_then(|v| Summary::of(&[v]))
    };
    let (wi, ei) = (idle("weft-a"), idle("envoy-a"));
    ratio_row(
        &mut t,
        "idle RSS ≤ 0.25 × Envoy's",
        "MB",
        medians(wi, ei),
        |r| r <= 0.25,
    );
    match wi {
        Some(w) => t.row([
            "idle RSS ≤ 8 MB".to_string(),
            format!("weft-proxy {} MB", num(w.median)),
            verdict(Some(w.median <= 8.0)).to_string(),
        ]),
        None => t.row(["idle RSS ≤ 8 MB", "not measured", "–"]),
    }

    let pooled = cp.map(cp::Report::pooled).unwrap_or_default();
    let run1000 = pooled.iter().find(|r| r.proxies == 1000);
    let route = run1000.and_then(|r| r.changes.iter().find(|c| c.kind == "route"));
    let pct = |values: &[f64], p: f64| {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        nearest_rank(&v, p)
    };
    for (label, p, limit) in [("p50", 50.0, 50.0), ("p99", 99.0, 150.0)] {
        let what = format!("1000 proxies: one route change ACKed by all, {label} ≤ {limit} ms");
        match route.filter(|c| !c.convergence_ms.is_empty()) {
            Some(c) => {
                let all = pct(&c.convergence_ms, p);
                let fan = pct(&c.fanout_ms, p);
                t.row([
                    what,
                    format!("file change → last ACK {} ms (of which fan-out, first response → last ACK: {} ms)", num(all), num(fan)),
                    verdict(Some(all <= limit)).to_string(),
                ]);
            }
            None => t.row([what, "not measured".to_string(), "–".to_string()]),
        }
    }
    match run1000 {
        Some(r) => {
            let peak = r
                .changes
                .iter()
                .flat_map(|c| c.peak_rss.iter().copied())
                .fold(r.rss_connected, f64::max)
                * MB;
            t.row([
                "1000 proxies: controller RSS ≤ 100 MB".to_string(),
                format!(
                    "{} MB connected and idle, {} MB at most during pushes",
                    num(r.rss_connected * MB),
                    num(peak)
                ),
                verdict(Some(peak <= 100.0)).to_string(),
            ]);
        }
        None => t.row(["1000 proxies: controller RSS ≤ 100 MB", "not measured", "–"]),
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pair: (f64, f64, f64)) -> String {
        let mut t = Table::new(["target", "where we stand", "verdict"]);
        ratio_row(&mut t, "p99 ≤ 0.5 × Envoy's", "µs", Some(pair), |r| {
            r <= 0.5
        });
        t.render()
    }

    #[test]
    fn a_ratio_of_noise_is_inconclusive_not_met() {
        assert!(row((100.0, 300.0, 1.0 / 3.0)).contains("| met |"));
        assert!(row((200.0, 300.0, 2.0 / 3.0)).contains("**not met**"));
        let noisy = row((-184.0, 4150.0, -0.04));
        assert!(noisy.contains("**inconclusive**"), "{noisy}");
        assert!(!noisy.contains("| met |"), "{noisy}");
    }
}
