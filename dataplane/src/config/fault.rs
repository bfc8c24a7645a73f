//! Envoy's fault filter config (`envoy.extensions.filters.http.fault.v3.HTTPFault`) →
//! [`FaultConfig`]: a fixed delay and an abort with a gRPC status and message, each on a
//! fraction of RPCs; and finding it in a `typed_per_filter_config` map. Header-controlled faults, fault limits and node or header scoping are
//! not implemented and are errors, so a config that relies on them is NACKed.

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use std::collections::HashMap;

use envoy_types::pb::envoy::config::route::v3::FilterConfig;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::google::protobuf::Any;
use prost::Name;

use weft_common::grpc::{self, code};

use super::convert::{FieldError, FieldResult, decode_any, duration, unsupported};
use super::{AbortFault, DelayFault, FaultConfig};

/// The conventional name of Envoy's fault filter (a key of `typed_per_filter_config`).
pub(super) const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// A level's fault setting: `None` inherits from the enclosing level, `Some(None)` turns
/// faults off, `Some(Some(_))` sets one.
pub(super) type FaultSetting = Option<Option<FaultConfig>>;

const MILLION: u32 = 1_000_000;

/// One route's fault config. `None` when it sets neither a delay nor an abort.
pub(super) fn fault_config(fault: &HttpFault) -> FieldResult<Option<FaultConfig>> {
    reject_unsupported(fault)?;
    let delay = fault
        .delay
        .as_ref()
        .map(delay_fault)
        .transpose()
        .map_err(|e| e.within("delay"))?;
    let abort = fault
        .abort
        .as_ref()
        .map(abort_fault)
        .transpose()
        .map_err(|e| e.within("abort"))?;
    Ok((delay.is_some() || abort.is_some()).then_some(FaultConfig { delay, abort }))
}

/// Whether a fault config does nothing (what the listener-level filter config must be).
pub(super) fn is_empty_fault(fault: &HttpFault) -> bool {
    *fault == HttpFault::default()
}

fn reject_unsupported(fault: &HttpFault) -> FieldResult<()> {
    if !fault.headers.is_empty() {
        return Err(unsupported("headers"));
    }
    if !fault.downstream_nodes.is_empty() {
        return Err(unsupported("downstream_nodes"));
    }
    if fault.max_active_faults.is_some() {
        return Err(unsupported("max_active_faults"));
    }
    if fault.response_rate_limit.is_some() {
        return Err(unsupported("response_rate_limit"));
    }
    if !fault.upstream_cluster.is_empty() {
        return Err(unsupported("upstream_cluster"));
    }
    // The `*_runtime` keys only rename runtime overrides, which weft-proxy does not have;
    // `disable_downstream_cluster_stats` and `filter_metadata` only concern Envoy's stats.
    Ok(())
}

fn delay_fault(delay: &FaultDelay) -> FieldResult<DelayFault> {
    let fixed = match &delay.fault_delay_secifier {
        None => return Err(FieldError::new("fixed_delay", "missing")),
        Some(FaultDelaySecifier::HeaderDelay(_)) => return Err(unsupported("header_delay")),
        Some(FaultDelaySecifier::FixedDelay(fixed)) => {
            duration(fixed).map_err(|problem| FieldError::new("fixed_delay", problem))?
        }
    };
    Ok(DelayFault {
        delay: fixed,
        per_million: per_million(delay.percentage.as_ref()).map_err(|e| e.within("percentage"))?,
    })
}

