//! The mesh harness for weft-proxy's end-to-end tests: real processes on 127.0.0.1 — the
//! weft-controller in local mode (`--config-dir`, built once per test binary), any number of
//! weft-proxy sidecars connected to it, and test backends — plus the YAML the controller
//! reads, clients (tonic, and a raw HTTP/2 client that shows exactly what the proxy sent),
//! metric parsing and waits that poll `/debug/config`, `/metrics` or behaviour.
//!
//! A [`Mesh`] owns a temp dir (config dir and every log) and its processes; they stop when
//! it drops, and when a test fails the tails of the controller's and proxies' logs are
//! printed and the dir is kept. The harness blocks: from a tokio test (multi-thread flavor)
//! call it through [`blocking`] so backends on the runtime keep answering.

#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

pub mod raw_h2;
pub mod web;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http_body_util::BodyExt as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};
use weft_tests::backend::pb;
use weft_tests::process::{Process, free_port, wait_until};

pub use pb::echo_client::EchoClient;
pub use pb::{EchoReply, EchoRequest};

/// The proxy under test.
pub const PROXY_BIN: &str = env!("CARGO_BIN_EXE_weft-proxy");
/// The namespace every test object and proxy lives in.
pub const NS: &str = "default";
/// The port every test Service declares.
pub const SERVICE_PORT: u16 = 50051;
/// The authority a client uses to name Service `greeter`.
pub const GREETER: &str = "greeter.default.svc.cluster.local:50051";
/// The path of [`Proxy::warm`]'s request (which never reaches a backend).
pub const WARM_PATH: &str = "/weft.test.Warmup/Warm";
/// How long a process gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a config change gets to reach a proxy.
pub const CONFIG_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at starting a process on free ports (a port can be taken before it binds).
const START_ATTEMPTS: usize = 3;
/// Lines of each log printed when a test fails.
const LOG_TAIL: usize = 40;

/// Runs blocking harness code from a multi-thread tokio test.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

// ---------------------------------------------------------------- the controller binary

/// weft-controller, built once per test binary into the same target dir and profile as
/// this test (it lives in another package, so Cargo does not build it for us).
pub fn controller_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build_controller)
}

fn build_controller() -> PathBuf {
    weft_tests::workspace_bin::workspace_bin("weft-controller", "weft-controller")
}

/// Keeps the caller's environment from configuring a process behind the test's back: every
/// `WEFT_*` setting (each flag has one) and `RUST_LOG` (it overrides `--log-level`).
pub fn clean_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("WEFT_") || n == "RUST_LOG")
        {
            command.env_remove(name);
        }
    }
}

// ---------------------------------------------------------------- admin HTTP

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .new_agent()
}

