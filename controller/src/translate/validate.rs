//! Validation of each weft resource on its own (what the schema checks in a cluster, and
//! what it cannot: regular expressions, durations, ...), into checked values translation
//! uses without further failure. Every problem is `<field path>: <what is wrong>`.

use std::time::Duration;

use crate::api::{
    self, BackendPolicy, FaultInjection, GrpcRoute, GrpcStatus, HeaderMatch, MatchType,
    MethodMatch, Percentage, RouteMatch,
};

use super::matching::{PathMatch, path_match};
use super::re2;

/// Problems found so far, each `<path>: <message>`.
#[derive(Debug, Default)]
pub(super) struct Problems(pub Vec<String>);

impl Problems {
    pub fn add(&mut self, path: &str, message: impl std::fmt::Display) {
        self.0.push(format!("{path}: {message}"));
    }

    fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.add(path, message)).ok()
    }

    fn into_result<T>(self, value: T) -> Result<T, Vec<String>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// The checked values of one GrpcRoute rule.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RuleValues {
    /// `None`, or `0s`: no cap on the client's deadline.
    pub timeout: Option<Duration>,
    pub retry: Option<RetryValues>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct RetryValues {
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    pub codes: Vec<GrpcStatus>,
    pub backoff: Duration,
}

/// weft's (and Envoy's) default base interval between retries.
const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);

/// The checked values of a FaultInjection.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FaultValues {
    /// (fixed delay, percent)
    pub delay: Option<(Duration, f64)>,
    pub abort: Option<AbortValues>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct AbortValues {
    pub status: GrpcStatus,
    pub percentage: f64,
    pub message: String,
}

/// The abort message when a fault sets none.
pub(super) const DEFAULT_ABORT_MESSAGE: &str = "fault injected by weft";

/// Checks a GrpcRoute; on success, the checked values of each rule.
pub(super) fn grpc_route(route: &GrpcRoute) -> Result<Vec<RuleValues>, Vec<String>> {
    let mut problems = Problems::default();
    let spec = &route.spec;
    if spec.parent_refs.is_empty() {
        problems.add("spec.parentRefs", "at least one parent Service is required");
    }
    for (i, parent) in spec.parent_refs.iter().enumerate() {
        let path = format!("spec.parentRefs[{i}]");
        name(&mut problems, &format!("{path}.name"), &parent.name);
        if let Some(port) = parent.port {
            port_number(&mut problems, &format!("{path}.port"), port);
        }
    }
    if spec.rules.is_empty() {
        problems.add("spec.rules", "at least one rule is required");
    }
    let mut rules = Vec::new();
    for (i, rule) in spec.rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        for (j, rpc) in rule.matches.iter().enumerate() {
            route_match(&mut problems, &format!("{path}.matches[{j}]"), rpc);
        }
        backend_refs(&mut problems, &path, &rule.backend_refs);
        let timeout = rule
            .timeout
            .as_ref()
            .and_then(|t| problems.check(&format!("{path}.timeout"), duration(t, true)));
        let retry = rule
            .retry
            .as_ref()
            .and_then(|r| retry(&mut problems, &format!("{path}.retry"), r));
        rules.push(RuleValues {
            timeout: timeout.filter(|t| !t.is_zero()),
            retry,
        });
    }
    if let Some(web) = &spec.web {
        web_access(&mut problems, web);
    }
    problems.into_result(rules)
}

/// `spec.web`: gRPC service names, and origins a browser sends (`scheme://host[:port]`).
fn web_access(problems: &mut Problems, web: &api::WebAccess) {
    if web.services.is_empty() {
        problems.add("spec.web.services", "at least one gRPC service is required");
    }
    for (i, service) in web.services.iter().enumerate() {
        if !is_service_name(service) {
            problems.add(
                &format!("spec.web.services[{i}]"),
                format!("{service:?} is not a gRPC service name like helloworld.Greeter"),
            );
        } else if web.services[..i].contains(service) {
            problems.add(
                &format!("spec.web.services[{i}]"),
                format!("{service} is listed twice"),
            );
        }
    }
    let Some(cors) = &web.cors else { return };
    if cors.allow_origins.is_empty() {
        problems.add(
            "spec.web.cors.allowOrigins",
            "at least one origin is required",
        );
    }
    for (i, origin) in cors.allow_origins.iter().enumerate() {
        if origin != "*" && !is_origin(origin) {
            problems.add(
                &format!("spec.web.cors.allowOrigins[{i}]"),
                format!("{origin:?} is not an origin like https://app.example.com (scheme, host, optional port; no path) or \"*\""),
            );
        }
    }
    let lists = [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ];
    for (field, names) in lists {
        for (i, header) in names.iter().enumerate() {
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                problems.add(
                    &format!("spec.web.cors.{field}[{i}]"),
                    format!("{header:?} is not an HTTP header name"),
                );
            }
        }
    }
    if let Some(max_age) = &cors.max_age {
        problems.check("spec.web.cors.maxAge", duration(max_age, true));
    }
}

