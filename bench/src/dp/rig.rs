//! Starting the data-plane rig: the Echo server, weft-controller (local mode) with the
//! benchmark config, and two instances each of weft-proxy and Envoy (the one-hop proxy,
//! which is also the outbound side of its pair, and the pair's inbound side). Proxies are
//! pinned to [`PROXY_CORE`]; everything else runs on [`LOAD_CORE`]. Every process binds
//! 127.0.0.1 and is stopped when the rig is dropped (also on error or panic).
//!
//! A proxy that does not come up (weft-proxy while its data path is unfinished) is kept as
//! an error with its log tail, and the rig runs without its topologies.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use weft_tests::process::{Process, free_port, wait_until};
use weft_tests::tools;

use super::envoy::{EnvoyPorts, bootstrap};
use crate::meshconfig::{self, DATA_NAMESPACE};

/// The core the load generator, server and controller run on.
pub const LOAD_CORE: u32 = 0;
/// The core proxies run on.
pub const PROXY_CORE: u32 = 1;
/// How long a component gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the release binaries are (the directory of the running `weft-bench`).
#[derive(Debug, Clone)]
pub struct Bins {
    pub dir: PathBuf,
}

impl Bins {
    pub fn beside_current_exe() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the running executable")?;
        let dir = exe
            .parent()
            .context("executable without a directory")?
            .to_path_buf();
        Ok(Self { dir })
    }

    /// A binary of the workspace, which must have been built.
    pub fn get(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        anyhow::ensure!(
            path.exists(),
            "{} is missing: run bench/run (it builds it)",
            path.display()
        );
        Ok(path)
    }
}

/// `program` pinned to `core` with taskset (affinity is inherited by all its threads).
pub fn pinned(core: u32, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", &core.to_string()]).arg(program);
    command
}

/// GETs `url`; the status, if anything answered.
pub fn http_status(url: &str) -> Option<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    agent.get(url).call().ok().map(|r| r.status().as_u16())
}

/// Waits until `process`'s admin answers 200 at `path`; fails at once if it exits.
pub fn wait_ready(process: &mut Process, admin: u16, path: &str) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{admin}{path}");
    let mut exited = None;
    let waited = wait_until(&format!("{} {url}", process.name()), READY_TIMEOUT, || {
        if let Err(err) = process.ensure_running() {
            exited = Some(err);
            return Ok(true);
        }
        Ok(http_status(&url) == Some(200))
    });
    if let Some(err) = exited {
        return Err(err);
    }
    waited.with_context(|| format!("log tail of {}:\n{}", process.name(), process.log_tail(20)))
}

/// A proxy pair: `hop` is the one-hop proxy and the pair's outbound side.
pub struct ProxyPair {
    pub hop: Process,
    pub hop_outbound: u16,
    pub inbound_side: Process,
}

/// Everything the data-plane benchmark runs against.
pub struct Rig {
    pub backend: SocketAddr,
    pub weft: Result<ProxyPair, String>,
    pub envoy: Result<ProxyPair, String>,
    // Declared last: dropped after the processes above.
    _server: Process,
    _controller: Process,
    pub work: tempfile::TempDir,
}

struct Ports {
    xds: u16,
    weft_inbound: u16,
    envoy_inbound: u16,
}

impl Rig {
    pub fn start(bins: &Bins) -> anyhow::Result<Self> {
        let work = tempfile::Builder::new().prefix("weft-bench-").tempdir()?;
        let dir = work.path();
        let backend = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut serve = pinned(LOAD_CORE, &bins.get("weft-bench")?);
        serve.args(["serve", "--addr", &backend.to_string()]);
        let mut server = Process::spawn("echo server", serve, &dir.join("server.log"))?;
        wait_until("the echo server", READY_TIMEOUT, || {
            server.ensure_running()?;
            Ok(std::net::TcpStream::connect(backend).is_ok())
        })?;

        let ports = Ports {
            xds: free_port(),
            weft_inbound: free_port(),
            envoy_inbound: free_port(),
        };
        let config = dir.join("config");
        std::fs::create_dir(&config)?;
        let yaml =
            meshconfig::dataplane_config(backend.port(), ports.weft_inbound, ports.envoy_inbound);
        meshconfig::write_atomically(&config, "bench.yaml", &yaml)?;
        let controller = start_controller(
            bins,
            &config,
            ports.xds,
            LOAD_CORE,
            &dir.join("controller.log"),
        )?;

        let weft = start_weft_pair(bins, dir, &ports, backend).map_err(|e| format!("{e:#}"));
        let envoy = start_envoy_pair(dir, &ports, backend).map_err(|e| format!("{e:#}"));
        Ok(Self {
            backend,
            weft,
            envoy,
            _server: server,
            _controller: controller.0,
            work,
        })
    }
}

