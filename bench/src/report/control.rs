//! The control-plane section of RESULTS.md: per number of simulated proxies, the initial
//! sync and the controller at rest, then each kind of change from the file write to the
//! last ACK (split into detection — noticing the file, debounce, translation — and fan-out).
//! Rounds are pooled: a figure at rest is the median of the rounds [min–max], a change's
//! percentiles are over every round's repetitions.

use super::data::Headline;
use super::table::{MB, Table, num, summary};
use crate::ads::report::{ChangeReport, LoadReport};
use crate::cp::Report;
use crate::stats::{Summary, percentile};

fn p50_p99_max(values: &[f64]) -> String {
    if values.is_empty() {
        return "–".into();
    }
    format!(
        "{} / {} / {}",
        num(percentile(values, 50.0)),
        num(percentile(values, 99.0)),
        num(percentile(values, 100.0))
    )
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

pub fn render(report: &Report) -> (String, Vec<Headline>) {
    let mut out = String::new();
    let mut headlines = Vec::new();
    out += "### Initial sync and the controller at rest\n\n";
    let mut t = Table::new([
        "proxies",
        "services × endpoints",
        "all proxies synced (s)",
        "initial config per proxy (KB)",
        "controller RSS, no proxy (MB)",
        "RSS, all connected (MB)",
        "RSS per connected proxy (KB)",
        "idle CPU, no proxy (% of a core)",
        "idle CPU, all connected (%)",
    ]);
    let pooled = report.pooled();
    for run in &pooled {
        let rounds = report.runs_with(run.proxies);
        let over_rounds =
            |f: fn(&&LoadReport) -> f64, scale: f64| summary(Summary::by(&rounds, f), scale);
        t.row([
            run.proxies.to_string(),
            format!("{} × {}", run.services, run.endpoints_per_service),
            over_rounds(|r| r.sync_secs, 1.0),
            num(run.initial_bytes_per_proxy / 1e3),
            over_rounds(|r| r.rss_empty, MB),
            over_rounds(|r| r.rss_connected, MB),
            num((run.rss_connected - run.rss_empty) / run.proxies.max(1) as f64 / 1e3),
            over_rounds(|r| r.cpu_empty_percent, 1.0),
            over_rounds(|r| r.cpu_connected_percent, 1.0),
        ]);
        if let Some(s) = Summary::by(&rounds, |r| r.rss_connected) {
            headlines.push((format!("controller RSS bytes, {} proxies", run.proxies), s));
        }
    }
    out += &t.render();

    out += &format!(
        "\n### Changes ({} of each kind: {} per round × {} rounds; ms unless noted; p50 / p99 / max over the changes)\n\n",
        report.repeats * report.rounds,
        report.repeats,
        report.rounds
    );
    out += "*change → last ACK*: from the file rename to the last proxy's ACK. *detection*: from the \
            rename to the first response at any proxy (the local source wakes on inotify and reads the \
            renamed file at once; the change, the first after a quiet spell, is translated at once, a \
            route change only in the virtual hosts it touches). *fan-out*: from that first \
            response to the last ACK. *per proxy*: every proxy's own time to its ACK, over all changes. \
            Bytes are encoded xDS responses a proxy received for the change.\n\n";
    let mut t = Table::new([
        "proxies",
        "change",
        "change → last ACK",
        "detection (p50)",
        "fan-out",
        "per proxy p50 / p99",
        "bytes per proxy",
        "controller CPU per change",
        "controller peak RSS (MB)",
        "incomplete",
    ]);
    for run in &pooled {
        for change in &run.changes {
            t.row(change_row(run, change));
            for (what, values) in [
                ("change → last ACK", &change.convergence_ms),
                ("fan-out", &change.fanout_ms),
            ] {
                if let Some(s) = Summary::of(values) {
                    headlines.push((
                        format!("{} proxies, {} change, {what} ms", run.proxies, change.kind),
                        s,
                    ));
                }
            }
        }
    }
    out += &t.render();
    if !report.failures.is_empty() {
        out += "\nRuns that failed:\n\n";
        for failure in &report.failures {
            out += &format!("- {failure}\n");
        }
    }
    for run in &pooled {
        if !run.stream_errors.is_empty() {
            out += &format!(
                "\n{} proxies: {} streams ended during the run, first: {}\n",
                run.proxies,
                run.stream_errors.len(),
                run.stream_errors[0]
            );
        }
    }
    (out, headlines)
}

fn change_row(run: &LoadReport, change: &ChangeReport) -> Vec<String> {
    let per_proxy = change
        .per_proxy_ms
        .map_or("–".into(), |p| format!("{} / {}", num(p.p50), num(p.p99)));
    vec![
        run.proxies.to_string(),
        change.kind.clone(),
        p50_p99_max(&change.convergence_ms),
        num(percentile(&change.first_response_ms, 50.0)),
        p50_p99_max(&change.fanout_ms),
        per_proxy,
        format!("{} B", num(mean(&change.bytes_per_proxy))),
        format!("{} ms", summary(Summary::of(&change.cpu_ms), 1.0)),
        num(change.peak_rss.iter().copied().fold(0.0, f64::max) * MB),
        change.incomplete.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_few_changes() {
        let values = [30.0, 10.0, 20.0, 40.0];
        assert_eq!(p50_p99_max(&values), "20.0 / 40.0 / 40.0");
        assert_eq!(p50_p99_max(&[]), "–");
        assert_eq!(mean(&[1.0, 3.0]), 2.0);
    }
}
