//! Command-line flags and environment variables of `weft-proxy`. Every setting has a flag
//! and a `WEFT_*` environment variable; default ports are the README's (admin 15000,
//! outbound 15001, inbound 15006) and bind loopback unless told otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use weft_common::time::parse_duration;

use crate::xds::ControlPlane;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "weft-proxy",
    version,
    about = "weft sidecar: a gRPC-native proxy configured over xDS",
    after_help = "Transparent interception: `weft-proxy init` programs iptables so an \
                  unmodified app's TCP reaches this proxy (see `weft-proxy init --help`)."
)]
pub struct Settings {
    /// The controller's xDS (ADS) address, e.g. `http://127.0.0.1:15010`.
    #[arg(long, env = "WEFT_XDS_ADDR", default_value = "http://127.0.0.1:15010", value_parser = parse_xds_addr)]
    pub xds_addr: http::Uri,

    /// PEM file of the mesh trust bundle that signs the controller's certificate (needed for
    /// an `https://` --xds-addr).
    #[arg(long, env = "WEFT_XDS_ROOT_CERT")]
    pub xds_root_cert: Option<PathBuf>,

    /// The name the controller's certificate must carry; default: the host of --xds-addr.
    #[arg(long, env = "WEFT_XDS_SERVER_NAME")]
    pub xds_server_name: Option<String>,

    /// The projected ServiceAccount token (audience `weft`) that proves who this proxy is.
    /// With it the proxy also asks the controller for its mTLS certificate.
    #[arg(long, env = "WEFT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// How long the proxy's certificate should live; default: what the controller issues.
    #[arg(long, env = "WEFT_CERT_LIFETIME", value_parser = parse_duration)]
    pub cert_lifetime: Option<Duration>,

    /// The workload's pod labels, `key=value,...` (MtlsPolicy selectors match them).
    #[arg(long, env = "WEFT_WORKLOAD_LABELS", value_parser = parse_label, value_delimiter = ',')]
    pub workload_labels: Vec<(String, String)>,

    /// The pod's IP: endpoints at this address are known to run this sidecar.
    #[arg(long, env = "WEFT_POD_IP")]
    pub pod_ip: Option<std::net::IpAddr>,

    /// The xDS node id: `<pod>.<namespace>`.
    #[arg(long, env = "WEFT_NODE_ID", value_parser = parse_node_id)]
    pub node_id: String,

    /// The workload's ServiceAccount, sent in node metadata.
    #[arg(long, env = "WEFT_SERVICE_ACCOUNT", default_value = "default")]
    pub service_account: String,

    /// Where applications send outbound RPCs (they name the service in `:authority`).
    #[arg(long, env = "WEFT_OUTBOUND_ADDR", default_value = "127.0.0.1:15001")]
    pub outbound_addr: SocketAddr,

    /// The inbound listener in front of the local application.
    #[arg(long, env = "WEFT_INBOUND_ADDR", default_value = "127.0.0.1:15006")]
    pub inbound_addr: SocketAddr,

    /// Where browsers' gRPC-Web calls come in (HTTP/1.1 and h2c), routed by the `web`
    /// routes the controller sends for GrpcRoutes with `spec.web`. Absent: no web listener.
    #[arg(long, env = "WEFT_WEB_ADDR")]
    pub web_addr: Option<SocketAddr>,

    /// The local application the inbound listener forwards to.
    #[arg(long, env = "WEFT_APP_ADDR", default_value = "127.0.0.1:8080")]
    pub app_addr: SocketAddr,

    /// Which xDS variant to speak: `delta`, `sotw`, or `auto` (Delta, falling back to
    /// State-of-the-World when the server does not implement it).
    #[arg(long, env = "WEFT_XDS_PROTOCOL", default_value = "auto", value_enum)]
    pub xds_protocol: XdsProtocol,

    /// The most concurrent streams (RPCs) one downstream HTTP/2 connection may open.
    #[arg(long, env = "WEFT_MAX_CONCURRENT_STREAMS", default_value_t = 1024)]
    pub max_concurrent_streams: u32,

    /// Threads that serve RPCs. One (the default, like a sidecar pinned to one core) runs
    /// everything on a single-threaded runtime, which is also the fastest per core.
    #[arg(long, env = "WEFT_WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub worker_threads: u16,

    /// The admin server (/ready, /metrics, /config_dump, /debug/config).
    #[arg(long, env = "WEFT_ADMIN_ADDR", default_value = "127.0.0.1:15000")]
    pub admin_addr: SocketAddr,

