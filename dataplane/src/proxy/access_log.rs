//! The optional per-RPC access log (`--access-log`, off by default): one JSON object per line
//! for a sampled share of RPCs (`--access-log-sample`), written when the RPC ends.
//!
//! Each entry: `time` (RFC 3339, when the RPC arrived), `direction`, `authority`, `path`,
//! `destination_service`, `grpc_service`, `grpc_method`, `grpc_code`, `duration_ms`,
//! `request_messages`, `response_messages`, `fault_injected`, `connection_security`,
//! `peer_identity`, `timeout_cause` (when a deadline ended it), and the W3C trace context the
//! proxy saw, `traceparent` and `tracestate`, as received. The proxy forwards those headers
//! untouched (it neither starts nor joins traces), so a log line can be joined to the
//! application's spans.
//!
//! Writing never slows an RPC: entries go through a bounded queue to a writer thread; when
//! the queue is full (the log's destination is slower than the traffic) entries are dropped
//! and counted in `weft_proxy_access_log_dropped_total`. An RPC that is not sampled costs one
//! random number.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::mpsc::{self, SyncSender};
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use prometheus_client::metrics::counter::Counter;
use serde_json::json;

use super::deadline::TimeoutCause;
use super::metrics::RpcLabels;

/// Entries waiting for the writer, at most.
const QUEUE: usize = 4096;

/// Where `--access-log` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    Stderr,
    File(PathBuf),
}

impl Destination {
    /// `off` (`None`), `stdout`, `stderr` or a file path.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "" | "off" => None,
            "stdout" => Some(Self::Stdout),
            "stderr" => Some(Self::Stderr),
            path => Some(Self::File(path.into())),
        }
    }
}

/// The log: the sampling rate and the queue to the writer thread.
#[derive(Debug)]
pub struct AccessLog {
    sample_per_million: u32,
    queue: SyncSender<String>,
    dropped: Counter,
}

impl AccessLog {
    /// Opens `destination` (a file is appended to) and starts the writer thread.
    pub fn open(destination: &Destination, sample: f64, dropped: Counter) -> std::io::Result<Self> {
        let mut out: Box<dyn std::io::Write + Send> = match destination {
            Destination::Stdout => Box::new(std::io::stdout()),
            Destination::Stderr => Box::new(std::io::stderr()),
            Destination::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (queue, entries) = mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut buffered = std::io::BufWriter::new(&mut out);
                while let Ok(line) = entries.recv() {
                    let mut result = buffered.write_all(line.as_bytes());
                    // Flush whenever the queue runs dry, so a line is never held back long.
                    while result.is_ok() {
                        match entries.try_recv() {
                            Ok(line) => result = buffered.write_all(line.as_bytes()),
                            Err(_) => {
                                result = buffered.flush();
                                break;
                            }
                        }
                    }
                    if let Err(err) = result {
                        tracing::warn!(%err, "cannot write the access log; it stops");
                        return;
                    }
                }
            })?;
        Ok(Self {
            sample_per_million: (sample.clamp(0.0, 1.0) * 1_000_000.0).round() as u32,
            queue,
            dropped,
        })
    }

    /// Whether to log the RPC that just arrived.
    pub fn sampled(&self) -> bool {
        self.sample_per_million >= 1_000_000
            || fastrand::u32(0..1_000_000) < self.sample_per_million
    }

    /// Queues the entry of an RPC that ended.
    pub fn record(&self, request: &RequestContext, ending: &Ending) {
        self.write(entry(request, ending));
    }

    /// Queues a line; a full queue (or a writer that stopped) drops and counts it.
    fn write(&self, line: String) {
        if self.queue.try_send(line).is_err() {
            self.dropped.inc();
        }
    }
}

/// What a sampled RPC's entry needs from its request.
#[derive(Debug)]
pub struct RequestContext {
    pub arrived: SystemTime,
    pub authority: String,
    pub path: String,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl RequestContext {
    pub fn of(headers: &HeaderMap, authority: &str, path: &str) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            arrived: SystemTime::now(),
            authority: authority.to_owned(),
            path: path.to_owned(),
            traceparent: header("traceparent"),
            tracestate: header("tracestate"),
        }
    }
}

