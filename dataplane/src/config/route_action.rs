//! Envoy's `RouteAction` → [`RouteAction`]: the backends and their weights, the timeout that
//! caps the client's deadline, and the retry policy.
//!
//! Timeouts: weft routes honour the client's `grpc-timeout`, capped by the route's timeout.
//! The cap is the smallest non-zero of `max_stream_duration.max_stream_duration`,
//! `max_stream_duration.grpc_timeout_header_max` and the deprecated `max_grpc_timeout`; the
//! route `timeout` counts too unless one of the last two is set (Envoy then uses the
//! client's header instead of it). Zero means "no cap", and so does an unset `timeout`:
//! weft-proxy has no equivalent of Envoy's 15 s default, which cuts long streams.
//!
//! Fields that would change what happens to an RPC and are not implemented (rewrites,
//! mirrors, hedging, ...) are errors; fields that only concern HTTP/1, browsers or Envoy's
//! own stats are ignored.

use std::collections::BTreeSet;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::RetryPolicy as EnvoyRetryPolicy;
use envoy_types::pb::envoy::config::route::v3::RouteAction as EnvoyRouteAction;
use envoy_types::pb::envoy::config::route::v3::WeightedCluster;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;

use super::convert::{
    FieldError, FieldResult, duration, nonzero_duration, reject_set, unsupported,
};
use super::{RetryPolicy, RouteAction, WeightedBackend};

/// Envoy's default retry back-off base interval.
const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);

/// The `retry_on` conditions that mean "the request never reached the app" (the connection
/// failed, the stream was refused): weft-proxy retries all such attempts when either is set
/// (it also counts a GOAWAY below the stream and a connection that closed before sending).
const NOT_SENT_CONDITIONS: [&str; 2] = ["connect-failure", "refused-stream"];

/// The `retry_on` names of gRPC statuses and their codes.
const RETRY_ON_CODES: [(&str, u32); 5] = [
    ("cancelled", 1),
    ("deadline-exceeded", 4),
    ("internal", 13),
    ("resource-exhausted", 8),
    ("unavailable", 14),
];

/// A route's action; `inherited_retry` is its virtual host's retry policy, which applies
/// when the route has none.
pub(super) fn route_action(
    action: &EnvoyRouteAction,
    inherited_retry: Option<&RetryPolicy>,
) -> FieldResult<RouteAction> {
    reject_unsupported(action)?;
    let backends = match &action.cluster_specifier {
        None => return Err(FieldError::new("cluster_specifier", "missing")),
        Some(ClusterSpecifier::Cluster(name)) if name.is_empty() => {
            return Err(FieldError::new("cluster", "empty"));
        }
        Some(ClusterSpecifier::Cluster(name)) => vec![WeightedBackend {
            cluster: name.clone(),
            weight: 1,
        }],
        Some(ClusterSpecifier::WeightedClusters(weighted)) => {
            weighted_backends(weighted).map_err(|e| e.within("weighted_clusters"))?
        }
        Some(ClusterSpecifier::ClusterHeader(_)) => return Err(unsupported("cluster_header")),
        Some(ClusterSpecifier::ClusterSpecifierPlugin(_)) => {
            return Err(unsupported("cluster_specifier_plugin"));
        }
        Some(ClusterSpecifier::InlineClusterSpecifierPlugin(_)) => {
            return Err(unsupported("inline_cluster_specifier_plugin"));
        }
    };
    let retry = match &action.retry_policy {
        Some(policy) => retry_policy(policy).map_err(|e| e.within("retry_policy"))?,
        None => inherited_retry.cloned(),
    };
    Ok(RouteAction {
        total_weight: backends.iter().map(|b| u64::from(b.weight)).sum(),
        backends,
        timeout: timeout(action)?,
        retry,
    })
}

