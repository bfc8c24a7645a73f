//! Which RPCs a rule or a fault applies to: a gRPC method match plus header matches, the same
//! shape in `GrpcRoute` rules and `FaultInjection.spec.match` (after Gateway API's GRPCRoute).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a match compares: `Exact` (the default) or `RegularExpression` (RE2 syntax, the whole
/// value must match).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MatchType {
    #[default]
    Exact,
    RegularExpression,
}

/// Selects RPCs. All of its conditions must hold (AND); an empty match selects every RPC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// The gRPC method (`/<service>/<method>` in the request path). Absent: any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<MethodMatch>,

    /// Request headers (gRPC metadata) that must all match. At most 16, names unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub headers: Vec<HeaderMatch>,
}

/// Matches the gRPC service and/or method of an RPC. With `type: Exact`, `service` is a fully
/// qualified protobuf service name (`helloworld.Greeter`) and `method` a method name
/// (`SayHello`); with `type: RegularExpression` both are RE2 expressions. An absent field
/// matches anything, but at least one of the two must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.service) || has(self.method)")
    .message("one or both of service and method must be set"))]
#[x_kube(validation = Rule::new(
    "(has(self.type) && self.type != 'Exact') || !has(self.service) || \
     self.service.matches('^[A-Za-z_][A-Za-z_0-9]*([.][A-Za-z_][A-Za-z_0-9]*)*$')")
    .message("with type Exact, service must be a fully qualified protobuf service name such as helloworld.Greeter")
    .field_path(".service"))]
#[x_kube(validation = Rule::new(
    "(has(self.type) && self.type != 'Exact') || !has(self.method) || \
     self.method.matches('^[A-Za-z_][A-Za-z_0-9]*$')")
    .message("with type Exact, method must be a protobuf method name such as SayHello")
    .field_path(".method"))]
pub struct MethodMatch {
    /// `Exact` (default) or `RegularExpression`, for both `service` and `method`.
    #[serde(default, rename = "type")]
    pub match_type: MatchType,

    /// The protobuf service, package included (`helloworld.Greeter`). Absent: any service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub service: Option<String>,

    /// The method name within the service (`SayHello`). Absent: any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub method: Option<String>,
}

/// Matches one request header (gRPC metadata entry) by name, case-insensitively, and value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// `Exact` (default) or `RegularExpression` (RE2), applied to `value`.
    #[serde(default, rename = "type")]
    pub match_type: MatchType,

    /// The header name, for example `x-canary`. Pseudo-headers (`:path`) cannot be matched.
    #[schemars(length(min = 1, max = 256))]
    #[schemars(regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"))]
    pub name: String,

    /// The value to compare with: the exact text, or an RE2 expression the whole value must
    /// match.
    #[schemars(length(min = 1, max = 4096))]
    pub value: String,
}