fn http_get(agent: &ureq::Agent, addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let url = format!("http://{addr}{path}");
    let mut response = agent
        .get(&url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    Ok((status, response.body_mut().read_to_string()?))
}

// ---------------------------------------------------------------- the controller

/// weft-controller in local mode, reading the mesh's config dir.
pub struct Controller {
    pub process: Process,
    pub xds_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// xDS over TLS and the certificate service (an mTLS mesh only).
    pub tls_addr: Option<SocketAddr>,
    agent: ureq::Agent,
}

impl Controller {
    /// Starts the controller on `xds_addr` and `admin_addr` and waits until it is ready.
    fn start_on(
        config_dir: &Path,
        (xds_addr, admin_addr, tls_addr): (SocketAddr, SocketAddr, Option<SocketAddr>),
        identity: Option<&MeshIdentity>,
        log: &Path,
    ) -> anyhow::Result<Controller> {
        let mut command = Command::new(controller_bin());
        command
            .arg("--config-dir")
            .arg(config_dir)
            .args(["--xds-addr", &xds_addr.to_string()])
            .args(["--admin-addr", &admin_addr.to_string()])
            .args(["--log-level", "info"])
            .env("NO_COLOR", "1");
        if let (Some(identity), Some(tls_addr)) = (identity, tls_addr) {
            command
                .arg("--token-file")
                .arg(&identity.token_file)
                .arg("--state-dir")
                .arg(&identity.state_dir)
                .args(["--xds-tls-addr", &tls_addr.to_string()]);
        }
        clean_env(&mut command);
        let process = Process::spawn("weft-controller", command, log)?;
        let mut controller = Controller {
            process,
            xds_addr,
            admin_addr,
            tls_addr,
            agent: agent(),
        };
        let mut exited = None;
        wait_until("weft-controller /ready", READY_TIMEOUT, || {
            if let Err(err) = controller.process.ensure_running() {
                exited = Some(err);
                return Ok(true);
            }
            Ok(matches!(controller.admin("/ready"), Ok((200, _))))
        })?;
        exited.map_or(Ok(controller), Err)
    }

    /// What proxies are given as `--xds-addr`: `https://127.0.0.1:<tls port>` in an mTLS
    /// mesh, `http://127.0.0.1:<xds port>` otherwise.
    pub fn xds_url(&self) -> String {
        match self.tls_addr {
            Some(tls) => format!("https://{tls}"),
            None => format!("http://{}", self.xds_addr),
        }
    }

    pub fn admin(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(&self.agent, self.admin_addr, path)
    }

    /// `/debug/proxies`: every connected stream with, per type, versions sent and ACKed
    /// and the last NACK.
    pub fn debug_proxies(&self) -> Value {
        let (status, body) = self.admin("/debug/proxies").unwrap();
        assert_eq!(status, 200, "/debug/proxies answered {status}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The `/debug/proxies` entry of `node_id`, if connected.
    pub fn proxy_status(&self, node_id: &str) -> Option<Value> {
        self.debug_proxies()
            .as_array()?
            .iter()
            .find(|p| p["node_id"] == node_id)
            .cloned()
    }

    /// Kills the controller with SIGKILL (no goodbye to its proxies) and reaps it.
    pub fn kill(&mut self) {
        let _ = kill(Pid::from_raw(self.process.pid() as i32), Signal::SIGKILL);
        wait_until("weft-controller to die", Duration::from_secs(5), || {
            Ok(self.process.ensure_running().is_err())
        })
        .unwrap();
        self.process.stop();
    }
}

// ---------------------------------------------------------------- a proxy

/// How to start one weft-proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// `<pod>.<namespace>`
    pub node_id: String,
    /// Where the inbound listener forwards (default: a free port nothing listens on).
    pub app_addr: Option<SocketAddr>,
    pub drain_timeout: String,
    pub xds_protocol: String,
    /// Wait for `/ready` before returning (default true).
    pub wait_ready: bool,
    /// Whose token the proxy presents in an mTLS mesh (default `default`).
    pub service_account: String,
    pub extra_args: Vec<String>,
}

impl ProxyOptions {
    pub fn new(pod: &str) -> Self {
        Self {
            node_id: format!("{pod}.{NS}"),
            app_addr: None,
            drain_timeout: "5s".into(),
            xds_protocol: "auto".into(),
            wait_ready: true,
            service_account: "default".into(),
            extra_args: Vec::new(),
        }
    }

    pub fn service_account(mut self, name: &str) -> Self {
        self.service_account = name.into();
        self
    }

    /// The workload's labels, `key=value,...` (what MtlsPolicy selectors match).
    pub fn labels(mut self, labels: &str) -> Self {
        self.extra_args
            .extend(["--workload-labels".to_owned(), labels.to_owned()]);
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn app(mut self, addr: SocketAddr) -> Self {
        self.app_addr = Some(addr);
        self
    }

    pub fn drain_timeout(mut self, timeout: &str) -> Self {
        self.drain_timeout = timeout.into();
        self
    }

    pub fn xds_protocol(mut self, protocol: &str) -> Self {
        self.xds_protocol = protocol.into();
        self
    }

    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }
}

/// A running weft-proxy with its addresses.
pub struct Proxy {
    pub process: Process,
    pub node_id: String,
    pub outbound: SocketAddr,
    pub inbound: SocketAddr,
    pub admin_addr: SocketAddr,
    pub app: SocketAddr,
    agent: ureq::Agent,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Proxy {
    fn spawn(options: &ProxyOptions, xds_url: &str, log: &Path) -> anyhow::Result<Proxy> {
        let (outbound, inbound, admin_addr) = (
            loopback(free_port()),
            loopback(free_port()),
            loopback(free_port()),
        );
        let app = options.app_addr.unwrap_or_else(|| loopback(free_port()));
        let mut command = Command::new(PROXY_BIN);
        command
            .args(["--xds-addr", xds_url])
            .args(["--node-id", &options.node_id])
            .args(["--outbound-addr", &outbound.to_string()])
            .args(["--inbound-addr", &inbound.to_string()])
            .args(["--app-addr", &app.to_string()])
            .args(["--admin-addr", &admin_addr.to_string()])
            .args(["--drain-timeout", &options.drain_timeout])
            .args(["--xds-protocol", &options.xds_protocol])
            .args(["--log-level", "info"])
            .args(&options.extra_args)
            .env("NO_COLOR", "1");
        clean_env(&mut command);
        let process = Process::spawn(&options.node_id, command, log)?;
        let mut proxy = Proxy {
            process,
            node_id: options.node_id.clone(),
            outbound,
            inbound,
            admin_addr,
            app,
            agent: agent(),
        };
        // Its admin port answers quickly, or it failed to start (e.g. a port was taken).
        let mut exited = None;
        wait_until(
            &format!("{} admin endpoint", options.node_id),
            READY_TIMEOUT,
            || {
                if let Err(err) = proxy.process.ensure_running() {
                    exited = Some(err);
                    return Ok(true);
                }
                Ok(proxy.admin("/healthz").is_ok())
            },
        )?;
        exited.map_or(Ok(proxy), Err)
    }

    pub fn admin(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(&self.agent, self.admin_addr, path)
    }

    /// `/ready`'s status and text.
    pub fn ready(&self) -> (u16, String) {
        self.admin("/ready")
            .unwrap_or_else(|err| (0, format!("{err:#}")))
    }

    /// Waits until `/ready` answers 200; fails at once (with the log) if the proxy exits.
    pub fn wait_ready(&mut self) {
        let mut last = (0, String::new());
        let mut exited = None;
        let result = wait_until(&format!("{} /ready", self.node_id), READY_TIMEOUT, || {
            if let Err(err) = self.process.ensure_running() {
                exited = Some(err);
                return Ok(true);
            }
            last = self.ready();
            Ok(last.0 == 200)
        });
        if let Some(err) = exited {
            panic!("{err:#}");
        }
        if let Err(err) = result {
            panic!("{err:#}; last /ready: {} {}", last.0, last.1);
        }
    }

    /// `/debug/config` as JSON.
    pub fn debug_config(&self) -> Value {
        let (status, body) = self.admin("/debug/config").unwrap();
        assert_eq!(status, 200, "/debug/config answered {status}: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|err| panic!("/debug/config is not JSON ({err}): {body}"))
    }

    /// Makes the proxy fetch the routes and clusters of `authority`, as an app's first RPC
    /// there does (over Delta a proxy gets a Service's config on demand), without reaching
    /// any backend: one request that is not gRPC (weft-proxy holds it for the config like
    /// any RPC, then refuses to forward it), its answer ignored. Call from anywhere (it runs
    /// on a thread of its own).
    pub fn warm(&self, authority: &str) {
        let port = self.outbound.port();
        let request = async move {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let (mut sender, connection) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(stream),
            )
            .await?;
            tokio::spawn(connection);
            let request = http::Request::builder()
                .method("POST")
                .uri(format!("http://{authority}{WARM_PATH}"))
                .header("content-type", "application/x-weft-test-warm-up")
                .body(http_body_util::Empty::<bytes::Bytes>::new())?;
            let response = sender.send_request(request).await?;
            response.into_body().collect().await?;
            anyhow::Ok(())
        };
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the warm-up request");
                let _ = runtime.block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), request).await
                });
            });
        });
    }

    /// Waits until `/debug/config` satisfies `check`: the change is in force, whatever the
    /// machine's load does to call timings. The proxy is first made to fetch [`GREETER`]'s
    /// config ([`Self::warm`]), which most tests waiting on config call.
    pub fn wait_config(&self, what: &str, check: impl Fn(&Value) -> bool) {
        self.wait_config_for(GREETER, what, check);
    }

    /// [`Self::wait_config`] for a test whose calls go to `authority`.
    pub fn wait_config_for(&self, authority: &str, what: &str, check: impl Fn(&Value) -> bool) {
        self.warm(authority);
        let mut last = Value::Null;
        wait_until(
            &format!("{what} in {}'s /debug/config", self.node_id),
            CONFIG_TIMEOUT,
            || {
                last = self.debug_config();
                Ok(check(&last))
            },
        )
        .unwrap_or_else(|err| panic!("{err:#}\nlast /debug/config: {last:#}"));
    }

    /// Every sample of `/metrics`.
    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.admin("/metrics").unwrap();
        assert_eq!(status, 200, "/metrics answered {status}: {body}");
        Metrics::parse(&body)
    }

    /// Waits until the sum of `name` over series with `labels` satisfies `check`.
    pub fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        timeout: Duration,
        check: impl Fn(f64) -> bool,
    ) -> f64 {
        let mut last = None;
        wait_until(
            &format!("{name}{labels:?} on {}", self.node_id),
            timeout,
            || {
                let metrics = self.metrics();
                let value = metrics.sum(name, labels);
                last = Some(metrics);
                Ok(check(value))
            },
        )
        .unwrap_or_else(|err| {
            let text = last.map(|m| m.text).unwrap_or_default();
            panic!("{err:#}\n/metrics:\n{text}")
        });
        self.metrics().sum(name, labels)
    }

    /// Sends SIGTERM and returns at once.
    pub fn terminate(&self) {
        kill(Pid::from_raw(self.process.pid() as i32), Signal::SIGTERM).unwrap();
    }

    /// Waits up to `timeout` for the proxy to exit; its exit status, or None if it had to
    /// be killed.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let exited = wait_until(&format!("{} to exit", self.node_id), timeout, || {
            Ok(self.process.ensure_running().is_err())
        });
        let status = self.process.stop();
        exited.ok().and(status)
    }

    /// Whether a new TCP connection to the outbound listener is accepted.
    pub fn outbound_accepts(&self) -> bool {
        TcpStream::connect_timeout(&self.outbound, Duration::from_millis(200)).is_ok()
    }
}

