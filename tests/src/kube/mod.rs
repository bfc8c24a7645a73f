//! A real Kubernetes control plane for tests: one etcd and one kube-apiserver on free
//! loopback ports, with a throwaway PKI (CA, serving cert, `system:masters` admin client
//! cert, service-account signing key) generated here with rcgen. It owns a temp dir
//! holding etcd's data, the certificates, the process logs and an admin kubeconfig, and
//! it stops both processes (apiserver first, then etcd) when dropped, panics included
//! (then the temp dir is kept, and its path printed, so the logs can be read).
//!
//! RBAC is on and TokenRequest/TokenReview work; there is no controller-manager, so no
//! `default` ServiceAccount, garbage collection or namespace deletion.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tempfile::TempDir;

mod pki;

use pki::Pki;

use crate::process::{Process, free_port, wait_until};
use crate::tools::tool;

/// How long etcd gets to report healthy.
const ETCD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the apiserver gets to become ready (it is slow on a busy 2-core machine).
const APISERVER_TIMEOUT: Duration = Duration::from_secs(120);
/// The issuer and audience of service-account tokens.
pub const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const SERVICE_CIDR: &str = "10.96.0.0/16";
/// Subject of the admin client certificate (`system:masters` bypasses RBAC).
pub const ADMIN_USER: &str = "weft-test-admin";

/// A running etcd + kube-apiserver pair. Dropping it stops both.
pub struct KubeCluster {
    apiserver: Option<Process>,
    etcd: Process,
    etcd_url: String,
    apiserver_port: u16,
    pki: Pki,
    kubeconfig: PathBuf,
    dir: TempDir,
}