fn abort_fault(abort: &FaultAbort) -> FieldResult<AbortFault> {
    let grpc_status = match abort.error_type {
        None => return Err(FieldError::new("error_type", "missing")),
        Some(ErrorType::HeaderAbort(_)) => return Err(unsupported("header_abort")),
        Some(ErrorType::GrpcStatus(status)) if (1..=16).contains(&status) => status,
        Some(ErrorType::GrpcStatus(status)) => {
            return Err(FieldError::new(
                "grpc_status",
                format!("{status} is not a gRPC error status (1..=16)"),
            ));
        }
        Some(ErrorType::HttpStatus(status)) if (200..600).contains(&status) => {
            u16::try_from(status).map_or(code::UNKNOWN, grpc::code_for_http_status)
        }
        Some(ErrorType::HttpStatus(status)) => {
            return Err(FieldError::new(
                "http_status",
                format!("{status} is not an HTTP status (200..=599)"),
            ));
        }
    };
    Ok(AbortFault {
        grpc_status,
        // Envoy sends a gRPC local reply's body as `grpc-message`.
        message: abort.response_body.clone(),
        per_million: per_million(abort.percentage.as_ref()).map_err(|e| e.within("percentage"))?,
    })
}

/// A FractionalPercent as parts per million, capped at 100 %. Absent means 0, as in Envoy
/// (an unset message is `0/100`).
pub(super) fn per_million(percent: Option<&FractionalPercent>) -> FieldResult<u32> {
    let Some(percent) = percent else {
        return Ok(0);
    };
    let scale: u64 = match DenominatorType::try_from(percent.denominator) {
        Ok(DenominatorType::Hundred) => 10_000,
        Ok(DenominatorType::TenThousand) => 100,
        Ok(DenominatorType::Million) => 1,
        Err(_) => {
            return Err(FieldError::new(
                "denominator",
                format!("unknown denominator {}", percent.denominator),
            ));
        }
    };
    let parts = (u64::from(percent.numerator) * scale).min(u64::from(MILLION));
    // Capped at one million just above, so it fits.
    Ok(u32::try_from(parts).unwrap_or(MILLION))
}

/// The fault setting of one level's `typed_per_filter_config` (route, virtual host or
/// route configuration). The fault config is known by its type (`HTTPFault`), possibly
/// wrapped in a `FilterConfig`: `disabled: true` turns faults off at this level,
/// `is_optional: true` lets the config of a filter weft-proxy does not run be ignored. Any
/// other filter's config is an error: weft-proxy runs no other filter.
pub(super) fn fault_setting(configs: &HashMap<String, Any>) -> FieldResult<FaultSetting> {
    // Sorted, so the same config always reports the same error first.
    let mut entries: Vec<(&String, &Any)> = configs.iter().collect();
    entries.sort_by_key(|(name, _)| *name);
    let mut setting = None;
    for (name, any) in entries {
        // Read by `cors::cors_setting`.
        if super::cors::is_cors(name, any) {
            continue;
        }
        let field = format!("typed_per_filter_config[{name:?}]");
        let (inner, optional, disabled) = if any.type_url == FilterConfig::type_url() {
            let wrapper: FilterConfig = decode_any(any).map_err(|e| e.within(&field))?;
            (wrapper.config, wrapper.is_optional, wrapper.disabled)
        } else {
            (Some(any.clone()), false, false)
        };
        // Known by its type; under the fault filter's name any other type is a mistake,
        // reported by decoding it as a fault.
        let is_fault = name == FAULT_FILTER
            || inner
                .as_ref()
                .is_some_and(|a| a.type_url == HttpFault::type_url());
        match inner {
            _ if disabled && is_fault => setting = Some(None),
            // Turning off a filter weft-proxy does not run changes nothing.
            _ if disabled => {}
            Some(any) if is_fault => {
                let fault: HttpFault = decode_any(&any).map_err(|e| e.within(&field))?;
                setting = Some(fault_config(&fault).map_err(|e| e.within(&field))?);
            }
            _ if optional => {}
            None => return Err(FieldError::new(format!("{field}.config"), "missing")),
            Some(any) => {
                return Err(FieldError::new(
                    field,
                    format!(
                        "config of type {:?}: weft-proxy runs no such filter (only {FAULT_FILTER} and {})",
                        any.type_url,
                        super::cors::CORS_FILTER
                    ),
                ));
            }
        }
    }
    Ok(setting)
}

#[cfg(test)]
#[path = "fault_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "fault_setting_tests.rs"]
mod setting_tests;
