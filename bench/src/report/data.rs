//! The data-plane section of RESULTS.md: latency (direct, and added by each proxy),
//! saturation per core, CPU per call, memory, each with the weft / Envoy ratio; plus the
//! headline figures the targets and the reproducibility check read.

use std::collections::BTreeSet;

use super::repro::RATIO_PREFIX;
use super::table::{MB, Table, num, ratio, summary};
use crate::dp::Report;
use crate::dp::figures::{self, Pct, added_latency, latency};
use crate::dp::model::{RunResult, TopoId, Workload};
use crate::stats::{self, Summary};

/// A named figure (median [min–max] over rounds), for targets and run-to-run comparison.
pub type Headline = (String, Summary);

fn ratio_of(a: Option<Summary>, b: Option<Summary>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => stats::ratio(a.median, b.median),
        _ => f64::NAN,
    }
}

fn notes(runs: &[RunResult], topo: TopoId, workload: Workload) -> String {
    let notes: BTreeSet<&str> = runs
        .iter()
        .filter(|r| r.topo == topo && r.workload == workload)
        .filter_map(|r| r.note.as_deref())
        .collect();
    notes.into_iter().collect::<Vec<_>>().join("; ")
}

/// The proxied topologies, each weft one before its Envoy peer (ratio rows follow Envoy's).
fn proxied(report: &Report) -> Vec<TopoId> {
    let mut topos: Vec<TopoId> = report
        .topologies
        .iter()
        .copied()
        .filter(|t| *t != TopoId::Direct)
        .collect();
    topos.sort();
    topos
}