impl KubeCluster {
    /// Starts etcd and kube-apiserver and waits until the apiserver's `/readyz` answers
    /// 200 and the `default` namespace exists. Blocking (it polls with sleeps); call it
    /// from a plain `#[test]` or at the top of a `#[tokio::test]`.
    pub fn start() -> anyhow::Result<Self> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("weft-kube-")
            .tempdir()
            .context("cannot create the cluster temp dir")?;
        let pki = Pki::generate(dir.path())?;
        let etcd_port = free_port();
        let etcd = start_etcd(dir.path(), etcd_port)?;
        let mut cluster = Self {
            apiserver: None,
            etcd,
            etcd_url: format!("http://127.0.0.1:{etcd_port}"),
            apiserver_port: free_port(),
            kubeconfig: dir.path().join("kubeconfig"),
            pki,
            dir,
        };
        cluster.wait_etcd_healthy()?;
        cluster.write_kubeconfig()?;
        cluster.start_apiserver()?;
        tracing::info!(
            "kube cluster ready in {:?} at {}",
            started.elapsed(),
            cluster.server_url()
        );
        Ok(cluster)
    }

    /// `https://127.0.0.1:<port>` of the apiserver.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    /// The temp dir owned by the cluster (logs, certs, kubeconfig); tests may add files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin kubeconfig (certificate data embedded), for `kubectl` and kube-rs.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The cluster CA certificate (PEM file); it signs the serving and admin certs.
    pub fn ca_cert_path(&self) -> &Path {
        &self.pki.ca_cert
    }

    /// A kube-rs client authenticated as the admin (`system:masters`).
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("cannot read {}", self.kubeconfig.display()))?;
        client_from(kubeconfig).await
    }

    /// A kube-rs client authenticated with a bearer `token` (for example a
    /// service-account token), subject to RBAC.
    pub async fn client_with_token(&self, token: &str) -> anyhow::Result<kube::Client> {
        let user = serde_json::json!({ "token": token });
        let kubeconfig = serde_json::from_value(self.kubeconfig_json(user))
            .context("cannot build a token kubeconfig")?;
        client_from(kubeconfig).await
    }

    /// `kubectl --kubeconfig <admin kubeconfig>`, ready for more arguments.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(tool("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Runs kubectl with `args` and returns its stdout; fails with its stderr.
    pub fn kubectl_ok<I, S>(&self, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.kubectl();
        command.args(args);
        let output = command
            .output()
            .with_context(|| format!("cannot run {command:?}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        anyhow::ensure!(
            output.status.success(),
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            stdout
        );
        Ok(stdout)
    }

    /// Stops the apiserver (etcd keeps running). A no-op when it is already stopped.
    pub fn stop_apiserver(&mut self) {
        if let Some(mut apiserver) = self.apiserver.take() {
            let started = Instant::now();
            let status = apiserver.stop();
            tracing::info!(
                "kube-apiserver stopped in {:?} ({status:?})",
                started.elapsed()
            );
        }
    }

    /// Stops the apiserver if it runs, then starts it again on the same port with the same
    /// certificates and etcd, and waits until it is ready.
    pub fn restart_apiserver(&mut self) -> anyhow::Result<()> {
        self.stop_apiserver();
        self.start_apiserver()
    }

    /// Fails with the log tail of whichever process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.etcd.ensure_running()?;
        match self.apiserver.as_mut() {
            Some(apiserver) => apiserver.ensure_running(),
            None => anyhow::bail!("kube-apiserver is stopped"),
        }
    }

    fn wait_etcd_healthy(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/health", self.etcd_url);
        wait_while_running(&mut self.etcd, "etcd /health", ETCD_TIMEOUT, || {
            let body = ureq::get(&url).call()?.body_mut().read_to_string()?;
            Ok(body.contains(r#""health":"true""#))
        })
    }

    fn start_apiserver(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(tool("kube-apiserver"));
        command.args(self.apiserver_args());
        let log = self.dir.path().join("kube-apiserver.log");
        self.apiserver = Some(Process::spawn("kube-apiserver", command, &log)?);
        self.wait_apiserver_ready()
    }

    fn apiserver_args(&self) -> Vec<String> {
        let dir = self.dir.path();
        let path = |p: &Path| p.display().to_string();
        vec![
            format!("--etcd-servers={}", self.etcd_url),
            format!("--secure-port={}", self.apiserver_port),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--cert-dir={}", path(&dir.join("apiserver-certs"))),
            format!("--tls-cert-file={}", path(&self.pki.serving_cert)),
            format!("--tls-private-key-file={}", path(&self.pki.serving_key)),
            format!("--client-ca-file={}", path(&self.pki.ca_cert)),
            "--authorization-mode=RBAC".into(),
            format!("--service-account-issuer={SA_ISSUER}"),
            format!("--api-audiences={SA_ISSUER}"),
            format!(
                "--service-account-key-file={}",
                path(&self.pki.sa_public_key)
            ),
            format!(
                "--service-account-signing-key-file={}",
                path(&self.pki.sa_private_key)
            ),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            // Every request's user, verb and resource (no bodies), for tests that check
            // which API calls a component makes (its RBAC).
            format!("--audit-policy-file={}", path(&self.audit_policy())),
            format!("--audit-log-path={}", path(&self.audit_log_path())),
            "--audit-log-format=json".into(),
            "--audit-log-mode=blocking".into(),
            "--v=1".into(),
        ]
    }

    /// The apiserver's audit log (JSON lines, one per request at the `Metadata` level).
    pub fn audit_log_path(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    fn audit_policy(&self) -> PathBuf {
        let path = self.dir.path().join("audit-policy.yaml");
        if !path.exists() {
            let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n\
                          rules:\n- level: Metadata\n";
            if let Err(err) = std::fs::write(&path, policy) {
                tracing::warn!(%err, "cannot write the audit policy");
            }
        }
        path
    }

    fn wait_apiserver_ready(&mut self) -> anyhow::Result<()> {
        let agent = self.admin_http_agent()?;
        let base = self.server_url();
        let Some(apiserver) = self.apiserver.as_mut() else {
            anyhow::bail!("kube-apiserver is not started");
        };
        let what = "kube-apiserver /readyz and namespace default";
        wait_while_running(apiserver, what, APISERVER_TIMEOUT, || {
            agent.get(format!("{base}/readyz")).call()?;
            agent
                .get(format!("{base}/api/v1/namespaces/default"))
                .call()?;
            Ok(true)
        })
    }

    /// A blocking HTTP client trusting the cluster CA and presenting the admin cert.
    fn admin_http_agent(&self) -> anyhow::Result<ureq::Agent> {
        use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
        let ca = Certificate::from_pem(self.pki.ca_pem.as_bytes()).context("CA cert PEM")?;
        let cert =
            Certificate::from_pem(self.pki.admin_cert_pem.as_bytes()).context("admin cert PEM")?;
        let key =
            PrivateKey::from_pem(self.pki.admin_key_pem.as_bytes()).context("admin key PEM")?;
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&[ca]))
            .client_cert(Some(ClientCert::new_with_certs(&[cert], key)))
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(Duration::from_secs(5)))
            .build();
        Ok(config.into())
    }

    fn write_kubeconfig(&self) -> anyhow::Result<()> {
        let user = serde_json::json!({
            "client-certificate-data": BASE64.encode(&self.pki.admin_cert_pem),
            "client-key-data": BASE64.encode(&self.pki.admin_key_pem),
        });
        let text = serde_json::to_string_pretty(&self.kubeconfig_json(user))?;
        std::fs::write(&self.kubeconfig, text)
            .with_context(|| format!("cannot write {}", self.kubeconfig.display()))
    }

    /// A kubeconfig (JSON is valid YAML) for this cluster with the given `user` entry.
    fn kubeconfig_json(&self, user: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "weft-test", "cluster": {
                "server": self.server_url(),
                "certificate-authority-data": BASE64.encode(&self.pki.ca_pem),
            }}],
            "users": [{ "name": "weft-test-user", "user": user }],
            "contexts": [{ "name": "weft-test", "context": {
                "cluster": "weft-test", "user": "weft-test-user", "namespace": "default",
            }}],
            "current-context": "weft-test",
        })
    }
}

impl Drop for KubeCluster {
    /// The apiserver goes first so it never runs against a stopped etcd. When the test is
    /// panicking, the temp dir (logs, certs, kubeconfig) is kept for a post-mortem.
    fn drop(&mut self) {
        self.stop_apiserver();
        self.etcd.stop();
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!("kube cluster files kept in {}", self.dir.path().display());
        }
    }
}

/// Like `wait_until`, but fails at once, with the log tail, if `process` exits.
fn wait_while_running(
    process: &mut Process,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let mut exited = None;
    wait_until(what, timeout, || match process.ensure_running() {
        Ok(()) => check(),
        Err(err) => {
            exited = Some(err);
            Ok(true)
        }
    })?;
    exited.map_or(Ok(()), Err)
}

async fn client_from(kubeconfig: Kubeconfig) -> anyhow::Result<kube::Client> {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("cannot load the kubeconfig")?;
    kube::Client::try_from(config).context("cannot build a kube client")
}

/// Starts a single-member etcd listening only on 127.0.0.1 (client `port`, peer port free).
fn start_etcd(dir: &Path, port: u16) -> anyhow::Result<Process> {
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let mut command = Command::new(tool("etcd"));
    command
        .arg("--name=weft-test")
        .arg(format!("--data-dir={}", dir.join("etcd-data").display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=weft-test={peer}"))
        .arg("--initial-cluster-state=new")
        .arg("--unsafe-no-fsync=true")
        .arg("--log-level=warn");
    Process::spawn("etcd", command, &dir.join("etcd.log"))
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}
