//! Closing notes drawn from the figures (no hand-written numbers): where the control
//! plane's time and memory go, and the hottest symbol of each profile.

use crate::ads::report::LoadReport;
use crate::cp;
use crate::stats::Summary;

fn median(values: &[f64]) -> f64 {
    Summary::of(values).map_or(f64::NAN, |s| s.median)
}

/// Notes about one control-plane run (one number of proxies).
fn run_notes(run: &LoadReport) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(route) = run.changes.iter().find(|c| c.kind == "route") {
        let (fanout, cpu, detect) = (
            median(&route.fanout_ms),
            median(&route.cpu_ms),
            median(&route.first_response_ms),
        );
        if fanout.is_finite() && cpu.is_finite() {
            let bound = if cpu >= 0.7 * (fanout + detect) {
                "the push is bound by the controller's CPU (it runs on one core)"
            } else {
                "the controller is not busy for all of it"
            };
            notes.push(format!(
                "{} proxies, route change: the controller spends {cpu:.0} ms of CPU per change against \
                 {detect:.0} ms detection + {fanout:.0} ms fan-out (medians): {bound}; {:.2} ms of fan-out per proxy.",
                run.proxies,
                fanout / run.proxies.max(1) as f64
            ));
        }
        if detect.is_finite() {
            notes.push(format!(
                "{} proxies, route change: detection alone (file rename → first response) is {detect:.0} ms at \
                 the median: the local source wakes on inotify and reads the renamed file at once, and the \
                 publisher translates at once (a change after a quiet spell) only the virtual hosts the route \
                 touches (an endpoint change remakes only the ClusterLoadAssignments), all while the controller \
                 shares its core with the other streams.",
                run.proxies
            ));
        }
    }
    let per_proxy = (run.rss_connected - run.rss_empty) / run.proxies.max(1) as f64;
    notes.push(format!(
        "{} proxies: controller RSS grows by {:.0} KB per connected proxy (each proxy is sent {:.0} KB of initial \
         config).",
        run.proxies,
        per_proxy / 1e3,
        run.initial_bytes_per_proxy / 1e3
    ));
    notes
}

/// Notes for the control-plane runs (the largest number of proxies only) and the hottest
/// symbol of each profile.
pub fn notes(cp: Option<&cp::Report>, profiles: &[(String, String)]) -> Vec<String> {
    let mut notes = Vec::new();
    let pooled = cp.map(cp::Report::pooled).unwrap_or_default();
    if let Some(run) = pooled.iter().max_by_key(|r| r.proxies) {
        notes.extend(run_notes(run));
    }
    for (title, text) in profiles {
        if let Some(top) = text
            .lines()
            .find(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        {
            notes.push(format!(
                "Profile of {title}: hottest symbol `{}` (full list below).",
                top.trim()
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ads::report::ChangeReport;

    #[test]
    fn notes_from_figures() {
        let run = LoadReport {
            proxies: 1000,
            services: 1000,
            endpoints_per_service: 10,
            sync_secs: 1.0,
            initial_bytes_per_proxy: 1_000_000.0,
            rss_empty: 40e6,
            cpu_empty_percent: 0.0,
            rss_connected: 1040e6,
            cpu_connected_percent: 0.0,
            changes: vec![ChangeReport {
                kind: "route".into(),
                convergence_ms: vec![3000.0],
                first_response_ms: vec![600.0],
                fanout_ms: vec![2400.0],
                per_proxy_ms: None,
                bytes_per_proxy: vec![1.0],
                cpu_ms: vec![2800.0],
                peak_rss: vec![1.0],
                incomplete: 0,
            }],
            stream_errors: vec![],
        };
        let report = cp::Report {
            runs: vec![run],
            failures: vec![],
            repeats: 1,
            rounds: 1,
        };
        let profiles = vec![(
            "x".to_string(),
            "# Samples: 1K\n14.92% libc [.] memmove".to_string(),
        )];
        let notes = notes(Some(&report), &profiles);
        assert!(
            notes[0].contains("bound by the controller's CPU"),
            "{notes:?}"
        );
        assert!(notes[0].contains("2.40 ms of fan-out per proxy"));
        assert!(notes[1].contains("600 ms"));
        assert!(notes[2].contains("1000 KB per connected proxy"));
        assert!(notes[3].contains("`14.92% libc [.] memmove`"));
    }
}
