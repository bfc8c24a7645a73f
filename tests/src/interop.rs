//! The standard gRPC interop binaries from grpc-go (built by `tests/env/setup.sh`, server
//! patched to listen on 127.0.0.1 only). This module owns running the interop server on a
//! free loopback port, running the interop client for one test case against any address
//! (the server directly, or one or two proxies in front of it), and the list of cases that
//! need no cloud credentials and no special server.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::process::{self, Process};
use crate::tools;

/// Every grpc-go interop client case that runs against the plain interop server with no
/// cloud credentials (the list grpc-go's own `interop/interop_test.sh` runs). Left out:
/// the credential cases (`compute_engine_creds`, `service_account_creds`,
/// `jwt_token_creds`, `per_rpc_creds`, `oauth2_auth_token`, `google_default_credentials`,
/// `compute_engine_channel_credentials`: they need GCP credentials and TLS), and
/// `pick_first_unary` (it needs a server that fills `server_id`, which the Go interop
/// server does not; it is meant for Traffic Director backends).
pub const NO_CREDENTIAL_CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "special_status_message",
    "custom_metadata",
    "unimplemented_method",
    "unimplemented_service",
    "orca_per_rpc",
    "orca_oob",
    "rpc_soak",
    "channel_soak",
];

/// The client's service config for the ORCA cases: its test LB policy reads the load
/// reports (per-RPC trailers, or the out-of-band stream) and hands them to the test.
pub const ORCA_SERVICE_CONFIG: &str =
    r#"{"loadBalancingConfig": [{"test_backend_metrics_load_balancer": {}}]}"#;

/// How long the server gets to accept connections.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one client run may take by default (the soak cases take a few seconds).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts at starting the server (a free port can be taken before the server binds it).
const SERVER_START_ATTEMPTS: usize = 3;

/// A running grpc-go interop server (plaintext) on 127.0.0.1; stopped when dropped.
pub struct InteropServer {
    process: Process,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl InteropServer {
    /// Starts the server on a free loopback port and waits until it accepts TCP.
    pub fn start() -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..SERVER_START_ATTEMPTS {
            match Self::start_once(process::free_port()) {
                Ok(server) => return Ok(server),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("interop server never started")))
    }

    /// The server's address (127.0.0.1 and its port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The last `lines` lines the server printed, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Fails with the log tail if the server has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
    }

    fn start_once(port: u16) -> anyhow::Result<Self> {
        let dir = temp_dir("weft-interop-server-")?;
        let mut command = Command::new(tools::tool("interop_server"));
        command.arg(format!("--port={port}"));
        let log = dir.path().join("interop_server.log");
        let mut process = Process::spawn("interop_server", command, &log)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_listening(&mut process, addr)?;
        Ok(Self {
            process,
            addr,
            _dir: dir,
        })
    }
}

/// Waits until `addr` accepts TCP, failing at once (with the log tail) if `process` exits.
fn wait_listening(process: &mut Process, addr: SocketAddr) -> anyhow::Result<()> {
    let mut exited = None;
    process::wait_until(
        &format!("{} to listen on {addr}", process.name()),
        SERVER_START_TIMEOUT,
        || {
            if let Err(err) = process.ensure_running() {
                exited = Some(err);
                return Ok(true);
            }
            Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
        },
    )?;
    exited.map_or(Ok(()), Err)
}

/// One run of the grpc-go interop client: plaintext (`--use_tls=false`) unless told
/// otherwise with [`InteropClient::arg`].
#[derive(Debug, Clone)]
pub struct InteropClient {
    host: String,
    port: u16,
    args: Vec<String>,
    timeout: Duration,
}

impl InteropClient {
    /// A client for the server (or proxy) at `host:port`.
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.to_string(),
            port,
            args: Vec::new(),
            timeout: CLIENT_TIMEOUT,
        }
    }

    /// An extra flag, e.g. `--additional_metadata=k:v` or `--service_config_json=...`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// The authority (and TLS name) to use instead of `host` (`--server_host_override`).
    pub fn server_host_override(self, name: &str) -> Self {
        self.arg(&format!("--server_host_override={name}"))
    }

    /// How long a run may take before the client is killed (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs test case `case`; Ok when the client exits 0, else an error with its output.
    /// The ORCA cases get [`ORCA_SERVICE_CONFIG`] unless a service config was given.
    pub fn run(&self, case: &str) -> anyhow::Result<()> {
        let dir = temp_dir("weft-interop-client-")?;
        let log = dir.path().join("interop_client.log");
        let mut process = Process::spawn("interop_client", self.command(case), &log)?;
        let finished = process::wait_until(&format!("interop case {case}"), self.timeout, || {
            Ok(process.ensure_running().is_err())
        });
        let status = process.stop();
        let output = || read_log(&log);
        if let Err(err) = finished {
            anyhow::bail!("interop client killed: {err:#}; output:\n{}", output());
        }
        match status {
            Some(status) if status.success() => Ok(()),
            Some(status) => anyhow::bail!(
                "interop case {case} against {}:{} failed ({status}); output:\n{}",
                self.host,
                self.port,
                output()
            ),
            None => anyhow::bail!("interop case {case}: client had to be killed"),
        }
    }

    fn command(&self, case: &str) -> Command {
        let mut command = Command::new(tools::tool("interop_client"));
        command
            .arg(format!("--server_host={}", self.host))
            .arg(format!("--server_port={}", self.port))
            .arg(format!("--test_case={case}"))
            .arg("--use_tls=false");
        let has_service_config = self
            .args
            .iter()
            .any(|a| a.starts_with("--service_config_json"));
        if case.starts_with("orca_") && !has_service_config {
            command.arg(format!("--service_config_json={ORCA_SERVICE_CONFIG}"));
        }
        command.args(&self.args);
        command
    }
}

/// Runs interop case `case` (plaintext) against `host:port`; see [`InteropClient`].
pub fn run_interop_client(host: &str, port: u16, case: &str) -> anyhow::Result<()> {
    InteropClient::new(host, port).run(case)
}

fn temp_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("cannot create a temp dir")
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| format!("(cannot read {}: {err})", path.display()))
}
