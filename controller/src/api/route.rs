//! `GrpcRoute`: how RPCs addressed to a Service are routed — by gRPC method and headers to
//! weighted backend Services, with a route timeout and a retry policy.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Duration, GrpcStatus};
use super::matching::RouteMatch;
use super::status::ResourceStatus;

/// Routes the gRPC traffic of one or more Services (the parents) by method and headers to
/// weighted backend Services, with a timeout and retries.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
// clippy mistakes the repeated `type_ = "string"` of separate print columns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "GrpcRoute",
    plural = "grpcroutes",
    singular = "grpcroute",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    shortname = "grpcr",
    shortname = "gr",
    category = "weft",
    doc = "GrpcRoute routes the gRPC traffic of a Service by method and headers to weighted \
           backend Services, with a timeout and retries.",
    printcolumn(
        name = "Parents",
        type_ = "string",
        json_path = ".spec.parentRefs[*].name"
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
        name = "Proxies",
        type_ = "integer",
        json_path = ".status.proxies.acked",
        description = "proxies that ACKed the current generation",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSpec {
    /// The Services whose traffic this route governs: RPCs a client sends to a parent (by
    /// `:authority`, port included) follow these rules. 1 to 8 entries.
    #[schemars(length(min = 1, max = 8))]
    pub parent_refs: Vec<ParentRef>,

    /// Rules, tried in order; the first rule with a matching `matches` entry wins. RPCs no
    /// rule matches go to the parent Service itself. 1 to 16 rules.
    #[schemars(length(min = 1, max = 16))]
    pub rules: Vec<RouteRule>,

    /// Makes the route reachable from browsers over gRPC-Web, through a proxy's web
    /// listener. Absent: browsers cannot call it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebAccess>,
}

/// Which gRPC services browsers may call through this route (a browser's `Host` is the
/// page's, not a mesh Service, so web listeners route by the service in the path), and
/// from which origins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebAccess {
    /// Fully qualified gRPC services (`package.Service`) whose RPCs from browsers follow
    /// this route's rules, to its first parent Service. 1 to 16 distinct names; a service
    /// an earlier route (by namespace/name) already claims stays with that route.
    #[schemars(
        length(min = 1, max = 16),
        extend("x-kubernetes-list-type" = "set"),
        inner(length(min = 1, max = 256), regex(pattern = GRPC_SERVICE_PATTERN))
    )]
    pub services: Vec<String>,

    /// CORS for pages from other origins. Absent: only same-origin pages may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<WebCors>,
}

/// A fully qualified gRPC service name: dot-separated identifiers.
pub const GRPC_SERVICE_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$";

/// CORS for browsers' gRPC-Web calls: preflights are answered from this, and scripts may
/// read the gRPC status and the listed headers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebCors {
    /// Origins whose pages may call (`https://app.example.com`, exact), or `"*"` for any.
    /// 1 to 16.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 253)))]
    pub allow_origins: Vec<String>,

    /// Request headers pages may send besides those gRPC-Web clients always send
    /// (`content-type`, `x-grpc-web`, `x-user-agent`, `grpc-timeout`). At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(regex(pattern = HEADER_NAME_PATTERN)))]
    pub allow_headers: Vec<String>,

    /// Response headers and trailers scripts may read besides `grpc-status`,
    /// `grpc-message` and `grpc-status-details-bin`. At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(regex(pattern = HEADER_NAME_PATTERN)))]
    pub expose_headers: Vec<String>,

    /// How long a browser may reuse a preflight's answer. Absent: the browser's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
}

/// An HTTP header name (lower or upper case; sent lower case).
pub const HEADER_NAME_PATTERN: &str = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$";

/// A Service this route attaches to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// The Service name.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// The Service's namespace. Absent: the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,

    /// Only traffic to this Service port. Absent: every port of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Which RPCs (`matches`) go where (`backendRefs`), with what timeout and retries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteRule {
    /// The rule applies to an RPC that satisfies any one of these (OR). Empty: every RPC.
    /// At most 8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub matches: Vec<RouteMatch>,

    /// Where matching RPCs go, split by weight. 1 to 16 entries, at least one with a
    /// non-zero weight.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("self.exists(b, !has(b.weight) || b.weight > 0)")
        .message("at least one backendRef needs a weight above 0"))]
    pub backend_refs: Vec<BackendRef>,

    /// The longest an RPC may take, retries included. A client's shorter `grpc-timeout` still
    /// wins; when it expires the caller gets `DEADLINE_EXCEEDED`. Absent: only the client's
    /// deadline applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,

    /// Retry RPCs that fail with one of `codes`. Absent: no retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

/// A backend Service and its share of the traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// The Service name.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// The Service's namespace. Absent: the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,

    /// The Service port to send to.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Relative share of the rule's RPCs, 0 to 1000000 (default 1): a backend gets
    /// weight / sum of weights. 0 sends it nothing.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub weight: i32,
}

fn default_weight() -> i32 {
    1
}

/// Retries for RPCs that fail with a retryable status. Only RPCs whose request fit in the
/// retry buffer and whose response has not started are retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// How many times to retry after the first try, 0 to 10 (as in Istio and Gateway API:
    /// `attempts: 3` means up to 4 tries). 0 turns retries off.
    #[schemars(range(min = 0, max = 10))]
    pub attempts: i32,

    /// The longest one try may take. Absent: each try may use what is left of the timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,

    /// The gRPC statuses that make an RPC retryable (default `[UNAVAILABLE]`). `OK` is not
    /// allowed; 1 to 16 distinct names.
    #[serde(default = "default_retry_codes")]
    #[schemars(length(min = 1, max = 16), extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new("self.all(c, c != 'OK')").message("OK is not a failure and cannot be retried"))]
    pub codes: Vec<GrpcStatus>,

    /// The base interval of the jittered exponential backoff between tries. Absent: 25ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

fn default_retry_codes() -> Vec<GrpcStatus> {
    vec![GrpcStatus::Unavailable]
}
