//! BackendPolicies → the settings of their Service's clusters (every port): outlier
//! detection, circuit breaker thresholds, connect timeout and HTTP/2 keepalive, in Envoy's
//! terms, which weft-proxy reads with the same meaning.
//!
//! - `consecutiveErrors` → `consecutive_5xx` (enforced 100%): Envoy's router reports a gRPC
//!   status of a Trailers-Only answer to outlier detection as its HTTP equivalent, and
//!   connect failures, resets and timeouts as 503/504, so "5xx" is exactly the set the API
//!   documents. `consecutiveGatewayErrors` → `consecutive_gateway_failure` with its
//!   enforcement raised from Envoy's default 0% to 100% (absent: enforcement 0%, so gateway
//!   errors eject only through the 5xx count). Success-rate detection is turned off
//!   (`enforcing_success_rate: 0`): weft-proxy does not implement it.
//! - `circuitBreaker` → the DEFAULT priority's `max_requests` / `max_pending_requests`; what
//!   is not set stays at weft's 1 000 000.
//! - `http2Keepalive` → `Http2ProtocolOptions.connection_keepalive`.
//!
//! One policy per Service: when several target the same Service, the first by name applies
//! and the others are not accepted (their status names the one that applies).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;
use envoy_types::pb::envoy::config::core::v3::KeepaliveSettings;
use envoy_types::pb::google::protobuf::UInt32Value;

use super::routes::proto_duration;
use super::services::Catalog;
use super::validate::{self, BackendValues};
use super::{ResourceReport, problems};
use crate::model::{Index, Kind, Object, ObjectKey};

/// The applied settings of each targeted Service, by (namespace, name).
pub(super) type BackendSettings = BTreeMap<(String, String), BackendValues>;

/// Checks and resolves every BackendPolicy (namespace/name order), reporting each; returns
/// the settings that apply.
pub(super) fn resolve_policies(
    index: &Index,
    catalog: &Catalog,
    reports: &mut BTreeMap<ObjectKey, ResourceReport>,
) -> BackendSettings {
    let mut applied = BackendSettings::new();
    let mut owners: BTreeMap<(String, String), String> = BTreeMap::new();
    for object in index.of_kind(Kind::BackendPolicy) {
        let Object::BackendPolicy(policy) = object else {
            continue;
        };
        let key = object.key();
        let mut report = ResourceReport::new(object.generation());
        let service = policy.spec.target_ref.name.clone();
        let target = (key.namespace.clone(), service.clone());
        if catalog.get(&key.namespace, &service).is_none() {
            report.resolved_refs = Err(format!(
                "spec.targetRef: no Service {}/{service}",
                key.namespace
            ));
        }
        match validate::backend_policy(policy) {
            Err(list) => report.accepted = problems(list),
            Ok(values) => match owners.get(&target) {
                Some(first) => {
                    report.accepted = Err(format!(
                        "spec.targetRef: BackendPolicy {}/{first} targets the same Service and \
                         applies (first by name); this one does not",
                        key.namespace
                    ));
                }
                None => {
                    owners.insert(target.clone(), key.name.clone());
                    if let Some(service) = catalog.get(&key.namespace, &service) {
                        report.attachments.clusters = service
                            .ports
                            .iter()
                            .map(|p| service.cluster(p.port))
                            .collect();
                        applied.insert(target, values);
                    }
                }
            },
        }
        reports.insert(key, report);
    }
    applied
}

/// Envoy's outlier detection for `values`.
pub(super) fn outlier_detection(values: &validate::OutlierValues) -> OutlierDetection {
    let count = |value: u32| Some(UInt32Value { value });
    OutlierDetection {
        consecutive_5xx: count(values.consecutive_errors),
        enforcing_consecutive_5xx: count(100),
        consecutive_gateway_failure: values
            .consecutive_gateway_errors
            .map(|value| UInt32Value { value }),
        enforcing_consecutive_gateway_failure: count(match values.consecutive_gateway_errors {
            Some(_) => 100,
            None => 0,
        }),
        enforcing_success_rate: count(0),
        interval: Some(proto_duration(values.interval)),
        base_ejection_time: Some(proto_duration(values.base_ejection_time)),
        max_ejection_time: Some(proto_duration(values.max_ejection_time)),
        max_ejection_percent: count(values.max_ejection_percent),
        ..Default::default()
    }
}

