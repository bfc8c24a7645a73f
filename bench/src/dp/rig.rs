//! Starting the data-plane rig: the Echo server, weft-controller (local mode) with the
//! benchmark config, and two pairs each of weft-proxy and Envoy: the plaintext pair (its
//! outbound side is also the one-hop proxy) and the mTLS pair (MtlsPolicy `Strict` on its
//! inbound side, certificates from the controller: weft-proxy asks with a CSR, Envoy gets
//! SDS secrets). The controller authenticates every proxy with a token file, as a mesh with
//! mTLS must; the plaintext pairs run under a namespace-wide `Disable`. Proxies are
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

use super::envoy::{EnvoyPorts, Inbound, bootstrap};
use crate::meshconfig::{self, DATA_NAMESPACE, MTLS_LABEL};

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
    /// A program weft-proxy runs under, with its arguments (a profiler; empty: none).
    pub proxy_wrapper: Vec<String>,
}

impl Bins {
    pub fn beside_current_exe() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the running executable")?;
        let dir = exe
            .parent()
            .context("executable without a directory")?
            .to_path_buf();
        Ok(Self {
            dir,
            proxy_wrapper: Vec::new(),
        })
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
    pub weft_mtls: Result<ProxyPair, String>,
    pub envoy_mtls: Result<ProxyPair, String>,
    // Declared last: dropped after the processes above.
    _server: Process,
    _controller: Process,
    pub work: tempfile::TempDir,
}

struct Ports {
    xds: u16,
    xds_tls: u16,
    weft_inbound: u16,
    envoy_inbound: u16,
    weft_mtls_inbound: u16,
    envoy_mtls_inbound: u16,
}

/// How proxies prove who they are and trust the controller: the token the controller's
/// token file maps to ServiceAccount `bench` of the data namespace, in a file for
/// weft-proxy; the directory the controller keeps its CA in (`ca.crt` is the root).
struct Identity {
    token: String,
    proxy_token_file: PathBuf,
    controller_token_file: PathBuf,
    state_dir: PathBuf,
}

impl Identity {
    fn create(dir: &Path) -> anyhow::Result<Self> {
        let token = "weft-bench-token".to_owned();
        let identity = Self {
            proxy_token_file: dir.join("proxy.token"),
            controller_token_file: dir.join("tokens"),
            state_dir: dir.join("state"),
            token,
        };
        std::fs::write(&identity.proxy_token_file, &identity.token)?;
        std::fs::write(
            &identity.controller_token_file,
            format!("{} {DATA_NAMESPACE}/bench\n", identity.token),
        )?;
        Ok(identity)
    }

    fn root(&self) -> PathBuf {
        self.state_dir.join("ca.crt")
    }

    /// The controller's flags: authenticate with the token file, keep the CA, serve TLS.
    fn controller_args(&self, xds_tls: u16) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "--token-file".into(),
            path(&self.controller_token_file),
            "--state-dir".into(),
            path(&self.state_dir),
            "--xds-tls-addr".into(),
            format!("127.0.0.1:{xds_tls}"),
        ]
    }
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
            xds_tls: free_port(),
            weft_inbound: free_port(),
            envoy_inbound: free_port(),
            weft_mtls_inbound: free_port(),
            envoy_mtls_inbound: free_port(),
        };
        let config = dir.join("config");
        std::fs::create_dir(&config)?;
        let yaml = meshconfig::dataplane_config(&[
            ("echo", backend.port()),
            ("echo-weft-pair", ports.weft_inbound),
            ("echo-envoy-pair", ports.envoy_inbound),
            ("echo-weft-mtls-pair", ports.weft_mtls_inbound),
            ("echo-envoy-mtls-pair", ports.envoy_mtls_inbound),
        ]);
        meshconfig::write_atomically(&config, "bench.yaml", &yaml)?;
        let identity = Identity::create(dir)?;
        let controller = start_controller(
            bins,
            &config,
            ports.xds,
            LOAD_CORE,
            &identity.controller_args(ports.xds_tls),
            &dir.join("controller.log"),
        )?;

        let started = |pair: anyhow::Result<ProxyPair>| pair.map_err(|e| format!("{e:#}"));
        let weft = started(start_weft_pair(
            bins, dir, &ports, &identity, backend, false,
        ));
        let envoy = started(start_envoy_pair(dir, &ports, &identity, backend, false));
        let weft_mtls = started(start_weft_pair(bins, dir, &ports, &identity, backend, true));
        let envoy_mtls = started(start_envoy_pair(dir, &ports, &identity, backend, true));
        Ok(Self {
            backend,
            weft,
            envoy,
            weft_mtls,
            envoy_mtls,
            _server: server,
            _controller: controller.0,
            work,
        })
    }
}