// Deprecated fields are read on purpose: other servers still send them.
#[allow(deprecated)]
fn reject_unsupported(action: &EnvoyRouteAction) -> FieldResult<()> {
    let set = [
        ("prefix_rewrite", !action.prefix_rewrite.is_empty()),
        ("regex_rewrite", action.regex_rewrite.is_some()),
        ("path_rewrite_policy", action.path_rewrite_policy.is_some()),
        ("path_rewrite", !action.path_rewrite.is_empty()),
        ("host_rewrite", action.host_rewrite_specifier.is_some()),
        ("metadata_match", action.metadata_match.is_some()),
        (
            "request_mirror_policies",
            !action.request_mirror_policies.is_empty(),
        ),
        (
            "retry_policy_typed_config",
            action.retry_policy_typed_config.is_some(),
        ),
        ("hedge_policy", action.hedge_policy.is_some()),
        ("rate_limits", !action.rate_limits.is_empty()),
        (
            "internal_redirect_policy",
            action.internal_redirect_policy.is_some(),
        ),
        ("upgrade_configs", !action.upgrade_configs.is_empty()),
    ];
    reject_set(&set)?;
    let offsets = [
        ("grpc_timeout_offset", action.grpc_timeout_offset.as_ref()),
        (
            "max_stream_duration.grpc_timeout_header_offset",
            action
                .max_stream_duration
                .as_ref()
                .and_then(|m| m.grpc_timeout_header_offset.as_ref()),
        ),
        ("idle_timeout", action.idle_timeout.as_ref()),
    ];
    for (field, value) in offsets {
        if nonzero_duration(value, field)?.is_some() {
            return Err(unsupported(field));
        }
    }
    Ok(())
}

/// The backends with a non-zero weight, in order.
#[allow(deprecated)]
fn weighted_backends(weighted: &WeightedCluster) -> FieldResult<Vec<WeightedBackend>> {
    if weighted.random_value_specifier.is_some() {
        return Err(unsupported("header_name"));
    }
    let mut backends = Vec::new();
    let mut sum: u64 = 0;
    for (i, cluster) in weighted.clusters.iter().enumerate() {
        let weight = cluster_weight(cluster).map_err(|e| e.within(&format!("clusters[{i}]")))?;
        sum += u64::from(weight);
        if weight > 0 {
            backends.push(WeightedBackend {
                cluster: cluster.name.clone(),
                weight,
            });
        }
    }
    if let Some(total) = &weighted.total_weight
        && u64::from(total.value) != sum
    {
        return Err(FieldError::new(
            "total_weight",
            format!("{} is not the sum of the weights ({sum})", total.value),
        ));
    }
    if weighted.clusters.is_empty() {
        return Err(FieldError::new("clusters", "empty"));
    }
    if backends.is_empty() {
        return Err(FieldError::new("clusters", "every weight is 0"));
    }
    Ok(backends)
}

fn cluster_weight(cluster: &ClusterWeight) -> FieldResult<u32> {
    if cluster.name.is_empty() {
        return Err(if cluster.cluster_header.is_empty() {
            FieldError::new("name", "empty")
        } else {
            unsupported("cluster_header")
        });
    }
    let set = [
        ("metadata_match", cluster.metadata_match.is_some()),
        (
            "request_headers_to_add",
            !cluster.request_headers_to_add.is_empty(),
        ),
        (
            "request_headers_to_remove",
            !cluster.request_headers_to_remove.is_empty(),
        ),
        (
            "response_headers_to_add",
            !cluster.response_headers_to_add.is_empty(),
        ),
        (
            "response_headers_to_remove",
            !cluster.response_headers_to_remove.is_empty(),
        ),
        (
            "typed_per_filter_config",
            !cluster.typed_per_filter_config.is_empty(),
        ),
        ("host_rewrite", cluster.host_rewrite_specifier.is_some()),
    ];
    reject_set(&set)?;
    cluster
        .weight
        .map(|w| w.value)
        .ok_or_else(|| FieldError::new("weight", "missing"))
}