/// What a browser sends as `Origin`: `scheme://host` or `scheme://host:port`, nothing after.
fn is_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let (host, port) = match rest.rsplit_once(':') {
        // `[::1]` alone splits inside the brackets: no port then.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    scheme_ok
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

fn backend_refs(problems: &mut Problems, rule: &str, backends: &[api::BackendRef]) {
    if backends.is_empty() {
        problems.add(
            &format!("{rule}.backendRefs"),
            "at least one backendRef is required",
        );
        return;
    }
    for (j, backend) in backends.iter().enumerate() {
        let path = format!("{rule}.backendRefs[{j}]");
        name(problems, &format!("{path}.name"), &backend.name);
        port_number(problems, &format!("{path}.port"), backend.port);
        if !(0..=1_000_000).contains(&backend.weight) {
            problems.add(
                &format!("{path}.weight"),
                format!("{} is not within 0 to 1000000", backend.weight),
            );
        }
    }
    if backends.iter().all(|b| b.weight <= 0) {
        problems.add(
            &format!("{rule}.backendRefs"),
            "at least one backendRef needs a weight above 0",
        );
    }
}

fn retry(problems: &mut Problems, path: &str, retry: &api::RetryPolicy) -> Option<RetryValues> {
    let attempts = u32::try_from(retry.attempts).ok().filter(|a| *a <= 10);
    if attempts.is_none() {
        problems.add(
            &format!("{path}.attempts"),
            format!("{} is not within 0 to 10", retry.attempts),
        );
    }
    if retry.codes.is_empty() {
        problems.add(&format!("{path}.codes"), "at least one status is required");
    }
    if retry.codes.contains(&GrpcStatus::Ok) {
        problems.add(
            &format!("{path}.codes"),
            "OK is not a failure and cannot be retried",
        );
    }
    let per_try_timeout = retry
        .per_try_timeout
        .as_ref()
        .map(|t| problems.check(&format!("{path}.perTryTimeout"), duration(t, false)));
    let backoff = retry
        .backoff
        .as_ref()
        .map(|b| problems.check(&format!("{path}.backoff"), duration(b, false)));
    let mut codes: Vec<GrpcStatus> = Vec::new();
    for code in &retry.codes {
        if !codes.contains(code) {
            codes.push(*code);
        }
    }
    Some(RetryValues {
        attempts: attempts?,
        per_try_timeout: per_try_timeout
            .unwrap_or(Some(Duration::ZERO))
            .filter(|t| !t.is_zero()),
        codes,
        backoff: backoff.unwrap_or(Some(DEFAULT_BACKOFF))?,
    })
}

/// Checks a FaultInjection; on success, its checked values.
pub(super) fn fault(fault: &FaultInjection) -> Result<FaultValues, Vec<String>> {
    let mut problems = Problems::default();
    let spec = &fault.spec;
    name(&mut problems, "spec.targetRef.name", &spec.target_ref.name);
    if let Some(rpc) = &spec.rpc_match {
        route_match(&mut problems, "spec.match", rpc);
    }
    if spec.delay.is_none() && spec.abort.is_none() {
        problems.add("spec", "set delay, abort or both");
    }
    let delay = spec.delay.as_ref().and_then(|delay| {
        let fixed = problems.check("spec.delay.fixedDelay", duration(&delay.fixed_delay, false));
        let percent = problems.check("spec.delay.percentage", percentage(delay.percentage));
        Some((fixed?, percent?))
    });
    let abort = spec.abort.as_ref().and_then(|abort| {
        if abort.grpc_status == GrpcStatus::Ok {
            problems.add(
                "spec.abort.grpcStatus",
                "an abort needs an error status, not OK",
            );
        }
        let message = abort
            .message
            .clone()
            .unwrap_or_else(|| DEFAULT_ABORT_MESSAGE.into());
        if message.len() > 1024 {
            problems.add("spec.abort.message", "longer than 1024 bytes");
        }
        let percentage = problems.check("spec.abort.percentage", percentage(abort.percentage))?;
        Some(AbortValues {
            status: abort.grpc_status,
            percentage,
            message,
        })
    });
    problems.into_result(FaultValues { delay, abort })
}

/// The checked values of a BackendPolicy; `None` leaves the weft default in place.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct BackendValues {
    pub connect_timeout: Option<Duration>,
    pub max_requests: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub outlier: Option<OutlierValues>,
    /// (interval, timeout)
    pub keepalive: Option<(Duration, Duration)>,
}

