//! `MtlsPolicy`: whether the inbound side of selected workloads requires, accepts or refuses
//! mutual TLS between proxies.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::ResourceStatus;

/// Sets the mutual TLS mode of the inbound traffic of workloads in this namespace.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
// clippy mistakes the repeated `type_ = "string"` of separate print columns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "MtlsPolicy",
    plural = "mtlspolicies",
    singular = "mtlspolicy",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    shortname = "mtls",
    category = "weft",
    doc = "MtlsPolicy sets whether the proxies of selected workloads require, accept or refuse \
           mutual TLS on inbound traffic.",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Accepted")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MtlsPolicySpec {
    /// The workloads (pods) this policy applies to. Absent or empty: every workload in the
    /// namespace. When several policies select a pod, one with a non-empty selector wins over
    /// a namespace-wide one.
    #[serde(default)]
    pub selector: WorkloadSelector,

    /// `Strict`: only mutual TLS from mesh proxies is accepted. `Permissive`: both mutual TLS
    /// and plaintext are accepted (for migrating). `Disable`: plaintext only.
    pub mode: MtlsMode,
}

/// Selects pods by their labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels a pod must all carry (AND). Empty: every pod. At most 16.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub match_labels: BTreeMap<String, String>,
}

/// The inbound mutual TLS mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MtlsMode {
    Strict,
    Permissive,
    Disable,
}
