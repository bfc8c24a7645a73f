//! `BackendPolicy`: how callers treat the endpoints of one Service — outlier detection
//! (eject an endpoint after consecutive errors), circuit breaking (cap the RPCs in flight to
//! the Service), connect timeout and HTTP/2 keepalive. It is the part of Istio's
//! DestinationRule `trafficPolicy` (and of Gateway API's BackendTrafficPolicy) that gRPC
//! needs, attached to the Service rather than to a route, because a Service's endpoints are
//! the same whichever route sends to them.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Duration;
use super::status::ResourceStatus;

/// Outlier detection, circuit breaking, connect timeout and HTTP/2 keepalive for the callers
/// of one Service.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
// clippy mistakes the repeated `type_ = "string"` of separate print columns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "BackendPolicy",
    plural = "backendpolicies",
    singular = "backendpolicy",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    shortname = "bp",
    category = "weft",
    doc = "BackendPolicy sets how callers treat the endpoints of a Service: outlier \
           detection, circuit breaking, connect timeout and HTTP/2 keepalive.",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.targetRef.name"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Accepted")].status"#
    ),
    printcolumn(
        name = "Programmed",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Programmed")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "has(self.outlierDetection) || has(self.circuitBreaker) || has(self.connectTimeout) || has(self.http2Keepalive)"
).message("set at least one of outlierDetection, circuitBreaker, connectTimeout, http2Keepalive"))]
pub struct BackendPolicySpec {
    /// The Service, in the policy's namespace, whose callers this applies to (every port).
    pub target_ref: BackendTargetRef,

    /// Eject an endpoint that keeps failing for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,

    /// Cap the RPCs in flight to the Service; the ones over the cap fail fast with
    /// UNAVAILABLE. Absent: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,

    /// How long connecting to an endpoint may take. Absent: 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,

    /// Ping connections to the endpoints, so one that died silently is noticed and
    /// replaced. Absent: no pings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keepalive: Option<Http2Keepalive>,
}

/// The kind of resource a BackendPolicy targets: a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum BackendTargetKind {
    Service,
}

/// A Service in the policy's namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendTargetRef {
    /// `Service`.
    pub kind: BackendTargetKind,

    /// The Service name.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// Ejects an endpoint from balancing after consecutive errors, for an ejection time that
/// grows each time it is ejected again (Envoy's outlier detection, consecutive errors only).
///
/// What counts, per endpoint and try: a gRPC status answered without a response body whose
/// HTTP equivalent is a 5xx (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
/// UNAVAILABLE, DATA_LOSS), an HTTP 5xx, a failed connect, a reset stream or a per-try
/// timeout. Anything else resets the count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Consecutive errors (as above) that eject an endpoint, 1 to 1000. Absent: 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub consecutive_errors: Option<i32>,

    /// Consecutive gateway errors (UNAVAILABLE, DEADLINE_EXCEEDED, HTTP 502–504, failed
    /// connects, resets, per-try timeouts) that eject an endpoint, 1 to 1000. Absent: not
    /// counted apart from `consecutiveErrors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub consecutive_gateway_errors: Option<i32>,

    /// How often ejection counts are aged: an endpoint's ejection count drops by one for
    /// each interval it stays in service. Absent: 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,

    /// How long the first ejection lasts; the n-th lasts n times this. Absent: 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,

    /// The longest an ejection lasts. Absent: 300s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_time: Option<Duration>,

    /// At most this percent of the Service's endpoints are ejected at once, 0 to 100.
    /// Absent: 50 (Istio's 10 would never eject one endpoint of a Service with fewer than
    /// ten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_ejection_percent: Option<i32>,
}

/// Caps on the RPCs to the Service from each caller (per proxy, across the Service's
/// endpoints). An RPC over a cap is answered UNAVAILABLE by the proxy, naming the cap, and
/// is not retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    /// RPCs in flight at once, 0 to 1000000. Absent: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub max_requests: Option<i32>,

    /// RPCs waiting for a connection to an endpoint at once, 0 to 1000000. Absent: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub max_pending_requests: Option<i32>,
}

/// HTTP/2 PING on each connection to the Service's endpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Http2Keepalive {
    /// Time between pings, at least 1s.
    pub interval: Duration,

    /// How long to wait for the answer to a ping before closing the connection. Absent: 20s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}
