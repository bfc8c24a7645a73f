//! The per-proxy `inbound` Listener: RPCs from other proxies (and, where the mode allows,
//! plaintext callers) for the proxy's app, all routed to its `inbound|<app addr>` cluster.
//!
//! Its filter chains follow the workload's resolved MtlsPolicy mode:
//! - `Strict`: one chain `tls` (`transport_protocol: tls`, TLS with a client certificate
//!   required); a plaintext connection matches no chain and is closed.
//! - `Permissive`: `tls` as above, and `plaintext` for `transport_protocol: raw_buffer`.
//! - `Disable`: one chain `plaintext` with no match (no TLS inspection needed).
//!
//! Telling TLS from plaintext needs the TLS inspector listener filter, so it is there
//! whenever a chain matches on `transport_protocol`. Both chains run the same connection
//! manager; it replaces `x-forwarded-client-cert` with the caller's URI SAN (its SPIFFE id)
//! on TLS connections and strips it on plaintext ones, so the app can trust the header.

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::listener_filter::ConfigType as ListenerFilterConfig;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, ForwardClientCertDetails, RouteSpecifier, SetCurrentClientCertDetails,
};
use envoy_types::pb::google::protobuf::{Any, Duration};
use envoy_types::util::pack_any;

use super::cluster::inbound_cluster_name;
use super::endpoints::socket_address;
use super::listener::{HCM_FILTER, ROUTER_FILTER, http_filter};
use super::matching::route_match;
use super::routes::stream_timeouts;
use super::tls::downstream_tls_socket;
use super::workloads::Workload;
use crate::api::MtlsMode;

/// The name of every proxy's inbound Listener (and of its stats, route configuration and
/// virtual host).
pub const INBOUND_LISTENER: &str = "inbound";
/// The listener filter that reads a connection's first bytes to tell TLS from plaintext.
pub(super) const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

/// The inbound Listener of `workload` in `mode`: its name and the packed `Listener`.
pub fn inbound_listener(workload: &Workload, mode: MtlsMode) -> (String, Any) {
    let manager = connection_manager(&inbound_cluster_name(workload.app_addr));
    let tls = || FilterChain {
        name: "tls".into(),
        filter_chain_match: Some(transport("tls")),
        transport_socket: Some(downstream_tls_socket()),
        filters: vec![manager.clone()],
        ..Default::default()
    };
    let plaintext = |matched: Option<FilterChainMatch>| FilterChain {
        name: "plaintext".into(),
        filter_chain_match: matched,
        filters: vec![manager.clone()],
        ..Default::default()
    };
    let filter_chains = match mode {
        MtlsMode::Strict => vec![tls()],
        MtlsMode::Permissive => vec![tls(), plaintext(Some(transport("raw_buffer")))],
        MtlsMode::Disable => vec![plaintext(None)],
    };
    let listener_filters = match mode {
        MtlsMode::Strict | MtlsMode::Permissive => vec![ListenerFilter {
            name: TLS_INSPECTOR.into(),
            config_type: Some(ListenerFilterConfig::TypedConfig(pack_any(
                TlsInspector::default(),
            ))),
            ..Default::default()
        }],
        MtlsMode::Disable => vec![],
    };
    let listener = Listener {
        name: INBOUND_LISTENER.into(),
        address: Some(socket_address(workload.inbound_addr)),
        traffic_direction: TrafficDirection::Inbound as i32,
        filter_chains,
        listener_filters,
        ..Default::default()
    };
    (INBOUND_LISTENER.to_owned(), pack_any(listener))
}

fn transport(protocol: &str) -> FilterChainMatch {
    FilterChainMatch {
        transport_protocol: protocol.into(),
        ..Default::default()
    }
}

/// The connection manager of both chains: every RPC to `cluster`, streams never cut by the
/// proxy (the caller's deadline rules, as on the outbound side), the caller's SPIFFE id in
/// `x-forwarded-client-cert`.
fn connection_manager(cluster: &str) -> Filter {
    let route = Route {
        name: INBOUND_LISTENER.into(),
        r#match: Some(route_match(None)),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_owned())),
            ..stream_timeouts(None)
        })),
        ..Default::default()
    };
    let routes = RouteConfiguration {
        name: INBOUND_LISTENER.into(),
        virtual_hosts: vec![VirtualHost {
            name: INBOUND_LISTENER.into(),
            domains: vec!["*".into()],
            routes: vec![route],
            ..Default::default()
        }],
        ..Default::default()
    };
    let manager = HttpConnectionManager {
        stat_prefix: INBOUND_LISTENER.into(),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::RouteConfig(routes)),
        http_filters: vec![http_filter(ROUTER_FILTER, pack_any(Router::default()))],
        // 0s: no idle limit; a quiet stream is ended by its deadline or its peer.
        stream_idle_timeout: Some(Duration::default()),
        // Whatever the caller sent is dropped; on mTLS, set to the caller's certificate URI.
        forward_client_cert_details: ForwardClientCertDetails::SanitizeSet as i32,
        set_current_client_cert_details: Some(SetCurrentClientCertDetails {
            uri: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    Filter {
        name: HCM_FILTER.into(),
        config_type: Some(ConfigType::TypedConfig(pack_any(manager))),
    }
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