/// How the RPC ended.
#[derive(Debug)]
pub struct Ending<'a> {
    pub labels: &'a RpcLabels,
    pub duration: Duration,
    pub request_messages: u64,
    pub response_messages: u64,
    pub timeout_cause: Option<TimeoutCause>,
}

/// One entry, as a JSON line.
pub fn entry(request: &RequestContext, ending: &Ending) -> String {
    let labels = ending.labels;
    let time = weft_common::time::rfc3339(request.arrived);
    let mut line = json!({
        "time": time,
        "direction": labels.direction.as_str(),
        "authority": request.authority,
        "path": request.path,
        "destination_service": labels.destination_service,
        "grpc_service": labels.grpc_service,
        "grpc_method": labels.grpc_method,
        "grpc_code": labels.grpc_code,
        "duration_ms": (ending.duration.as_secs_f64() * 1e6).round() / 1e3,
        "request_messages": ending.request_messages,
        "response_messages": ending.response_messages,
        "fault_injected": labels.fault_injected,
        "connection_security": labels.connection_security.as_str(),
        "peer_identity": labels.peer_identity,
        "protocol": labels.protocol.as_str(),
    });
    let optional = [
        (
            "timeout_cause",
            ending.timeout_cause.map(|c| c.as_str().to_owned()),
        ),
        ("traceparent", request.traceparent.clone()),
        ("tracestate", request.tracestate.clone()),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            line[key] = json!(value);
        }
    }
    let mut text = line.to_string();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::metrics::{Direction, Protocol, Security};

    fn labels() -> RpcLabels {
        RpcLabels {
            direction: Direction::Outbound,
            destination_service: "greeter.default.svc.cluster.local:50051".into(),
            grpc_service: "weft.test.Echo".into(),
            grpc_method: "Unary".into(),
            grpc_code: "DEADLINE_EXCEEDED".into(),
            fault_injected: false,
            connection_security: Security::Mtls,
            peer_identity: "unknown".into(),
            protocol: Protocol::Grpc,
        }
    }

    #[test]
    fn an_entry_carries_the_rpc_and_its_trace_context() {
        let mut headers = HeaderMap::new();
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert("traceparent", parent.parse().unwrap());
        let mut request = RequestContext::of(&headers, "greeter:50051", "/weft.test.Echo/Unary");
        request.arrived = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let labels = labels();
        let line = entry(
            &request,
            &Ending {
                labels: &labels,
                duration: Duration::from_micros(30_250),
                request_messages: 1,
                response_messages: 0,
                timeout_cause: Some(TimeoutCause::ClientDeadline),
            },
        );
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["traceparent"], parent);
        assert!(json.get("tracestate").is_none());
        assert_eq!(json["duration_ms"], 30.25);
        assert_eq!(json["grpc_code"], "DEADLINE_EXCEEDED");
        assert_eq!(json["timeout_cause"], "client_deadline");
        assert_eq!(json["connection_security"], "mtls");
        assert_eq!(json["path"], "/weft.test.Echo/Unary");
    }

    #[test]
    fn destinations_and_sampling() {
        assert_eq!(Destination::parse("off"), None);
        assert_eq!(Destination::parse("stderr"), Some(Destination::Stderr));
        assert_eq!(
            Destination::parse("/tmp/a.log"),
            Some(Destination::File("/tmp/a.log".into()))
        );
        let none = AccessLog::open(&Destination::Stderr, 0.0, Counter::default()).unwrap();
        assert!((0..1000).all(|_| !none.sampled()));
        let all = AccessLog::open(&Destination::Stderr, 1.0, Counter::default()).unwrap();
        assert!((0..1000).all(|_| all.sampled()));
        let some = AccessLog::open(&Destination::Stderr, 0.5, Counter::default()).unwrap();
        let sampled = (0..10_000).filter(|_| some.sampled()).count();
        assert!((4000..6000).contains(&sampled), "{sampled}");
    }

    #[test]
    fn entries_reach_the_file_and_a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let dropped = Counter::default();
        let log = AccessLog::open(&Destination::File(path.clone()), 1.0, dropped.clone()).unwrap();
        log.write("{\"a\":1}\n".into());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path)
            .unwrap_or_default()
            .is_empty()
        {
            assert!(std::time::Instant::now() < deadline, "nothing written");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        assert_eq!(dropped.get(), 0);
    }
}
