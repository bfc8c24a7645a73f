//! The user-facing API, group `weft.dev`, version `v1alpha1`: the Rust types
//! behind the `GrpcRoute`, `FaultInjection`, `MtlsPolicy` and `BackendPolicy` custom resources, and the
//! rendering of their CRDs (`crds/`, `charts/weft/crds/`, written by `weft-crdgen`).
//!
//! How validation is split:
//! - the schema rejects what one field can say about itself: OpenAPI keywords for ranges,
//!   enums, patterns, string lengths and list sizes (the bounds also keep CEL cost in budget);
//! - CEL rules (`x-kubernetes-validations`) reject what needs another field or a computation:
//!   "delay or abort", "service or method", exact names well formed, a non-zero weight,
//!   `OK` is not an error status;
//! - everything else (a regular expression compiles, referenced Services exist, ...) is checked
//!   by the controller and reported in the resource's `status.conditions`.
//!
//! Local mode reads the same YAML, with no apiserver in front, so the types stay permissive
//! (plain strings and numbers); the controller runs the full validation either way.

mod backend;
mod common;
mod crdgen;
mod fault;
mod matching;
mod mtls;
mod route;
mod status;

#[cfg(test)]
mod cel_tests;
#[cfg(test)]
mod manifest_tests;
#[cfg(test)]
mod schema_tests;

pub use backend::{
    BackendPolicy, BackendPolicySpec, BackendTargetKind, BackendTargetRef, CircuitBreaker,
    Http2Keepalive, OutlierDetection,
};
pub use common::{Duration, DurationError, GrpcStatus, Percentage};
pub use crdgen::{
    CRD_DIRS, CrdChange, CrdFile, CrdGenError, REGENERATE_COMMAND, crd_files, crds, stale_files,
    write_crd_files,
};
pub use fault::{
    FaultAbort, FaultDelay, FaultInjection, FaultInjectionSpec, FaultTargetKind, FaultTargetRef,
};
pub use matching::{HeaderMatch, MatchType, MethodMatch, RouteMatch};
pub use mtls::{MtlsMode, MtlsPolicy, MtlsPolicySpec, WorkloadSelector};
pub use route::{
    BackendRef, GrpcRoute, GrpcRouteSpec, ParentRef, RetryPolicy, RouteRule, WebAccess, WebCors,
};
pub use status::{
    CONDITION_ACCEPTED, CONDITION_PROGRAMMED, CONDITION_RESOLVED_REFS, ProxyRejection,
    ProxySummary, ResourceStatus,
};

/// The API group of every weft resource.
pub const GROUP: &str = "weft.dev";
/// The one served (and stored) version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in YAML.
pub const API_VERSION: &str = "weft.dev/v1alpha1";
/// The `kubectl get` category shared by all weft kinds (`kubectl get weft`).
pub const CATEGORY: &str = "weft";