/// Outlier detection with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OutlierValues {
    pub consecutive_errors: u32,
    pub consecutive_gateway_errors: Option<u32>,
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_percent: u32,
}

/// The defaults of `OutlierDetection`'s fields (see the API's doc comments).
const DEFAULT_CONSECUTIVE_ERRORS: u32 = 5;
const DEFAULT_OUTLIER_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
const DEFAULT_MAX_EJECTION_PERCENT: u32 = 50;
/// Envoy's default wait for a keepalive PING's answer.
const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Checks a BackendPolicy; on success, its values.
pub(super) fn backend_policy(policy: &BackendPolicy) -> Result<BackendValues, Vec<String>> {
    let mut problems = Problems::default();
    let spec = &policy.spec;
    name(&mut problems, "spec.targetRef.name", &spec.target_ref.name);
    if spec.outlier_detection.is_none()
        && spec.circuit_breaker.is_none()
        && spec.connect_timeout.is_none()
        && spec.http2_keepalive.is_none()
    {
        problems.add(
            "spec",
            "set at least one of outlierDetection, circuitBreaker, connectTimeout, http2Keepalive",
        );
    }
    let connect_timeout = spec
        .connect_timeout
        .as_ref()
        .and_then(|timeout| problems.check("spec.connectTimeout", duration(timeout, false)));
    let breaker = spec.circuit_breaker.as_ref();
    let max_requests = bounded(
        &mut problems,
        "spec.circuitBreaker.maxRequests",
        breaker.and_then(|b| b.max_requests),
        0..=1_000_000,
    );
    let max_pending_requests = bounded(
        &mut problems,
        "spec.circuitBreaker.maxPendingRequests",
        breaker.and_then(|b| b.max_pending_requests),
        0..=1_000_000,
    );
    let outlier = spec.outlier_detection.as_ref().map(|outlier| {
        let path = "spec.outlierDetection";
        let consecutive_errors = bounded(
            &mut problems,
            &format!("{path}.consecutiveErrors"),
            outlier.consecutive_errors,
            1..=1000,
        );
        let consecutive_gateway_errors = bounded(
            &mut problems,
            &format!("{path}.consecutiveGatewayErrors"),
            outlier.consecutive_gateway_errors,
            1..=1000,
        );
        let max_ejection_percent = bounded(
            &mut problems,
            &format!("{path}.maxEjectionPercent"),
            outlier.max_ejection_percent,
            0..=100,
        );
        let mut time = |field: &str, value: &Option<api::Duration>, default| match value {
            None => default,
            Some(value) => problems
                .check(&format!("{path}.{field}"), duration(value, false))
                .unwrap_or(default),
        };
        let interval = time("interval", &outlier.interval, DEFAULT_OUTLIER_INTERVAL);
        let base_ejection_time = time(
            "baseEjectionTime",
            &outlier.base_ejection_time,
            DEFAULT_BASE_EJECTION_TIME,
        );
        // Envoy refuses a maximum below the base; the default maximum grows to the base.
        let max_ejection_time = time(
            "maxEjectionTime",
            &outlier.max_ejection_time,
            DEFAULT_MAX_EJECTION_TIME.max(base_ejection_time),
        );
        if max_ejection_time < base_ejection_time {
            problems.add(
                &format!("{path}.maxEjectionTime"),
                format!(
                    "{max_ejection_time:?} is shorter than baseEjectionTime ({base_ejection_time:?})"
                ),
            );
        }
        OutlierValues {
            consecutive_errors: consecutive_errors.unwrap_or(DEFAULT_CONSECUTIVE_ERRORS),
            consecutive_gateway_errors,
            interval,
            base_ejection_time,
            max_ejection_time,
            max_ejection_percent: max_ejection_percent.unwrap_or(DEFAULT_MAX_EJECTION_PERCENT),
        }
    });
    let keepalive = spec.http2_keepalive.as_ref().and_then(|keepalive| {
        let interval = problems.check(
            "spec.http2Keepalive.interval",
            duration(&keepalive.interval, false).and_then(|interval| {
                if interval < Duration::from_secs(1) {
                    Err(format!("{} is shorter than 1s", keepalive.interval))
                } else {
                    Ok(interval)
                }
            }),
        );
        let timeout = match &keepalive.timeout {
            None => Some(DEFAULT_KEEPALIVE_TIMEOUT),
            Some(timeout) => {
                problems.check("spec.http2Keepalive.timeout", duration(timeout, false))
            }
        };
        Some((interval?, timeout?))
    });
    problems.into_result(BackendValues {
        connect_timeout,
        max_requests,
        max_pending_requests,
        outlier,
        keepalive,
    })
}

