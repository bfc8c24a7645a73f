//! Tests of the inbound listener: its chains, match and transport socket per mode, and the
//! one connection manager they share.

use envoy_types::pb::envoy::config::route::v3::route_action::MaxStreamDuration;

use super::*;
use crate::translate::testutil::{decode, workload};
use crate::translate::tls::TLS_SOCKET;

fn listener(mode: MtlsMode) -> Listener {
    let mut w = workload("greeter-0", "default", "127.0.0.1:50051");
    w.app_addr = "127.0.0.1:50061".parse().unwrap();
    let (name, any) = inbound_listener(&w, mode);
    assert_eq!(name, "inbound");
    decode(&any)
}

/// (name, transport_protocol matched, transport socket name) of each chain.
fn chains(listener: &Listener) -> Vec<(&str, Option<&str>, Option<&str>)> {
    listener
        .filter_chains
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.filter_chain_match
                    .as_ref()
                    .map(|m| m.transport_protocol.as_str()),
                c.transport_socket.as_ref().map(|s| s.name.as_str()),
            )
        })
        .collect()
}

fn listener_filters(listener: &Listener) -> Vec<&str> {
    listener
        .listener_filters
        .iter()
        .map(|f| f.name.as_str())
        .collect()
}

#[test]
fn strict_is_tls_only_behind_the_tls_inspector() {
    let l = listener(MtlsMode::Strict);
    assert_eq!(l.name, "inbound");
    assert_eq!(
        l.address,
        Some(socket_address("127.0.0.1:50051".parse().unwrap()))
    );
    assert_eq!(l.traffic_direction, TrafficDirection::Inbound as i32);
    assert_eq!(chains(&l), [("tls", Some("tls"), Some(TLS_SOCKET))]);
    assert_eq!(
        l.filter_chains[0].transport_socket,
        Some(super::super::tls::downstream_tls_socket())
    );
    assert_eq!(listener_filters(&l), [TLS_INSPECTOR]);
    let Some(ListenerFilterConfig::TypedConfig(any)) = &l.listener_filters[0].config_type else {
        panic!("typed tls inspector")
    };
    assert_eq!(decode::<TlsInspector>(any), TlsInspector::default());
}

#[test]
fn permissive_adds_a_raw_buffer_chain() {
    let l = listener(MtlsMode::Permissive);
    assert_eq!(
        chains(&l),
        [
            ("tls", Some("tls"), Some(TLS_SOCKET)),
            ("plaintext", Some("raw_buffer"), None)
        ]
    );
    assert_eq!(listener_filters(&l), [TLS_INSPECTOR]);
}

#[test]
fn disable_is_one_plaintext_chain_without_inspection() {
    let l = listener(MtlsMode::Disable);
    assert_eq!(chains(&l), [("plaintext", None, None)]);
    assert!(l.listener_filters.is_empty());
}

#[test]
fn every_chain_routes_all_to_the_app_and_forwards_the_callers_uri() {
    let l = listener(MtlsMode::Permissive);
    for chain in &l.filter_chains {
        let [filter] = &chain.filters[..] else {
            panic!("one filter")
        };
        assert_eq!(filter.name, HCM_FILTER);
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            panic!("typed")
        };
        let manager: HttpConnectionManager = decode(any);
        assert_eq!(manager.stat_prefix, "inbound");
        assert_eq!(manager.codec_type, CodecType::Auto as i32);
        assert_eq!(manager.stream_idle_timeout, Some(Duration::default()));
        assert_eq!(
            manager.forward_client_cert_details,
            ForwardClientCertDetails::SanitizeSet as i32
        );
        assert_eq!(
            manager.set_current_client_cert_details,
            Some(SetCurrentClientCertDetails {
                uri: true,
                ..Default::default()
            })
        );
        let names: Vec<&str> = manager
            .http_filters
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, [ROUTER_FILTER]);
        let Some(RouteSpecifier::RouteConfig(routes)) = manager.route_specifier else {
            panic!("inline routes")
        };
        assert_eq!(routes.name, "inbound");
        let [vhost] = &routes.virtual_hosts[..] else {
            panic!("one virtual host")
        };
        assert_eq!(
            (vhost.name.as_str(), &vhost.domains[..]),
            ("inbound", &["*".to_string()][..])
        );
        let [route] = &vhost.routes[..] else {
            panic!("one route")
        };
        assert_eq!(route.r#match, Some(route_match(None)));
        let Some(Action::Route(action)) = &route.action else {
            panic!("a route action")
        };
        assert_eq!(
            action.cluster_specifier,
            Some(ClusterSpecifier::Cluster("inbound|127.0.0.1:50061".into()))
        );
        assert_eq!(action.timeout, Some(Duration::default()));
        assert_eq!(
            action.max_stream_duration,
            Some(MaxStreamDuration {
                max_stream_duration: None,
                grpc_timeout_header_max: Some(Duration::default()),
                grpc_timeout_header_offset: None,
            })
        );
    }
}
