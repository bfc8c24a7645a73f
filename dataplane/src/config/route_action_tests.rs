//! Tests of route action conversion: backends and weights, the timeout cap, retries, and
//! the weighted pick.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::RouteAction as EnvoyRouteAction;
use envoy_types::pb::envoy::config::route::v3::retry_policy::RetryBackOff;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, MaxStreamDuration,
};
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{RetryPolicy as EnvoyRetry, WeightedCluster};
use envoy_types::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};

use super::{retry_policy, route_action};
use crate::config::test_protos::*;
use crate::config::{RetryPolicy, RouteAction};

fn convert(action: &EnvoyRouteAction) -> RouteAction {
    route_action(action, None).unwrap()
}

fn error_field(action: &EnvoyRouteAction) -> String {
    route_action(action, None).unwrap_err().field
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn one_cluster_has_weight_one() {
    let action = convert(&to_cluster("c"));
    assert_eq!(action.backends.len(), 1);
    assert_eq!(action.backends[0].cluster, "c");
    assert_eq!(action.total_weight, 1);
    assert_eq!(action.timeout, None);
    assert_eq!(action.retry, None);
    assert_eq!(error_field(&to_cluster("")), "cluster");
    assert_eq!(
        error_field(&EnvoyRouteAction::default()),
        "cluster_specifier"
    );
    let header = EnvoyRouteAction {
        cluster_specifier: Some(ClusterSpecifier::ClusterHeader("x-cluster".into())),
        ..Default::default()
    };
    assert_eq!(error_field(&header), "cluster_header");
}

#[test]
fn weights_keep_order_and_drop_zeroes() {
    let action = convert(&weighted(&[("a", Some(3)), ("z", Some(0)), ("b", Some(1))]));
    let names: Vec<(&str, u32)> = action
        .backends
        .iter()
        .map(|b| (b.cluster.as_str(), b.weight))
        .collect();
    assert_eq!(names, [("a", 3), ("b", 1)]);
    assert_eq!(action.total_weight, 4);
}

#[test]
fn weight_errors_name_the_field() {
    assert_eq!(
        error_field(&weighted(&[("a", Some(1)), ("b", None)])),
        "weighted_clusters.clusters[1].weight"
    );
    let err = route_action(&weighted(&[("a", Some(0)), ("b", Some(0))]), None).unwrap_err();
    assert_eq!(err.field, "weighted_clusters.clusters");
    assert_eq!(err.problem, "every weight is 0");
    assert_eq!(error_field(&weighted(&[])), "weighted_clusters.clusters");
    assert_eq!(
        error_field(&weighted(&[("", Some(1))])),
        "weighted_clusters.clusters[0].name"
    );
    #[allow(deprecated)]
    let total = EnvoyRouteAction {
        cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: vec![ClusterWeight {
                name: "a".into(),
                weight: Some(UInt32Value { value: 5 }),
                ..Default::default()
            }],
            total_weight: Some(UInt32Value { value: 100 }),
            ..Default::default()
        })),
        ..Default::default()
    };
    assert_eq!(error_field(&total), "weighted_clusters.total_weight");
}

#[test]
fn pick_backend_follows_cumulative_weights() {
    let action = convert(&weighted(&[("v1", Some(90)), ("v2", Some(10))]));
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for draw in 0..action.total_weight {
        *counts
            .entry(action.pick_backend(draw).cluster.as_str())
            .or_default() += 1;
    }
    assert_eq!(counts, BTreeMap::from([("v1", 90), ("v2", 10)]));
    assert_eq!(action.pick_backend(89).cluster, "v1");
    assert_eq!(action.pick_backend(90).cluster, "v2");
    // Out of range: the last backend, never a panic.
    assert_eq!(action.pick_backend(u64::MAX).cluster, "v2");

    let three = convert(&weighted(&[("a", Some(1)), ("b", Some(0)), ("c", Some(2))]));
    let picks: Vec<&str> = (0..3)
        .map(|d| three.pick_backend(d).cluster.as_str())
        .collect();
    assert_eq!(picks, ["a", "c", "c"]);
}

