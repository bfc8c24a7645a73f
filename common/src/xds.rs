//! The xDS vocabulary the controller, weft-proxy and the bench's simulated proxies share:
//! the type URLs of the resources weft serves over ADS. Pure data; no I/O.

/// Type URLs, as requests and responses name resource types.
pub mod type_url {
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    /// VHDS (Delta only): one virtual host of a RouteConfiguration that names `vhds`.
    pub const VIRTUAL_HOST: &str = "type.googleapis.com/envoy.config.route.v3.VirtualHost";
}

/// The name a Delta client subscribes to for the virtual host serving `authority` in the
/// RouteConfiguration `route_config` (Envoy's VHDS convention: `<route config>/<host>`,
/// the `:authority` as the client sent it, port included when it has one). The server
/// answers with the host under its own name and this name among the resource's `aliases`,
/// or with this name in `removed_resources` when no host serves the authority.
pub fn vhds_resource_name(route_config: &str, authority: &str) -> String {
    format!("{route_config}/{authority}")
}
