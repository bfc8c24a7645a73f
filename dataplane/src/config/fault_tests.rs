//! Tests of fault config conversion: the controller's shape, percentages, the HTTP → gRPC
//! status mapping, and the unsupported parts.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::{
    FaultDelaySecifier, HeaderDelay,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, FaultRateLimit};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};

use super::{fault_config, is_empty_fault, per_million};
use crate::config::test_protos::{controller_fault, proto_duration};
use crate::config::{AbortFault, DelayFault, FaultConfig};

fn abort_with(error_type: ErrorType) -> HttpFault {
    HttpFault {
        abort: Some(FaultAbort {
            error_type: Some(error_type),
            response_body: "boom".into(),
            percentage: Some(percent(100, DenominatorType::Hundred)),
        }),
        ..Default::default()
    }
}

fn percent(numerator: u32, denominator: DenominatorType) -> FractionalPercent {
    FractionalPercent {
        numerator,
        denominator: denominator as i32,
    }
}

#[test]
fn converts_the_controllers_faults() {
    let fault = controller_fault(
        Some((14, "injected by weft", 50_000)),
        Some((Duration::from_millis(100), 1_000_000)),
    );
    assert_eq!(
        fault_config(&fault).unwrap(),
        Some(FaultConfig {
            delay: Some(DelayFault {
                delay: Duration::from_millis(100),
                per_million: 1_000_000,
            }),
            abort: Some(AbortFault {
                grpc_status: 14,
                message: "injected by weft".into(),
                per_million: 50_000,
            }),
        })
    );
    assert_eq!(fault_config(&HttpFault::default()).unwrap(), None);
    assert!(is_empty_fault(&HttpFault::default()));
    assert!(!is_empty_fault(&fault));
}

#[test]
fn percentages_become_parts_per_million() {
    let ppm = |n, d| per_million(Some(&percent(n, d))).unwrap();
    assert_eq!(ppm(5, DenominatorType::Hundred), 50_000);
    assert_eq!(ppm(5, DenominatorType::TenThousand), 500);
    assert_eq!(ppm(5, DenominatorType::Million), 5);
    assert_eq!(ppm(250, DenominatorType::Hundred), 1_000_000);
    assert_eq!(ppm(u32::MAX, DenominatorType::Hundred), 1_000_000);
    assert_eq!(ppm(2_000_000, DenominatorType::Million), 1_000_000);
    assert_eq!(per_million(None).unwrap(), 0);
    let odd = FractionalPercent {
        numerator: 1,
        denominator: 9,
    };
    assert_eq!(per_million(Some(&odd)).unwrap_err().field, "denominator");
}

#[test]
fn an_http_status_abort_becomes_the_grpc_status_a_client_sees() {
    let fault = fault_config(&abort_with(ErrorType::HttpStatus(503)))
        .unwrap()
        .unwrap();
    assert_eq!(
        fault.abort,
        Some(AbortFault {
            grpc_status: 14,
            message: "boom".into(),
            per_million: 1_000_000,
        })
    );
}

#[test]
fn bad_statuses_are_errors() {
    for (error_type, field) in [
        (ErrorType::GrpcStatus(0), "abort.grpc_status"),
        (ErrorType::GrpcStatus(17), "abort.grpc_status"),
        (ErrorType::HttpStatus(600), "abort.http_status"),
        (ErrorType::HttpStatus(99), "abort.http_status"),
    ] {
        let err = fault_config(&abort_with(error_type)).unwrap_err();
        assert_eq!(err.field, field, "{error_type:?}");
    }
    let no_type = HttpFault {
        abort: Some(FaultAbort::default()),
        ..Default::default()
    };
    assert_eq!(
        fault_config(&no_type).unwrap_err().field,
        "abort.error_type"
    );
}

#[test]
fn header_controlled_and_scoped_faults_are_unsupported() {
    let header_delay = HttpFault {
        delay: Some(FaultDelay {
            fault_delay_secifier: Some(FaultDelaySecifier::HeaderDelay(HeaderDelay {})),
            percentage: None,
        }),
        ..Default::default()
    };
    let cases = [
        (
            abort_with(ErrorType::HeaderAbort(Default::default())),
            "abort.header_abort",
        ),
        (header_delay, "delay.header_delay"),
        (
            HttpFault {
                max_active_faults: Some(UInt32Value { value: 1 }),
                ..Default::default()
            },
            "max_active_faults",
        ),
        (
            HttpFault {
                downstream_nodes: vec!["n".into()],
                ..Default::default()
            },
            "downstream_nodes",
        ),
        (
            HttpFault {
                headers: vec![HeaderMatcher::default()],
                ..Default::default()
            },
            "headers",
        ),
        (
            HttpFault {
                response_rate_limit: Some(FaultRateLimit::default()),
                ..Default::default()
            },
            "response_rate_limit",
        ),
        (
            HttpFault {
                upstream_cluster: "c".into(),
                ..Default::default()
            },
            "upstream_cluster",
        ),
    ];
    for (fault, field) in cases {
        let err = fault_config(&fault).unwrap_err();
        assert_eq!(err.field, field);
        assert_eq!(err.problem, "not supported by weft-proxy");
    }
}

#[test]
fn delay_errors_name_the_field() {
    let delay = |specifier| HttpFault {
        delay: Some(FaultDelay {
            fault_delay_secifier: specifier,
            percentage: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        fault_config(&delay(None)).unwrap_err().field,
        "delay.fixed_delay"
    );
    let negative = Some(FaultDelaySecifier::FixedDelay(ProtoDuration {
        seconds: -5,
        nanos: 0,
    }));
    assert_eq!(
        fault_config(&delay(negative)).unwrap_err().field,
        "delay.fixed_delay"
    );
    // No percentage: Envoy reads 0 %, so the delay never fires.
    let fixed = Some(FaultDelaySecifier::FixedDelay(proto_duration(
        Duration::from_secs(1),
    )));
    let config = fault_config(&delay(fixed)).unwrap().unwrap();
    assert_eq!(config.delay.unwrap().per_million, 0);
}
