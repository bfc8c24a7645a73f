//! FaultInjections → Envoy's fault filter, per route: for each route entry of the target, a
//! copy placed just before it, narrowed by the fault's match and carrying an `HTTPFault`
//! as `typed_per_filter_config["envoy.filters.http.fault"]`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, Route};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use super::routes::{AttachedRoute, proto_duration};
use super::services::Catalog;
use super::validate::{self, AbortValues, FaultValues};
use super::{ResourceReport, matching, problems};
use crate::api::{FaultInjection, FaultTargetKind};
use crate::model::{Index, Kind, Object, ObjectKey};

/// The name of Envoy's fault filter, the key of its per-route config.
pub(super) const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// What a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FaultTarget {
    /// Every RPC addressed to the Service (its virtual hosts), whatever the backend.
    Service { namespace: String, name: String },
    /// The RPCs routed by the GrpcRoute's rules.
    GrpcRoute(ObjectKey),
}

/// A valid fault whose target exists, translated.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AppliedFault {
    pub key: ObjectKey,
    pub target: FaultTarget,
    /// The RPCs it selects among its target's (`None`: all).
    pub rpc_match: Option<crate::api::RouteMatch>,
    /// Added to the match of each route it copies.
    pub narrowing: Vec<HeaderMatcher>,
    /// The `HTTPFault`, packed.
    pub config: Any,
}

/// Translates every FaultInjection in namespace/name order, reporting each.
pub(super) fn translate_faults(
    index: &Index,
    catalog: &Catalog,
    routes: &[AttachedRoute],
    reports: &mut BTreeMap<ObjectKey, ResourceReport>,
) -> Vec<AppliedFault> {
    let mut applied = Vec::new();
    for object in index.of_kind(Kind::FaultInjection) {
        let Object::FaultInjection(fault) = object else {
            continue;
        };
        let key = object.key();
        let mut report = ResourceReport::new(object.generation());
        let target = target(fault, &key.namespace, index, catalog, routes);
        report.resolved_refs = target.as_ref().map(|_| ()).map_err(Clone::clone);
        match validate::fault(fault) {
            Err(list) => report.accepted = problems(list),
            Ok(values) => {
                if let Ok(target) = target {
                    let rpc_match = fault.spec.rpc_match.as_ref();
                    let hides = |f: &&AppliedFault| {
                        f.target == target && matching::can_overlap(f.rpc_match.as_ref(), rpc_match)
                    };
                    if let Some(first) = applied.iter().find(hides) {
                        report.notes.push(format!(
                            "FaultInjection {}/{} has the same target and comes first (by \
                             namespace/name): an RPC both match gets only that fault",
                            first.key.namespace, first.key.name
                        ));
                    }
                    let narrowing = rpc_match
                        .map(matching::narrowing_matchers)
                        .unwrap_or_default();
                    let config = pack_any(http_fault(&values));
                    applied.push(AppliedFault {
                        key: key.clone(),
                        target,
                        rpc_match: rpc_match.cloned(),
                        narrowing,
                        config,
                    });
                }
            }
        }
        reports.insert(key, report);
    }
    applied
}

/// The fault's target, or why it does not resolve.
fn target(
    fault: &FaultInjection,
    namespace: &str,
    index: &Index,
    catalog: &Catalog,
    routes: &[AttachedRoute],
) -> Result<FaultTarget, String> {
    let name = &fault.spec.target_ref.name;
    match fault.spec.target_ref.kind {
        FaultTargetKind::Service => match catalog.get(namespace, name) {
            Some(_) => Ok(FaultTarget::Service {
                namespace: namespace.to_owned(),
                name: name.clone(),
            }),
            None => Err(format!("spec.targetRef: no Service {namespace}/{name}")),
        },
        FaultTargetKind::GrpcRoute => {
            let key = ObjectKey::new(Kind::GrpcRoute, namespace, name.as_str());
            if routes.iter().any(|r| r.key == key) {
                Ok(FaultTarget::GrpcRoute(key))
            } else if index.get(&key).is_some() {
                Err(format!(
                    "spec.targetRef: GrpcRoute {namespace}/{name} is not accepted"
                ))
            } else {
                Err(format!("spec.targetRef: no GrpcRoute {namespace}/{name}"))
            }
        }
    }
}

/// A percentage as a fraction per million, so fractions of a percent survive.
fn per_million(percent: f64) -> FractionalPercent {
    FractionalPercent {
        // Checked to be within 0..=100, so the product fits.
        numerator: (percent * 10_000.0).round() as u32,
        denominator: DenominatorType::Million as i32,
    }
}

fn http_fault(values: &FaultValues) -> HttpFault {
    HttpFault {
        delay: values
            .delay
            .map(|(fixed, percent): (Duration, f64)| FaultDelay {
                percentage: Some(per_million(percent)),
                fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(proto_duration(fixed))),
            }),
        abort: values.abort.as_ref().map(|abort: &AbortValues| FaultAbort {
            percentage: Some(per_million(abort.percentage)),
            // Envoy sends a gRPC local reply's body as `grpc-message`.
            response_body: abort.message.clone(),
            error_type: Some(ErrorType::GrpcStatus(abort.status.code())),
        }),
        ..Default::default()
    }
}

/// The routes of one virtual host of Service (`namespace`, `name`), each preceded by its
/// faulted copies: first those of faults on the route's GrpcRoute (`origin`), then those of
/// faults on the Service.
pub(super) fn with_faults(
    entries: Vec<(Route, Option<&ObjectKey>)>,
    namespace: &str,
    name: &str,
    faults: &[AppliedFault],
) -> Vec<Route> {
    let on_service = |f: &&AppliedFault| match &f.target {
        FaultTarget::Service {
            namespace: n,
            name: s,
        } => n == namespace && s == name,
        FaultTarget::GrpcRoute(_) => false,
    };
    let mut routes = Vec::new();
    for (route, origin) in entries {
        let on_route = |f: &&AppliedFault| match &f.target {
            FaultTarget::GrpcRoute(key) => origin == Some(key),
            FaultTarget::Service { .. } => false,
        };
        let applying = faults
            .iter()
            .filter(on_route)
            .chain(faults.iter().filter(on_service));
        for fault in applying {
            routes.push(faulted_copy(&route, fault));
        }
        routes.push(route);
    }
    routes
}

/// The faults [`with_faults`] applies to a virtual host of Service (`namespace`, `name`)
/// whose entries come from the GrpcRoutes `origins`.
pub(super) fn applied_faults<'a>(
    origins: &[&ObjectKey],
    namespace: &str,
    name: &str,
    faults: &'a [AppliedFault],
) -> impl Iterator<Item = &'a ObjectKey> {
    faults
        .iter()
        .filter(move |f| match &f.target {
            FaultTarget::Service {
                namespace: n,
                name: s,
            } => n == namespace && s == name,
            FaultTarget::GrpcRoute(key) => origins.contains(&key),
        })
        .map(|f| &f.key)
}

fn faulted_copy(route: &Route, fault: &AppliedFault) -> Route {
    let mut copy = route.clone();
    copy.name = format!(
        "{}+fault:{}/{}",
        route.name, fault.key.namespace, fault.key.name
    );
    if let Some(m) = copy.r#match.as_mut() {
        m.headers.extend(fault.narrowing.iter().cloned());
    }
    copy.typed_per_filter_config = HashMap::from([(FAULT_FILTER.to_owned(), fault.config.clone())]);
    copy
}

#[cfg(test)]
mod tests;
