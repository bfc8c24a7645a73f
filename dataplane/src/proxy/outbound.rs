//! The outbound stack: what happens to an RPC the local app sends, in request order —
//! route by `:authority` (or, on an intercepted connection whose authority names no Service,
//! by the original destination: see `original_dst`) and `/package.Service/Method` (for a
//! route configuration naming `vhds`, first holding the RPC until its virtual host, clusters
//! and endpoints have arrived: see `on_demand`), fault (delay, abort), deadline (the
//! client's `grpc-timeout` capped by the route's timeout), attempts (each decided on by the
//! attempt machine, `attempt`: a retry only when the request never reached the app or the
//! app answered a code the policy names), pick an endpoint (P2C, skipping endpoints outlier
//! detection ejected), take a slot in the cluster's circuit breaker (`breaker`), send on a
//! pooled HTTP/2 connection (waiting for one counts as pending in the circuit breaker), tell
//! outlier detection what the attempt came to (`outlier`), stream the answer back. Any
//! failure on the way is answered by the proxy as a Trailers-Only gRPC response (see
//! [`Call::fail`]); a circuit breaker's overflow is such an answer, and never retried.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio::time::Instant;

use super::attempt::{Attempts, Outcome, Verdict};
use super::body::{BoxError, ProxyBody, boxed};
use super::breaker::{self, Limit, PendingLimit, RequestSlot};
use super::call::Call;
use super::deadline::{self, TimeoutCause};
use super::fault;
use super::grpc::{self, code};
use super::metrics::{
    Direction, Protocol, ProxyMetrics, Security, UNKNOWN_DESTINATION, VhdsOutcome,
};
use super::on_demand::{self, Hold, OnDemand};
use super::original_dst::OriginalDst;
use super::pool::{ConnectOptions, Endpoint, Picked, UpstreamError, Upstreams};
use super::retry::{self, ReplayHandle, RetryBudget};
use crate::config::{
    ClusterConfig, EndpointSet, Lookup, ProxyConfig, Route, RouteAction, RpcTarget,
};

/// Request bodies up to this size are kept so a retry can replay them; longer (streaming)
/// requests are not retried.
const REPLAY_LIMIT: usize = 64 * 1024;

/// What every outbound RPC shares.
pub struct Outbound {
    pub config: watch::Receiver<Arc<ProxyConfig>>,
    pub upstreams: Upstreams,
    pub metrics: Arc<ProxyMetrics>,
    pub retry_budget: RetryBudget,
    /// Where to ask for virtual hosts over VHDS.
    pub on_demand: OnDemand,
}