#[test]
fn pick_backend_with_random_draws_matches_weights() {
    let action = convert(&weighted(&[("a", Some(1)), ("b", Some(3))]));
    let mut rng = fastrand::Rng::with_seed(7);
    let draws = 40_000;
    let b = (0..draws)
        .filter(|_| action.pick_backend(rng.u64(0..action.total_weight)).cluster == "b")
        .count();
    let share = b as f64 / f64::from(draws);
    assert!((0.73..0.77).contains(&share), "{share}");
}

fn with_timeouts(
    timeout: Option<u64>,
    stream_max: Option<u64>,
    header_max: Option<u64>,
) -> EnvoyRouteAction {
    let d = |ms: u64| proto_duration(MS(ms));
    EnvoyRouteAction {
        timeout: timeout.map(d),
        max_stream_duration: (stream_max.is_some() || header_max.is_some()).then(|| {
            MaxStreamDuration {
                max_stream_duration: stream_max.map(d),
                grpc_timeout_header_max: header_max.map(d),
                grpc_timeout_header_offset: None,
            }
        }),
        ..to_cluster("c")
    }
}

#[test]
fn timeout_is_the_smallest_nonzero_cap() {
    let timeout = |action: EnvoyRouteAction| convert(&action).timeout;
    let controller = |cap| EnvoyRouteAction {
        cluster_specifier: to_cluster("c").cluster_specifier,
        ..stream_timeouts(cap)
    };
    assert_eq!(timeout(controller(None)), None);
    assert_eq!(timeout(controller(Some(MS(2000)))), Some(MS(2000)));
    assert_eq!(
        timeout(with_timeouts(None, Some(300), Some(200))),
        Some(MS(200))
    );
    assert_eq!(
        timeout(with_timeouts(None, Some(300), Some(0))),
        Some(MS(300))
    );
    // The route timeout counts only when the client's grpc-timeout is not in use.
    assert_eq!(timeout(with_timeouts(Some(100), None, None)), Some(MS(100)));
    assert_eq!(timeout(with_timeouts(Some(100), None, Some(0))), None);
    assert_eq!(
        timeout(with_timeouts(Some(100), Some(50), None)),
        Some(MS(50))
    );
    assert_eq!(timeout(with_timeouts(Some(0), None, None)), None);
    #[allow(deprecated)]
    let legacy = EnvoyRouteAction {
        max_grpc_timeout: Some(proto_duration(MS(700))),
        ..with_timeouts(Some(100), None, None)
    };
    assert_eq!(timeout(legacy), Some(MS(700)));
    let negative = EnvoyRouteAction {
        timeout: Some(ProtoDuration {
            seconds: -1,
            nanos: 0,
        }),
        ..to_cluster("c")
    };
    assert_eq!(error_field(&negative), "timeout");
}

#[test]
fn unsupported_action_fields_are_errors() {
    let rewrite = EnvoyRouteAction {
        prefix_rewrite: "/x".into(),
        ..to_cluster("c")
    };
    assert_eq!(error_field(&rewrite), "prefix_rewrite");
    let idle = |ms| EnvoyRouteAction {
        idle_timeout: Some(proto_duration(MS(ms))),
        ..to_cluster("c")
    };
    assert_eq!(error_field(&idle(5)), "idle_timeout");
    assert!(route_action(&idle(0), None).is_ok());
    let offset = EnvoyRouteAction {
        max_stream_duration: Some(MaxStreamDuration {
            grpc_timeout_header_offset: Some(proto_duration(MS(10))),
            ..Default::default()
        }),
        ..to_cluster("c")
    };
    assert_eq!(
        error_field(&offset),
        "max_stream_duration.grpc_timeout_header_offset"
    );
}

fn retry_of(policy: EnvoyRetry) -> Option<RetryPolicy> {
    retry_policy(&policy).unwrap()
}

