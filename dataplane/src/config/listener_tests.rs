//! Tests of listener conversion: the controller's listener, and every rejected shape naming
//! its field.

use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, ExtensionConfigSource, TransportSocket,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, ScopedRoutes,
};
use envoy_types::util::pack_any;

use super::parse_listener;
use crate::config::test_protos::*;
use crate::config::{ConfigError, ListenerConfig};

fn parse(listener: Listener) -> Result<ListenerConfig, ConfigError> {
    parse_listener(&pack_any(listener))
}

/// The error of the controller's listener with its connection manager changed by `edit`.
fn manager_error(edit: impl FnOnce(&mut HttpConnectionManager)) -> ConfigError {
    let mut manager = connection_manager("default");
    edit(&mut manager);
    parse(listener_with("outbound", manager)).unwrap_err()
}

const HCM_FIELD: &str = "filter_chains[0].filters[0].typed_config";

#[test]
fn converts_the_controllers_listener() {
    assert_eq!(
        parse(controller_listener("team-a")).unwrap(),
        ListenerConfig {
            name: "outbound".into(),
            route_config_name: "outbound/team-a".into(),
            inbound: None,
        }
    );
}

#[test]
fn filters_are_known_by_type_not_name() {
    let mut manager = connection_manager("default");
    manager.http_filters = vec![
        http_filter("my-fault", pack_any(HttpFault::default())),
        http_filter("my-router", pack_any(Router::default())),
    ];
    assert!(parse(listener_with("l", manager)).is_ok());
    // Without typed config, by the conventional names.
    let mut manager = connection_manager("default");
    manager.http_filters = vec![
        HttpFilter {
            name: FAULT.into(),
            ..Default::default()
        },
        HttpFilter {
            name: ROUTER.into(),
            ..Default::default()
        },
    ];
    assert!(parse(listener_with("l", manager)).is_ok());
    // No filters: the router alone, as in Envoy.
    let mut manager = connection_manager("default");
    manager.http_filters.clear();
    assert!(parse(listener_with("l", manager)).is_ok());
}

#[test]
fn routes_must_come_over_rds() {
    let err = manager_error(|m| {
        m.route_specifier = Some(RouteSpecifier::RouteConfig(RouteConfiguration::default()))
    });
    assert_eq!(err.resource, "Listener outbound");
    assert_eq!(err.field, format!("{HCM_FIELD}.route_config"));
    assert!(
        err.problem
            .contains("inline route configurations are not supported"),
        "{err}"
    );
    let err = manager_error(|m| {
        m.route_specifier = Some(RouteSpecifier::ScopedRoutes(ScopedRoutes::default()))
    });
    assert_eq!(err.field, format!("{HCM_FIELD}.scoped_routes"));
    assert_eq!(
        manager_error(|m| m.route_specifier = None).field,
        format!("{HCM_FIELD}.rds")
    );
    let err = manager_error(|m| {
        if let Some(RouteSpecifier::Rds(rds)) = &mut m.route_specifier {
            rds.route_config_name.clear();
        }
    });
    assert_eq!(err.field, format!("{HCM_FIELD}.rds.route_config_name"));
    let err = manager_error(|m| {
        if let Some(RouteSpecifier::Rds(rds)) = &mut m.route_specifier {
            rds.config_source.as_mut().unwrap().config_source_specifier = Some(
                ConfigSourceSpecifier::ApiConfigSource(ApiConfigSource::default()),
            );
        }
    });
    assert_eq!(err.field, format!("{HCM_FIELD}.rds.config_source"));
}

#[test]
fn http_filter_errors_name_the_filter() {
    let err = manager_error(|m| {
        m.http_filters[0] = http_filter(FAULT, pack_any(controller_fault(Some((14, "x", 1)), None)))
    });
    assert_eq!(
        err.field,
        format!("{HCM_FIELD}.http_filters[0].typed_config")
    );
    assert!(err.problem.contains("listener-level fault"), "{err}");

    let err = manager_error(|m| m.http_filters.reverse());
    assert_eq!(err.field, format!("{HCM_FIELD}.http_filters[0]"));
    assert_eq!(err.problem, "the router must be the last filter");

    let err = manager_error(|m| {
        m.http_filters.pop();
    });
    assert_eq!(err.field, format!("{HCM_FIELD}.http_filters"));

    let rbac = http_filter(
        "envoy.filters.http.rbac",
        pack_any(RouteConfiguration::default()),
    );
    let err = manager_error(|m| m.http_filters.insert(1, rbac.clone()));
    assert_eq!(err.field, format!("{HCM_FIELD}.http_filters[1]"));
    assert!(err.problem.contains("envoy.filters.http.rbac"), "{err}");

    let mut manager = connection_manager("default");
    manager.http_filters.insert(
        0,
        HttpFilter {
            is_optional: true,
            ..rbac
        },
    );
    assert!(parse(listener_with("l", manager)).is_ok());

    let discovered = HttpFilter {
        name: "x".into(),
        config_type: Some(HttpConfig::ConfigDiscovery(ExtensionConfigSource::default())),
        ..Default::default()
    };
    let err = manager_error(|m| m.http_filters.insert(0, discovered));
    assert_eq!(
        err.field,
        format!("{HCM_FIELD}.http_filters[0].config_discovery")
    );
}

