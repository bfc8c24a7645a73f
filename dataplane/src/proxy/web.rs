//! The web listener (`--web-addr`, off by default): where browsers' gRPC-Web calls come in,
//! over HTTP/1.1 or HTTP/2 (prior-knowledge h2c, told apart by the connection's first
//! bytes), plaintext (browser-facing TLS belongs to the ingress in front). One request, in
//! order:
//!
//! 1. Route on the web table (the `web` listener's RouteConfiguration: one virtual host,
//!    routes by gRPC service in the path) to find the route's CORS policy.
//! 2. CORS (`grpc_web::cors`): a preflight is answered here; a call from an origin the
//!    policy does not allow is refused; an allowed one gets the policy's headers on its
//!    answer. A preflight for a path no route with a CORS policy serves is refused too
//!    (Envoy's `cors` filter would pass it on to a service that cannot answer it).
//! 3. Bridge (`grpc_web`): a gRPC-Web request becomes a gRPC one; gRPC over HTTP/2 is taken
//!    as it is; anything else is refused with 415.
//! 4. Serve it as an outbound RPC on the web table (`Outbound::handle_web`): faults,
//!    deadlines, retries, balancing and metrics as for any RPC, `protocol` saying what the
//!    browser spoke. The answer goes back in gRPC-Web form.
//!
//! Connection limits, the handshake timeout (the first bytes, then HTTP/1.1 headers) and
//! the graceful drain are the other listeners' (`listener`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::body::{ProxyBody, boxed};
use super::grpc;
use super::grpc_web::cors::{self, Decision};
use super::grpc_web::{self, Encoding, WebCall};
use super::listener::{ListenerSettings, accept_loop, started_draining};
use super::metrics::Protocol;
use super::outbound::Outbound;
use super::pool::{CONNECTION_WINDOW, MAX_HEADER_LIST, STREAM_WINDOW};
use crate::config::RpcTarget;

/// The start of the HTTP/2 connection preface; no HTTP/1 method begins so.
const H2_PREFACE_START: &[u8] = b"PRI ";

/// Serves browsers on `listener` until `shutdown` resolves, then drains as the other
/// listeners do; returns how many connections were cut at the drain deadline.
pub async fn serve(
    listener: TcpListener,
    outbound: Arc<Outbound>,
    settings: ListenerSettings,
    shutdown: impl Future<Output = ()>,
) -> usize {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(settings.handshake_timeout)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST);
    let builders = Arc::new((h1, h2));
    let handshake = settings.handshake_timeout;
    accept_loop(
        listener,
        &settings,
        shutdown,
        move |stream, draining, slot| {
            connection(
                stream,
                outbound.clone(),
                builders.clone(),
                draining,
                slot,
                handshake,
            )
        },
    )
    .await
}

/// Serves one connection in whichever HTTP version its first bytes say.
async fn connection(
    stream: TcpStream,
    outbound: Arc<Outbound>,
    builders: Arc<(http1::Builder, http2::Builder<TokioExecutor>)>,
    mut draining: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
    handshake: Duration,
) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "cannot set TCP_NODELAY on a web connection");
    }
    let Ok(Ok(is_h2)) = tokio::time::timeout(handshake, speaks_h2(&stream)).await else {
        tracing::debug!("web connection closed or silent before its first request");
        return;
    };
    let service = service_fn(move |request| {
        let outbound = outbound.clone();
        async move { Ok::<_, Infallible>(handle(outbound, request).await) }
    });
    let io = TokioIo::new(stream);
    let result = if is_h2 {
        let connection = builders.1.serve_connection(io, service);
        until_drained(connection, &mut draining, |c| c.graceful_shutdown()).await
    } else {
        let connection = builders.0.serve_connection(io, service);
        until_drained(connection, &mut draining, |c| c.graceful_shutdown()).await
    };
    if let Err(err) = result {
        tracing::debug!(%err, "web connection ended with an error");
    }
}

/// Runs `connection` until it ends; once draining starts, asks it to finish gracefully
/// (`close`: hyper's `graceful_shutdown`, which both versions' connections have) and waits.
async fn until_drained<C, T>(
    connection: C,
    draining: &mut watch::Receiver<bool>,
    close: impl FnOnce(Pin<&mut C>),
) -> T
where
    C: Future<Output = T>,
{
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        () = started_draining(draining) => {
            close(connection.as_mut());
            connection.await
        }
    }
}

/// Whether the connection starts with the HTTP/2 preface (peeked, not consumed).
async fn speaks_h2(stream: &TcpStream) -> std::io::Result<bool> {
    let mut start = [0u8; H2_PREFACE_START.len()];
    loop {
        let seen = stream.peek(&mut start).await?;
        if seen == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if !H2_PREFACE_START.starts_with(&start[..seen]) {
            return Ok(false);
        }
        if seen == start.len() {
            return Ok(true);
        }
        // A prefix of the preface so far: wait for more.
        stream.readable().await?;
    }
}

/// One browser request: CORS, bridge, serve (see the module comment).
async fn handle(outbound: Arc<Outbound>, request: Request<Incoming>) -> Response<ProxyBody> {
    let policy = {
        let config = outbound.config.borrow().clone();
        let rpc = RpcTarget {
            authority: "",
            original_dst: None,
            path: request.uri().path(),
            headers: request.headers(),
        };
        config
            .lookup_web(&rpc)
            .decision()
            .and_then(|decision| decision.route.cors.clone())
    };
    let mut cors_headers = http::HeaderMap::new();
    match policy
        .as_deref()
        .and_then(|policy| cors::decide(policy, request.method(), request.headers()))
    {
        Some(Decision::Answer(response)) => return response,
        Some(Decision::Serve(headers)) => cors_headers = headers,
        None if cors::is_preflight(request.method(), request.headers()) => {
            return cors::refused(&format!(
                "no route with a CORS policy serves {}",
                request.uri().path()
            ));
        }
        None => {}
    }
    let mut response = match WebCall::of(request.headers()) {
        Some(call) => {
            let protocol = match call.encoding {
                Encoding::Binary => Protocol::GrpcWeb,
                Encoding::Text => Protocol::GrpcWebText,
            };
            let request = grpc_web::request_to_grpc(&call, request);
            let response = outbound.handle_web(request, protocol).await;
            grpc_web::response_to_web(&call, response)
        }
        None if request.version() == Version::HTTP_2 && grpc::is_grpc(request.headers()) => {
            outbound
                .handle_web(request.map(boxed), Protocol::Grpc)
                .await
        }
        None => return unsupported_media_type(request.headers().get(CONTENT_TYPE)),
    };
    // hyper writes the version of the connection; the upstream's (HTTP/2) means nothing here.
    *response.version_mut() = Version::default();
    response.headers_mut().extend(cors_headers);
    response
}

/// 415 for a request that is neither gRPC-Web nor gRPC, saying what was expected.
fn unsupported_media_type(content_type: Option<&HeaderValue>) -> Response<ProxyBody> {
    let got = content_type
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_else(|| "none".into());
    let mut response = Response::new(boxed(http_body_util::Full::new(bytes::Bytes::from(
        format!(
            "weft-proxy's web listener takes gRPC-Web (application/grpc-web, \
             application/grpc-web-text) or gRPC over HTTP/2; content-type was {got}\n"
        ),
    ))));
    *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
