//! The outbound stack: what happens to an RPC the local app sends, in request order —
//! route by `:authority` (or, on an intercepted connection whose authority names no Service,
//! by the original destination: see `original_dst`) and `/package.Service/Method`, fault (delay, abort), deadline (the
//! client's `grpc-timeout` capped by the route's timeout), retry, pick an endpoint (P2C), send
//! on a pooled HTTP/2 connection, stream the answer back. Any failure on the way is answered
//! by the proxy as a Trailers-Only gRPC response (see [`Call::fail`]).

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio::time::Instant;

use super::body::{ProxyBody, boxed};
use super::call::Call;
use super::fault;
use super::grpc::{self, code};
use super::metrics::{Direction, ProxyMetrics, Security};
use super::original_dst::OriginalDst;
use super::pool::{Endpoint, Upstreams};
use super::retry::{self, ReplayHandle, RetryBudget};
use crate::config::{ProxyConfig, Route, RouteAction};

/// Request bodies up to this size are kept so a retry can replay them; longer (streaming)
/// requests are not retried.
const REPLAY_LIMIT: usize = 64 * 1024;

/// What every outbound RPC shares.
pub struct Outbound {
    pub config: watch::Receiver<Arc<ProxyConfig>>,
    pub upstreams: Upstreams,
    pub metrics: Arc<ProxyMetrics>,
    pub retry_budget: RetryBudget,
}

impl Outbound {
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ProxyBody> {
        let config = self.config.borrow().clone();
        let Some(table) = config.outbound.as_ref() else {
            return grpc::trailers_only(
                code::UNAVAILABLE,
                "weft-proxy has no routes yet: no config from the control plane",
            );
        };
        let authority = authority(&request);
        let path = request.uri().path();
        let original_dst = request
            .extensions()
            .get::<OriginalDst>()
            .map(|original| original.0);
        let decision = table.select_intercepted(authority, original_dst, path, request.headers());
        let Some(decision) = decision else {
            let mut message = format!("weft-proxy: no route for {path} on authority {authority:?}");
            if let Some(original_dst) = original_dst {
                message += &format!(" (original destination {original_dst})");
            }
            return Call::new(
                &self.metrics,
                Direction::Outbound,
                "unknown",
                ("other", "other"),
            )
            .fail(code::UNIMPLEMENTED, &message);
        };
        let mut call = Call::new(
            &self.metrics,
            Direction::Outbound,
            &decision.virtual_host.name,
            table.named.labels(path),
        );
        let route = decision.route;
        if !grpc::is_grpc(request.headers()) {
            return call.fail(code::INTERNAL, "weft-proxy forwards gRPC only");
        }

        let timeout =
            grpc::effective_timeout(grpc::parse_timeout(request.headers()), route.action.timeout);
        let deadline = timeout.map(|timeout| Instant::now() + timeout);

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
        self.forward(call, &config, route, parts, body, deadline, timeout)
            .await
    }

    /// Sends attempts until one answers, the retry policy or budget says stop, or the
    /// deadline passes.
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
        let mut attempt = 1;
        loop {
            let (endpoint, connect_timeout) =
                match pick_endpoint(&self.upstreams, config, &route.action) {
                    Ok(picked) => picked,
                    Err(message) => return call.fail(code::UNAVAILABLE, &message),
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
            let in_flight = endpoint.start();
            let sent = endpoint.send(request, connect_timeout);
            let outcome = match try_deadline {
                Some(at) => tokio::time::timeout_at(at, sent).await.ok(),
                None => Some(sent.await),
            };
            // The body of the next attempt, or the code and message to fail with.
            let next = match outcome {
                Some(Ok(response)) => {
                    if let Some(failed) = non_grpc_answer(&response) {
                        let message = format!(
                            "upstream {} answered HTTP {} without gRPC",
                            endpoint.addr(),
                            response.status()
                        );
                        self.next_attempt(policy, attempt, Some(failed), replay.as_ref())
                            .ok_or((failed, message))
                    } else {
                        let status = grpc::status_of(response.headers());
                        let retry =
                            status
                                .filter(|status| *status != code::OK)
                                .and_then(|status| {
                                    self.next_attempt(
                                        policy,
                                        attempt,
                                        Some(status),
                                        replay.as_ref(),
                                    )
                                });
                        match retry {
                            Some(next) => Ok(next),
                            None => return call.respond(response, in_flight, deadline),
                        }
                    }
                }
                Some(Err(err)) => self
                    .next_attempt(policy, attempt, None, replay.as_ref())
                    .ok_or_else(|| (code::UNAVAILABLE, err.message())),
                None if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return call.fail(code::DEADLINE_EXCEEDED, &deadline_message(timeout));
                }
                None => self
                    .next_attempt(policy, attempt, None, replay.as_ref())
                    .ok_or_else(|| {
                        let message =
                            format!("per-try timeout elapsed waiting for {}", endpoint.addr());
                        (code::UNAVAILABLE, message)
                    }),
            };
            drop(in_flight);
            body = match next {
                Ok(body) => body,
                Err((failed, message)) => return call.fail(failed, &message),
            };
            attempt += 1;
            if let Err(message) = self.pause(&call, policy, attempt, deadline, timeout).await {
                return call.fail(code::DEADLINE_EXCEEDED, &message);
            }
        }
    }

    /// The body for another attempt, when the policy allows one after `attempt` ended with
    /// `status`, the request can be replayed, and the retry budget has room.
    fn next_attempt(
        &self,
        policy: Option<&crate::config::RetryPolicy>,
        attempt: u32,
        status: Option<u32>,
        replay: Option<&ReplayHandle>,
    ) -> Option<ProxyBody> {
        let policy = policy?;
        if !retry::should_retry(policy, attempt, status) {
            return None;
        }
        let body = replay?.retry_body()?;
        self.retry_budget.try_withdraw().then(|| boxed(body))
    }

    /// Waits the backoff before attempt `attempt`; when the deadline would pass first, waits
    /// for the deadline and returns the message to fail with instead.
    async fn pause(
        &self,
        call: &Call,
        policy: Option<&crate::config::RetryPolicy>,
        attempt: u32,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<(), String> {
        call.metrics().retry(call.destination_service());
        let pause = policy.map_or(Duration::ZERO, |policy| {
            retry::backoff(policy, attempt - 1, fastrand::f64)
        });
        let until = Instant::now() + pause;
        if let Some(deadline) = deadline.filter(|deadline| *deadline <= until) {
            tokio::time::sleep_until(deadline).await;
            return Err(deadline_message(timeout));
        }
        tokio::time::sleep_until(until).await;
        Ok(())
    }
}

/// The `:authority` the client named (HTTP/2 sends it in the URI; `host` as a fallback).
fn authority(request: &Request<Incoming>) -> &str {
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

/// A weighted backend of the route, then an endpoint of it by power of two choices.
fn pick_endpoint(
    upstreams: &Upstreams,
    config: &ProxyConfig,
    action: &RouteAction,
) -> Result<(Arc<Endpoint>, Duration), String> {
    let backend = action.pick_backend(fastrand::u64(0..action.total_weight.max(1)));
    let Some(cluster) = config.clusters.get(&backend.cluster) else {
        return Err(format!("weft-proxy: unknown cluster {}", backend.cluster));
    };
    let endpoint = config
        .endpoints
        .get(&backend.cluster)
        .and_then(|set| upstreams.pick(set));
    match endpoint {
        Some(endpoint) => Ok((endpoint, cluster.connect_timeout)),
        None => Err(format!(
            "weft-proxy: no healthy endpoint for {}",
            cluster.service
        )),
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
