//! Tests of the `inbound` listener's conversion: the controller's listener in each mode, and
//! every rejected shape naming its field.

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, UpstreamTlsContext,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use prost::Message;
use weft_controller::api::MtlsMode;
use weft_controller::translate::inbound_listener;

use crate::config::controller_mtls_tests::workload;
use crate::config::test_protos::{connection_manager, controller_listener, listener_with};
use crate::config::{ConfigError, InboundConfig, InboundMode, ListenerConfig, parse_listener};

fn controller(mode: MtlsMode) -> Listener {
    let w = workload("greeter-0", "default", "127.0.0.1:15006", &[]);
    let any = inbound_listener(&w, mode).1;
    Listener::decode(any.value.as_slice()).unwrap()
}

fn parse(listener: Listener) -> Result<ListenerConfig, ConfigError> {
    parse_listener(&pack_any(listener))
}

fn mode_of(listener: Listener) -> InboundMode {
    let config = parse(listener).unwrap();
    assert_eq!(config.route_config_name, "", "no routes to fetch");
    config.inbound.unwrap().mode
}

/// The field of the error for the controller's `mode` listener changed by `edit`.
fn field_of(mode: MtlsMode, edit: impl FnOnce(&mut Listener)) -> String {
    let mut listener = controller(mode);
    edit(&mut listener);
    let err = parse(listener).unwrap_err();
    assert_eq!(err.resource, "Listener inbound");
    err.field
}

#[test]
fn converts_the_controllers_listener_in_each_mode() {
    assert_eq!(mode_of(controller(MtlsMode::Strict)), InboundMode::Strict);
    assert_eq!(
        mode_of(controller(MtlsMode::Permissive)),
        InboundMode::Permissive
    );
    assert_eq!(mode_of(controller(MtlsMode::Disable)), InboundMode::Disable);
    assert_eq!(
        parse(controller(MtlsMode::Strict)).unwrap(),
        ListenerConfig {
            name: "inbound".into(),
            route_config_name: String::new(),
            inbound: Some(InboundConfig {
                mode: InboundMode::Strict
            }),
        }
    );
}

#[test]
fn other_shapes_that_mean_a_mode() {
    // Plaintext said explicitly, or a chain whose routes come over RDS: still Disable.
    let mut explicit = controller(MtlsMode::Disable);
    explicit.filter_chains[0].transport_socket = Some(TransportSocket {
        name: "raw".into(),
        config_type: Some(SocketConfig::TypedConfig(pack_any(RawBuffer {}))),
    });
    assert_eq!(mode_of(explicit), InboundMode::Disable);
    let mut by_name = controller(MtlsMode::Disable);
    by_name.filter_chains[0].transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".into(),
        config_type: None,
    });
    assert_eq!(mode_of(by_name), InboundMode::Disable);
    let outbound_shaped = listener_with("inbound", connection_manager("default"));
    assert_eq!(mode_of(outbound_shaped), InboundMode::Disable);
    // Permissive needs only one of the two chains to name its transport.
    let mut one_match = controller(MtlsMode::Permissive);
    one_match.filter_chains[1].filter_chain_match = None;
    assert_eq!(mode_of(one_match), InboundMode::Permissive);
    // The plaintext chain as the default chain.
    let mut default_chain = controller(MtlsMode::Permissive);
    let mut plaintext = default_chain.filter_chains.pop().unwrap();
    plaintext.filter_chain_match = None;
    default_chain.default_filter_chain = Some(plaintext);
    assert_eq!(mode_of(default_chain), InboundMode::Permissive);
}

#[test]
fn the_tls_chain_must_require_a_client_certificate() {
    let field = field_of(MtlsMode::Strict, |l| {
        let socket = l.filter_chains[0].transport_socket.as_mut().unwrap();
        let Some(SocketConfig::TypedConfig(any)) = &mut socket.config_type else {
            panic!()
        };
        let mut context = DownstreamTlsContext::decode(any.value.as_slice()).unwrap();
        context.require_client_certificate = Some(BoolValue { value: false });
        *any = pack_any(context);
    });
    assert_eq!(
        field,
        "filter_chains[0].transport_socket.typed_config.require_client_certificate"
    );
}

#[test]
fn unknown_or_misplaced_transport_sockets_are_errors() {
    let socket = |config: Option<SocketConfig>| {
        move |l: &mut Listener| {
            l.filter_chains[0].transport_socket = Some(TransportSocket {
                name: "x".into(),
                config_type: config,
            })
        }
    };
    let unknown = Some(SocketConfig::TypedConfig(pack_any(Router::default())));
    assert_eq!(
        field_of(MtlsMode::Strict, socket(unknown)),
        "filter_chains[0].transport_socket.typed_config"
    );
    assert_eq!(
        field_of(MtlsMode::Strict, socket(None)),
        "filter_chains[0].transport_socket.typed_config"
    );
    let upstream = Some(SocketConfig::TypedConfig(pack_any(
        UpstreamTlsContext::default(),
    )));
    assert_eq!(
        field_of(MtlsMode::Strict, socket(upstream)),
        "filter_chains[0].transport_socket.typed_config"
    );
}

#[test]
fn chains_must_be_told_apart_and_not_repeat() {
    let twice_tls = field_of(MtlsMode::Strict, |l| {
        let chain = l.filter_chains[0].clone();
        l.filter_chains.push(chain);
    });
    assert_eq!(twice_tls, "filter_chains[1]");
    let unmatched = field_of(MtlsMode::Permissive, |l| {
        for chain in &mut l.filter_chains {
            chain.filter_chain_match = None;
        }
    });
    assert_eq!(unmatched, "filter_chains");
    assert_eq!(
        field_of(MtlsMode::Strict, |l| l.filter_chains.clear()),
        "filter_chains"
    );
}

#[test]
fn chain_matches_name_the_transport_only() {
    let sni = field_of(MtlsMode::Strict, |l| {
        let m = l.filter_chains[0].filter_chain_match.as_mut().unwrap();
        m.server_names = vec!["greeter".into()];
    });
    assert_eq!(sni, "filter_chains[0].filter_chain_match.server_names");
    let wrong = field_of(MtlsMode::Permissive, |l| {
        let m = l.filter_chains[1].filter_chain_match.as_mut().unwrap();
        m.transport_protocol = "tls".into();
    });
    assert_eq!(
        wrong,
        "filter_chains[1].filter_chain_match.transport_protocol"
    );
}

#[test]
fn the_chain_runs_one_connection_manager() {
    let other = field_of(MtlsMode::Disable, |l| {
        l.filter_chains[0].filters = vec![Filter {
            name: "envoy.filters.network.tcp_proxy".into(),
            config_type: Some(ConfigType::TypedConfig(pack_any(Router::default()))),
        }];
    });
    assert_eq!(other, "filter_chains[0].filters[0]");
}

#[test]
fn other_names_keep_the_outbound_rules() {
    let mut renamed = controller(MtlsMode::Strict);
    renamed.name = "main".into();
    assert_eq!(
        parse(renamed).unwrap_err().field,
        "filter_chains[0].filter_chain_match"
    );
    assert!(
        parse(controller_listener("default"))
            .unwrap()
            .inbound
            .is_none()
    );
}