#[test]
fn retry_on_names_map_to_grpc_codes() {
    let policy = retry_of(retry(
        "cancelled, deadline-exceeded,internal,resource-exhausted,unavailable,",
        3,
        Some(MS(500)),
    ))
    .unwrap();
    assert_eq!(
        policy,
        RetryPolicy {
            codes: BTreeSet::from([1, 4, 8, 13, 14]),
            not_sent: false,
            retries: 3,
            per_try_timeout: Some(MS(500)),
            backoff: MS(25),
        }
    );
    let action = convert(&EnvoyRouteAction {
        retry_policy: Some(retry("unavailable", 1, None)),
        ..to_cluster("c")
    });
    assert_eq!(action.retry.unwrap().codes, BTreeSet::from([14]));
}

#[test]
fn connect_failure_and_refused_stream_retry_requests_that_never_left() {
    for retry_on in [
        "connect-failure",
        "refused-stream",
        "internal,connect-failure,refused-stream",
    ] {
        let policy = retry_of(retry(retry_on, 2, None)).unwrap();
        assert!(policy.not_sent, "{retry_on}");
    }
    let codes_only = retry_of(retry("unavailable", 2, None)).unwrap();
    assert!(!codes_only.not_sent);
}

#[test]
fn retry_defaults_and_no_op_policies() {
    let bare = EnvoyRetry {
        retry_on: "unavailable".into(),
        ..Default::default()
    };
    let policy = retry_of(bare.clone()).unwrap();
    assert_eq!(policy.retries, 1);
    assert_eq!(policy.backoff, MS(25));
    assert_eq!(policy.per_try_timeout, None);
    assert_eq!(retry_of(retry("", 3, None)), None);
    assert_eq!(retry_of(retry("unavailable", 0, None)), None);
    assert_eq!(
        retry_of(retry("unavailable", 1, Some(MS(0))))
            .unwrap()
            .per_try_timeout,
        None
    );
    let slow = EnvoyRetry {
        retry_back_off: Some(RetryBackOff {
            base_interval: Some(proto_duration(MS(100))),
            max_interval: None,
        }),
        ..bare.clone()
    };
    assert_eq!(retry_of(slow).unwrap().backoff, MS(100));
    let zero = EnvoyRetry {
        retry_back_off: Some(RetryBackOff {
            base_interval: Some(proto_duration(MS(0))),
            max_interval: None,
        }),
        ..bare
    };
    assert_eq!(
        retry_policy(&zero).unwrap_err().field,
        "retry_back_off.base_interval"
    );
}

#[test]
fn unknown_retry_conditions_are_errors_naming_the_token() {
    let err = retry_policy(&retry("unavailable,5xx", 1, None)).unwrap_err();
    assert_eq!(err.field, "retry_on");
    assert!(
        err.problem.starts_with("\"5xx\" is not supported"),
        "{err:?}"
    );
    let err = route_action(
        &EnvoyRouteAction {
            retry_policy: Some(retry("reset", 1, None)),
            ..to_cluster("c")
        },
        None,
    )
    .unwrap_err();
    assert_eq!(err.field, "retry_policy.retry_on");
    let codes = EnvoyRetry {
        retriable_status_codes: vec![503],
        ..retry("unavailable", 1, None)
    };
    assert_eq!(
        retry_policy(&codes).unwrap_err().field,
        "retriable_status_codes"
    );
}

#[test]
fn the_inherited_retry_applies_only_without_a_route_policy() {
    let inherited = retry_of(retry("internal", 4, None)).unwrap();
    let action = route_action(&to_cluster("c"), Some(&inherited)).unwrap();
    assert_eq!(action.retry, Some(inherited.clone()));
    let own = EnvoyRouteAction {
        retry_policy: Some(retry("cancelled", 1, None)),
        ..to_cluster("c")
    };
    let action = route_action(&own, Some(&inherited)).unwrap();
    assert_eq!(action.retry.unwrap().codes, BTreeSet::from([1]));
}
