//! One RPC's bookkeeping from the moment it is routed to the moment its response stream
//! ends: the per-RPC metrics (count, latency, messages each way, final `grpc_code`), the
//! in-flight gauge, and the upstream endpoint's outstanding count all end together, whether
//! the proxy answered itself (Trailers-Only) or streamed the upstream's answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::Response;
use hyper::body::Incoming;

use super::access_log::{Ending, RequestContext};
use super::body::{ProxyBody, boxed};
use super::counting::{CountingBody, StreamEnd};
use super::deadline::{self, DeadlineBody, TimeoutCause};
use super::grpc;
use super::metrics::{
    Direction, InFlightGauge, Protocol, ProxyMetrics, RpcLabels, Security, UNKNOWN_PEER,
};
use super::pool::InFlight;

/// An RPC being served; consumed by [`Call::fail`] or [`Call::respond`].
pub struct Call {
    start: Instant,
    labels: RpcLabels,
    metrics: Arc<ProxyMetrics>,
    request_messages: Arc<AtomicU64>,
    in_flight: InFlightGauge,
    /// The deadline the proxy enforces, from `start`, and whose it is.
    deadline: Option<(Duration, TimeoutCause)>,
    /// The last attempt ended on the per-try timeout.
    per_try_timed_out: bool,
    /// Set when the access log samples this RPC: what its entry needs from the request.
    log: Option<Box<RequestContext>>,
}

impl Call {
    pub fn new(
        metrics: &Arc<ProxyMetrics>,
        direction: Direction,
        destination_service: &str,
        (grpc_service, grpc_method): (&str, &str),
    ) -> Self {
        Self {
            start: Instant::now(),
            in_flight: metrics.in_flight(direction),
            labels: RpcLabels {
                direction,
                destination_service: destination_service.to_owned(),
                grpc_service: grpc_service.to_owned(),
                grpc_method: grpc_method.to_owned(),
                grpc_code: String::new(),
                fault_injected: false,
                connection_security: Security::Unknown,
                peer_identity: UNKNOWN_PEER.to_owned(),
                protocol: Protocol::Grpc,
            },
            metrics: metrics.clone(),
            request_messages: Arc::new(AtomicU64::new(0)),
            deadline: None,
            per_try_timed_out: false,
            log: None,
        }
    }

    /// Samples the RPC for the access log, when one is on, keeping what its entry needs from
    /// the request (its trace context among it).
    pub fn log_request(&mut self, headers: &http::HeaderMap, authority: &str, path: &str) {
        if let Some(log) = self.metrics.access_log()
            && log.sampled()
        {
            self.log = Some(Box::new(RequestContext::of(headers, authority, path)));
        }
    }

    /// The deadline the proxy enforces on this RPC (from its start) and whose it is, so a
    /// timed-out RPC is counted under the right cause.
    pub fn deadline(&mut self, deadline: Option<(Duration, TimeoutCause)>) {
        self.deadline = deadline;
    }

    /// Marks that the latest attempt ended on its per-try timeout.
    pub fn per_try_timed_out(&mut self, timed_out: bool) {
        self.per_try_timed_out = timed_out;
    }

    /// Counts the RPC's latency from `start`: when it arrived, for one held before it could
    /// be routed (`on_demand`).
    pub fn started_at(&mut self, start: Instant) {
        self.start = start;
    }

    /// Marks the RPC as one a fault was injected into (delay or abort).
    pub fn fault_injected(&mut self) {
        self.labels.fault_injected = true;
    }

    /// Records what the client spoke (gRPC unless said otherwise).
    pub fn protocol(&mut self, protocol: Protocol) {
        self.labels.protocol = protocol;
    }

    /// Records how the RPC's connection is secured (and, over mTLS inbound, who called).
    pub fn secured(&mut self, security: Security, peer: Option<&weft_common::spiffe::SpiffeId>) {
        self.labels.connection_security = security;
        if let Some(peer) = peer {
            self.labels.peer_identity = peer.to_string();
        }
    }

    pub fn destination_service(&self) -> &str {
        &self.labels.destination_service
    }

    pub fn metrics(&self) -> &Arc<ProxyMetrics> {
        &self.metrics
    }

    /// Counts the request's messages as they stream upstream.
    pub fn count_request(&self, body: ProxyBody) -> ProxyBody {
        let counter = self.request_messages.clone();
        boxed(CountingBody::new(body, move |end: StreamEnd| {
            counter.store(end.messages, Ordering::Relaxed);
        }))
    }

    /// The proxy answers the RPC itself: a Trailers-Only response with `code` and `message`.
    pub fn fail(self, code: u32, message: &str) -> Response<ProxyBody> {
        tracing::debug!(
            code = grpc::code_name(code),
            message,
            "rpc answered by the proxy"
        );
        self.finish(Some(code), 0);
        grpc::trailers_only(code, message)
    }

    /// Streams the upstream's response back, ending it at `deadline` if one is set; the
    /// metrics are recorded when the stream ends (or the client goes away).
    pub fn respond(
        self,
        response: Response<Incoming>,
        endpoint: InFlight,
        deadline: Option<tokio::time::Instant>,
    ) -> Response<ProxyBody> {
        let header_status = grpc::status_of(response.headers());
        let (parts, body) = response.into_parts();
        let mut body = boxed(body);
        if let Some(deadline) = deadline {
            body = boxed(DeadlineBody::new(
                body,
                deadline,
                "deadline exceeded while the response was streaming (weft-proxy)",
            ));
        }
        let counted = CountingBody::new(body, move |end: StreamEnd| {
            drop(endpoint);
            let code = end.grpc_status.or(header_status).or(if end.error {
                Some(grpc::code::CANCELLED)
            } else {
                None
            });
            self.finish(code, end.messages);
        });
        Response::from_parts(parts, boxed(counted))
    }

    fn finish(mut self, code: Option<u32>, response_messages: u64) {
        let code = code.unwrap_or(grpc::code::UNKNOWN);
        self.labels.grpc_code = grpc::code_name(code).to_owned();
        let request_messages = self.request_messages.load(Ordering::Relaxed);
        let elapsed = self.start.elapsed();
        let timeout_cause =
            deadline::timeout_cause(code, elapsed, self.deadline, self.per_try_timed_out);
        if let Some(cause) = timeout_cause {
            self.metrics.timed_out(&self.labels, cause);
        }
        if let (Some(request), Some(log)) = (self.log.take(), self.metrics.access_log()) {
            log.record(
                &request,
                &Ending {
                    labels: &self.labels,
                    duration: elapsed,
                    request_messages,
                    response_messages,
                    timeout_cause,
                },
            );
        }
        self.metrics
            .record(&self.labels, elapsed, request_messages, response_messages);
        drop(self.in_flight);
    }
}
