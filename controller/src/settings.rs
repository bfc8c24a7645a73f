//! Command-line flags and environment variables of `weft-controller`. Every setting has a
//! flag and a `WEFT_*` environment variable; defaults are the ports in the README (Ports).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "weft-controller",
    version,
    about = "weft control plane: serves Envoy v3 xDS (ADS) built from weft resources"
)]
pub struct Settings {
    /// Read resources from this directory of YAML files (local mode) instead of Kubernetes.
    #[arg(long, env = "WEFT_CONFIG_DIR", conflicts_with = "kubeconfig")]
    pub config_dir: Option<PathBuf>,

    /// Kubeconfig file for Kubernetes mode; without it, in-cluster config or $KUBECONFIG is used.
    #[arg(long, env = "WEFT_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Address of the plaintext xDS (ADS) gRPC server, or `off`.
    #[arg(long, env = "WEFT_XDS_ADDR", default_value = "127.0.0.1:15010", value_parser = parse_optional_addr)]
    pub xds_addr: MaybeAddr,

    /// Address of the xDS server over TLS (also serves certificates to proxies), or `off`.
    #[arg(long, env = "WEFT_XDS_TLS_ADDR", default_value = "127.0.0.1:15012", value_parser = parse_optional_addr)]
    pub xds_tls_addr: MaybeAddr,

    /// DNS names the xDS serving certificate carries (besides the TLS address's IP), comma
    /// separated.
    #[arg(
        long,
        env = "WEFT_XDS_DNS_NAMES",
        value_delimiter = ',',
        default_value = "localhost"
    )]
    pub xds_dns_names: Vec<String>,

    /// The SPIFFE trust domain of the mesh's identities.
    #[arg(long, env = "WEFT_TRUST_DOMAIN", default_value = weft_common::spiffe::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,

    /// How long workload certificates live (they are renewed at about half).
    #[arg(long, env = "WEFT_CERT_LIFETIME", default_value = "24h", value_parser = parse_lifetime)]
    pub cert_lifetime: Duration,

    /// Local mode: where the generated CA (`ca.crt`, `ca.key`) and the mesh's members
    /// (`members.json`, remembered across restarts) are kept.
    #[arg(long, env = "WEFT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Use this CA instead of generating one: a directory with `tls.crt`, `tls.key` and
    /// `ca.crt` (cert-manager's shape; a root or an intermediate).
    #[arg(long, env = "WEFT_CA_DIR", conflicts_with = "ca_secret")]
    pub ca_dir: Option<PathBuf>,

    /// Kubernetes mode: use this Secret (in --namespace, cert-manager's shape) as the CA
    /// instead of generating `weft-ca`.
    #[arg(long, env = "WEFT_CA_SECRET")]
    pub ca_secret: Option<String>,

    /// Kubernetes mode: the controller's own namespace (where the CA Secret lives).
    #[arg(long, env = "WEFT_NAMESPACE", default_value = "weft-system")]
    pub namespace: String,

    /// Local mode: a file of `<token> <namespace>/<service-account>` lines that proxies
    /// authenticate with (standing in for Kubernetes' TokenReview). Without it, local mode
    /// serves config to any proxy and issues no certificates.
    #[arg(long, env = "WEFT_TOKEN_FILE", conflicts_with = "kubeconfig")]
    pub token_file: Option<PathBuf>,

    /// The audience proxies' ServiceAccount tokens must be minted for.
    #[arg(long, env = "WEFT_TOKEN_AUDIENCE", default_value = crate::auth::DEFAULT_AUDIENCE)]
    pub token_audience: String,

    /// Address of the sidecar-injection webhook (HTTPS, certificate from the mesh CA), or
    /// `off`. Needs --injection-config and authenticated proxies (the CA).
    #[arg(long, env = "WEFT_WEBHOOK_ADDR", default_value = "off", value_parser = parse_optional_addr)]
    pub webhook_addr: MaybeAddr,
    /// DNS names the webhook's certificate carries (the webhook Service's
    /// `<name>.<namespace>.svc`), comma separated.
    #[arg(long, env = "WEFT_WEBHOOK_DNS_NAMES", value_delimiter = ',')]
    pub webhook_dns_names: Vec<String>,
    /// What injected sidecars look like (YAML or JSON; the chart renders it from its values).
    #[arg(long, env = "WEFT_INJECTION_CONFIG")]
    pub injection_config: Option<PathBuf>,
    /// Kubernetes mode: the MutatingWebhookConfiguration whose `caBundle` the controller keeps
    /// equal to the mesh's trust bundle.
    #[arg(long, env = "WEFT_WEBHOOK_CONFIG_NAME")]
    pub webhook_config_name: Option<String>,
    /// Kubernetes mode: the Lease (in --namespace) whose holder writes resource status;
    /// every replica serves proxies, one writes status.
    #[arg(
        long,
        env = "WEFT_LEASE_NAME",
        default_value = "weft-controller-leader"
    )]
    pub lease_name: String,
    /// The xDS servers ping every proxy this often over HTTP/2 and drop one that answers no
    /// ping within as long again, so a vanished proxy (its node gone, its network cut)
    /// leaves the registry and the status counts within twice this.
    #[arg(long, env = "WEFT_XDS_KEEPALIVE", default_value = "10s", value_parser = parse_keepalive)]
    pub xds_keepalive: Duration,

    /// How long the leader's Lease lasts without renewal: a dead leader is replaced after
    /// about this long.
    #[arg(long, env = "WEFT_LEASE_DURATION", default_value = "15s", value_parser = parse_lease_duration)]
    pub lease_duration: Duration,
    /// This replica's name in the Lease (the pod name in a cluster); default
    /// `<hostname>-<pid>`.
    #[arg(long, env = "WEFT_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Address of the admin server (/ready, /metrics, /debug/proxies).
    #[arg(long, env = "WEFT_ADMIN_ADDR", default_value = "127.0.0.1:15014")]
    pub admin_addr: SocketAddr,

    /// Instead of running: ask this URL (a controller's `http://…/ready`) and exit 0 when it
    /// answers 200 (the chart's `helm test`).
    #[arg(long, value_name = "URL")]
    pub check_ready: Option<String>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `weft_controller=debug`.
    #[arg(long, env = "WEFT_LOG", default_value = "warn")]
    pub log_level: String,
}

