//! (being written)

use envoy_types::pb::google::protobuf::Any;

use super::{ConfigError, EndpointSet};

pub fn parse_endpoints(any: &Any) -> Result<EndpointSet, ConfigError> {
    Err(ConfigError {
        resource: any.type_url.clone(),
        field: String::new(),
        problem: "not converted yet".into(),
    })
}
