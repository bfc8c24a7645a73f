//! The inbound stack: RPCs arriving for the local app, in request order — count them, honour
//! the caller's `grpc-timeout`, send on the pooled HTTP/2 connection to the app, stream the
//! answer back. Routing, faults and retries happened at the caller's outbound proxy; a
//! failure here (the app refusing connections, a deadline) is still a Trailers-Only gRPC
//! response, never a bare HTTP error.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio::time::Instant;

use super::admission::ConnectionSecurity;
use super::body::{ProxyBody, boxed};
use super::call::Call;
use super::deadline::TimeoutCause;
use super::grpc::{self, code};
use super::metrics::{Direction, ProxyMetrics, Security};
use super::pool::Upstreams;
use crate::config::{EndpointSet, ProxyConfig};

/// How long connecting to the local app may take.
const APP_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What every inbound RPC shares.
pub struct Inbound {
    /// The app, as a one-endpoint set for the pool.
    pub app: EndpointSet,
    /// The `destination_service` label of inbound RPCs (`inbound|<app port>`).
    pub destination: String,
    /// Read for metric labels only: methods named by routes are labelled by name.
    pub config: watch::Receiver<Arc<ProxyConfig>>,
    pub upstreams: Upstreams,
    pub metrics: Arc<ProxyMetrics>,
}

impl Inbound {
    pub fn new(
        app_addr: std::net::SocketAddr,
        config: watch::Receiver<Arc<ProxyConfig>>,
        upstreams: Upstreams,
        metrics: Arc<ProxyMetrics>,
    ) -> Self {
        Self {
            app: EndpointSet {
                name: "inbound".into(),
                addrs: vec![app_addr],
                ..Default::default()
            },
            destination: format!("inbound|{}", app_addr.port()),
            config,
            upstreams,
            metrics,
        }
    }

    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ProxyBody> {
        let labels = {
            let config = self.config.borrow();
            match config.outbound.as_ref() {
                Some(table) => {
                    let (service, method) = table.named.labels(request.uri().path());
                    (service.to_owned(), method.to_owned())
                }
                None => ("other".to_owned(), "other".to_owned()),
            }
        };
        let mut call = Call::new(
            &self.metrics,
            Direction::Inbound,
            &self.destination,
            (&labels.0, &labels.1),
        );
        let authority = request.uri().authority().map_or("", |a| a.as_str());
        call.log_request(request.headers(), authority, request.uri().path());
        match request.extensions().get::<ConnectionSecurity>() {
            Some(ConnectionSecurity::Mtls { peer }) => call.secured(Security::Mtls, peer.as_ref()),
            Some(ConnectionSecurity::Plaintext) => call.secured(Security::Plaintext, None),
            None => {}
        }
        if !grpc::is_grpc(request.headers()) {
            return call.fail(code::INTERNAL, "weft-proxy forwards gRPC only");
        }
        let timeout = grpc::parse_timeout(request.headers());
        call.deadline(timeout.map(|timeout| (timeout, TimeoutCause::ClientDeadline)));
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let Some(app) = self.upstreams.pick(&self.app) else {
            return call.fail(code::UNAVAILABLE, "weft-proxy: no local app address");
        };
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, call.count_request(boxed(body)));
        let in_flight = app.start();
        let sent = app.send(request, APP_CONNECT_TIMEOUT);
        let outcome = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, sent).await.ok(),
            None => Some(sent.await),
        };
        match outcome {
            Some(Ok(response)) => {
                if response.status() != http::StatusCode::OK {
                    let failed = grpc::code_for_http_status(response.status());
                    let message = format!("local app answered HTTP {}", response.status());
                    return call.fail(failed, &message);
                }
                call.respond(response, in_flight, deadline)
            }
            Some(Err(err)) => call.fail(code::UNAVAILABLE, &err.message()),
            None => call.fail(
                code::DEADLINE_EXCEEDED,
                "deadline exceeded waiting for the local app (weft-proxy inbound)",
            ),
        }
    }
}
