//! The targets, each with where we stand: the measured figures behind it, and
//! whether it is met (`–` when a figure is missing, e.g. a topology that did not run).

use super::table::{MB, Table, num};
use crate::ads::report::LoadReport;
use crate::cp;
use crate::dp::Report;
use crate::dp::figures::{self, Pct, added_latency};
use crate::dp::model::{TopoId, Workload};
use crate::stats::{self, Summary, percentile};

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

/// The control plane's targets at one number of proxies.
struct ControlPlaneTarget {
    proxies: usize,
    /// One route change until every proxy ACKed it: (percentile, at most ms).
    route_change: &'static [(f64, f64)],
    /// Controller RSS, connected and at the peak during pushes, at most MB.
    rss_mb: f64,
}

const CONTROL_PLANE_TARGETS: [ControlPlaneTarget; 2] = [
    ControlPlaneTarget {
        proxies: 1000,
        route_change: &[(50.0, 50.0), (99.0, 150.0)],
        rss_mb: 100.0,
    },
    ControlPlaneTarget {
        proxies: 10_000,
        route_change: &[(50.0, 500.0)],
        rss_mb: 1000.0,
    },
];

/// The rows of one [`ControlPlaneTarget`], from the pooled run with that many proxies.
fn control_plane_rows(t: &mut Table, target: &ControlPlaneTarget, run: Option<&LoadReport>) {
    let n = target.proxies;
    let route = run.and_then(|r| r.changes.iter().find(|c| c.kind == "route"));
    for &(p, limit) in target.route_change {
        let what = format!("{n} proxies: one route change ACKed by all, p{p} ≤ {limit} ms");
        match route.filter(|c| !c.convergence_ms.is_empty()) {
            Some(c) => {
                let all = percentile(&c.convergence_ms, p);
                let fan = percentile(&c.fanout_ms, p);
                t.row([
                    what,
                    format!("file change → last ACK {} ms (of which fan-out, first response → last ACK: {} ms)", num(all), num(fan)),
                    verdict(Some(all <= limit)).to_string(),
                ]);
            }
            None => t.row([what, "not measured".to_string(), "–".to_string()]),
        }
    }
    let what = format!("{n} proxies: controller RSS ≤ {} MB", target.rss_mb);
    match run {
        Some(r) => {
            let peak = r.peak_rss() * MB;
            t.row([
                what,
                format!(
                    "{} MB connected and idle, {} MB at most during pushes",
                    num(r.rss_connected * MB),
                    num(peak)
                ),
                verdict(Some(peak <= target.rss_mb)).to_string(),
            ]);
        }
        None => t.row([what, "not measured".to_string(), "–".to_string()]),
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
    for target in &CONTROL_PLANE_TARGETS {
        control_plane_rows(
            &mut t,
            target,
            pooled.iter().find(|r| r.proxies == target.proxies),
        );
    }
    let what = "a proxy that calls 10 of 1000 Services holds ≤ 50 KB of config";
    match pooled.iter().find(|r| r.services == 1000) {
        Some(r) => {
            let kb = r.initial_bytes_per_proxy / 1000.0;
            t.row([
                what.to_string(),
                format!("{} KB received until its config was complete", num(kb)),
                verdict(Some(kb <= 50.0)).to_string(),
            ]);
        }
        None => t.row([what, "not measured", "–"]),
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

    fn load_run(proxies: usize, route_ms: Vec<f64>, rss_mb: f64) -> LoadReport {
        LoadReport {
            proxies,
            services: 1000,
            endpoints_per_service: 10,
            sync_secs: 1.0,
            initial_bytes_per_proxy: 15_400.0,
            rss_empty: 50e6,
            cpu_empty_percent: 0.0,
            rss_connected: rss_mb * 1e6,
            cpu_connected_percent: 0.0,
            changes: vec![crate::ads::report::ChangeReport {
                kind: "route".into(),
                fanout_ms: route_ms.clone(),
                first_response_ms: vec![10.0; route_ms.len()],
                convergence_ms: route_ms,
                per_proxy_ms: None,
                bytes_per_proxy: vec![700.0],
                cpu_ms: vec![100.0],
                peak_rss: vec![rss_mb * 1.02e6],
                incomplete: 0,
            }],
            stream_errors: vec![],
        }
    }

    #[test]
    fn control_plane_targets_at_each_number_of_proxies() {
        let report = cp::Report {
            runs: vec![
                load_run(1000, vec![40.0, 45.0], 105.0),
                load_run(10_000, vec![480.0, 520.0, 530.0], 950.0),
            ],
            failures: vec![],
            repeats: 1,
            rounds: 1,
        };
        let text = render(None, Some(&report));
        let line = |what: &str| {
            text.lines()
                .find(|l| l.contains(what))
                .unwrap_or_else(|| panic!("no row {what} in\n{text}"))
                .to_string()
        };
        assert!(
            line("1000 proxies: one route change ACKed by all, p50 ≤ 50 ms").ends_with("| met |")
        );
        assert!(line("1000 proxies: controller RSS ≤ 100 MB").contains("**not met**"));
        let route = line("10000 proxies: one route change ACKed by all, p50 ≤ 500 ms");
        assert!(
            route.contains("last ACK 520 ms") && route.contains("**not met**"),
            "{route}"
        );
        assert!(line("10000 proxies: controller RSS ≤ 1000 MB").ends_with("| met |"));
        let config = line("holds ≤ 50 KB of config");
        assert!(
            config.contains("15.4 KB") && config.ends_with("| met |"),
            "{config}"
        );
    }
}
