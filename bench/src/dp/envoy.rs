//! Stock Envoy's bootstrap for the benchmark: node and ADS pointing at weft-controller (so
//! the outbound listener, routes and clusters are the same ones weft-proxy gets), admin on
//! a loopback port, and — for the inbound side of a pair — a static inbound listener in
//! front of the app. Settings fair to Envoy: no access log, request ids not generated,
//! circuit breakers raised (the controller's clusters already raise theirs), HTTP/2 to the
//! app, and (on the command line) `--concurrency 1`.
//!
//! For the mTLS pair both Envoys reach the controller over TLS and get their certificate
//! and the trust bundle as SDS secrets on the ADS stream, exactly as in a mesh; the inbound
//! side's listener then comes from the controller (metadata `inboundAddr`, `appAddr`,
//! `labels`) with the MtlsPolicy's TLS filter chain, instead of the static one.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Where one Envoy listens and what it is called.
#[derive(Debug, Clone)]
pub struct EnvoyPorts {
    pub node_id: String,
    pub admin: u16,
    pub outbound: u16,
    pub xds: u16,
    /// The inbound listener and the app behind it (pair inbound side only).
    pub inbound: Option<Inbound>,
    /// The ServiceAccount token sent on the ADS stream (the controller authenticates).
    pub token: String,
    /// ADS over TLS, trusting this root (the mTLS pair); plaintext when `None`.
    pub xds_root: Option<PathBuf>,
}

/// The inbound side of a pair: where it listens, the app behind it, and who configures it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub port: u16,
    pub app: SocketAddr,
    /// `Some(labels)`: the controller makes the listener (in the MtlsPolicy mode that
    /// selects these workload labels); `None`: a static plaintext listener.
    pub mesh_labels: Option<String>,
}

/// The bootstrap YAML.
pub fn bootstrap(ports: &EnvoyPorts) -> String {
    let EnvoyPorts {
        node_id,
        admin,
        outbound,
        xds,
        token,
        ..
    } = ports;
    let mut metadata = format!(r#"outboundAddr: "127.0.0.1:{outbound}""#);
    let mesh_inbound = ports
        .inbound
        .as_ref()
        .and_then(|inbound| Some((inbound, inbound.mesh_labels.as_ref()?)));
    if let Some((inbound, labels)) = mesh_inbound {
        metadata += &format!(
            r#", inboundAddr: "127.0.0.1:{}", appAddr: "{}", labels: {{{labels}}}"#,
            inbound.port, inbound.app
        );
    }
    let mut xds_cluster = static_cluster("xds", SocketAddr::from(([127, 0, 0, 1], *xds)));
    if let Some(root) = &ports.xds_root {
        xds_cluster += &format!(
            r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context: {{trusted_ca: {{filename: "{}"}}}}
"#,
            root.display()
        );
    }
    let mut yaml = format!(
        r#"node:
  id: {node_id}
  cluster: weft-bench
  metadata: {{{metadata}}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{cluster_name: xds}}
      initial_metadata: [{{key: authorization, value: "Bearer {token}"}}]
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
{xds_cluster}"#
    );
    if let Some(inbound) = ports.inbound.as_ref().filter(|i| i.mesh_labels.is_none()) {
        yaml += &static_cluster("app", inbound.app);
        yaml += &inbound_listener(inbound.port);
    }
    yaml
}

fn static_cluster(name: &str, addr: SocketAddr) -> String {
    format!(
        r#"  - name: {name}
    type: STATIC
    connect_timeout: 1s
    circuit_breakers:
      thresholds: [{{max_connections: 1000000, max_pending_requests: 1000000, max_requests: 1000000, max_retries: 1000000}}]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: {ip}, port_value: {port}}}}}}}
"#,
        ip = addr.ip(),
        port = addr.port()
    )
}

fn inbound_listener(port: u16) -> String {
    format!(
        r#"  listeners:
  - name: inbound
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          codec_type: AUTO
          generate_request_id: false
          stream_idle_timeout: 0s
          route_config:
            name: inbound
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes: [{{match: {{prefix: "/"}}, route: {{cluster: app, timeout: 0s}}}}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(inbound: Option<Inbound>) -> EnvoyPorts {
        EnvoyPorts {
            node_id: "envoy-a.default".into(),
            admin: 1,
            outbound: 2,
            xds: 3,
            inbound,
            token: "t0ken".into(),
            xds_root: None,
        }
    }

    fn inbound(mesh_labels: Option<&str>) -> Option<Inbound> {
        Some(Inbound {
            port: 4,
            app: "127.0.0.1:5".parse().unwrap(),
            mesh_labels: mesh_labels.map(str::to_owned),
        })
    }

    #[test]
    fn outbound_only_bootstrap() {
        let yaml = bootstrap(&ports(None));
        assert!(yaml.contains("id: envoy-a.default"));
        assert!(yaml.contains(r#"outboundAddr: "127.0.0.1:2""#));
        assert!(yaml.contains("port_value: 3}"));
        assert!(yaml.contains(r#"value: "Bearer t0ken""#));
        assert!(!yaml.contains("listeners:"));
        assert!(!yaml.contains("access_log"));
        assert!(!yaml.contains("UpstreamTlsContext"));
    }

    #[test]
    fn pair_inbound_side_adds_listener_and_app() {
        let yaml = bootstrap(&ports(inbound(None)));
        assert!(yaml.contains("name: inbound"));
        assert!(yaml.contains("port_value: 4}"));
        assert!(yaml.contains("- name: app"));
        assert!(yaml.contains("generate_request_id: false"));
        // Clusters come before listeners, both under static_resources.
        assert!(yaml.find("- name: app").unwrap() < yaml.find("listeners:").unwrap());
    }

    #[test]
    fn mtls_inbound_side_is_configured_by_the_controller_over_tls() {
        let mut ports = ports(inbound(Some("app: mtls")));
        ports.xds_root = Some("/state/ca.crt".into());
        let yaml = bootstrap(&ports);
        assert!(yaml.contains(r#"inboundAddr: "127.0.0.1:4", appAddr: "127.0.0.1:5""#));
        assert!(yaml.contains("labels: {app: mtls}"));
        assert!(yaml.contains(r#"trusted_ca: {filename: "/state/ca.crt"}"#));
        assert!(!yaml.contains("listeners:"), "no static listener");
    }
}