/// Starts weft-controller in local mode on `config` with `extra` flags, pinned to `core`;
/// waits for /ready. Returns it with its admin port.
pub fn start_controller(
    bins: &Bins,
    config: &Path,
    xds: u16,
    core: u32,
    extra: &[String],
    log: &Path,
) -> anyhow::Result<(Process, u16)> {
    let admin = free_port();
    let mut command = pinned(core, &bins.get("weft-controller")?);
    command
        .arg("--config-dir")
        .arg(config)
        .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(["--log-level", "warn"])
        .args(extra);
    let mut process = Process::spawn("weft-controller", command, log)?;
    wait_ready(&mut process, admin, "/ready")?;
    Ok((process, admin))
}

/// One weft-proxy; `xds` is its `--xds-addr`, `extra` its identity flags.
#[allow(clippy::too_many_arguments)]
fn start_weft(
    bins: &Bins,
    dir: &Path,
    name: &str,
    xds: &str,
    (outbound, inbound): (u16, u16),
    app: SocketAddr,
    extra: &[String],
) -> anyhow::Result<Process> {
    let admin = free_port();
    let proxy = bins.get("weft-proxy")?;
    let mut command = match bins.proxy_wrapper.split_first() {
        Some((wrapper, args)) => {
            let mut command = pinned(PROXY_CORE, Path::new(wrapper));
            command.args(args).arg(proxy);
            command
        }
        None => pinned(PROXY_CORE, &proxy),
    };
    command
        .args(["--xds-addr", xds])
        .args(["--node-id", &format!("{name}.{DATA_NAMESPACE}")])
        .args(["--outbound-addr", &format!("127.0.0.1:{outbound}")])
        .args(["--inbound-addr", &format!("127.0.0.1:{inbound}")])
        .args(["--app-addr", &app.to_string()])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(["--worker-threads", "1", "--log-level", "warn"])
        .args(extra);
    let mut process = Process::spawn(name, command, &dir.join(format!("{name}.log")))?;
    wait_ready(&mut process, admin, "/ready")?;
    wait_listening(&mut process, outbound)?;
    Ok(process)
}

/// The plaintext pair (weft-a → weft-b) over plaintext xDS, or the mTLS pair (weft-c →
/// weft-d, the inbound side labelled for `Strict`) over xDS with TLS.
fn start_weft_pair(
    bins: &Bins,
    dir: &Path,
    ports: &Ports,
    identity: &Identity,
    app: SocketAddr,
    mtls: bool,
) -> anyhow::Result<ProxyPair> {
    let token = identity.proxy_token_file.display().to_string();
    let (names, xds, inbound, mut extra) = if mtls {
        let root = identity.root().display().to_string();
        let xds = format!("https://127.0.0.1:{}", ports.xds_tls);
        let extra = vec!["--token-file".into(), token, "--xds-root-cert".into(), root];
        (("weft-c", "weft-d"), xds, ports.weft_mtls_inbound, extra)
    } else {
        let xds = format!("http://127.0.0.1:{}", ports.xds);
        let extra = vec!["--token-file".into(), token];
        (("weft-a", "weft-b"), xds, ports.weft_inbound, extra)
    };
    let hop_outbound = free_port();
    let hop = start_weft(
        bins,
        dir,
        names.0,
        &xds,
        (hop_outbound, free_port()),
        app,
        &extra,
    )?;
    if mtls {
        let (key, value) = MTLS_LABEL;
        extra.extend(["--workload-labels".into(), format!("{key}={value}")]);
    }
    let inbound_side = start_weft(
        bins,
        dir,
        names.1,
        &xds,
        (free_port(), inbound),
        app,
        &extra,
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

/// The plaintext pair (envoy-a → envoy-b, b's inbound listener static) or the mTLS pair
/// (envoy-c → envoy-d, ADS over TLS, d's inbound listener from the controller).
fn start_envoy_pair(
    dir: &Path,
    ports: &Ports,
    identity: &Identity,
    app: SocketAddr,
    mtls: bool,
) -> anyhow::Result<ProxyPair> {
    let (names, xds, xds_root, port) = if mtls {
        let names = ("envoy-c", "envoy-d");
        (
            names,
            ports.xds_tls,
            Some(identity.root()),
            ports.envoy_mtls_inbound,
        )
    } else {
        (("envoy-a", "envoy-b"), ports.xds, None, ports.envoy_inbound)
    };
    let envoy = |name: &str, outbound: u16, inbound: Option<Inbound>| EnvoyPorts {
        node_id: format!("{name}.{DATA_NAMESPACE}"),
        admin: free_port(),
        outbound,
        xds,
        inbound,
        token: identity.token.clone(),
        xds_root: xds_root.clone(),
    };
    let hop_outbound = free_port();
    let hop = start_envoy(dir, &envoy(names.0, hop_outbound, None))?;
    let (key, value) = MTLS_LABEL;
    let inbound = Inbound {
        port,
        app,
        mesh_labels: mtls.then(|| format!("{key}: {value}")),
    };
    let mut inbound_side = start_envoy(dir, &envoy(names.1, free_port(), Some(inbound)))?;
    if mtls {
        // The listener comes over xDS once the secrets it names have arrived.
        wait_listening(&mut inbound_side, port)?;
    }
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
