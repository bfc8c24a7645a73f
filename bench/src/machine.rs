//! What RESULTS.md says about the machine and the software: CPU model and count, memory,
//! kernel, how busy the machine was apart from the benchmark, and the versions of every
//! program measured or used.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The `model name` of the first CPU in `/proc/cpuinfo` text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        l.strip_prefix("model name")?
            .split_once(':')
            .map(|(_, v)| v.trim().to_string())
    })
}

/// Busy and total jiffies from the `cpu` line of `/proc/stat` text.
pub fn cpu_jiffies(stat: &str) -> Option<(u64, u64)> {
    line_jiffies(stat, "cpu")
}

/// Busy seconds of one core so far (`cpuN` in `/proc/stat`; jiffies are 1/100 s).
pub fn core_busy_secs(core: u32) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    line_jiffies(&stat, &format!("cpu{core}")).map(|(busy, _)| busy as f64 / 100.0)
}

/// Busy and total jiffies of the `/proc/stat` line named `name`.
fn line_jiffies(stat: &str, name: &str) -> Option<(u64, u64)> {
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    let total: u64 = values.iter().take(8).sum();
    Some((total - idle, total))
}

/// The whole machine's CPU use (percent of all cores) over `window`.
pub fn busy_percent(window: Duration) -> Option<f64> {
    let read = || cpu_jiffies(&std::fs::read_to_string("/proc/stat").ok()?);
    let (b0, t0) = read()?;
    std::thread::sleep(window);
    let (b1, t1) = read()?;
    (t1 > t0).then(|| 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64)
}

/// The first line `program args` prints (stdout, else stderr).
pub fn version(program: &Path, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("?")
                .to_string()
        }
        Err(err) => format!("not available ({err})"),
    }
}

/// A description of the machine for RESULTS.md.
pub fn describe() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    // Counted from /proc/cpuinfo: this process may be pinned to one core.
    let cpuinfo = read("/proc/cpuinfo");
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    vec![
        (
            "CPU".into(),
            format!("{} × {cores}", cpu_model(&cpuinfo).unwrap_or_default()),
        ),
        ("memory".into(), mem),
        (
            "kernel".into(),
            read("/proc/sys/kernel/osrelease").trim().to_string(),
        ),
    ]
}

/// The 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_model() {
        let info = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags: x\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model(""), None);
    }

    #[test]
    fn reads_jiffies() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(cpu_jiffies(stat), Some((150, 1000)));
        assert_eq!(line_jiffies(stat, "cpu0"), Some((6, 10)));
        assert_eq!(line_jiffies(stat, "cpu1"), None);
    }
}