// ---------------------------------------------------------------- the mesh

/// A temp dir with the controller's config dir and every log, the controller and proxies.
pub struct Mesh {
    pub dir: tempfile::TempDir,
    pub config_dir: PathBuf,
    /// Set by [`Mesh::with_mtls`]: proxies authenticate and get certificates.
    pub identity: Option<MeshIdentity>,
    pub controller: Option<Controller>,
    pub proxies: Vec<Proxy>,
    /// Every log written so far (name, path), printed when a test fails.
    logs: Vec<(String, PathBuf)>,
}

impl Default for Mesh {
    fn default() -> Self {
        Self::new()
    }
}

impl Mesh {
    /// An empty mesh: a config dir, nothing running.
    pub fn new() -> Mesh {
        let dir = tempfile::Builder::new()
            .prefix("weft-mesh-")
            .tempdir()
            .unwrap();
        let config_dir = dir.path().join("config");
        std::fs::create_dir(&config_dir).unwrap();
        Mesh {
            dir,
            config_dir,
            identity: None,
            controller: None,
            proxies: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// An empty mesh whose controller authenticates proxies with a token file (token
    /// `token-<sa>` is ServiceAccount `<sa>` of [`NS`]), keeps its CA in the mesh dir and
    /// serves xDS over TLS; proxies reach it over TLS with their token and get certificates.
    pub fn with_mtls() -> Mesh {
        let mut mesh = Mesh::new();
        let token_file = mesh.dir.path().join("tokens");
        let lines: String = ["default", "client", "server", "other"]
            .iter()
            .map(|sa| format!("{} {NS}/{sa}\n", MeshIdentity::token(sa)))
            .collect();
        std::fs::write(&token_file, lines).unwrap();
        mesh.identity = Some(MeshIdentity {
            token_file,
            state_dir: mesh.dir.path().join("state"),
        });
        mesh
    }

    /// The mesh's root certificate (an mTLS mesh whose controller has started).
    pub fn root_cert_path(&self) -> PathBuf {
        self.identity.as_ref().unwrap().state_dir.join("ca.crt")
    }

    /// Writes config file `name` the way an editor does (a new file renamed over the old).
    pub fn write(&self, name: &str, yaml: &str) {
        let tmp = self.config_dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.config_dir.join(name)).unwrap();
    }

    /// Removes config file `name`.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.config_dir.join(name)).unwrap();
    }

