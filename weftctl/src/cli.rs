//! The command line: global options (how to reach the controller and the proxies) and one
//! subcommand per task.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "weftctl",
    version,
    about = "weft's command line: proxy status, a proxy's config, describe, offline translate, check, top",
    long_about = "weft's command line.\n\n\
        It reaches weft-controller's admin endpoint directly (--controller-addr, e.g. local \
        mode's 127.0.0.1:15014) or through the Kubernetes API server's proxy to the controller \
        pods found by the kubeconfig (no port-forward needed), and a proxy's admin endpoint \
        directly (--proxy-admin) or through the API server's pod proxy."
)]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the controller and proxies are.
#[derive(Debug, Args)]
pub struct Target {
    /// The controller's admin address (host:port); without it the controller is found
    /// through the kubeconfig.
    #[arg(long, global = true, env = "WEFTCTL_CONTROLLER_ADDR")]
    pub controller_addr: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace weft-controller runs in.
    #[arg(long, global = true, default_value = "weft-system")]
    pub controller_namespace: String,
    /// Seconds to wait for any one answer.
    #[arg(long, global = true, default_value = "10", value_parser = parse_seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every connected proxy: per xDS type SYNCED, STALE, NACKED or NOT SENT, with versions
    /// and the NACK reasons.
    ProxyStatus {
        #[arg(short, long, value_enum, default_value_t = StatusFormat::Table)]
        output: StatusFormat,
    },
    /// A proxy's config: its listeners, routes, clusters, endpoints or secrets, read from its
    /// admin endpoint (weft-proxy's or Envoy's /config_dump).
    ProxyConfig {
        /// The proxy: `<pod>[.<namespace>]` in Kubernetes, any name with --proxy-admin.
        proxy: String,
        #[arg(value_enum, default_value_t = Section::All)]
        section: Section,
        /// The proxy's admin address (host:port), instead of the API server's pod proxy.
        #[arg(long)]
        proxy_admin: Option<SocketAddr>,
        /// The proxy's admin port in its pod (weft-proxy 15000; Envoy sidecars often 15000 too).
        #[arg(long, default_value = "15000")]
        admin_port: u16,
        #[arg(short, long, value_enum, default_value_t = ConfigFormat::Table)]
        output: ConfigFormat,
    },
    /// A weft resource: its conditions, the proxies holding it, notes, and the Envoy
    /// resources it becomes.
    Describe {
        /// `<kind>/<name>`: grpcroute, faultinjection, mtlspolicy or backendpolicy.
        resource: String,
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
    /// Translates a directory of weft YAML offline, with the controller's own code: prints
    /// the Envoy resources, or every error as file:line:col (exit status 1).
    Translate {
        /// The directory (the same files local mode reads).
        #[arg(short = 'f', long = "filename")]
        dir: PathBuf,
        #[arg(short, long, value_enum, default_value_t = TranslateFormat::Resources)]
        output: TranslateFormat,
    },
    /// Checks a cluster for weft: API server version, CRDs, RBAC, the injection webhook, and
    /// a ready controller.
    Check,
    /// Per-method requests per second, success rate and p99, refreshing (like `top`), from
    /// proxies' /metrics or from Prometheus.
    Top {
        /// Read from this Prometheus (base URL) instead of proxies.
        #[arg(long)]
        prometheus: Option<String>,
        /// Proxies' admin addresses (host:port), read directly.
        #[arg(long = "proxy-admin", value_delimiter = ',')]
        proxy_admins: Vec<SocketAddr>,
        /// Seconds between refreshes (and the window rates are computed over).
        #[arg(long, default_value = "2", value_parser = parse_seconds)]
        interval: Duration,
        /// Print one table and exit (for scripts).
        #[arg(long)]
        once: bool,
    },
    /// Prints a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    All,
    Listeners,
    Routes,
    Clusters,
    Endpoints,
    Secrets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    /// A table per section.
    Table,
    /// The section as JSON (the proxy's own dump for `all`).
    Json,
    /// The section as YAML.
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TranslateFormat {
    /// Every resource, decoded.
    Resources,
    /// Type and name of every resource.
    Names,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 3600.0) {
        return Err(format!("{text:?}: give between 0 and 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}