/// Envoy's connection keepalive for (interval, timeout).
pub(super) fn keepalive(
    (interval, timeout): (std::time::Duration, std::time::Duration),
) -> KeepaliveSettings {
    KeepaliveSettings {
        interval: Some(proto_duration(interval)),
        timeout: Some(proto_duration(timeout)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::Http2ProtocolOptions;
    use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
    use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
        UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
    };
    use envoy_types::pb::google::protobuf::Duration as ProtoDuration;

    use super::*;
    use crate::ads::ResourceType;
    use crate::translate::testutil::{decode, greeters, index};
    use crate::translate::{Translation, cluster_name, translate};

    const CLUSTER: &str = "outbound|50051||greeter.default.svc.cluster.local";

    fn policy(name: &str, spec: &str) -> String {
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: BackendPolicy\n\
             metadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
        )
    }

    fn cluster_of(translation: &Translation, name: &str) -> Cluster {
        let resources = translation.snapshot.resources(ResourceType::Cluster);
        decode(&resources.get(name).expect("the cluster").body)
    }

    fn seconds(seconds: i64) -> Option<ProtoDuration> {
        Some(ProtoDuration { seconds, nanos: 0 })
    }

    fn http2(cluster: &Cluster) -> Http2ProtocolOptions {
        let options: HttpProtocolOptions = decode(
            &cluster.typed_extension_protocol_options[super::super::cluster::HTTP_PROTOCOL_OPTIONS],
        );
        match options.upstream_protocol_options {
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) => {
                match explicit.protocol_config {
                    Some(ProtocolConfig::Http2ProtocolOptions(http2)) => http2,
                    other => panic!("not HTTP/2: {other:?}"),
                }
            }
            other => panic!("not explicit: {other:?}"),
        }
    }

    #[test]
    fn a_full_policy_becomes_envoy_outlier_detection_breakers_timeout_and_keepalive() {
        let spec = "{targetRef: {kind: Service, name: greeter}, connectTimeout: 250ms, \
             circuitBreaker: {maxRequests: 4, maxPendingRequests: 2}, \
             outlierDetection: {consecutiveErrors: 3, consecutiveGatewayErrors: 2, interval: 1s, \
             baseEjectionTime: 5s, maxEjectionTime: 1m, maxEjectionPercent: 34}, \
             http2Keepalive: {interval: 30s, timeout: 5s}}";
        let t = translate(&index(&(greeters() + "---\n" + &policy("greeter", spec))));
        assert_eq!(
            t.report(Kind::BackendPolicy, "default", "greeter").accepted,
            Ok(())
        );
        let c = cluster_of(&t, CLUSTER);
        assert_eq!(
            c.connect_timeout,
            Some(ProtoDuration {
                seconds: 0,
                nanos: 250_000_000
            })
        );
        let thresholds = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
        assert_eq!(thresholds.max_requests, Some(UInt32Value { value: 4 }));
        assert_eq!(
            thresholds.max_pending_requests,
            Some(UInt32Value { value: 2 })
        );
        assert_eq!(
            thresholds.max_connections,
            Some(UInt32Value { value: 1_000_000 })
        );
        let outlier = c.outlier_detection.clone().unwrap();
        let count = |value| Some(UInt32Value { value });
        assert_eq!(outlier.consecutive_5xx, count(3));
        assert_eq!(outlier.enforcing_consecutive_5xx, count(100));
        assert_eq!(outlier.consecutive_gateway_failure, count(2));
        assert_eq!(outlier.enforcing_consecutive_gateway_failure, count(100));
        assert_eq!(outlier.enforcing_success_rate, count(0));
        assert_eq!(outlier.interval, seconds(1));
        assert_eq!(outlier.base_ejection_time, seconds(5));
        assert_eq!(outlier.max_ejection_time, seconds(60));
        assert_eq!(outlier.max_ejection_percent, count(34));
        let keepalive = http2(&c).connection_keepalive.unwrap();
        assert_eq!(
            (keepalive.interval, keepalive.timeout),
            (seconds(30), seconds(5))
        );
        // Other Services keep the defaults.
        let other = cluster_of(&t, &cluster_name("default", "greeter-v1", 50051));
        assert!(other.outlier_detection.is_none());
        assert_eq!(other.connect_timeout, seconds(1));
    }

    #[test]
    fn defaults_fill_what_the_policy_leaves_out() {
        let spec = "{targetRef: {kind: Service, name: greeter}, outlierDetection: {}, \
                    circuitBreaker: {maxRequests: 10}}";
        let t = translate(&index(&(greeters() + "---\n" + &policy("greeter", spec))));
        let c = cluster_of(&t, CLUSTER);
        let outlier = c.outlier_detection.clone().unwrap();
        let count = |value| Some(UInt32Value { value });
        assert_eq!(outlier.consecutive_5xx, count(5));
        assert_eq!(outlier.consecutive_gateway_failure, None);
        // Gateway errors alone never eject (Envoy's default enforcement is 0% too).
        assert_eq!(outlier.enforcing_consecutive_gateway_failure, count(0));
        assert_eq!(outlier.interval, seconds(10));
        assert_eq!(outlier.base_ejection_time, seconds(30));
        assert_eq!(outlier.max_ejection_time, seconds(300));
        assert_eq!(outlier.max_ejection_percent, count(50));
        let thresholds = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
        assert_eq!(thresholds.max_requests, count(10));
        assert_eq!(thresholds.max_pending_requests, count(1_000_000));
        assert!(http2(&c).connection_keepalive.is_none());
        assert_eq!(c.connect_timeout, seconds(1));
    }

    #[test]
    fn bad_values_are_named_and_the_cluster_keeps_its_defaults() {
        let spec = "{targetRef: {kind: Service, name: greeter}, connectTimeout: 0s, \
                    outlierDetection: {consecutiveErrors: 0, baseEjectionTime: soon}, \
                    http2Keepalive: {interval: 100ms}}";
        let t = translate(&index(&(greeters() + "---\n" + &policy("greeter", spec))));
        let why = t
            .report(Kind::BackendPolicy, "default", "greeter")
            .accepted
            .clone()
            .unwrap_err();
        for expected in [
            "spec.connectTimeout: 0s must be longer than 0",
            "spec.outlierDetection.consecutiveErrors: 0 is not within 1 to 1000",
            "spec.outlierDetection.baseEjectionTime: \"soon\" is not a duration",
            "spec.http2Keepalive.interval: 100ms is shorter than 1s",
        ] {
            assert!(why.contains(expected), "{expected:?} not in {why:?}");
        }
        let c = cluster_of(&t, CLUSTER);
        assert!(c.outlier_detection.is_none());
        assert_eq!(c.connect_timeout, seconds(1));
    }

    #[test]
    fn the_maximum_ejection_time_is_never_below_the_base() {
        let long_base = "{targetRef: {kind: Service, name: greeter}, \
                         outlierDetection: {baseEjectionTime: 10m}}";
        let t = translate(&index(
            &(greeters() + "---\n" + &policy("greeter", long_base)),
        ));
        let outlier = cluster_of(&t, CLUSTER).outlier_detection.unwrap();
        assert_eq!(outlier.max_ejection_time, seconds(600), "the default grows");

        let below = "{targetRef: {kind: Service, name: greeter}, \
                     outlierDetection: {baseEjectionTime: 5s, maxEjectionTime: 1s}}";
        let t = translate(&index(&(greeters() + "---\n" + &policy("greeter", below))));
        assert_eq!(
            t.report(Kind::BackendPolicy, "default", "greeter").accepted,
            Err(
                "spec.outlierDetection.maxEjectionTime: 1s is shorter than baseEjectionTime (5s)"
                    .into()
            )
        );
    }

    #[test]
    fn an_empty_policy_is_refused() {
        let t = translate(&index(
            &(greeters()
                + "---\n"
                + &policy("greeter", "{targetRef: {kind: Service, name: greeter}}")),
        ));
        let why = t
            .report(Kind::BackendPolicy, "default", "greeter")
            .accepted
            .clone();
        assert_eq!(
            why,
            Err(
                "spec: set at least one of outlierDetection, circuitBreaker, connectTimeout, \
                 http2Keepalive"
                    .into()
            )
        );
    }

    #[test]
    fn a_missing_service_is_reported_and_the_second_policy_on_a_service_does_not_apply() {
        let yaml = [
            greeters(),
            policy(
                "a",
                "{targetRef: {kind: Service, name: greeter}, connectTimeout: 2s}",
            ),
            policy(
                "b",
                "{targetRef: {kind: Service, name: greeter}, connectTimeout: 3s}",
            ),
            policy(
                "c",
                "{targetRef: {kind: Service, name: nowhere}, connectTimeout: 3s}",
            ),
        ]
        .join("---\n");
        let t = translate(&index(&yaml));
        assert_eq!(
            t.report(Kind::BackendPolicy, "default", "a").accepted,
            Ok(())
        );
        assert_eq!(
            t.report(Kind::BackendPolicy, "default", "b").accepted,
            Err(
                "spec.targetRef: BackendPolicy default/a targets the same Service and applies \
                 (first by name); this one does not"
                    .into()
            )
        );
        assert_eq!(
            t.report(Kind::BackendPolicy, "default", "c").resolved_refs,
            Err("spec.targetRef: no Service default/nowhere".into())
        );
        assert_eq!(cluster_of(&t, CLUSTER).connect_timeout, seconds(2));
    }
}
