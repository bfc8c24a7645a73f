//! (being written) Picks the virtual host by `:authority` and the route by path and headers.

use std::sync::Arc;

use super::{NamedMethods, Route, RouteAction, RouteTable, VirtualHost, WeightedBackend};

/// The virtual host and route an RPC matched.
#[derive(Debug, Clone, Copy)]
pub struct RouteDecision<'a> {
    pub virtual_host: &'a Arc<VirtualHost>,
    pub route: &'a Route,
}

impl RouteTable {
    /// The first route of the virtual host for `authority` whose match accepts `path` and
    /// `headers`; `None` when no virtual host or no route matches.
    pub fn select(
        &self,
        _authority: &str,
        _path: &str,
        _headers: &http::HeaderMap,
    ) -> Option<RouteDecision<'_>> {
        None
    }
}

impl RouteAction {
    /// The backend for a uniform `draw` in `0..total_weight`.
    pub fn pick_backend(&self, _draw: u64) -> &WeightedBackend {
        &self.backends[0]
    }
}

impl NamedMethods {
    /// Metric labels for `path` (`/package.Service/Method`): the service and the method when
    /// a route names them, else `"other"`.
    pub fn labels<'a>(&self, _path: &'a str) -> (&'a str, &'a str) {
        ("other", "other")
    }
}