#[test]
fn the_on_demand_filter_is_accepted_for_what_weft_proxy_does_natively() {
    let mut manager = connection_manager("default");
    manager.http_filters[0] = HttpFilter {
        name: ON_DEMAND.into(),
        ..Default::default()
    };
    assert!(parse(listener_with("l", manager)).is_ok());
    let mut bare = controller_on_demand();
    bare.odcds = None;
    let mut manager = connection_manager("default");
    manager.http_filters[0] = http_filter("od", pack_any(bare));
    assert!(parse(listener_with("l", manager)).is_ok());

    let mut elsewhere = controller_on_demand();
    if let Some(odcds) = elsewhere.odcds.as_mut() {
        odcds.source = Some(envoy_types::pb::envoy::config::core::v3::ConfigSource {
            config_source_specifier: Some(ConfigSourceSpecifier::ApiConfigSource(
                ApiConfigSource::default(),
            )),
            ..Default::default()
        });
    }
    let err = manager_error(|m| m.http_filters[0] = http_filter(ON_DEMAND, pack_any(elsewhere)));
    assert_eq!(
        err.field,
        format!("{HCM_FIELD}.http_filters[0].typed_config.odcds.source")
    );
    let mut xdstp = controller_on_demand();
    if let Some(odcds) = xdstp.odcds.as_mut() {
        odcds.resources_locator = "xdstp://example/*".into();
    }
    let err = manager_error(|m| m.http_filters[0] = http_filter(ON_DEMAND, pack_any(xdstp)));
    assert_eq!(
        err.field,
        format!("{HCM_FIELD}.http_filters[0].typed_config.odcds.resources_locator")
    );
}

#[test]
fn one_chain_with_only_the_connection_manager() {
    let listener = controller_listener("default");
    let chain = listener.filter_chains[0].clone();

    let mut two = listener.clone();
    two.filter_chains.push(chain.clone());
    assert_eq!(parse(two).unwrap_err().field, "filter_chains");

    let mut none = listener.clone();
    none.filter_chains.clear();
    assert_eq!(parse(none.clone()).unwrap_err().field, "filter_chains");
    none.default_filter_chain = Some(chain.clone());
    assert_eq!(parse(none).unwrap().route_config_name, "outbound/default");

    let mut tls = listener.clone();
    tls.filter_chains[0].transport_socket = Some(TransportSocket::default());
    assert_eq!(
        parse(tls).unwrap_err().field,
        "filter_chains[0].transport_socket"
    );

    let mut extra = listener.clone();
    extra.filter_chains[0].filters.insert(
        0,
        Filter {
            name: "envoy.filters.network.rbac".into(),
            config_type: None,
        },
    );
    assert_eq!(parse(extra).unwrap_err().field, "filter_chains[0].filters");

    let mut other = listener.clone();
    other.filter_chains[0].filters[0] = Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(ConfigType::TypedConfig(pack_any(Router::default()))),
    };
    let err = parse(other).unwrap_err();
    assert_eq!(err.field, "filter_chains[0].filters[0]");
    assert!(err.problem.contains("tcp_proxy"), "{err}");

    let unnamed = Listener {
        name: String::new(),
        ..listener
    };
    assert_eq!(parse(unnamed).unwrap_err().field, "name");
    let empty_chain = Listener {
        name: "l".into(),
        filter_chains: vec![FilterChain::default()],
        ..Default::default()
    };
    assert_eq!(
        parse(empty_chain).unwrap_err().field,
        "filter_chains[0].filters"
    );
}

#[test]
fn the_wrong_type_is_an_error() {
    let err = parse_listener(&pack_any(Router::default())).unwrap_err();
    assert_eq!(err.resource, "Listener");
    assert!(
        err.problem.contains("envoy.config.listener.v3.Listener"),
        "{err}"
    );
}