/// The cap on the RPC's deadline (see the module comment).
#[allow(deprecated)]
fn timeout(action: &EnvoyRouteAction) -> FieldResult<Option<Duration>> {
    let stream = action.max_stream_duration.as_ref();
    let stream_max = nonzero_duration(
        stream.and_then(|m| m.max_stream_duration.as_ref()),
        "max_stream_duration.max_stream_duration",
    )?;
    let header_max_field = stream.and_then(|m| m.grpc_timeout_header_max.as_ref());
    let header_max = nonzero_duration(
        header_max_field,
        "max_stream_duration.grpc_timeout_header_max",
    )?;
    let legacy_header_max = nonzero_duration(action.max_grpc_timeout.as_ref(), "max_grpc_timeout")?;
    let route_timeout = nonzero_duration(action.timeout.as_ref(), "timeout")?;
    let uses_header = header_max_field.is_some() || action.max_grpc_timeout.is_some();
    let candidates = [
        stream_max,
        header_max,
        legacy_header_max,
        route_timeout.filter(|_| !uses_header),
    ];
    Ok(candidates.into_iter().flatten().min())
}

/// A retry policy; `None` when it retries nothing (no status named, or `num_retries: 0`).
pub(super) fn retry_policy(policy: &EnvoyRetryPolicy) -> FieldResult<Option<RetryPolicy>> {
    let set = [
        (
            "per_try_idle_timeout",
            policy.per_try_idle_timeout.is_some(),
        ),
        ("retry_priority", policy.retry_priority.is_some()),
        (
            "retry_host_predicate",
            !policy.retry_host_predicate.is_empty(),
        ),
        (
            "retry_options_predicates",
            !policy.retry_options_predicates.is_empty(),
        ),
        (
            "retriable_status_codes",
            !policy.retriable_status_codes.is_empty(),
        ),
        (
            "rate_limited_retry_back_off",
            policy.rate_limited_retry_back_off.is_some(),
        ),
        ("retriable_headers", !policy.retriable_headers.is_empty()),
        (
            "retriable_request_headers",
            !policy.retriable_request_headers.is_empty(),
        ),
    ];
    reject_set(&set)?;
    let (codes, not_sent) = retry_conditions(&policy.retry_on)?;
    let retries = policy.num_retries.map_or(1, |n| n.value);
    let per_try_timeout = nonzero_duration(policy.per_try_timeout.as_ref(), "per_try_timeout")?;
    let backoff = match &policy.retry_back_off {
        None => DEFAULT_BACKOFF,
        Some(back_off) => {
            let field = "retry_back_off.base_interval";
            let base = back_off
                .base_interval
                .as_ref()
                .ok_or_else(|| FieldError::new(field, "missing"))?;
            let base = duration(base).map_err(|problem| FieldError::new(field, problem))?;
            if base.is_zero() {
                return Err(FieldError::new(field, "must be greater than 0"));
            }
            base
        }
    };
    if (codes.is_empty() && !not_sent) || retries == 0 {
        return Ok(None);
    }
    Ok(Some(RetryPolicy {
        codes,
        not_sent,
        retries,
        per_try_timeout,
        backoff,
    }))
}

/// The gRPC codes of a `retry_on` list, and whether it retries requests that never reached
/// the app; any other condition (`5xx`, `reset`, ...) is an error, since weft-proxy retries
/// on gRPC statuses and unsent requests only.
fn retry_conditions(retry_on: &str) -> FieldResult<(BTreeSet<u32>, bool)> {
    let mut codes = BTreeSet::new();
    let mut not_sent = false;
    for token in retry_on.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if NOT_SENT_CONDITIONS.contains(&token) {
            not_sent = true;
            continue;
        }
        let Some((_, code)) = RETRY_ON_CODES.iter().find(|(name, _)| *name == token) else {
            let known: Vec<&str> = RETRY_ON_CODES.iter().map(|(name, _)| *name).collect();
            return Err(FieldError::new(
                "retry_on",
                format!(
                    "{token:?} is not supported by weft-proxy, which retries on gRPC statuses \
                     ({}) and on requests that never reached the app ({})",
                    known.join(", "),
                    NOT_SENT_CONDITIONS.join(", ")
                ),
            ));
        };
        codes.insert(*code);
    }
    Ok((codes, not_sent))
}

#[cfg(test)]
#[path = "route_action_tests.rs"]
mod tests;
