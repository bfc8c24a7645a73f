//! `Cluster` → [`ClusterConfig`]: the EDS name to subscribe to (or a STATIC cluster's inline
//! endpoints), the connect timeout, the destination service for metrics, and the resilience
//! settings: circuit breakers, outlier detection and HTTP/2 keepalive.
//!
//! weft-proxy always balances with power-of-two-choices over the endpoints, which stands in
//! for `ROUND_ROBIN`, `LEAST_REQUEST` and `RANDOM`; policies that pin RPCs to hosts
//! (`RING_HASH`, `MAGLEV`, subsets) are errors. TLS towards the upstream is mutual TLS to
//! the endpoints marked `{tlsMode: weft}`, from `transport_socket_matches` (`transport.rs`);
//! a cluster-wide `transport_socket` is an error rather than silently plaintext.
//!
//! Resilience, with Envoy's semantics and defaults:
//! - `circuit_breakers.thresholds`: the first entry of priority DEFAULT gives
//!   `max_requests` and `max_pending_requests` (1024 each when unset, as when there are no
//!   circuit breakers at all; 0 lets nothing through). HIGH entries, `per_host_thresholds`,
//!   `max_connections`, `max_connection_pools`, `max_retries` and `retry_budget` are
//!   accepted and ignored: weft-proxy keeps one HTTP/2 connection per endpoint and has its
//!   own process-wide retry budget (`proxy::retry`).
//! - `outlier_detection` (absent: none): consecutive 5xx and consecutive gateway failures
//!   (`consecutive_5xx`, `consecutive_gateway_failure`, their `enforcing_*` percentages,
//!   `interval`, `base_ejection_time`, `max_ejection_time`, `max_ejection_time_jitter`,
//!   `max_ejection_percent`, `always_eject_one_host`). Success-rate and failure-percentage
//!   detection are not implemented: their fields (`enforcing_success_rate`,
//!   `success_rate_*`, `failure_percentage_*`, `enforcing_failure_percentage*`) are ignored.
//!   Local-origin errors (connect failures, resets, timeouts) count as 503 and 504, as Envoy
//!   counts them without the split: `split_external_local_origin_errors: true` is an
//!   error, and the local-origin fields it would enable are ignored; so is
//!   `successful_active_health_check_uneject_host` (no active health checks).
//!   `monitors` and `detect_degraded_hosts` are errors. A `max_ejection_time` shorter than
//!   `base_ejection_time` (which Envoy rejects) caps nothing: ejections last at least
//!   `base_ejection_time`.
//! - `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`:
//!   the HTTP/2 options' `connection_keepalive` (`interval`, `timeout`; no interval: no
//!   pings), wherever the HTTP/2 options sit (explicit, auto or downstream config: the
//!   upstream is always HTTP/2). `interval_jitter` and `connection_idle_interval` are
//!   ignored; every other protocol option is too.
//!
//! Health checks are ignored.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers as ProtoCircuitBreakers, Cluster, OutlierDetection as ProtoOutlierDetection,
};
use envoy_types::pb::envoy::config::core::v3::{KeepaliveSettings, RoutingPriority};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::google::protobuf::{Any, Duration as ProtoDuration, UInt32Value};

use super::convert::{
    FieldError, FieldResult, check_config_source, decode_any, decode_resource, duration,
    nonzero_duration, reject_set, unsupported,
};
use super::endpoints::endpoint_set;
use super::transport::transport_socket_matches;
use super::{CircuitBreakers, ClusterConfig, ConfigError, Http2Keepalive, OutlierDetection};

/// Envoy's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `typed_extension_protocol_options` key of the upstream HTTP protocol options.
pub(super) const HTTP_PROTOCOL_OPTIONS: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

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
    let circuit_breakers = circuit_breakers(cluster.circuit_breakers.as_ref())
        .map_err(|err| err.within("circuit_breakers"))?;
    let outlier_detection = cluster
        .outlier_detection
        .as_ref()
        .map(outlier_detection)
        .transpose()
        .map_err(|err| err.within("outlier_detection"))?;
    let keepalive = keepalive(cluster)?;
    Ok(ClusterConfig {
        name: cluster.name.clone(),
        service: service_name(&cluster.name),
        connect_timeout,
        eds_name,
        inline_endpoints,
        mtls,
        circuit_breakers,
        outlier_detection,
        keepalive,
    })
}

/// The limits of the first thresholds entry of priority DEFAULT; Envoy's defaults for what
/// it leaves unset, or without one.
fn circuit_breakers(breakers: Option<&ProtoCircuitBreakers>) -> FieldResult<CircuitBreakers> {
    let mut limits = CircuitBreakers::default();
    let Some(breakers) = breakers else {
        return Ok(limits);
    };
    for (i, thresholds) in breakers.thresholds.iter().enumerate() {
        match RoutingPriority::try_from(thresholds.priority) {
            Ok(RoutingPriority::Default) => {
                let value = |limit: Option<UInt32Value>| {
                    limit.map_or(CircuitBreakers::ENVOY_DEFAULT, |limit| limit.value)
                };
                limits.max_requests = value(thresholds.max_requests);
                limits.max_pending_requests = value(thresholds.max_pending_requests);
                return Ok(limits);
            }
            Ok(RoutingPriority::High) => {}
            Err(_) => {
                return Err(FieldError::new(
                    format!("thresholds[{i}].priority"),
                    format!("unknown priority {}", thresholds.priority),
                ));
            }
        }
    }
    Ok(limits)
}

