//! (being written)

use super::{ProxyConfig, Resources};

pub fn assemble(resources: Resources) -> ProxyConfig {
    ProxyConfig {
        resources,
        ..ProxyConfig::default()
    }
}