    /// Where the process `name` logs (a file in the mesh dir, printed when a test fails).
    pub fn log_path(&mut self, name: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.log"));
        if !self.logs.iter().any(|(_, p)| *p == path) {
            self.logs.push((name.to_string(), path.clone()));
        }
        path
    }

    /// Starts the controller on free ports and waits until it is ready.
    pub fn start_controller(&mut self) -> &Controller {
        let log = self.log_path("controller");
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let (xds, admin) = (loopback(free_port()), loopback(free_port()));
            let tls = self.identity.as_ref().map(|_| loopback(free_port()));
            let started = Controller::start_on(
                &self.config_dir,
                (xds, admin, tls),
                self.identity.as_ref(),
                &log,
            );
            match started {
                Ok(controller) => {
                    self.controller = Some(controller);
                    return self.controller();
                }
                Err(err) => last = Some(err),
            }
        }
        panic!("weft-controller did not start: {:#}", last.unwrap());
    }

    /// Starts the controller on given ports: again on the ports it had (after
    /// [`Controller::kill`]), or on ports proxies were already told about.
    /// In an mTLS mesh the TLS port is the one the last controller had.
    pub fn restart_controller(&mut self, xds: SocketAddr, admin: SocketAddr) -> &Controller {
        let log = self.log_path("controller");
        let tls = self.controller.as_ref().and_then(|c| c.tls_addr);
        let addrs = (xds, admin, tls);
        let controller =
            Controller::start_on(&self.config_dir, addrs, self.identity.as_ref(), &log)
                .unwrap_or_else(|err| panic!("weft-controller did not restart: {err:#}"));
        self.controller = Some(controller);
        self.controller()
    }

    pub fn controller(&self) -> &Controller {
        self.controller
            .as_ref()
            .expect("the controller is not running")
    }

    /// Starts a proxy connected to the controller (or to `xds_url` when the controller is
    /// not running yet) and, unless told not to, waits for `/ready`. Returns its index.
    pub fn start_proxy(&mut self, options: ProxyOptions) -> usize {
        let xds_url = self.controller().xds_url();
        self.start_proxy_at(options, &xds_url)
    }

    /// Starts a proxy pointed at `xds_url` (for a controller that is not up yet).
    pub fn start_proxy_at(&mut self, mut options: ProxyOptions, xds_url: &str) -> usize {
        let log = self.log_path(&options.node_id);
        if let Some(identity) = &self.identity {
            let token = self
                .dir
                .path()
                .join(format!("{}.token", options.service_account));
            std::fs::write(&token, MeshIdentity::token(&options.service_account)).unwrap();
            options.extra_args.extend([
                "--xds-root-cert".to_owned(),
                identity.state_dir.join("ca.crt").display().to_string(),
                "--token-file".to_owned(),
                token.display().to_string(),
            ]);
        }
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Proxy::spawn(&options, xds_url, &log) {
                Ok(proxy) => {
                    self.proxies.push(proxy);
                    last = None;
                    break;
                }
                Err(err) => last = Some(err),
            }
        }
        if let Some(err) = last {
            panic!("weft-proxy {} did not start: {err:#}", options.node_id);
        }
        let index = self.proxies.len() - 1;
        if options.wait_ready {
            self.proxies[index].wait_ready();
        }
        index
    }

    pub fn proxy(&self, index: usize) -> &Proxy {
        &self.proxies[index]
    }

    /// Prints the tail of every log (the controller's and each proxy's).
    pub fn print_logs(&self) {
        for (name, path) in &self.logs {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
            eprintln!(
                "----- {name} ({}; last {LOG_TAIL} lines)\n{tail}",
                path.display()
            );
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Stop processes first so the logs are complete.
            self.proxies.clear();
            self.controller = None;
            self.print_logs();
            self.dir.disable_cleanup(true);
            eprintln!("[mesh] kept {}", self.dir.path().display());
        }
    }
}