/// Starts weft-controller in local mode on `config`, pinned to `core`; waits for /ready.
/// Returns it with its admin port.
pub fn start_controller(
    bins: &Bins,
    config: &Path,
    xds: u16,
    core: u32,
    log: &Path,
) -> anyhow::Result<(Process, u16)> {
    let admin = free_port();
    let mut command = pinned(core, &bins.get("weft-controller")?);
    command
        .arg("--config-dir")
        .arg(config)
        .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(["--log-level", "warn"]);
    let mut process = Process::spawn("weft-controller", command, log)?;
    wait_ready(&mut process, admin, "/ready")?;
    Ok((process, admin))
}

fn start_weft(
    bins: &Bins,
    dir: &Path,
    name: &str,
    xds: u16,
    outbound: u16,
    inbound: u16,
    app: SocketAddr,
) -> anyhow::Result<Process> {
    let admin = free_port();
    let mut command = pinned(PROXY_CORE, &bins.get("weft-proxy")?);
    command
        .args(["--xds-addr", &format!("http://127.0.0.1:{xds}")])
        .args(["--node-id", &format!("{name}.{DATA_NAMESPACE}")])
        .args(["--outbound-addr", &format!("127.0.0.1:{outbound}")])
        .args(["--inbound-addr", &format!("127.0.0.1:{inbound}")])
        .args(["--app-addr", &app.to_string()])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(["--worker-threads", "1", "--log-level", "warn"]);
    let mut process = Process::spawn(name, command, &dir.join(format!("{name}.log")))?;
    wait_ready(&mut process, admin, "/ready")?;
    wait_listening(&mut process, outbound)?;
    Ok(process)
}

fn start_weft_pair(
    bins: &Bins,
    dir: &Path,
    ports: &Ports,
    app: SocketAddr,
) -> anyhow::Result<ProxyPair> {
    let hop_outbound = free_port();
    let hop = start_weft(
        bins,
        dir,
        "weft-a",
        ports.xds,
        hop_outbound,
        free_port(),
        app,
    )?;
    let inbound_side = start_weft(
        bins,
        dir,
        "weft-b",
        ports.xds,
        free_port(),
        ports.weft_inbound,
        app,
    )?;
    Ok(ProxyPair {
        hop,
        hop_outbound,
        inbound_side,
    })
}

fn start_envoy(dir: &Path, ports: &EnvoyPorts) -> anyhow::Result<Process> {
    let name = ports
        .node_id
        .split('.')
        .next()
        .unwrap_or("envoy")
        .to_string();
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, bootstrap(ports))?;
    let mut command = pinned(PROXY_CORE, &tools::tool("envoy"));
    command.arg("--config-path").arg(&path).args([
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "-l",
        "warning",
    ]);
    let mut process = Process::spawn(&name, command, &dir.join(format!("{name}.log")))?;
    wait_ready(&mut process, ports.admin, "/ready")?;
    wait_listening(&mut process, ports.outbound)?;
    Ok(process)
}

fn start_envoy_pair(dir: &Path, ports: &Ports, app: SocketAddr) -> anyhow::Result<ProxyPair> {
    let hop_outbound = free_port();
    let hop = start_envoy(
        dir,
        &EnvoyPorts {
            node_id: format!("envoy-a.{DATA_NAMESPACE}"),
            admin: free_port(),
            outbound: hop_outbound,
            xds: ports.xds,
            inbound: None,
        },
    )?;
    let inbound_side = start_envoy(
        dir,
        &EnvoyPorts {
            node_id: format!("envoy-b.{DATA_NAMESPACE}"),
            admin: free_port(),
            outbound: free_port(),
            xds: ports.xds,
            inbound: Some((ports.envoy_inbound, app)),
        },
    )?;
    Ok(ProxyPair {
        hop,
        hop_outbound,
        inbound_side,
    })
}

/// Waits until `port` accepts connections (a listener configured over xDS).
fn wait_listening(process: &mut Process, port: u16) -> anyhow::Result<()> {
    let name = process.name().to_string();
    wait_until(
        &format!("{name} listening on {port}"),
        READY_TIMEOUT,
        || {
            process.ensure_running()?;
            Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        },
    )
    .with_context(|| format!("log tail of {name}:\n{}", process.log_tail(20)))
}
