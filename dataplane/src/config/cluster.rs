//! (being written)

use envoy_types::pb::google::protobuf::Any;

use super::{ConfigError, ClusterConfig};

pub fn parse_cluster(any: &Any) -> Result<ClusterConfig, ConfigError> {
    Err(ConfigError {
        resource: any.type_url.clone(),
        field: String::new(),
        problem: "not converted yet".into(),
    })
}
