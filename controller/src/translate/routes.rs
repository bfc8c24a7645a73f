//! GrpcRoutes → Envoy routes: each valid GrpcRoute becomes a list of route entries (one per
//! rule match) and the virtual hosts (parent Service ports) they attach to. Actions carry
//! the backends, the deadline handling and the retry policy.

use std::collections::BTreeMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::retry_policy::RetryBackOff;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, MaxStreamDuration,
};
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{RetryPolicy, Route, RouteAction, WeightedCluster};
use envoy_types::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};

use super::services::Catalog;
use super::validate::{self, RetryValues, RuleValues};
use super::{ResourceReport, matching, problems};
use crate::api::{GrpcRoute, GrpcStatus, RouteRule, WebAccess};
use crate::model::{Index, Kind, Object, ObjectKey};

/// A valid GrpcRoute, translated.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AttachedRoute {
    pub key: ObjectKey,
    /// The Service ports it governs: (namespace, name, port).
    pub parents: Vec<(String, String, u16)>,
    /// Its route entries, in rule then match order.
    pub entries: Vec<Route>,
    /// Its `spec.web`: which gRPC services browsers may call through it (`web.rs`).
    pub web: Option<WebAccess>,
}

/// Translates every GrpcRoute in key (namespace/name) order, reporting each.
pub(super) fn translate_routes(
    index: &Index,
    catalog: &Catalog,
    reports: &mut BTreeMap<ObjectKey, ResourceReport>,
) -> Vec<AttachedRoute> {
    let mut attached = Vec::new();
    for object in index.of_kind(Kind::GrpcRoute) {
        let Object::GrpcRoute(route) = object else {
            continue;
        };
        let key = object.key();
        let mut report = ResourceReport::new(object.generation());
        let checked = validate::grpc_route(route);
        let (parents, mut unresolved) = parents(route, &key.namespace, catalog);
        let mut entries = Vec::new();
        for (i, rule) in route.spec.rules.iter().enumerate() {
            let backends = backends(rule, i, &key.namespace, catalog, &mut unresolved);
            let (Ok(values), Some(backends)) = (&checked, backends) else {
                continue;
            };
            let values = &values[i];
            if let Some(retry) = &values.retry {
                report.notes.extend(retry_note(i, retry));
            }
            entries.extend(rule_entries(&key, i, rule, values, &backends));
        }
        report.resolved_refs = problems(unresolved);
        match checked {
            Ok(_) => attached.push(AttachedRoute {
                key: key.clone(),
                parents,
                entries,
                web: route.spec.web.clone(),
            }),
            Err(list) => report.accepted = problems(list),
        }
        reports.insert(key, report);
    }
    attached
}

/// The parent Service ports that exist, and a problem for each that does not.
fn parents(
    route: &GrpcRoute,
    namespace: &str,
    catalog: &Catalog,
) -> (Vec<(String, String, u16)>, Vec<String>) {
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for (i, parent) in route.spec.parent_refs.iter().enumerate() {
        let ns = parent.namespace.as_deref().unwrap_or(namespace);
        let Some(service) = catalog.get(ns, &parent.name) else {
            missing.push(format!(
                "spec.parentRefs[{i}]: no Service {ns}/{}",
                parent.name
            ));
            continue;
        };
        match parent.port {
            None => found.extend(
                service
                    .ports
                    .iter()
                    .map(|p| (ns.to_owned(), parent.name.clone(), p.port)),
            ),
            Some(port) => match service.port(port) {
                Some(p) => found.push((ns.to_owned(), parent.name.clone(), p.port)),
                None => missing.push(format!(
                    "spec.parentRefs[{i}].port: Service {ns}/{} has no port {port}",
                    parent.name
                )),
            },
        }
    }
    found.sort();
    found.dedup();
    (found, missing)
}

/// The (cluster, weight) of each backend with a non-zero weight; `None` (and a problem
/// each) when one of those is missing, which leaves the rule out.
fn backends(
    rule: &RouteRule,
    i: usize,
    namespace: &str,
    catalog: &Catalog,
    unresolved: &mut Vec<String>,
) -> Option<Vec<(String, u32)>> {
    let mut clusters = Vec::new();
    let mut complete = true;
    for (j, backend) in rule.backend_refs.iter().enumerate() {
        let ns = backend.namespace.as_deref().unwrap_or(namespace);
        let service = catalog.get(ns, &backend.name);
        let problem = match service {
            None => Some(format!(
                "spec.rules[{i}].backendRefs[{j}]: Service {ns}/{} not found",
                backend.name
            )),
            Some(s) if s.port(backend.port).is_none() => Some(format!(
                "spec.rules[{i}].backendRefs[{j}].port: Service {ns}/{} has no port {}",
                backend.name, backend.port
            )),
            Some(_) => None,
        };
        let weight = u32::try_from(backend.weight).unwrap_or(0);
        match (problem, service) {
            (Some(problem), _) if weight == 0 => unresolved.push(problem),
            (Some(problem), _) => {
                unresolved.push(format!("{problem}; rule {i} is left out"));
                complete = false;
            }
            (None, Some(s)) if weight > 0 => {
                clusters.push((
                    s.cluster(u16::try_from(backend.port).unwrap_or_default()),
                    weight,
                ));
            }
            (None, _) => {}
        }
    }
    complete.then_some(clusters)
}

