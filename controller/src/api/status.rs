//! The `status` every weft resource carries: the generation the controller last processed,
//! standard conditions (`Accepted`, `ResolvedRefs`, `Programmed`) and, for resources that end
//! up in proxy config, how the proxies took it (ACK/NACK counts and a few NACK reasons).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Condition type: the resource is valid and the controller uses it (reason says why not).
pub const CONDITION_ACCEPTED: &str = "Accepted";
/// Condition type: every Service the resource refers to exists.
pub const CONDITION_RESOLVED_REFS: &str = "ResolvedRefs";
/// Condition type: the proxies that need this resource ACKed the config built from its
/// `observedGeneration` (the message counts them and quotes NACK reasons).
pub const CONDITION_PROGRAMMED: &str = "Programmed";

/// What the controller observed about this resource. Written only by weft-controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// The `metadata.generation` these conditions describe; older than the resource's
    /// generation means the controller has not processed the latest change yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions, one per type: `Accepted` (the spec is valid), `ResolvedRefs`
    /// (referenced Services exist) and `Programmed` (proxies ACKed the config).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,

    /// How the proxies that use this resource took its latest generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxies: Option<ProxySummary>,
}

/// Proxy ACK/NACK counts for the config built from `observedGeneration`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxySummary {
    /// Connected proxies whose config includes this resource.
    #[serde(default)]
    pub total: i32,

    /// Of those, how many ACKed it.
    #[serde(default)]
    pub acked: i32,

    /// Of those, how many rejected it (NACK); they keep their last good config.
    #[serde(default)]
    pub nacked: i32,

    /// Up to 8 rejections, newest first: which proxy and the reason it gave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub rejections: Vec<ProxyRejection>,
}

/// One proxy's NACK.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyRejection {
    /// The proxy's xDS node id, `<pod>.<namespace>`.
    #[schemars(length(max = 253))]
    pub proxy: String,

    /// The error detail from its NACK, truncated to 1024 characters.
    #[schemars(length(max = 1024))]
    pub reason: String,
}

/// The schema of `[]metav1.Condition` as upstream Kubernetes publishes it, written out so the
/// CRDs do not need k8s-openapi's `schemars` feature (a rebuild of k8s-openapi for the whole
/// workspace). A list map keyed by `type`, like Gateway API's status.
fn conditions_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 8,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "description": "Condition contains details for one aspect of the current state of this API Resource.",
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {
                "lastTransitionTime": {
                    "type": "string",
                    "format": "date-time",
                    "description": "lastTransitionTime is the last time the condition transitioned from one status to another."
                },
                "message": {
                    "type": "string",
                    "maxLength": 32768,
                    "description": "message is a human readable message indicating details about the transition."
                },
                "observedGeneration": {
                    "type": "integer",
                    "format": "int64",
                    "minimum": 0,
                    "description": "observedGeneration is the .metadata.generation that the condition was set based upon."
                },
                "reason": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1024,
                    "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                    "description": "reason contains a programmatic identifier indicating the reason for the condition's last transition, in CamelCase."
                },
                "status": {
                    "type": "string",
                    "enum": ["True", "False", "Unknown"],
                    "description": "status of the condition, one of True, False, Unknown."
                },
                "type": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 316,
                    "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                    "description": "type of condition in CamelCase, for example Accepted."
                }
            }
        }
    })
}