/// Consecutive-error outlier detection with Envoy's defaults; errors are relative to the
/// `outlier_detection` message.
fn outlier_detection(proto: &ProtoOutlierDetection) -> FieldResult<OutlierDetection> {
    if proto.split_external_local_origin_errors {
        return Err(FieldError::new(
            "split_external_local_origin_errors",
            "not supported by weft-proxy: connect failures, resets and timeouts count as 503 \
             and 504 answers of the endpoint",
        ));
    }
    reject_set(&[
        ("monitors", !proto.monitors.is_empty()),
        (
            "detect_degraded_hosts",
            proto.detect_degraded_hosts.is_some_and(|set| set.value),
        ),
    ])?;
    let defaults = OutlierDetection::default();
    let count = |value: Option<UInt32Value>, default: u32| value.map_or(default, |v| v.value);
    let percent = |value: Option<UInt32Value>, default: u32, field: &str| match value {
        None => Ok(default),
        Some(UInt32Value { value }) if value <= 100 => Ok(value),
        Some(UInt32Value { value }) => Err(FieldError::new(
            field,
            format!("{value} is not a percentage (at most 100)"),
        )),
    };
    let interval = positive_duration(proto.interval.as_ref(), defaults.interval, "interval")?;
    let base_ejection_time = positive_duration(
        proto.base_ejection_time.as_ref(),
        defaults.base_ejection_time,
        "base_ejection_time",
    )?;
    let max_ejection_time = positive_duration(
        proto.max_ejection_time.as_ref(),
        defaults.max_ejection_time,
        "max_ejection_time",
    )?;
    let max_ejection_time_jitter = match &proto.max_ejection_time_jitter {
        None => Duration::ZERO,
        Some(jitter) => duration(jitter)
            .map_err(|problem| FieldError::new("max_ejection_time_jitter", problem))?,
    };
    Ok(OutlierDetection {
        consecutive_5xx: count(proto.consecutive_5xx, defaults.consecutive_5xx),
        consecutive_gateway_failure: count(
            proto.consecutive_gateway_failure,
            defaults.consecutive_gateway_failure,
        ),
        enforcing_consecutive_5xx: percent(
            proto.enforcing_consecutive_5xx,
            defaults.enforcing_consecutive_5xx,
            "enforcing_consecutive_5xx",
        )?,
        enforcing_consecutive_gateway_failure: percent(
            proto.enforcing_consecutive_gateway_failure,
            defaults.enforcing_consecutive_gateway_failure,
            "enforcing_consecutive_gateway_failure",
        )?,
        interval,
        base_ejection_time,
        max_ejection_time,
        max_ejection_time_jitter,
        // Envoy caps it at 100 rather than rejecting more.
        max_ejection_percent: count(proto.max_ejection_percent, defaults.max_ejection_percent)
            .min(100),
        always_eject_one_host: proto.always_eject_one_host.is_some_and(|set| set.value),
    })
}

/// A duration Envoy requires to be greater than zero, `default` when unset.
fn positive_duration(
    value: Option<&ProtoDuration>,
    default: Duration,
    field: &str,
) -> FieldResult<Duration> {
    let Some(value) = value else {
        return Ok(default);
    };
    let value = duration(value).map_err(|problem| FieldError::new(field, problem))?;
    if value.is_zero() {
        return Err(FieldError::new(field, "must be greater than 0"));
    }
    Ok(value)
}

/// The HTTP/2 keepalive of the upstream HTTP protocol options, if any.
fn keepalive(cluster: &Cluster) -> FieldResult<Option<Http2Keepalive>> {
    let Some(any) = cluster
        .typed_extension_protocol_options
        .get(HTTP_PROTOCOL_OPTIONS)
    else {
        return Ok(None);
    };
    let field = format!("typed_extension_protocol_options[\"{HTTP_PROTOCOL_OPTIONS}\"]");
    let options: HttpProtocolOptions = decode_any(any).map_err(|err| err.within(&field))?;
    // The HTTP/2 options wherever they sit, with their path.
    let http2 = match &options.upstream_protocol_options {
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(http2)),
        })) => Some(("explicit_http_config.http2_protocol_options", http2)),
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(config)) => {
            config.http2_protocol_options.as_ref().map(|http2| {
                (
                    "use_downstream_protocol_config.http2_protocol_options",
                    http2,
                )
            })
        }
        Some(UpstreamProtocolOptions::AutoConfig(config)) => config
            .http2_protocol_options
            .as_ref()
            .map(|http2| ("auto_config.http2_protocol_options", http2)),
        _ => None,
    };
    let Some((path, settings)) =
        http2.and_then(|(path, http2)| Some((path, http2.connection_keepalive.as_ref()?)))
    else {
        return Ok(None);
    };
    connection_keepalive(settings).map_err(|err| {
        err.within("connection_keepalive")
            .within(path)
            .within(&field)
    })
}

/// `interval` (none or zero: no pings) and `timeout` (required, at least 1 ms, as Envoy
/// validates it).
fn connection_keepalive(settings: &KeepaliveSettings) -> FieldResult<Option<Http2Keepalive>> {
    let timeout = match &settings.timeout {
        None => return Err(FieldError::new("timeout", "missing")),
        Some(timeout) => {
            duration(timeout).map_err(|problem| FieldError::new("timeout", problem))?
        }
    };
    if timeout < Duration::from_millis(1) {
        return Err(FieldError::new("timeout", "must be at least 1ms"));
    }
    let interval = nonzero_duration(settings.interval.as_ref(), "interval")?;
    Ok(interval.map(|interval| Http2Keepalive { interval, timeout }))
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
