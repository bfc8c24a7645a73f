//! (being written)

use envoy_types::pb::google::protobuf::Any;

use super::{ConfigError, RouteTable};

pub fn parse_route_config(any: &Any) -> Result<RouteTable, ConfigError> {
    Err(ConfigError {
        resource: any.type_url.clone(),
        field: String::new(),
        problem: "not converted yet".into(),
    })
}