    /// Downstream connections each listener holds at once, at most; one more is closed.
    #[arg(long, env = "WEFT_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// How long a downstream client may take to send the HTTP/2 preface (after TLS).
    #[arg(long, env = "WEFT_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// A downstream connection on which no RPC started for this long gets a GOAWAY (as
    /// Envoy's idle timeout; its open streams finish). `0s`: never.
    #[arg(long, env = "WEFT_IDLE_TIMEOUT", default_value = "1h", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// How long in-flight RPCs may run after SIGTERM before the proxy exits.
    #[arg(long, env = "WEFT_DRAIN_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Per-RPC access log, one JSON object per line (with the `traceparent` the RPC carried):
    /// `stdout`, `stderr`, a file path (appended to), or `off`.
    #[arg(long, env = "WEFT_ACCESS_LOG", default_value = "off")]
    pub access_log: String,

    /// The share of RPCs the access log records, from 0 to 1.
    #[arg(long, env = "WEFT_ACCESS_LOG_SAMPLE", default_value = "1", value_parser = parse_fraction)]
    pub access_log_sample: f64,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `weft_proxy=debug`.
    #[arg(long, env = "WEFT_LOG", default_value = "warn")]
    pub log_level: String,
}

/// The xDS protocol variant (`--xds-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum XdsProtocol {
    Auto,
    Delta,
    Sotw,
}

impl Settings {
    /// The namespace part of the node id (`<pod>.<namespace>`).
    pub fn namespace(&self) -> &str {
        self.node_id.split_once('.').map_or("", |(_, ns)| ns)
    }

    /// How to reach the controller, with the trust bundle read from `--xds-root-cert`.
    pub fn control_plane(&self) -> Result<ControlPlane, String> {
        let root_cert_pem = match &self.xds_root_cert {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|err| format!("--xds-root-cert {}: {err}", path.display()))?,
            ),
            None => None,
        };
        let plane = ControlPlane {
            server: self.xds_addr.clone(),
            root_cert_pem,
            server_name: self.xds_server_name.clone(),
            token_file: self.token_file.clone(),
        };
        plane.endpoint().map_err(|err| err.to_string())?;
        Ok(plane)
    }
}

fn parse_label(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{value:?}: expected key=value")),
    }
}

fn parse_xds_addr(value: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = value.parse().map_err(|err| format!("not a URI: {err}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(uri),
        _ => Err("expected http://HOST:PORT or https://HOST:PORT".into()),
    }
}

fn parse_node_id(value: &str) -> Result<String, String> {
    match value.split_once('.') {
        Some((pod, ns)) if !pod.is_empty() && !ns.is_empty() && !ns.contains('.') => {
            Ok(value.to_string())
        }
        _ => Err("expected <pod>.<namespace>, e.g. greeter-7d4f.default".into()),
    }
}

/// A number from 0 to 1 (`--access-log-sample`).
fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a number from 0 to 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        Settings::try_parse_from(std::iter::once("weft-proxy").chain(args.iter().copied()))
    }

    #[test]
    fn node_id_is_required_and_gives_the_namespace() {
        assert!(parse(&[]).is_err());
        let settings = parse(&["--node-id", "greeter-1.shop"]).unwrap();
        assert_eq!(settings.namespace(), "shop");
        assert_eq!(settings.admin_addr, "127.0.0.1:15000".parse().unwrap());
    }

    #[test]
    fn malformed_node_id_names_the_flag() {
        let err = parse(&["--node-id", "greeter"]).unwrap_err().to_string();
        assert!(
            err.contains("--node-id") && err.contains("<pod>.<namespace>"),
            "{err}"
        );
    }

    #[test]
    fn xds_addr_needs_a_scheme() {
        let err = parse(&["--node-id", "a.b", "--xds-addr", "127.0.0.1:15010"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--xds-addr"), "{err}");
    }

    #[test]
    fn workload_labels_and_mtls_flags() {
        let settings = parse(&[
            "--node-id",
            "a.b",
            "--workload-labels",
            "app=web,tier=",
            "--pod-ip",
            "10.0.0.7",
        ])
        .unwrap();
        assert_eq!(
            settings.workload_labels,
            [("app".into(), "web".into()), ("tier".into(), String::new())]
        );
        assert!(parse(&["--node-id", "a.b", "--workload-labels", "=x"]).is_err());
        let https = parse(&["--node-id", "a.b", "--xds-addr", "https://127.0.0.1:15012"]).unwrap();
        assert!(
            https
                .control_plane()
                .unwrap_err()
                .contains("--xds-root-cert")
        );
    }
}