impl Outbound {
    /// An RPC the local app sent, routed on the outbound table by authority and path.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ProxyBody> {
        self.serve(request, None).await
    }

    /// A browser's call arriving on the web listener as gRPC (`protocol` says what the
    /// browser spoke), routed on the web table by path, then served as any outbound RPC.
    pub async fn handle_web(
        self: Arc<Self>,
        request: Request<ProxyBody>,
        protocol: Protocol,
    ) -> Response<ProxyBody> {
        self.serve(request, Some(protocol)).await
    }

    /// Serves an RPC on the outbound table, or on the web table for a browser's (`web`).
    async fn serve<B>(
        self: Arc<Self>,
        request: Request<B>,
        web: Option<Protocol>,
    ) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let arrived = Instant::now();
        let config = self.config.borrow().clone();
        let has_table = match web {
            None => config.outbound.is_some(),
            Some(_) => config.web.is_some(),
        };
        if !has_table {
            return grpc::trailers_only(
                code::UNAVAILABLE,
                "weft-proxy has no routes yet: no config from the control plane",
            );
        }
        let authority = authority(&request);
        let path = request.uri().path();
        let original_dst = request
            .extensions()
            .get::<OriginalDst>()
            .map(|original| original.0);
        let rpc = RpcTarget {
            authority,
            original_dst,
            path,
            headers: request.headers(),
        };
        // The client's deadline (its `grpc-timeout`), which also bounds a hold for config.
        let client_deadline = grpc::parse_timeout(request.headers()).map(|t| arrived + t);
        // Set only when the RPC was held: the config that answered.
        let answered;
        let lookup = match web {
            None => config.lookup(&rpc),
            Some(_) => config.lookup_web(&rpc),
        };
        let (config, decision, held) = match lookup {
            Lookup::Wait { .. } => match self
                .on_demand
                .hold(self.config.clone(), &rpc, client_deadline)
                .await
            {
                Hold::Answered(config) => {
                    answered = config;
                    let lookup = answered.lookup(&rpc);
                    self.metrics.vhds_request(on_demand::outcome(&lookup));
                    (&answered, lookup.decision(), true)
                }
                Hold::DeadlineExceeded => {
                    self.metrics.vhds_request(VhdsOutcome::Timeout);
                    let mut call = Call::new(
                        &self.metrics,
                        Direction::Outbound,
                        UNKNOWN_DESTINATION,
                        ("other", "other"),
                    );
                    call.started_at(arrived.into_std());
                    let timeout = grpc::parse_timeout(request.headers());
                    call.deadline(timeout.map(|t| (t, TimeoutCause::ClientDeadline)));
                    return call.fail(
                        code::DEADLINE_EXCEEDED,
                        &format!(
                            "{} while waiting for the config of {authority}",
                            deadline_message(timeout)
                        ),
                    );
                }
                Hold::TimedOut => {
                    self.metrics.vhds_request(VhdsOutcome::Timeout);
                    let mut call = Call::new(
                        &self.metrics,
                        Direction::Outbound,
                        UNKNOWN_DESTINATION,
                        ("other", "other"),
                    );
                    call.started_at(arrived.into_std());
                    return call.fail(code::UNAVAILABLE, &format!("no config for {authority} yet"));
                }
            },
            Lookup::NotFound => {
                self.metrics.vhds_request(VhdsOutcome::NotFound);
                (&config, None, false)
            }
            lookup => (&config, lookup.decision(), false),
        };
        let table = match web {
            None => config.outbound.as_ref(),
            Some(_) => config.web.as_ref(),
        };
        let Some(table) = table else {
            return grpc::trailers_only(
                code::UNAVAILABLE,
                "weft-proxy has no routes yet: no config from the control plane",
            );
        };
        let Some(decision) = decision else {
            let mut message = format!("weft-proxy: no route for {path} on authority {authority:?}");
            if let Some(original_dst) = original_dst {
                message += &format!(" (original destination {original_dst})");
            }
            let mut call = Call::new(
                &self.metrics,
                Direction::Outbound,
                UNKNOWN_DESTINATION,
                ("other", "other"),
            );
            call.log_request(request.headers(), authority, path);
            if held {
                call.started_at(arrived.into_std());
            }
            call.protocol(web.unwrap_or_default());
            return call.fail(code::UNIMPLEMENTED, &message);
        };
        let mut call = Call::new(
            &self.metrics,
            Direction::Outbound,
            &decision.virtual_host.name,
            table.named.labels(path),
        );
        call.protocol(web.unwrap_or_default());
        call.log_request(request.headers(), authority, path);
        if held {
            call.started_at(arrived.into_std());
        }
        let route = decision.route;
        if !grpc::is_grpc(request.headers()) {
            return call.fail(code::INTERNAL, "weft-proxy forwards gRPC only");
        }

        let binding =
            deadline::binding_timeout(grpc::parse_timeout(request.headers()), route.action.timeout);
        call.deadline(binding);
        let timeout = binding.map(|(timeout, _)| timeout);
        // From arrival: time spent held for config counts against the RPC's deadline.
        let deadline = timeout.map(|timeout| arrived + timeout);

        if let Some(fault) = &route.fault {
            let decision = fault::decide(fault, || fastrand::u32(0..1_000_000));
            if decision.injected() {
                call.fault_injected();
            }
            if let Some(delay) = decision.delay {
                let until = Instant::now() + delay;
                if deadline.is_some_and(|deadline| deadline <= until) {
                    sleep_until_deadline(deadline).await;
                    return call.fail(code::DEADLINE_EXCEEDED, &deadline_message(timeout));
                }
                tokio::time::sleep_until(until).await;
            }
            if let Some((code, message)) = &decision.abort {
                return call.fail(*code, message);
            }
        }

        let (parts, body) = request.into_parts();
        let body = call.count_request(boxed(body));
        self.forward(call, config, route, parts, body, deadline, timeout)
            .await
    }

    /// Sends attempts until one answers, or the attempt machine (`attempt`) says stop: the
    /// I/O of each attempt here, every decision there.
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        mut call: Call,
        config: &ProxyConfig,
        route: &Route,
        parts: http::request::Parts,
        body: ProxyBody,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Response<ProxyBody> {
        let policy = route.action.retry.as_ref();
        self.retry_budget.on_request();
        let (mut body, replay) = match policy {
            Some(_) => {
                let (first, handle) = retry::replayable(body, REPLAY_LIMIT);
                (boxed(first), Some(handle))
            }
            None => (body, None),
        };
        let mut attempts = Attempts::new(policy);
        loop {
            let target = match pick_endpoint(&self.upstreams, config, &route.action) {
                Ok(target) => target,
                Err(message) => return call.fail(code::UNAVAILABLE, &message),
            };
            let Target {
                cluster,
                endpoints,
                picked: Picked { endpoint, breakers },
            } = target;
            let limits = cluster.circuit_breakers;
            let in_flight = match RequestSlot::acquire(&breakers, limits.max_requests) {
                Ok(slot) => endpoint.start_in(slot),
                Err(in_use) => {
                    let max = limits.max_requests;
                    return overflow(call, cluster, Limit::Requests, in_use, max);
                }
            };
            let security = if endpoint.is_mtls() {
                Security::Mtls
            } else {
                Security::Plaintext
            };
            call.secured(security, None);
            let per_try = policy.and_then(|p| p.per_try_timeout);
            let try_deadline = earliest(deadline, per_try.map(|t| Instant::now() + t));
            let mut request = Request::from_parts(parts.clone(), body);
            if let Some(try_deadline) = try_deadline {
                let remaining = try_deadline.saturating_duration_since(Instant::now());
                request
                    .headers_mut()
                    .insert("grpc-timeout", grpc::format_timeout(remaining));
            }
            let connect = ConnectOptions {
                timeout: cluster.connect_timeout,
                keepalive: cluster.keepalive,
                pending: Some(PendingLimit {
                    breakers: &breakers,
                    max: limits.max_pending_requests,
                }),
            };
            let sent = endpoint.send(request, connect);
            let sent = match try_deadline {
                Some(at) => tokio::time::timeout_at(at, sent).await.ok(),
                None => Some(sent.await),
            };
            if let Some(Err(UpstreamError::PendingOverflow { waiting, max, .. })) = &sent {
                return overflow(call, cluster, Limit::Pending, *waiting, *max);
            }
            let deadline_passed = sent.is_none() && deadline.is_some_and(|d| Instant::now() >= d);
            if cluster.outlier_detection.is_some() {
                let status = outlier_status(&sent, deadline_passed);
                self.record_outlier(&call, cluster, endpoints, &endpoint, status);
            }
            let (outcome, last) = match sent {
                Some(Ok(response)) => match non_grpc_answer(&response) {
                    Some(code) => {
                        let message = format!(
                            "upstream {} answered HTTP {} without gRPC",
                            endpoint.addr(),
                            response.status()
                        );
                        (Outcome::Answered(code), Last::Failure(code, message))
                    }
                    None => match grpc::status_of(response.headers()).filter(|c| *c != code::OK) {
                        None => return call.respond(response, in_flight, deadline),
                        Some(code) => (Outcome::Answered(code), Last::Answer(response)),
                    },
                },
                Some(Err(err)) => {
                    let outcome = if err.is_before_request() {
                        Outcome::NotSent
                    } else {
                        Outcome::BrokenAfterSend
                    };
                    (outcome, Last::Failure(code::UNAVAILABLE, err.message()))
                }
                None if deadline_passed => {
                    return call.fail(code::DEADLINE_EXCEEDED, &deadline_message(timeout));
                }
                None => {
                    let message =
                        format!("per-try timeout elapsed waiting for {}", endpoint.addr());
                    (
                        Outcome::PerTryTimeout,
                        Last::Failure(code::UNAVAILABLE, message),
                    )
                }
            };
            call.per_try_timed_out(outcome == Outcome::PerTryTimeout);
            let can_replay = replay.as_ref().is_some_and(ReplayHandle::can_replay);
            let time_left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let budget = || self.retry_budget.try_withdraw();
            let next = match attempts.after(outcome, can_replay, budget, fastrand::f64, time_left) {
                Verdict::RetryAfter(pause) => replay
                    .as_ref()
                    .and_then(ReplayHandle::retry_body)
                    .map(|replayed| (pause, replayed)),
                Verdict::DeadlineFirst(left) => {
                    drop((in_flight, last));
                    tokio::time::sleep(left).await;
                    return call.fail(code::DEADLINE_EXCEEDED, &deadline_message(timeout));
                }
                Verdict::Finish => None,
            };
            let Some((pause, replayed)) = next else {
                return match last {
                    // A Trailers-Only answer is passed on as the app gave it.
                    Last::Answer(response) => call.respond(response, in_flight, deadline),
                    Last::Failure(code, message) => call.fail(code, &message),
                };
            };
            drop((in_flight, last));
            call.metrics().retry(call.destination_service());
            tokio::time::sleep(pause).await;
            body = boxed(replayed);
        }
    }

    /// Tells outlier detection, when the attempt's cluster has it, what the attempt on
    /// `endpoint` came to (`status`: see [`outlier_status`]); counts an ejection.
    fn record_outlier(
        &self,
        call: &Call,
        cluster: &ClusterConfig,
        endpoints: &EndpointSet,
        endpoint: &Endpoint,
        status: Option<u16>,
    ) {
        let (Some(outlier), Some(status)) = (&cluster.outlier_detection, status) else {
            return;
        };
        let Some(ejection) = self
            .upstreams
            .record_outlier(endpoint, endpoints, outlier, status)
        else {
            return;
        };
        tracing::info!(
            endpoint = %endpoint.addr(),
            cluster = %cluster.name,
            cause = ?ejection.cause,
            "outlier detection ejected an endpoint"
        );
        call.metrics().outlier_ejection(&cluster.service);
    }
}

