//! Accepting downstream connections: HTTP/2 only (prior-knowledge h2c, all gRPC needs),
//! TCP_NODELAY, a per-connection stream limit, and the graceful drain on shutdown — stop
//! accepting, GOAWAY every connection, let in-flight streams finish for up to the drain
//! timeout, then close what is left.
//!
//! What a connection is before HTTP/2 starts is the listener's [`Admission`]: the outbound
//! listener takes every TCP connection as it is, noting where an intercepted one was going
//! (`original_dst::Intercepted`; [`PlainTcp`] takes them as they are); the inbound one sniffs TLS,
//! enforces the MtlsPolicy mode and runs the handshake (`admission::InboundAdmission`). The
//! admission runs in the connection's own task, so a slow client never holds up accepting.
//!
//! The service is a plain function from request to response future (its error type is
//! nothing: every failure is already a gRPC response, see `Call::fail`). Each connection
//! runs in its own task; hyper runs each stream of a connection in its own task as well.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http2::Builder;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::body::ProxyBody;
use super::pool::{CONNECTION_WINDOW, MAX_HEADER_LIST, STREAM_WINDOW};

/// How a listener treats its connections.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to every client.
    pub max_concurrent_streams: u32,
    /// How long in-flight streams may run after shutdown before their connections are cut.
    pub drain_timeout: Duration,
}

/// Turns an accepted TCP connection into the stream HTTP/2 is served on, or refuses it
/// (`None`: the connection is dropped).
pub trait Admission: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// What every request on the connection learns about it.
    type Peer: Send + Sync + 'static;

    fn admit(
        &self,
        stream: TcpStream,
    ) -> impl Future<Output = Option<(Self::Io, Self::Peer)>> + Send;

    /// Tells a request about its connection; nothing by default, which costs nothing.
    fn annotate(_peer: &Self::Peer, _request: &mut Request<Incoming>) {}
}

/// Every connection as it is, plaintext (the local app speaks plaintext; the outbound
/// listener also notes the original destination, see `original_dst::Intercepted`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainTcp;

impl Admission for PlainTcp {
    type Io = TcpStream;
    type Peer = ();

    async fn admit(&self, stream: TcpStream) -> Option<(TcpStream, ())> {
        Some((stream, ()))
    }
}

/// How long to pause accepting after an accept error (e.g. out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves HTTP/2 on `listener` with `service` until `shutdown` resolves; then stops
/// accepting (the listener is dropped, so new connections are refused), sends GOAWAY on
/// every connection (hyper's graceful shutdown), lets in-flight streams finish for up to
/// `settings.drain_timeout`, then closes what is left. Returns how many connections were
/// cut at the deadline (0 when every connection drained).
///
/// `service` is called once per request; any `Fn` returning a `Send` future fits. A large
/// future is better boxed by the caller (`crate::run` does): unboxed, it is copied whole
/// every time hyper's per-stream task moves.
pub async fn serve<A, S, F>(
    listener: TcpListener,
    admission: A,
    service: S,
    settings: ListenerSettings,
    shutdown: impl Future<Output = ()>,
) -> usize
where
    A: Admission,
    S: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        // gRPC has no use for `date`; an upstream's own is passed through untouched.
        .auto_date_header(false);
    let builder = Arc::new(builder);
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let connection = serve_connection(
                        stream,
                        admission.clone(),
                        builder.clone(),
                        service.clone(),
                        draining.clone(),
                    );
                    connections.spawn(connection);
                }
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = drain.send(true);
    let deadline = tokio::time::sleep(settings.drain_timeout);
    let mut deadline = std::pin::pin!(deadline);
    loop {
        tokio::select! {
            next = connections.join_next() => if next.is_none() {
                return 0;
            },
            () = &mut deadline => break,
        }
    }
    let cut = connections.len();
    tracing::info!(
        cut,
        "drain timeout reached; closing the remaining connections"
    );
    connections.shutdown().await;
    cut
}

/// Admits one connection, then serves it until it ends, or until draining starts and it
/// has drained.
async fn serve_connection<A, S, F>(
    stream: TcpStream,
    admission: A,
    builder: Arc<Builder<TokioExecutor>>,
    service: S,
    mut draining: watch::Receiver<bool>,
) where
    A: Admission,
    S: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "cannot set TCP_NODELAY downstream");
    }
    let admitted = tokio::select! {
        admitted = admission.admit(stream) => admitted,
        () = started_draining(&mut draining) => None,
    };
    let Some((io, peer)) = admitted else {
        return;
    };
    let service = service_fn(move |mut request| {
        A::annotate(&peer, &mut request);
        let response = service(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = started_draining(&mut draining) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, "downstream connection ended with an error");
    }
}

async fn started_draining(draining: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens once serving is over.
    let _ = draining.wait_for(|draining| *draining).await;
}
