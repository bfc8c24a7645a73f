//! What the rig reads about a running process from `/proc/<pid>`: CPU time (user + system,
//! all threads) from `stat`, resident memory from `status`. The parsers are plain functions
//! over the files' text; [`ProcessProbe`] reads them for one pid.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Clock ticks per second of `utime`/`stime` (USER_HZ; 100 on every Linux we run on).
const USER_HZ: f64 = 100.0;

/// Errors reading a process's files.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unexpected format of {0}")]
    Format(PathBuf),
}

/// CPU time used so far (user + system) from the text of `/proc/<pid>/stat`.
pub fn parse_cpu_time(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: fields after the
    // last ')' start at field 3 (state); utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / USER_HZ))
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS`), in bytes.
pub fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Reads CPU time and memory of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessProbe {
    pub pid: u32,
}

impl ProcessProbe {
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    fn read(&self, file: &str) -> Result<(String, PathBuf), ProcError> {
        let path = PathBuf::from(format!("/proc/{}/{file}", self.pid));
        let text = std::fs::read_to_string(&path).map_err(|source| ProcError::Read {
            path: path.clone(),
            source,
        })?;
        Ok((text, path))
    }

    /// User + system CPU time of all the process's threads so far.
    pub fn cpu_time(&self) -> Result<Duration, ProcError> {
        let (text, path) = self.read("stat")?;
        parse_cpu_time(&text).ok_or(ProcError::Format(path))
    }

    /// Resident set size now, in bytes.
    pub fn rss(&self) -> Result<u64, ProcError> {
        let (text, path) = self.read("status")?;
        parse_status_kb(&text, "VmRSS").ok_or(ProcError::Format(path))
    }
}

/// Samples a process's RSS on a thread of its own until stopped; keeps the highest.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    /// Starts sampling `probe` every `every`.
    pub fn start(probe: ProcessProbe, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(probe.rss().unwrap_or(0));
                std::thread::sleep(every);
            }
            peak.max(probe.rss().unwrap_or(0))
        });
        Self { stop, thread }
    }

    /// Stops sampling; the highest RSS seen (bytes).
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_skips_a_command_with_spaces() {
        let stat = "4242 (weird (name) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 50 0 0 20 0 3 0 100 1000000 300 18446744073709551615";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_cpu_time("garbage"), None);
    }

    #[test]
    fn status_fields_in_bytes() {
        let status = "Name:\tenvoy\nVmHWM:\t  40000 kB\nVmRSS:\t   35000 kB\nThreads:\t9\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(35000 * 1024));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(40000 * 1024));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn probes_this_process() {
        let me = ProcessProbe::new(std::process::id());
        assert!(me.rss().unwrap() > 0);
        me.cpu_time().unwrap();
        assert!(ProcessProbe::new(u32::MAX).rss().is_err());
    }
}
