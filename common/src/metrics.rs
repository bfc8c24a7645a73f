//! What both binaries' `/metrics` share: the exposition format a scraper asks for (its
//! `Accept` header: OpenMetrics for Prometheus, which asks for it first, the classic text
//! format 0.0.4 for everyone else), the standard `process_*` metrics read from `/proc` at
//! scrape time, and a `<prefix>_build_info` gauge naming the version.
//!
//! prometheus-client encodes OpenMetrics only; the text format is derived from it here
//! (counter families renamed to their `_total` samples, `# UNIT` and `# EOF` dropped, info
//! families typed as gauges), so one registry serves both.

use std::collections::HashSet;
use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of Prometheus' classic text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The two formats `/metrics` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    OpenMetrics,
    Text,
}

impl Exposition {
    /// The format an `Accept` header prefers: OpenMetrics when it weighs
    /// `application/openmetrics-text` above `text/plain` (and any wildcard), the text format
    /// otherwise, including when there is no header.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Text;
        };
        let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                "text/plain" | "text/*" | "*/*" => text = text.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics > text {
            Self::OpenMetrics
        } else {
            Self::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Self::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// Encodes `registry` in `format`.
pub fn encode(registry: &Registry, format: Exposition) -> Result<String, std::fmt::Error> {
    let mut openmetrics = String::new();
    prometheus_client::encoding::text::encode(&mut openmetrics, registry)?;
    Ok(match format {
        Exposition::OpenMetrics => openmetrics,
        Exposition::Text => openmetrics_to_text(&openmetrics),
    })
}

/// Rewrites prometheus-client's OpenMetrics output in the text format 0.0.4: a counter
/// family `x` has samples `x_total`, so its `# HELP`/`# TYPE` lines name `x_total`; info
/// families become gauges; `# UNIT` and `# EOF` have no counterpart and are dropped.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let (mut counters, mut infos) = (HashSet::new(), HashSet::new());
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            match kind {
                "counter" => counters.insert(name),
                "info" => infos.insert(name),
                _ => false,
            };
        }
    }
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let described = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match described.and_then(|(p, rest)| rest.split_once(' ').map(|(n, t)| (p, n, t))) {
            Some((prefix, name, tail)) if counters.contains(name) => {
                let _ = writeln!(out, "{prefix}{name}_total {tail}");
            }
            Some(("# TYPE ", name, "info")) => {
                let _ = writeln!(out, "# TYPE {name}_info gauge");
            }
            Some(("# HELP ", name, tail)) if infos.contains(name) => {
                let _ = writeln!(out, "# HELP {name}_info {tail}");
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Registers `<prefix>_build_info{version}` (always 1) and the `process_*` metrics.
pub fn register_process_metrics(registry: &mut Registry, prefix: &str, version: &'static str) {
    let build_info = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    build_info.get_or_create(&[("version", version)]).set(1);
    registry.register(
        format!("{prefix}_build_info"),
        "The running build (always 1), its version as a label",
        build_info,
    );
    registry.register_collector(Box::new(ProcessCollector));
}

/// The standard process metrics (as Prometheus' own client libraries name them), read from
/// `/proc/self` on each scrape. A value `/proc` cannot give is left out, not made up.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        if let Some(cpu) = stats.cpu_seconds {
            let counter = ConstCounter::new(cpu);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                stats.virtual_bytes,
            ),
            ("process_open_fds", "Open file descriptors", stats.open_fds),
            (
                "process_max_fds",
                "Limit on open file descriptors",
                stats.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                stats.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(metric)?;
            }
        }
        Ok(())
    }
}

/// One reading of the process's figures; `None` where `/proc` did not say.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, 100 on every Linux ABI
/// Rust targets (the kernel fixes it for userspace whatever its internal HZ).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

impl ProcessStats {
    pub fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let mut stats = Self::parse(
            &read("/proc/self/stat").unwrap_or_default(),
            &read("/proc/self/status").unwrap_or_default(),
            &read("/proc/stat").unwrap_or_default(),
        );
        stats.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as f64);
        stats.max_fds = read("/proc/self/limits").and_then(|l| parse_max_fds(&l));
        stats
    }

    /// From `/proc/self/stat`, `/proc/self/status` (RSS in kB, whatever the page size) and
    /// `/proc/stat` (the boot time the start is counted from).
    pub fn parse(stat: &str, status: &str, system_stat: &str) -> Self {
        // The command name (field 2) is in parentheses and may hold spaces: count fields
        // after its closing one. Field 3 (state) is then index 0.
        let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let boot_time = system_stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        Self {
            cpu_seconds: field(14)
                .zip(field(15))
                .map(|(user, system)| (user + system) / CLOCK_TICKS_PER_SECOND),
            virtual_bytes: field(23),
            resident_bytes: status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map(|kb| kb * 1024.0),
            start_time_seconds: boot_time
                .zip(field(22))
                .map(|(boot, ticks)| boot + ticks / CLOCK_TICKS_PER_SECOND),
            open_fds: None,
            max_fds: None,
        }
    }
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