/// The route entries of rule `i`: one per match (a catch-all when it has none).
fn rule_entries(
    key: &ObjectKey,
    i: usize,
    rule: &RouteRule,
    values: &RuleValues,
    backends: &[(String, u32)],
) -> Vec<Route> {
    let action = RouteAction {
        cluster_specifier: Some(cluster_specifier(backends)),
        retry_policy: values.retry.as_ref().and_then(retry_policy),
        ..stream_timeouts(values.timeout)
    };
    let base = format!("grpcroute:{}/{}:rules[{i}]", key.namespace, key.name);
    let matches: Vec<Option<&crate::api::RouteMatch>> = if rule.matches.is_empty() {
        vec![None]
    } else {
        rule.matches.iter().map(Some).collect()
    };
    matches
        .into_iter()
        .enumerate()
        .map(|(j, rpc)| Route {
            name: format!("{base}.matches[{j}]"),
            r#match: Some(matching::route_match(rpc)),
            action: Some(Action::Route(action.clone())),
            ..Default::default()
        })
        .collect()
}

fn cluster_specifier(backends: &[(String, u32)]) -> ClusterSpecifier {
    match backends {
        [(cluster, _)] => ClusterSpecifier::Cluster(cluster.clone()),
        _ => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: backends
                .iter()
                .map(|(name, weight)| ClusterWeight {
                    name: name.clone(),
                    weight: Some(UInt32Value { value: *weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    }
}

/// A RouteAction with only the stream timeouts set: no route timeout (`0s`; Envoy's 15 s
/// default would cut streams), and the client's `grpc-timeout` honoured, capped by
/// `timeout`, which also applies when the client sends none.
pub(super) fn stream_timeouts(timeout: Option<Duration>) -> RouteAction {
    let cap = proto_duration(timeout.unwrap_or_default());
    RouteAction {
        timeout: Some(ProtoDuration::default()),
        max_stream_duration: Some(MaxStreamDuration {
            max_stream_duration: timeout.map(proto_duration),
            grpc_timeout_header_max: Some(cap),
            grpc_timeout_header_offset: None,
        }),
        ..Default::default()
    }
}

pub(super) fn proto_duration(duration: Duration) -> ProtoDuration {
    ProtoDuration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or_default(),
    }
}

/// Envoy's `retry_on` conditions for a request that never reached the app: the connection
/// failed, or the server refused the stream (REFUSED_STREAM).
const NEVER_SENT_CONDITIONS: [&str; 2] = ["connect-failure", "refused-stream"];

/// The `retry_on` name of the statuses Envoy can retry on.
fn retry_on_name(status: GrpcStatus) -> Option<&'static str> {
    Some(match status {
        GrpcStatus::Cancelled => "cancelled",
        GrpcStatus::DeadlineExceeded => "deadline-exceeded",
        GrpcStatus::Internal => "internal",
        GrpcStatus::ResourceExhausted => "resource-exhausted",
        GrpcStatus::Unavailable => "unavailable",
        _ => return None,
    })
}

/// Envoy's retry policy; `None` when nothing would be retried (`attempts: 0`, or no code
/// Envoy can retry on).
fn retry_policy(retry: &RetryValues) -> Option<RetryPolicy> {
    let names: Vec<&str> = retry
        .codes
        .iter()
        .filter_map(|c| retry_on_name(*c))
        .collect();
    if retry.attempts == 0 || names.is_empty() {
        return None;
    }
    // A request that never reached the app is safe to send again, whatever codes the
    // policy names: weft-proxy does so, and these two conditions make Envoy do the same.
    let names: Vec<&str> = names.into_iter().chain(NEVER_SENT_CONDITIONS).collect();
    Some(RetryPolicy {
        retry_on: names.join(","),
        num_retries: Some(UInt32Value {
            value: retry.attempts,
        }),
        per_try_timeout: retry.per_try_timeout.map(proto_duration),
        retry_back_off: Some(RetryBackOff {
            base_interval: Some(proto_duration(retry.backoff)),
            max_interval: None,
        }),
        ..Default::default()
    })
}

/// A note when some codes cannot be retried on (Envoy's `retry_on` has no name for them).
fn retry_note(i: usize, retry: &RetryValues) -> Option<String> {
    let lost: Vec<String> = retry
        .codes
        .iter()
        .filter(|c| retry_on_name(**c).is_none())
        .map(|c| {
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    (!lost.is_empty() && retry.attempts > 0).then(|| {
        format!(
            "spec.rules[{i}].retry.codes: {} cannot be retried (Envoy's retry_on knows only \
             CANCELLED, DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED and UNAVAILABLE); RPCs \
             failing with them are not retried",
            lost.join(", ")
        )
    })
}

#[cfg(test)]
mod tests;