/// Where an mTLS mesh's controller finds its tokens and keeps its CA.
#[derive(Debug, Clone)]
pub struct MeshIdentity {
    pub token_file: PathBuf,
    pub state_dir: PathBuf,
}

impl MeshIdentity {
    /// The token that proves ServiceAccount `sa` of [`NS`].
    pub fn token(sa: &str) -> String {
        format!("token-{sa}")
    }
}

// ---------------------------------------------------------------- config YAML

/// A Service `name` in `default` with port `grpc`/50051 and one EndpointSlice per endpoint
/// (an EndpointSlice has one port list, and every test endpoint is on 127.0.0.1).
pub fn service_yaml(name: &str, endpoints: &[SocketAddr]) -> String {
    service_yaml_at(name, None, endpoints)
}

/// [`service_yaml`] with `spec.clusterIP` (as Kubernetes assigns it) when given.
pub fn service_yaml_at(name: &str, cluster_ip: Option<&str>, endpoints: &[SocketAddr]) -> String {
    let cluster_ip = cluster_ip.map_or(String::new(), |ip| format!("clusterIP: {ip}, "));
    let mut yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {NS}}}\n\
         spec: {{{cluster_ip}ports: [{{name: grpc, port: {SERVICE_PORT}}}]}}\n---\n"
    );
    for (i, addr) in endpoints.iter().enumerate() {
        yaml += &format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}-{i}, namespace: {NS}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: grpc, port: {port}}}]\n\
             endpoints: [{{addresses: [\"{ip}\"], conditions: {{ready: true}}}}]\n---\n",
            ip = addr.ip(),
            port = addr.port(),
        );
    }
    yaml
}

/// Services `greeter` (→ v1), `greeter-v1` (→ v1) and `greeter-v2` (→ v2).
pub fn greeter_services(v1: SocketAddr, v2: SocketAddr) -> String {
    service_yaml("greeter", &[v1])
        + &service_yaml("greeter-v1", &[v1])
        + &service_yaml("greeter-v2", &[v2])
}

/// GrpcRoute `name` on Service `greeter` with `rules` (YAML list items, indented 2).
pub fn route_yaml(name: &str, rules: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {{name: {name}, namespace: {NS}}}\n\
         spec:\n  parentRefs: [{{name: greeter, port: {SERVICE_PORT}}}]\n  rules:\n{rules}"
    )
}

