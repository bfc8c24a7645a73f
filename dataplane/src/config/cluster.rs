//! `Cluster` → [`ClusterConfig`]: the EDS name to subscribe to (or a STATIC cluster's inline
//! endpoints), the connect timeout, and the destination service for metrics.
//!
//! weft-proxy always balances with power-of-two-choices over the endpoints, which stands in
//! for `ROUND_ROBIN`, `LEAST_REQUEST` and `RANDOM`; policies that pin RPCs to hosts
//! (`RING_HASH`, `MAGLEV`, subsets) are errors. TLS towards the upstream is mutual TLS to
//! the endpoints marked `{tlsMode: weft}`, from `transport_socket_matches` (`transport.rs`);
//! a cluster-wide `transport_socket` is an error rather than silently plaintext.
//! Circuit breakers, protocol options (the upstream is always HTTP/2), outlier detection and
//! health checks are ignored.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::google::protobuf::Any;

use super::convert::{
    FieldError, FieldResult, check_config_source, decode_resource, duration, reject_set,
    unsupported,
};
use super::endpoints::endpoint_set;
use super::transport::transport_socket_matches;
use super::{ClusterConfig, ConfigError};

/// Envoy's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The typed load-balancing policies that power-of-two-choices stands in for.
const ACCEPTED_LB_POLICY_TYPES: [&str; 3] = [
    "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
    "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
    "type.googleapis.com/envoy.extensions.load_balancing_policies.random.v3.Random",
];

/// Converts one Cluster (`any` must hold one); errors name the resource and the field.
pub fn parse_cluster(any: &Any) -> Result<ClusterConfig, ConfigError> {
    let cluster: Cluster = decode_resource(any, "Cluster")?;
    let resource = format!("Cluster {}", cluster.name);
    cluster_config(&cluster).map_err(|err| err.of_resource(&resource))
}

fn cluster_config(cluster: &Cluster) -> FieldResult<ClusterConfig> {
    if cluster.name.is_empty() {
        return Err(FieldError::new("name", "empty"));
    }
    let set = [
        ("transport_socket", cluster.transport_socket.is_some()),
        (
            "transport_socket_matcher",
            cluster.transport_socket_matcher.is_some(),
        ),
        ("lb_subset_config", cluster.lb_subset_config.is_some()),
        (
            "upstream_bind_config",
            cluster.upstream_bind_config.is_some(),
        ),
        ("filters", !cluster.filters.is_empty()),
    ];
    reject_set(&set)?;
    check_lb_policy(cluster)?;
    let mtls = transport_socket_matches(&cluster.transport_socket_matches)?;
    let (eds_name, inline_endpoints) = discovery(cluster)?;
    let connect_timeout = match &cluster.connect_timeout {
        None => DEFAULT_CONNECT_TIMEOUT,
        Some(timeout) => {
            let timeout =
                duration(timeout).map_err(|problem| FieldError::new("connect_timeout", problem))?;
            if timeout.is_zero() {
                return Err(FieldError::new("connect_timeout", "must be greater than 0"));
            }
            timeout
        }
    };
    Ok(ClusterConfig {
        name: cluster.name.clone(),
        service: service_name(&cluster.name),
        connect_timeout,
        eds_name,
        inline_endpoints,
        mtls,
    })
}

/// The EDS name, and the endpoints of a STATIC cluster (whose EDS name is its own name,
/// though nothing needs to be fetched for it).
fn discovery(cluster: &Cluster) -> FieldResult<(String, Option<super::EndpointSet>)> {
    let kind = match &cluster.cluster_discovery_type {
        // Envoy's default.
        None => DiscoveryType::Static,
        Some(ClusterDiscoveryType::ClusterType(_)) => return Err(unsupported("cluster_type")),
        Some(ClusterDiscoveryType::Type(value)) => DiscoveryType::try_from(*value)
            .map_err(|_| FieldError::new("type", format!("unknown discovery type {value}")))?,
    };
    match kind {
        DiscoveryType::Eds => {
            let config = cluster.eds_cluster_config.as_ref();
            check_config_source(
                config.and_then(|c| c.eds_config.as_ref()),
                "eds_cluster_config.eds_config",
            )?;
            let service_name = config.map(|c| c.service_name.as_str()).unwrap_or_default();
            let name = if service_name.is_empty() {
                &cluster.name
            } else {
                service_name
            };
            Ok((name.to_owned(), None))
        }
        DiscoveryType::Static => {
            let assignment = cluster
                .load_assignment
                .as_ref()
                .ok_or_else(|| FieldError::new("load_assignment", "missing (a STATIC cluster)"))?;
            let mut endpoints =
                endpoint_set(assignment).map_err(|e| e.within("load_assignment"))?;
            // Envoy: the cluster's name is what counts, whatever the assignment says.
            endpoints.name = cluster.name.clone();
            Ok((cluster.name.clone(), Some(endpoints)))
        }
        other => Err(FieldError::new(
            "type",
            format!(
                "{} is not supported by weft-proxy (EDS or STATIC)",
                other.as_str_name()
            ),
        )),
    }
}

fn check_lb_policy(cluster: &Cluster) -> FieldResult<()> {
    if let Some(policy) = &cluster.load_balancing_policy {
        // Envoy uses the first policy it supports; weft-proxy supports these three.
        let accepted = policy.policies.iter().any(|p| {
            p.typed_extension_config
                .as_ref()
                .and_then(|c| c.typed_config.as_ref())
                .is_some_and(|any| ACCEPTED_LB_POLICY_TYPES.contains(&any.type_url.as_str()))
        });
        return if accepted {
            Ok(())
        } else {
            Err(FieldError::new(
                "load_balancing_policy.policies",
                "none is round_robin, least_request or random: weft-proxy balances with \
                 power-of-two-choices, which stands in for those only",
            ))
        };
    }
    match LbPolicy::try_from(cluster.lb_policy) {
        Ok(LbPolicy::RoundRobin | LbPolicy::LeastRequest | LbPolicy::Random) => Ok(()),
        Ok(other) => Err(FieldError::new(
            "lb_policy",
            format!(
                "{} is not supported by weft-proxy, which balances with power-of-two-choices \
                 (ROUND_ROBIN, LEAST_REQUEST and RANDOM are accepted as that)",
                other.as_str_name()
            ),
        )),
        Err(_) => Err(FieldError::new(
            "lb_policy",
            format!("unknown policy {}", cluster.lb_policy),
        )),
    }
}

/// The destination service for metrics: `outbound|<port>|<subset>|<host>` (Istio's and
/// weft's cluster names) → `<host>:<port>`; any other name as is.
pub(super) fn service_name(cluster: &str) -> String {
    let mut parts = cluster.split('|');
    if let (Some(_direction), Some(port), Some(_subset), Some(host), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) && port.parse::<u16>().is_ok()
        && !host.is_empty()
    {
        return format!("{host}:{port}");
    }
    cluster.to_owned()
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