/// Checks a match: method names or regular expressions, and header matches.
pub(super) fn route_match(problems: &mut Problems, path: &str, rpc: &RouteMatch) {
    if let Some(method) = &rpc.method {
        method_match(problems, &format!("{path}.method"), method);
    }
    for (k, header) in rpc.headers.iter().enumerate() {
        header_match(problems, &format!("{path}.headers[{k}]"), header);
        let repeated = rpc.headers[..k]
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(&header.name));
        if repeated {
            problems.add(
                &format!("{path}.headers[{k}].name"),
                format!("{} is matched twice", header.name),
            );
        }
    }
}

fn method_match(problems: &mut Problems, path: &str, method: &MethodMatch) {
    if method.service.is_none() && method.method.is_none() {
        problems.add(path, "one or both of service and method must be set");
        return;
    }
    let before = problems.0.len();
    for (field, value, exact_check) in [
        (
            "service",
            &method.service,
            is_service_name as fn(&str) -> bool,
        ),
        ("method", &method.method, is_identifier),
    ] {
        let Some(value) = value else { continue };
        let field_path = format!("{path}.{field}");
        match method.match_type {
            _ if value.is_empty() => problems.add(&field_path, "must not be empty"),
            MatchType::Exact if !exact_check(value) => problems.add(
                &field_path,
                format!("{value:?} is not a protobuf {field} name (such as helloworld.Greeter / SayHello)"),
            ),
            MatchType::Exact => {}
            MatchType::RegularExpression => {
                problems.check(&field_path, re2::check(value).map_err(invalid_regex));
            }
        }
    }
    if problems.0.len() == before
        && let PathMatch::Regex(pattern) = path_match(Some(method))
    {
        problems.check(path, re2::check_with_size(&pattern).map_err(invalid_regex));
    }
}

fn header_match(problems: &mut Problems, path: &str, header: &HeaderMatch) {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if header.name.starts_with(':') {
        problems.add(
            &format!("{path}.name"),
            "pseudo-headers (such as :path) cannot be matched",
        );
    } else if header.name.is_empty() || !header.name.bytes().all(token) {
        problems.add(
            &format!("{path}.name"),
            format!("{:?} is not a header name", header.name),
        );
    }
    match header.match_type {
        _ if header.value.is_empty() => problems.add(&format!("{path}.value"), "must not be empty"),
        MatchType::Exact => {}
        MatchType::RegularExpression => {
            problems.check(
                &format!("{path}.value"),
                re2::check_with_size(&header.value).map_err(invalid_regex),
            );
        }
    }
}

fn invalid_regex(message: String) -> String {
    format!("invalid regular expression: {message}")
}

fn name(problems: &mut Problems, path: &str, name: &str) {
    if name.is_empty() {
        problems.add(path, "must not be empty");
    }
}

fn port_number(problems: &mut Problems, path: &str, port: i32) {
    if !(1..=65535).contains(&port) {
        problems.add(path, format!("{port} is not a port (1 to 65535)"));
    }
}

/// Parses a duration; `0s` only where `zero_ok`.
fn duration(value: &api::Duration, zero_ok: bool) -> Result<Duration, String> {
    let parsed = value.to_std().map_err(|e| e.to_string())?;
    if parsed.is_zero() && !zero_ok {
        return Err(format!("{value} must be longer than 0"));
    }
    Ok(parsed)
}

/// A count within `range` (what the schema enforces in a cluster).
fn bounded(
    problems: &mut Problems,
    path: &str,
    value: Option<i32>,
    range: std::ops::RangeInclusive<i32>,
) -> Option<u32> {
    let value = value?;
    if range.contains(&value) {
        u32::try_from(value).ok()
    } else {
        let (low, high) = range.into_inner();
        problems.add(path, format!("{value} is not within {low} to {high}"));
        None
    }
}

fn percentage(value: Percentage) -> Result<f64, String> {
    if value.0.is_finite() && (0.0..=100.0).contains(&value.0) {
        Ok(value.0)
    } else {
        Err(format!("{} is not within 0 to 100", value.0))
    }
}

/// `helloworld.Greeter`: dot-separated identifiers.
fn is_service_name(name: &str) -> bool {
    name.split('.').all(is_identifier)
}

fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests;