/// Renders the section; returns it with the headline figures.
pub fn render(report: &Report) -> (String, Vec<Headline>) {
    let mut out = String::new();
    let mut headlines = Vec::new();
    let runs = &report.runs;

    out += "### Latency without a proxy (T0, µs)\n\n";
    let mut t = Table::new(["workload", "p50", "p99", "p99.9", "achieved rate (/s)"]);
    for &w in &report.workloads {
        if w == Workload::Closed {
            continue;
        }
        let mut row = vec![w.label()];
        for pct in Pct::ALL {
            row.push(summary(
                figures::summary(runs, TopoId::Direct, w, |r| latency(r, pct)),
                1.0,
            ));
        }
        row.push(summary(
            figures::summary(runs, TopoId::Direct, w, |r| r.rps),
            1.0,
        ));
        t.row(row);
    }
    out += &t.render();

    for &w in &report.workloads {
        if w == Workload::Closed {
            continue;
        }
        out += &format!(
            "\n### Added latency, {} (µs, proxied minus direct, same round)\n\n",
            w.label()
        );
        let mut t = Table::new([
            "topology",
            "p50",
            "p99",
            "p99.9",
            "achieved rate (/s)",
            "notes",
        ]);
        for topo in proxied(report) {
            let mut row = vec![topo.label().to_string()];
            for pct in Pct::ALL {
                let s = added_latency(runs, topo, w, pct);
                row.push(summary(s, 1.0));
                if let (Some(s), TopoId::WeftHop | TopoId::EnvoyHop) = (s, topo) {
                    headlines.push((
                        format!("{} added {} µs, {}", topo.label(), pct.label(), w.label()),
                        s,
                    ));
                }
            }
            row.push(summary(figures::summary(runs, topo, w, |r| r.rps), 1.0));
            row.push(notes(runs, topo, w));
            t.row(row);
            if let Some(peer) = topo.weft_peer() {
                let mut row = vec![format!("ratio weft / Envoy ({})", &topo.label()[..2])];
                for pct in Pct::ALL {
                    row.push(ratio(ratio_of(
                        added_latency(runs, peer, w, pct),
                        added_latency(runs, topo, w, pct),
                    )));
                    if topo == TopoId::EnvoyHop
                        && let Some(s) = figures::ratio_by_round(runs, peer, topo, w, |r| {
                            figures::added(runs, r, pct)
                        })
                    {
                        headlines.push((
                            format!("{RATIO_PREFIX}, added {}, {}", pct.label(), w.label()),
                            s,
                        ));
                    }
                }
                t.row(row);
            }
        }
        out += &t.render();
    }

    out += "\n### Saturation (closed loop, 64 calls in flight)\n\n";
    out += "Calls per second per proxy core = calls per second ÷ the proxies' CPU (cores) over the run. \
            A proxy below ~0.9 cores was not saturated: the load generator and server, sharing the other \
            core, were the limit, and the per-core figure is extrapolated from its CPU time.\n\n";
    let mut t = Table::new([
        "topology",
        "calls/s",
        "proxy CPU (cores)",
        "calls/s per proxy core",
        "p50 latency (µs)",
        "notes",
    ]);
    let per_core = figures::calls_per_core;
    let w = Workload::Closed;
    for topo in std::iter::once(TopoId::Direct).chain(proxied(report)) {
        let mut row = vec![topo.label().to_string()];
        row.push(summary(figures::summary(runs, topo, w, |r| r.rps), 1.0));
        if topo == TopoId::Direct {
            row.extend(["–".to_string(), "–".to_string()]);
        } else {
            row.push(summary(
                figures::summary(runs, topo, w, |r| r.proxy_cores),
                1.0,
            ));
            let s = figures::summary(runs, topo, w, per_core);
            if let (Some(s), TopoId::WeftHop | TopoId::EnvoyHop) = (s, topo) {
                headlines.push((format!("{} saturation calls/s per core", topo.label()), s));
            }
            row.push(summary(s, 1.0));
        }
        row.push(summary(
            figures::summary(runs, topo, w, |r| latency(r, Pct::P50)),
            1.0,
        ));
        row.push(notes(runs, topo, w));
        t.row(row);
        if let Some(peer) = topo.weft_peer() {
            if topo == TopoId::EnvoyHop
                && let Some(s) = figures::ratio_by_round(runs, peer, topo, w, |r| Some(per_core(r)))
            {
                headlines.push((format!("{RATIO_PREFIX}, saturation calls/s per core"), s));
            }
            t.row([
                format!("ratio weft / Envoy ({})", &topo.label()[..2]),
                ratio(ratio_of(
                    figures::summary(runs, peer, w, |r| r.rps),
                    figures::summary(runs, topo, w, |r| r.rps),
                )),
                ratio(ratio_of(
                    figures::summary(runs, peer, w, |r| r.proxy_cores),
                    figures::summary(runs, topo, w, |r| r.proxy_cores),
                )),
                ratio(ratio_of(
                    figures::summary(runs, peer, w, per_core),
                    figures::summary(runs, topo, w, per_core),
                )),
            ]);
        }
    }
    out += &t.render();

    out += "\n### Proxy CPU time per call (µs; a pair counts both proxies)\n\n";
    let mut header = vec!["topology".to_string()];
    header.extend(report.workloads.iter().map(|w| w.label()));
    let mut t = Table::new(header);
    for topo in proxied(report) {
        let mut row = vec![topo.label().to_string()];
        let mut ratios = vec![format!("ratio weft / Envoy ({})", &topo.label()[..2])];
        for &w in &report.workloads {
            let s = figures::summary(runs, topo, w, |r| r.cpu_per_call_us);
            row.push(summary(s, 1.0));
            if let (Some(s), TopoId::WeftHop | TopoId::EnvoyHop) = (s, topo) {
                headlines.push((
                    format!("{} CPU µs per call, {}", topo.label(), w.label()),
                    s,
                ));
            }
            if let Some(peer) = topo.weft_peer() {
                ratios.push(ratio(ratio_of(
                    figures::summary(runs, peer, w, |r| r.cpu_per_call_us),
                    s,
                )));
                if topo == TopoId::EnvoyHop
                    && let Some(s) =
                        figures::ratio_by_round(runs, peer, topo, w, |r| Some(r.cpu_per_call_us))
                {
                    headlines.push((format!("{RATIO_PREFIX}, CPU per call, {}", w.label()), s));
                }
            }
        }
        t.row(row);
        if topo.weft_peer().is_some() {
            t.row(ratios);
        }
    }
    out += &t.render();

    out += "\n### Memory (RSS, MB)\n\n";
    out += "Idle: config loaded, before any traffic. Under load: the highest RSS sampled (every 100 ms) \
            during the closed-loop runs.\n\n";
    let idle = |name: &str| {
        report
            .idle_rss
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    };
    let mut t = Table::new([
        "proxy",
        "idle RSS",
        "RSS under load (one hop)",
        "pair, idle (both)",
        "pair, under load (both)",
    ]);
    let loaded = |topo| figures::summary(runs, topo, Workload::Closed, |r| r.peak_rss);
    let mut cells = Vec::new();
    for (name, hop, pair) in [
        ("weft", TopoId::WeftHop, TopoId::WeftPair),
        ("envoy", TopoId::EnvoyHop, TopoId::EnvoyPair),
    ] {
        let a = idle(&format!("{name}-a"));
        let b = idle(&format!("{name}-b"));
        let pair_idle = a.zip(b).map(|(a, b)| a + b);
        if let Some(a) = a.and_then(|a| Summary::of(&[a])) {
            headlines.push((format!("{} idle RSS bytes", hop.label()), a));
        }
        if let Some(l) = loaded(hop) {
            headlines.push((format!("{} RSS under load bytes", hop.label()), l));
        }
        cells.push((a, loaded(hop), pair_idle, loaded(pair)));
        let label = if name == "weft" {
            "weft-proxy"
        } else {
            "Envoy"
        };
        t.row([
            label.to_string(),
            a.map_or("–".into(), |v| num(v * MB)),
            summary(loaded(hop), MB),
            pair_idle.map_or("–".into(), |v| num(v * MB)),
            summary(loaded(pair), MB),
        ]);
    }
    if let [w, e] = cells.as_slice() {
        let r = |a: Option<f64>, b: Option<f64>| {
            ratio(a.zip(b).map_or(f64::NAN, |(a, b)| stats::ratio(a, b)))
        };
        let med = |s: Option<Summary>| s.map(|s| s.median);
        t.row([
            "ratio weft / Envoy".to_string(),
            r(w.0, e.0),
            r(med(w.1), med(e.1)),
            r(w.2, e.2),
            r(med(w.3), med(e.3)),
        ]);
    }
    out += &t.render();
    (out, headlines)
}
