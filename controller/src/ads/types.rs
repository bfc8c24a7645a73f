//! The xDS resource types weft serves over ADS, their type URLs, and the order in which
//! updates are pushed (make-before-break: secrets, clusters and endpoints before the
//! listeners and routes that refer to them; removals in the reverse order, last).

use std::fmt;

use weft_common::xds::type_url;

/// A resource type served over ADS. The declaration order is the push order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// SDS: a proxy's certificate and trust bundle (stock Envoy only; weft-proxy sends a CSR).
    Secret,
    Cluster,
    Endpoint,
    Listener,
    Route,
    /// VHDS (Delta clients only): the virtual hosts of `outbound/<ns>`, one resource each,
    /// sent on demand (see `ads::vhds`).
    VirtualHost,
}

impl ResourceType {
    /// Upserts go out in this order; removals in the reverse.
    pub const PUSH_ORDER: [ResourceType; 6] = [
        ResourceType::Secret,
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
        ResourceType::VirtualHost,
    ];

    /// Its place in [`Self::PUSH_ORDER`] (the declaration order).
    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Secret => type_url::SECRET,
            ResourceType::Cluster => type_url::CLUSTER,
            ResourceType::Endpoint => type_url::ENDPOINT,
            ResourceType::Listener => type_url::LISTENER,
            ResourceType::Route => type_url::ROUTE,
            ResourceType::VirtualHost => type_url::VIRTUAL_HOST,
        }
    }

    pub fn from_type_url(type_url: &str) -> Option<Self> {
        Self::PUSH_ORDER
            .into_iter()
            .find(|ty| ty.type_url() == type_url)
    }

    /// Short name used in metrics labels and debug output.
    pub fn short_name(self) -> &'static str {
        match self {
            ResourceType::Secret => "SDS",
            ResourceType::Cluster => "CDS",
            ResourceType::Endpoint => "EDS",
            ResourceType::Listener => "LDS",
            ResourceType::Route => "RDS",
            ResourceType::VirtualHost => "VHDS",
        }
    }

    /// Whether a request naming no resources means "all of them" (xDS legacy wildcard).
    /// Listeners and clusters are wildcard types; endpoints and routes are always named.
    pub fn empty_means_wildcard(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Listener)
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_urls_round_trip() {
        for ty in ResourceType::PUSH_ORDER {
            assert_eq!(ResourceType::from_type_url(ty.type_url()), Some(ty));
        }
        assert_eq!(
            ResourceType::from_type_url("type.googleapis.com/unknown"),
            None
        );
    }

    #[test]
    fn push_order_is_make_before_break() {
        let order = ResourceType::PUSH_ORDER;
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(order.iter().enumerate().all(|(i, ty)| ty.index() == i));
        assert_eq!(order[0], ResourceType::Secret);
        assert_eq!(order[1], ResourceType::Cluster);
        assert_eq!(order[4], ResourceType::Route);
    }
}