/// How an attempt that may be the last ended: an answer to pass on, or a code and message.
enum Last {
    Answer(Response<Incoming>),
    Failure(u32, String),
}

/// The `:authority` the client named (HTTP/2 sends it in the URI; `host` as a fallback).
fn authority<B>(request: &Request<B>) -> &str {
    request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| {
            request
                .headers()
                .get(http::header::HOST)
                .and_then(|host| host.to_str().ok())
        })
        .unwrap_or("")
}

/// Where one attempt goes: the backend cluster, its endpoints, and what the pool picked.
struct Target<'c> {
    cluster: &'c ClusterConfig,
    endpoints: &'c EndpointSet,
    picked: Picked,
}

/// A weighted backend of the route, then an endpoint of it by power of two choices (and the
/// cluster's circuit-breaker counters).
fn pick_endpoint<'c>(
    upstreams: &Upstreams,
    config: &'c ProxyConfig,
    action: &RouteAction,
) -> Result<Target<'c>, String> {
    let backend = action.pick_backend(fastrand::u64(0..action.total_weight.max(1)));
    let Some(cluster) = config.clusters.get(&backend.cluster) else {
        return Err(format!("weft-proxy: unknown cluster {}", backend.cluster));
    };
    let endpoints = config.endpoints.get(&backend.cluster);
    let picked = endpoints.and_then(|set| upstreams.pick_for(cluster, set));
    match (endpoints, picked) {
        (Some(endpoints), Some(picked)) => Ok(Target {
            cluster,
            endpoints,
            picked,
        }),
        _ => Err(format!(
            "weft-proxy: no healthy endpoint for {}",
            cluster.service
        )),
    }
}

