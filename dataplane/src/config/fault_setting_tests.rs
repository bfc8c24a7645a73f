//! Tests of per-filter fault config (`fault_setting`) through route conversion: the most
//! specific level wins, `FilterConfig` wrappers, other filters' configs, and error paths.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::route::v3::{FilterConfig, Route, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::{
    ErrorType, HeaderAbort,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use crate::config::test_protos::*;
use crate::config::{ConfigError, RouteTable, parse_route_config};

fn parse(config: RouteConfiguration) -> Result<RouteTable, ConfigError> {
    parse_route_config(&pack_any(config))
}

fn error_of(routes: Vec<Route>) -> ConfigError {
    parse(route_config(
        "outbound/default",
        vec![vhost("v", &["a"], routes)],
    ))
    .unwrap_err()
}

fn ok_route() -> Route {
    route("ok", prefix("/"), to_cluster("c"))
}

fn fault_route(name: &str, configs: HashMap<String, Any>) -> Route {
    let mut r = route(name, prefix("/"), to_cluster("c"));
    r.typed_per_filter_config = configs;
    r
}

#[test]
fn the_most_specific_fault_config_wins() {
    let abort = |status| controller_fault(Some((status, "m", 1_000_000)), None);
    let disabled = FilterConfig {
        config: None,
        is_optional: false,
        disabled: true,
    };
    let mut v = vhost(
        "v",
        &["a"],
        vec![
            fault_route("inherits", HashMap::new()),
            with_fault(route("own", prefix("/"), to_cluster("c")), abort(7)),
            fault_route(
                "off",
                HashMap::from([(FAULT.to_owned(), pack_any(disabled))]),
            ),
        ],
    );
    v.typed_per_filter_config = HashMap::from([(FAULT.to_owned(), pack_any(abort(14)))]);
    let mut config = route_config("r", vec![v, vhost("w", &["b"], vec![ok_route()])]);
    config.typed_per_filter_config = HashMap::from([(FAULT.to_owned(), pack_any(abort(2)))]);
    let table = parse(config).unwrap();
    let status = |vh: usize, r: usize| {
        table.virtual_hosts[vh].routes[r]
            .fault
            .as_ref()
            .and_then(|f| f.abort.as_ref())
            .map(|a| a.grpc_status)
    };
    assert_eq!(status(0, 0), Some(14));
    assert_eq!(status(0, 1), Some(7));
    assert_eq!(status(0, 2), None);
    assert_eq!(status(1, 0), Some(2));
}

#[test]
fn other_filters_per_route_config_is_an_error_unless_optional() {
    let router = pack_any(Router::default());
    let err = error_of(vec![fault_route(
        "r",
        HashMap::from([("envoy.filters.http.rbac".to_owned(), router.clone())]),
    )]);
    assert_eq!(
        err.field,
        r#"virtual_hosts[0].routes[0].typed_per_filter_config["envoy.filters.http.rbac"]"#
    );
    let optional = FilterConfig {
        config: Some(router.clone()),
        is_optional: true,
        disabled: false,
    };
    let table = parse(route_config(
        "r",
        vec![vhost(
            "v",
            &["a"],
            vec![fault_route(
                "r",
                HashMap::from([("x".to_owned(), pack_any(optional))]),
            )],
        )],
    ))
    .unwrap();
    assert_eq!(table.virtual_hosts[0].routes[0].fault, None);
    // A non-fault config under the fault filter's name.
    let err = error_of(vec![fault_route(
        "r",
        HashMap::from([(FAULT.to_owned(), router)]),
    )]);
    assert!(err.problem.contains("HTTPFault"), "{err}");
}

#[test]
fn fault_errors_name_the_field_inside_the_fault() {
    let fault = HttpFault {
        abort: Some(FaultAbort {
            error_type: Some(ErrorType::HeaderAbort(HeaderAbort {})),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = error_of(vec![with_fault(ok_route(), fault)]);
    assert_eq!(
        err.field,
        r#"virtual_hosts[0].routes[0].typed_per_filter_config["envoy.filters.http.fault"].abort.header_abort"#
    );
    assert_eq!(err.problem, "not supported by weft-proxy");
}
