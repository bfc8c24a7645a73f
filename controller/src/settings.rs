//! Command-line flags and environment variables of `weft-controller`. Every setting has a
//! flag and a `WEFT_*` environment variable; defaults follow DESIGN.md §5 ports.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

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

    /// Address of the plaintext xDS (ADS) gRPC server.
    #[arg(long, env = "WEFT_XDS_ADDR", default_value = "127.0.0.1:15010")]
    pub xds_addr: SocketAddr,

    /// Address of the admin server (/ready, /metrics, /debug/proxies).
    #[arg(long, env = "WEFT_ADMIN_ADDR", default_value = "127.0.0.1:15014")]
    pub admin_addr: SocketAddr,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `weft_controller=debug`.
    #[arg(long, env = "WEFT_LOG", default_value = "warn")]
    pub log_level: String,
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
    fn bad_address_is_a_parse_error() {
        let err =
            Settings::try_parse_from(["weft-controller", "--xds-addr", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--xds-addr"), "{err}");
    }
}
