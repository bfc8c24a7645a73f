//! `FaultInjection`: delays and/or aborts (with a gRPC status and message) a share of the RPCs
//! to a Service or through a GrpcRoute, optionally narrowed to one method or header match.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Duration, GrpcStatus, Percentage};
use super::matching::RouteMatch;
use super::status::ResourceStatus;

/// Injects delays and/or gRPC errors into a share of the RPCs to a Service or a GrpcRoute.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
// clippy mistakes the repeated `type_ = "string"` of separate print columns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "FaultInjection",
    plural = "faultinjections",
    singular = "faultinjection",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    shortname = "fi",
    shortname = "fault",
    category = "weft",
    doc = "FaultInjection delays and/or aborts, with a gRPC status and message, a share of the \
           RPCs to a Service or through a GrpcRoute.",
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.targetRef.name"),
    printcolumn(
        name = "Kind",
        type_ = "string",
        json_path = ".spec.targetRef.kind",
        priority = 1
    ),
    printcolumn(
        name = "Delay",
        type_ = "string",
        json_path = ".spec.delay.fixedDelay",
        priority = 1
    ),
    printcolumn(
        name = "Delay %",
        type_ = "number",
        json_path = ".spec.delay.percentage"
    ),
    printcolumn(name = "Abort", type_ = "string", json_path = ".spec.abort.grpcStatus"),
    printcolumn(
        name = "Abort %",
        type_ = "number",
        json_path = ".spec.abort.percentage",
        priority = 1
    ),
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
#[x_kube(validation = Rule::new("has(self.delay) || has(self.abort)")
    .message("set delay, abort or both"))]
pub struct FaultInjectionSpec {
    /// What to inject faults into: a Service (every RPC sent to it) or a GrpcRoute (the RPCs it
    /// routes), in the same namespace.
    pub target_ref: FaultTargetRef,

    /// Only RPCs that satisfy this match are faulted (same shape as a GrpcRoute match).
    /// Absent: every RPC to the target.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub rpc_match: Option<RouteMatch>,

    /// Hold the RPC for a while before forwarding it. Applied before `abort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,

    /// Answer the RPC with an error status instead of forwarding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// The kind of resource a fault targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FaultTargetKind {
    Service,
    GrpcRoute,
}

/// A Service or GrpcRoute in the fault's namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaultTargetRef {
    /// `Service` or `GrpcRoute`.
    pub kind: FaultTargetKind,

    /// The target's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A fixed delay before the RPC is forwarded. The delay counts against the RPC's deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaultDelay {
    /// How long to hold each affected RPC, for example `500ms` or `10s`.
    pub fixed_delay: Duration,

    /// Percent of matching RPCs to delay, 0 to 100, fractions allowed (default 100).
    #[serde(default = "Percentage::all")]
    pub percentage: Percentage,
}

/// Ends the RPC at the proxy with a gRPC status (a Trailers-Only response).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaultAbort {
    /// The status to answer with, by canonical name (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...);
    /// `OK` is not allowed.
    #[x_kube(validation = Rule::new("self != 'OK'").message("an abort needs an error status, not OK"))]
    pub grpc_status: GrpcStatus,

    /// The `grpc-message` sent with the status. Absent: "fault injected by weft".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,

    /// Percent of matching RPCs to abort, 0 to 100, fractions allowed (default 100).
    #[serde(default = "Percentage::all")]
    pub percentage: Percentage,
}