/// A listen address, or none (`off`) for a server that should not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeAddr(pub Option<SocketAddr>);

fn parse_optional_addr(value: &str) -> Result<MaybeAddr, String> {
    if value == "off" {
        return Ok(MaybeAddr(None));
    }
    value
        .parse()
        .map(|addr| MaybeAddr(Some(addr)))
        .map_err(|_| format!("{value:?}: expected HOST:PORT or off"))
}

/// A certificate lifetime: a duration (see `weft_common::time`) of at least 10s.
fn parse_lifetime(value: &str) -> Result<Duration, String> {
    match weft_common::time::parse_duration(value)? {
        d if d < Duration::from_secs(10) => Err(format!("{value:?}: at least 10s")),
        d => Ok(d),
    }
}

/// An xDS keepalive: at least 1s (pings more often than that are noise).
fn parse_keepalive(value: &str) -> Result<Duration, String> {
    match weft_common::time::parse_duration(value)? {
        d if d < Duration::from_secs(1) => Err(format!("{value:?}: at least 1s")),
        d => Ok(d),
    }
}

/// A Lease duration: whole seconds (the Lease stores seconds), at least 2s.
fn parse_lease_duration(value: &str) -> Result<Duration, String> {
    match weft_common::time::parse_duration(value)? {
        d if d < Duration::from_secs(2) => Err(format!("{value:?}: at least 2s")),
        d if d.subsec_nanos() != 0 => Err(format!("{value:?}: whole seconds")),
        d => Ok(d),
    }
}

/// Where resources come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceMode {
    /// A directory of YAML files, reloaded on change.
    Local(PathBuf),
    /// The Kubernetes API, through an explicit kubeconfig or the ambient configuration.
    Kubernetes(Option<PathBuf>),
}

impl fmt::Display for SourceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceMode::Local(dir) => write!(f, "local mode, config dir {}", dir.display()),
            SourceMode::Kubernetes(Some(path)) => {
                write!(f, "Kubernetes mode, kubeconfig {}", path.display())
            }
            SourceMode::Kubernetes(None) => write!(f, "Kubernetes mode, ambient kubeconfig"),
        }
    }
}

/// A setting that parses but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--config-dir {0}: not a readable directory")]
    ConfigDirMissing(PathBuf),
    #[error("--kubeconfig {0}: file does not exist")]
    KubeconfigMissing(PathBuf),
}

impl Settings {
    /// `--replica-id`, or `<hostname>-<pid>` (unique among replicas on one machine too).
    pub fn replica_id(&self) -> String {
        if let Some(id) = &self.replica_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "weft-controller".into());
        format!("{host}-{}", std::process::id())
    }

    /// Checks the paths named by flags and says which source mode they select.
    pub fn source_mode(&self) -> Result<SourceMode, SettingsError> {
        if let Some(dir) = &self.config_dir {
            if !dir.is_dir() {
                return Err(SettingsError::ConfigDirMissing(dir.clone()));
            }
            return Ok(SourceMode::Local(dir.clone()));
        }
        if let Some(path) = &self.kubeconfig
            && !path.is_file()
        {
            return Err(SettingsError::KubeconfigMissing(path.clone()));
        }
        Ok(SourceMode::Kubernetes(self.kubeconfig.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dir_selects_local_mode() {
        let dir = std::env::temp_dir();
        let settings =
            Settings::try_parse_from(["weft-controller", "--config-dir", dir.to_str().unwrap()])
                .unwrap();
        assert_eq!(settings.source_mode().unwrap(), SourceMode::Local(dir));
    }

    #[test]
    fn missing_config_dir_names_the_flag() {
        let settings =
            Settings::try_parse_from(["weft-controller", "--config-dir", "/no/such/dir"]).unwrap();
        let err = settings.source_mode().unwrap_err().to_string();
        assert!(err.contains("--config-dir /no/such/dir"), "{err}");
    }

    #[test]
    fn config_dir_and_kubeconfig_conflict() {
        let err = Settings::try_parse_from([
            "weft-controller",
            "--config-dir",
            "/tmp",
            "--kubeconfig",
            "/k",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn servers_can_be_turned_off_and_lifetimes_parse() {
        let settings = Settings::try_parse_from([
            "weft-controller",
            "--xds-addr",
            "off",
            "--cert-lifetime",
            "20s",
        ])
        .unwrap();
        assert_eq!(settings.xds_addr, MaybeAddr(None));
        assert_eq!(
            settings.xds_tls_addr,
            MaybeAddr(Some("127.0.0.1:15012".parse().unwrap()))
        );
        assert_eq!(settings.cert_lifetime, Duration::from_secs(20));
        assert_eq!(settings.trust_domain, "cluster.local");
        for bad in ["5s", "1d", "h"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_address_is_a_parse_error() {
        let err =
            Settings::try_parse_from(["weft-controller", "--xds-addr", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--xds-addr"), "{err}");
    }
}