/// GrpcRoute `greeter`: every RPC to Service greeter, UNAVAILABLE retried 3 times (5ms backoff).
pub fn retrying_route() -> String {
    route_yaml(
        "greeter",
        "  - backendRefs: [{name: greeter, port: 50051}]\n    \
         retry: {attempts: 3, codes: [UNAVAILABLE], backoff: 5ms}\n",
    )
}

/// The demo route: ServerStream → v2 only; Unary → v1 and v2 by weight.
pub fn weighted_route(v1_weight: u32, v2_weight: u32) -> String {
    route_yaml(
        "greeter",
        &format!(
            "  - matches: [{{method: {{service: weft.test.Echo, method: ServerStream}}}}]\n    \
             backendRefs: [{{name: greeter-v2, port: {SERVICE_PORT}}}]\n  \
             - matches: [{{method: {{service: weft.test.Echo, method: Unary}}}}]\n    \
             backendRefs:\n    \
             - {{name: greeter-v1, port: {SERVICE_PORT}, weight: {v1_weight}}}\n    \
             - {{name: greeter-v2, port: {SERVICE_PORT}, weight: {v2_weight}}}\n"
        ),
    )
}

/// GrpcRoute `greeter` that the controller accepts (its RE2 check passes and its estimate of
/// Envoy's RE2 program size, 97, is within Envoy's limit of 100) but weft-proxy cannot
/// compile: Rust's `\w` is Unicode, so the header regex `\w{3,24}` needs about 2 MiB, over
/// weft-proxy's 1 MiB regex limit. weft-proxy NACKs it; Envoy takes it. (An RE2 `\Q...\E`
/// method regex would not do: the controller's RE2 check rejects `\Q`.) Both rules send
/// Unary to `backend`, so calls show which routing is in force.
pub fn nacked_route(backend: &str) -> String {
    route_yaml(
        "greeter",
        &format!(
            "  - matches:\n    \
             - method: {{service: weft.test.Echo, method: Unary}}\n      \
             headers: [{{name: x-tenant, type: RegularExpression, value: '\\w{{3,24}}'}}]\n    \
             backendRefs: [{{name: {backend}, port: {SERVICE_PORT}}}]\n  \
             - matches: [{{method: {{service: weft.test.Echo, method: Unary}}}}]\n    \
             backendRefs: [{{name: {backend}, port: {SERVICE_PORT}}}]\n"
        ),
    )
}

