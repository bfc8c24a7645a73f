//! The per-proxy outbound Listener: one HTTP connection manager that reads the routes of the
//! proxy's namespace over ADS, with the fault filter (configured per route) before the router.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::on_demand::v3::{OnDemand, OnDemandCds};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration};
use envoy_types::util::pack_any;

use super::NodeInfo;
use super::cluster::ads_config_source;
use super::endpoints::socket_address;
use super::fault::FAULT_FILTER;
use super::services::route_config_name;

/// The name of every proxy's outbound Listener.
pub const OUTBOUND_LISTENER: &str = "outbound";

/// The network filter name of the HTTP connection manager.
pub(super) const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
/// The filter that fetches a virtual host on an RPC's first use of an authority.
pub(super) const ON_DEMAND_FILTER: &str = "envoy.filters.http.on_demand";
/// The terminal HTTP filter.
pub(super) const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// The outbound Listener of one proxy: its name and the packed `Listener`.
pub fn outbound_listener(node: &NodeInfo) -> (String, Any) {
    outbound_listener_at(&node.namespace, node.outbound_addr)
}

/// The outbound Listener of a proxy in `namespace`, listening at `addr`.
pub(super) fn outbound_listener_at(namespace: &str, addr: SocketAddr) -> (String, Any) {
    let manager = HttpConnectionManager {
        stat_prefix: OUTBOUND_LISTENER.into(),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config_name(namespace),
        })),
        http_filters: vec![
            // Over Delta the route configuration names VHDS: an RPC to an authority the
            // proxy holds no virtual host for waits here while it is fetched, and then
            // while its cluster warms (the controller sends a host's clusters with it).
            // Over State-of-the-World (every host inline, every cluster) it does nothing.
            http_filter(ON_DEMAND_FILTER, pack_any(on_demand())),
            // Empty: faults come only from the per-route config.
            http_filter(FAULT_FILTER, pack_any(HttpFault::default())),
            http_filter(ROUTER_FILTER, pack_any(Router::default())),
        ],
        generate_request_id: Some(BoolValue { value: false }),
        // Apps dial the outbound listener itself (`localhost:15001`) until traffic is
        // intercepted; the listener's own port in `:authority` says nothing about the
        // destination, so Envoy drops it before matching domains (weft-proxy drops any
        // port no virtual host lists, which covers this).
        strip_matching_host_port: true,
        // 0s: no idle limit; a quiet stream is ended by its deadline or its peer.
        stream_idle_timeout: Some(Duration::default()),
        ..Default::default()
    };
    let listener = hcm_listener(OUTBOUND_LISTENER, addr, TrafficDirection::Outbound, manager);
    (OUTBOUND_LISTENER.to_owned(), listener)
}

/// A Listener `name` at `addr` whose one filter chain is the HTTP connection manager
/// `manager`, packed.
pub(super) fn hcm_listener(
    name: &str,
    addr: SocketAddr,
    direction: TrafficDirection,
    manager: HttpConnectionManager,
) -> Any {
    pack_any(Listener {
        name: name.into(),
        address: Some(socket_address(addr)),
        traffic_direction: direction as i32,
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM_FILTER.into(),
                config_type: Some(ConfigType::TypedConfig(pack_any(manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// The on-demand filter's config: virtual hosts, and clusters over the same ADS stream,
/// waited for at most [`ON_DEMAND_WAIT`].
fn on_demand() -> OnDemand {
    OnDemand {
        odcds: Some(OnDemandCds {
            source: Some(ads_config_source()),
            resources_locator: String::new(),
            timeout: Some(Duration {
                seconds: ON_DEMAND_WAIT.as_secs() as i64,
                nanos: 0,
            }),
        }),
    }
}

/// How long an RPC waits for its cluster on first use (weft-proxy holds an RPC as long
/// for its virtual host and cluster).
pub const ON_DEMAND_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(HttpFilterConfig::TypedConfig(config)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::testutil::decode;

    #[test]
    fn reads_the_namespace_routes_with_on_demand_and_fault_before_router() {
        let node = NodeInfo::new("client-0", "team-a", "127.0.0.1:15001".parse().unwrap());
        let (name, any) = outbound_listener(&node);
        assert_eq!(name, "outbound");
        let listener: Listener = decode(&any);
        assert_eq!(listener.name, "outbound");
        assert_eq!(
            listener.address,
            Some(socket_address("127.0.0.1:15001".parse().unwrap()))
        );
        let filter = &listener.filter_chains[0].filters[0];
        assert_eq!(filter.name, HCM_FILTER);
        let Some(ConfigType::TypedConfig(config)) = &filter.config_type else {
            panic!()
        };
        let manager: HttpConnectionManager = decode(config);
        assert_eq!(manager.stat_prefix, "outbound");
        assert_eq!(manager.codec_type, CodecType::Auto as i32);
        let Some(RouteSpecifier::Rds(rds)) = manager.route_specifier else {
            panic!()
        };
        assert_eq!(rds.route_config_name, "outbound/team-a");
        assert_eq!(rds.config_source, Some(ads_config_source()));
        let names: Vec<&str> = manager
            .http_filters
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, [ON_DEMAND_FILTER, FAULT_FILTER, ROUTER_FILTER]);
        let Some(HttpFilterConfig::TypedConfig(fault)) = &manager.http_filters[1].config_type
        else {
            panic!()
        };
        assert_eq!(decode::<HttpFault>(fault), HttpFault::default());
        assert_eq!(
            manager.generate_request_id,
            Some(BoolValue { value: false })
        );
        assert_eq!(manager.stream_idle_timeout, Some(Duration::default()));
    }
}
