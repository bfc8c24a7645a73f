//! The unary load generator: `h2load` (nghttp2) sending one gRPC call per HTTP/2 request
//! (a fixed, length-prefixed `weft.test.Echo/Unary` body with `content-type:
//! application/grpc`). Open loop with `--rps` per connection, closed loop without. h2load
//! counts HTTP status only, so a run also checks that every response carried a full 1 KB
//! reply (a gRPC error from a proxy is a short Trailers-Only response) — a correctness
//! probe with a real gRPC client runs before measuring (`probe.rs`).
//!
//! Here: the request body, the command line, and parsers for h2load's summary and its
//! per-request log (start µs, status, duration µs), which gives p99.9.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use weft_tests::backend::pb::EchoRequest;

/// Size of the request message and (echoed back) of the reply.
pub const PAYLOAD_BYTES: usize = 1024;

/// The gRPC method every unary call invokes.
pub const UNARY_PATH: &str = "/weft.test.Echo/Unary";

/// The unary request: a 1 KB message the backend echoes back.
pub fn unary_request() -> EchoRequest {
    EchoRequest {
        message: "x".repeat(PAYLOAD_BYTES),
        ..Default::default()
    }
}

/// One gRPC message as sent on the wire: flag byte 0, big-endian length, protobuf.
pub fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// How to load one target.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: SocketAddr,
    /// `:authority` (the service name a proxy routes by).
    pub authority: String,
    /// HTTP/2 connections.
    pub connections: u32,
    /// Concurrent streams per connection.
    pub streams: u32,
    /// Total requests per second (open loop), or `None` for closed loop.
    pub rps: Option<u32>,
    pub warmup: Duration,
    pub duration: Duration,
}

impl LoadSpec {
    /// The h2load command line (without the binary), writing its per-request log to `log`.
    pub fn args(&self, body: &Path, log: &Path) -> Vec<String> {
        let mut args = vec![
            format!("http://{}{UNARY_PATH}", self.target),
            "-c".into(),
            self.connections.to_string(),
            "-m".into(),
            self.streams.to_string(),
            "-t".into(),
            "1".into(),
            "-d".into(),
            body.display().to_string(),
            "-H".into(),
            format!(":authority: {}", self.authority),
            "-H".into(),
            "content-type: application/grpc".into(),
            "-H".into(),
            "te: trailers".into(),
            "--warm-up-time".into(),
            format!("{}ms", self.warmup.as_millis().max(1)),
            "-D".into(),
            format!("{}ms", self.duration.as_millis().max(1)),
            "--log-file".into(),
            log.display().to_string(),
        ];
        if let Some(rps) = self.rps {
            let per_connection = f64::from(rps) / f64::from(self.connections.max(1));
            args.push(format!("--rps={per_connection}"));
        }
        args
    }

    pub fn command(&self, h2load: &Path, body: &Path, log: &Path) -> Command {
        let mut command = Command::new(h2load);
        command.args(self.args(body, log));
        command
    }
}

/// h2load's summary of one run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    /// Measured duration (seconds) and requests per second it reports.
    pub seconds: f64,
    pub rps: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub errored: u64,
    /// Response DATA bytes received (gRPC messages and their 5-byte prefixes).
    pub data_bytes: u64,
}

