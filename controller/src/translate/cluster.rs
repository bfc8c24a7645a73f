//! One Cluster per Service port: endpoints over EDS (ADS), least-request balancing, HTTP/2
//! to the upstream, circuit breakers raised out of the way of gRPC multiplexing unless a
//! BackendPolicy sets them (with outlier detection, connect timeout and keepalive:
//! `backend.rs`), and mutual TLS to endpoints run by a proxy (`tls.rs`). Also the `inbound|<app addr>` clusters the
//! inbound listeners route to: the same, but STATIC (the one app address) and plaintext.

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, Cluster};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, Http2ProtocolOptions, RoutingPriority,
};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value};
use envoy_types::util::pack_any;

use super::backend;
use super::endpoints::lb_endpoint;
use super::routes::proto_duration;
use super::tls::transport_socket_matches;
use super::validate::BackendValues;

/// The key of `typed_extension_protocol_options` that sets the upstream HTTP protocol.
pub(super) const HTTP_PROTOCOL_OPTIONS: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Connections, pending and active requests and retries per cluster: high enough never to
/// be what limits gRPC traffic.
const CIRCUIT_BREAKER_LIMIT: u32 = 1_000_000;

/// `ConfigSource { ads: {}, resource_api_version: V3 }`: fetch over the same ADS stream.
pub(super) fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

/// The Cluster `name` (`outbound|<port>||<host>`), its endpoints served over EDS by the
/// same name, mutual TLS to endpoints marked `{tlsMode: weft}` (checked against
/// `trust_domain`), plaintext to the others; plaintext only when the mesh has no mTLS
/// (`None`: nothing would serve Envoy the secrets the TLS socket waits for). `policy`: the
/// Service's BackendPolicy, if one applies.
pub(super) fn cluster(
    name: &str,
    trust_domain: Option<&str>,
    policy: Option<&BackendValues>,
) -> Cluster {
    let mut cluster = Cluster {
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: String::new(),
        }),
        lb_policy: LbPolicy::LeastRequest as i32,
        transport_socket_matches: trust_domain
            .map(transport_socket_matches)
            .unwrap_or_default(),
        ..http2_cluster(name)
    };
    if let Some(policy) = policy {
        apply_policy(&mut cluster, policy);
    }
    cluster
}

/// Overrides the defaults `http2_cluster` set with what the BackendPolicy says.
fn apply_policy(cluster: &mut Cluster, policy: &BackendValues) {
    if let Some(timeout) = policy.connect_timeout {
        cluster.connect_timeout = Some(proto_duration(timeout));
    }
    if let Some(thresholds) = cluster
        .circuit_breakers
        .as_mut()
        .and_then(|breakers| breakers.thresholds.first_mut())
    {
        let limit = |value: Option<u32>| value.map(|value| UInt32Value { value });
        if let Some(max) = limit(policy.max_requests) {
            thresholds.max_requests = Some(max);
        }
        if let Some(max) = limit(policy.max_pending_requests) {
            thresholds.max_pending_requests = Some(max);
        }
    }
    cluster.outlier_detection = policy.outlier.as_ref().map(backend::outlier_detection);
    if let Some(keepalive) = policy.keepalive {
        cluster.typed_extension_protocol_options = http2_options_with(Http2ProtocolOptions {
            connection_keepalive: Some(backend::keepalive(keepalive)),
            ..Default::default()
        });
    }
}

/// The name of the cluster of the app at `app_addr`: `inbound|<addr>`.
pub fn inbound_cluster_name(app_addr: SocketAddr) -> String {
    format!("inbound|{app_addr}")
}

/// `inbound|<app_addr>`: a STATIC cluster of the one app address, plaintext (the app is
/// local to its proxy), HTTP/2 like every other cluster.
pub(super) fn inbound_cluster(app_addr: SocketAddr) -> Cluster {
    let name = inbound_cluster_name(app_addr);
    Cluster {
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.clone(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![lb_endpoint(app_addr, false)],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..http2_cluster(&name)
    }
}

/// `typed_extension_protocol_options` that make the upstream explicitly HTTP/2.
pub(super) fn http2_options() -> HashMap<String, Any> {
    http2_options_with(Http2ProtocolOptions::default())
}

/// `typed_extension_protocol_options`: explicitly HTTP/2, with these options.
fn http2_options_with(options: Http2ProtocolOptions) -> HashMap<String, Any> {
    let http2 = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(options)),
            },
        )),
        ..Default::default()
    };
    HashMap::from([(HTTP_PROTOCOL_OPTIONS.to_owned(), pack_any(http2))])
}

/// What every cluster shares: the name, a 1 s connect timeout, HTTP/2, circuit breakers.
fn http2_cluster(name: &str) -> Cluster {
    let limit = Some(UInt32Value {
        value: CIRCUIT_BREAKER_LIMIT,
    });
    Cluster {
        name: name.to_owned(),
        connect_timeout: Some(Duration {
            seconds: 1,
            nanos: 0,
        }),
        typed_extension_protocol_options: http2_options(),
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![Thresholds {
                priority: RoutingPriority::Default as i32,
                max_connections: limit,
                max_pending_requests: limit,
                max_requests: limit,
                max_retries: limit,
                ..Default::default()
            }],
            per_host_thresholds: vec![],
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::testutil::decode;

    #[test]
    fn eds_over_ads_least_request_http2() {
        let c = cluster(
            "outbound|50051||greeter.default.svc.cluster.local",
            Some("cluster.local"),
            None,
        );
        assert_eq!(c.name, "outbound|50051||greeter.default.svc.cluster.local");
        assert_eq!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        );
        let eds = c.eds_cluster_config.unwrap().eds_config.unwrap();
        assert_eq!(eds.resource_api_version, ApiVersion::V3 as i32);
        assert!(matches!(
            eds.config_source_specifier,
            Some(ConfigSourceSpecifier::Ads(_))
        ));
        assert_eq!(c.lb_policy, LbPolicy::LeastRequest as i32);
        assert_eq!(
            c.connect_timeout,
            Some(Duration {
                seconds: 1,
                nanos: 0
            })
        );
        let options: HttpProtocolOptions =
            decode(&c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS]);
        assert!(matches!(
            options.upstream_protocol_options,
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(_))
                }
            ))
        ));
        let thresholds = &c.circuit_breakers.unwrap().thresholds[0];
        assert_eq!(
            thresholds.max_requests,
            Some(UInt32Value { value: 1_000_000 })
        );
        assert_eq!(
            thresholds.max_pending_requests,
            Some(UInt32Value { value: 1_000_000 })
        );
        assert_eq!(
            thresholds.max_connections,
            Some(UInt32Value { value: 1_000_000 })
        );
        assert_eq!(
            thresholds.max_retries,
            Some(UInt32Value { value: 1_000_000 })
        );
        assert_eq!(
            c.transport_socket_matches,
            transport_socket_matches("cluster.local")
        );
    }

    #[test]
    fn the_inbound_cluster_is_static_plaintext_http2() {
        let c = inbound_cluster("127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.name, "inbound|127.0.0.1:8080");
        assert_eq!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32))
        );
        let assignment = c.load_assignment.unwrap();
        assert_eq!(assignment.cluster_name, "inbound|127.0.0.1:8080");
        assert_eq!(
            assignment.endpoints[0].lb_endpoints,
            [lb_endpoint("127.0.0.1:8080".parse().unwrap(), false)]
        );
        assert!(c.transport_socket_matches.is_empty() && c.transport_socket.is_none());
        assert_eq!(c.typed_extension_protocol_options, http2_options());
        assert!(c.circuit_breakers.is_some());
    }
}