/// FaultInjection `name` with `spec` (YAML mapping lines, indented 2).
pub fn fault_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: FaultInjection\n\
         metadata: {{name: {name}, namespace: {NS}}}\nspec:\n{spec}"
    )
}

// ---------------------------------------------------------------- reading /config_dump

/// Every route of every outbound virtual host.
pub fn routes(dump: &Value) -> Vec<Value> {
    dump["outbound_routes"]["virtual_hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|vhost| vhost["routes"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Whether any route carries a fault (delay or abort).
pub fn has_fault(dump: &Value) -> bool {
    routes(dump).iter().any(|r| !r["fault"].is_null())
}

/// The endpoints (`ip:port`) of every cluster whose name contains `service`.
pub fn endpoints_of(dump: &Value, service: &str) -> Vec<String> {
    dump["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"].as_str().is_some_and(|n| n.contains(service)))
        .flat_map(|c| c["endpoints"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

/// Per route, the weight of each backend cluster.
pub fn backend_weights(dump: &Value) -> Vec<BTreeMap<String, u64>> {
    routes(dump)
        .iter()
        .map(|route| {
            route["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    (
                        b["cluster"].as_str().unwrap_or_default().to_string(),
                        b["weight"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------- metrics

/// One sample of Prometheus text.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` answer (the text kept for failure messages).
#[derive(Debug, Clone)]
pub struct Metrics {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(parse_sample)
            .collect();
        Metrics {
            text: text.to_string(),
            samples,
        }
    }

    /// Samples named `name` whose labels include every `labels` pair.
    pub fn series(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|value| value == v))
            })
            .collect()
    }

    /// The sum of those samples (0 when there are none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name, labels)
            .iter()
            .fold(0.0, |sum, s| sum + s.value)
    }

    /// Whether any sample named `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let end = loop {
            while chars.next_if(|(_, c)| *c == ',' || *c == ' ').is_some() {}
            let (start, c) = chars.next()?;
            if c == '}' {
                break start + 1;
            }
            let mut key = String::from(c);
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.insert(key.trim().to_string(), value);
        };
        rest = &inner[end..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

// ---------------------------------------------------------------- clients

pub use weft_tests::backend::request;

/// A request the backend answers after `delay_ms`.
pub fn slow_request(message: &str, delay_ms: u32) -> EchoRequest {
    EchoRequest {
        message: message.into(),
        delay_ms,
        ..Default::default()
    }
}

/// A tonic request with a deadline (sent as `grpc-timeout`).
pub fn with_deadline<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}

/// An Echo client through the listener at `port`, naming `authority` in `:authority`.
pub async fn client(port: u16, authority: &str) -> EchoClient<Channel> {
    counted_client(port, authority).await.0
}

/// Like [`client`], also counting the TCP connections the channel opens (a proxy that
/// closes or drains the connection makes the channel open another).
pub async fn counted_client(port: u16, authority: &str) -> (EchoClient<Channel>, Arc<AtomicUsize>) {
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let connector = tower::service_fn(move |_: http::Uri| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    let channel = Endpoint::from_shared(format!("http://{authority}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(connector)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to 127.0.0.1:{port}: {err:?}"));
    (EchoClient::new(channel), connections)
}

/// One unary call, never hanging the test: a deadline of `deadline` is sent and the call is
/// abandoned 5 s after it.
pub async fn unary(
    client: &mut EchoClient<Channel>,
    message: EchoRequest,
    deadline: Duration,
) -> Result<EchoReply, tonic::Status> {
    let call = client.unary(with_deadline(message, deadline));
    match tokio::time::timeout(deadline + Duration::from_secs(5), call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(tonic::Status::unknown(
            "test: the call hung past its deadline",
        )),
    }
}

/// Calls Unary `calls` times; counts answers per instance (errors under `"error: <code>"`).
pub async fn unary_split(
    client: &mut EchoClient<Channel>,
    calls: usize,
) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..calls {
        let key = match unary(
            client,
            request(&format!("split {i}")),
            Duration::from_secs(10),
        )
        .await
        {
            Ok(reply) => reply.instance,
            Err(status) => format!("error: {:?}", status.code()),
        };
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

/// What the proxy sent back for one gRPC call, as bytes on the wire (HTTP/2 via hyper): the
/// HTTP status, headers, body and trailers. A Trailers-Only response has `grpc-status` in
/// `headers`, an empty body and no trailers.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<http::HeaderMap>,
    pub elapsed: Duration,
}

impl RawResponse {
    /// `grpc-status` from the trailers, else from the headers (Trailers-Only).
    pub fn grpc_status(&self) -> Option<String> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .map(|v| v.to_str().unwrap_or("<not text>").to_string())
    }

    /// `grpc-message`, percent-decoded.
    pub fn grpc_message(&self) -> Option<String> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-message"))
            .or_else(|| self.headers.get("grpc-message"))
            .map(|v| percent_decode(v.as_bytes()))
    }

    /// Whether this is a Trailers-Only response (HTTP 200, status in the headers, no body,
    /// no trailers).
    pub fn is_trailers_only(&self) -> bool {
        self.status == 200
            && self.headers.contains_key("grpc-status")
            && self.body.is_empty()
            && self.trailers.is_none()
    }
}

fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One unary Echo call over a fresh HTTP/2 connection to `port`, built by hand so nothing
/// on the client side enforces deadlines or rewrites the answer. `headers` are added to the
/// request (e.g. `grpc-timeout`).
pub async fn raw_unary(
    port: u16,
    authority: &str,
    path: &str,
    message: &EchoRequest,
    headers: &[(&str, &str)],
) -> anyhow::Result<RawResponse> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await?;
    tokio::spawn(connection);
    let encoded = prost::Message::encode_to_vec(message);
    let mut body = vec![0u8];
    body.extend((encoded.len() as u32).to_be_bytes());
    body.extend(encoded);
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("http://{authority}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(20), sender.send_request(request))
        .await
        .context("no response headers within 20 s")??;
    let (parts, incoming) = response.into_parts();
    let collected = tokio::time::timeout(Duration::from_secs(20), incoming.collect())
        .await
        .context("response body did not end within 20 s")??;
    let trailers = collected.trailers().cloned();
    let body = collected.to_bytes().to_vec();
    Ok(RawResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
        trailers,
        elapsed: started.elapsed(),
    })
}

// ---------------------------------------------------------------- waiting

/// Polls the async `check` every 50 ms until it is true, up to `timeout`.
pub async fn wait_async<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