/// Parses h2load's standard output.
pub fn parse_summary(out: &str) -> Option<Summary> {
    let mut summary = Summary::default();
    let mut seen = 0;
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            // "finished in 10.00s, 999.90 req/s, 1.05MB/s"
            let mut parts = rest.split(", ");
            summary.seconds = parts.next()?.strip_suffix('s')?.parse().ok()?;
            summary.rps = parts.next()?.strip_suffix(" req/s")?.parse().ok()?;
            seen += 1;
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            // "requests: 10000 total, 10000 started, 10000 done, 9999 succeeded, 1 failed, 1 errored, 0 timeout"
            for part in rest.split(", ") {
                let (count, what) = part.split_once(' ')?;
                let count: u64 = count.parse().ok()?;
                match what {
                    "succeeded" => summary.succeeded = count,
                    "failed" => summary.failed = count,
                    "errored" => summary.errored = count,
                    _ => {}
                }
            }
            seen += 1;
        } else if let Some(rest) = line.strip_prefix("traffic: ") {
            // "traffic: 10.52MB (11032123) total, 150.00KB (153600) headers (space savings 90.00%), 10.05MB (10540000) data"
            let data = rest.rsplit(", ").next()?.strip_suffix(" data")?;
            let open = data.find('(')?;
            summary.data_bytes = data[open + 1..data.find(')')?].parse().ok()?;
            seen += 1;
        }
    }
    (seen == 3).then_some(summary)
}

/// Latencies (µs) of the successful (HTTP 200) requests in h2load's `--log-file`, and the
/// count of other statuses.
pub fn parse_log(text: &str) -> (Vec<f64>, u64) {
    let mut latencies = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        let mut cols = line.split('\t');
        let (_start, status, micros) = (cols.next(), cols.next(), cols.next());
        match (
            status.map(str::trim),
            micros.and_then(|m| m.trim().parse::<f64>().ok()),
        ) {
            (Some("200"), Some(us)) => latencies.push(us),
            // Status 0: still in flight when h2load stopped.
            (Some("0"), _) => {}
            (Some(_), Some(_)) => bad += 1,
            _ => {}
        }
    }
    (latencies, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn frame_has_the_grpc_prefix() {
        let frame = grpc_frame(&unary_request());
        assert_eq!(frame[0], 0);
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(len, frame.len() - 5);
        assert!(len > PAYLOAD_BYTES);
        assert_eq!(EchoRequest::decode(&frame[5..]).unwrap(), unary_request());
    }

    #[test]
    fn open_loop_splits_the_rate_over_connections() {
        let spec = LoadSpec {
            target: "127.0.0.1:8080".parse().unwrap(),
            authority: "echo".into(),
            connections: 4,
            streams: 100,
            rps: Some(1000),
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
        };
        let args = spec.args(Path::new("/b"), Path::new("/l"));
        assert_eq!(args[0], "http://127.0.0.1:8080/weft.test.Echo/Unary");
        assert!(args.contains(&"--rps=250".to_string()), "{args:?}");
        assert!(args.contains(&":authority: echo".to_string()));
        assert!(args.contains(&"10000ms".to_string()));
        let closed = LoadSpec { rps: None, ..spec };
        assert!(
            !closed
                .args(Path::new("/b"), Path::new("/l"))
                .iter()
                .any(|a| a.starts_with("--rps"))
        );
    }

    #[test]
    fn parses_the_summary() {
        let out = "starting benchmark...\n\
            finished in 10.00s, 999.90 req/s, 1.05MB/s\n\
            requests: 10000 total, 10000 started, 10000 done, 9999 succeeded, 1 failed, 1 errored, 0 timeout\n\
            status codes: 9999 2xx, 0 3xx, 0 4xx, 0 5xx\n\
            traffic: 10.52MB (11032123) total, 150.00KB (153600) headers (space savings 90.00%), 10.05MB (10540000) data\n";
        let s = parse_summary(out).unwrap();
        assert_eq!((s.seconds, s.rps), (10.0, 999.9));
        assert_eq!((s.succeeded, s.failed, s.errored), (9999, 1, 1));
        assert_eq!(s.data_bytes, 10_540_000);
        assert!(parse_summary("finished in 1s, 1 req/s, 1B/s\n").is_none());
    }

    #[test]
    fn parses_the_log() {
        let (lat, bad) = parse_log(
            "1700000000000000\t200\t350\n1700000000000100\t503\t90\n\n1\t200\t410\n2\t0\t5\n",
        );
        assert_eq!(lat, vec![350.0, 410.0]);
        assert_eq!(bad, 1);
    }
}