/// The proxy's answer to an attempt over one of its cluster's circuit-breaker limits:
/// UNAVAILABLE, counted, never retried.
fn overflow(
    call: Call,
    cluster: &ClusterConfig,
    limit: Limit,
    in_use: u32,
    max: u32,
) -> Response<ProxyBody> {
    call.metrics()
        .circuit_breaker_overflow(&cluster.service, limit);
    let message = breaker::overflow_message(&cluster.service, limit, in_use, max);
    call.fail(code::UNAVAILABLE, &message)
}

/// What outlier detection counts an attempt as (an HTTP status, as Envoy does for gRPC):
/// the gRPC status in the response headers (Trailers-Only) as its HTTP equivalent, else
/// the HTTP status (200 for an answer with a body: trailers are not looked at); a failure
/// to get an answer as the endpoint's 503, a per-try timeout as 504. `None` for what is no
/// fault of the endpoint: the call's own deadline passing (often the client's), the client
/// going away.
fn outlier_status(
    sent: &Option<Result<Response<Incoming>, UpstreamError>>,
    deadline_passed: bool,
) -> Option<u16> {
    match sent {
        Some(Ok(response)) => Some(match grpc::status_of(response.headers()) {
            Some(code) => grpc::http_status_for_code(code),
            None => response.status().as_u16(),
        }),
        Some(Err(err)) => err.outlier_status(),
        None if deadline_passed => None,
        None => Some(504),
    }
}

/// For an upstream answer that is not gRPC (an HTTP error, or no gRPC content type), the
/// code the client gets.
fn non_grpc_answer(response: &Response<Incoming>) -> Option<u32> {
    if response.status() != http::StatusCode::OK {
        return Some(grpc::code_for_http_status(response.status()));
    }
    (!grpc::is_grpc(response.headers())).then_some(code::UNKNOWN)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn sleep_until_deadline(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

fn deadline_message(timeout: Option<Duration>) -> String {
    match timeout {
        Some(timeout) => format!("deadline of {timeout:?} exceeded in weft-proxy"),
        None => "deadline exceeded in weft-proxy".into(),
    }
}
