//! (being written)

use envoy_types::pb::google::protobuf::Any;

use super::{ConfigError, ListenerConfig};

pub fn parse_listener(any: &Any) -> Result<ListenerConfig, ConfigError> {
    Err(ConfigError {
        resource: any.type_url.clone(),
        field: String::new(),
        problem: "not converted yet".into(),
    })
}
