//! Accepting downstream connections: HTTP/2 only (prior-knowledge h2c, all gRPC needs),
//! TCP_NODELAY, writes coalesced per runtime turn (`coalesce`), a per-connection stream limit, and the graceful drain on shutdown — stop
//! accepting, GOAWAY every connection, let in-flight streams finish for up to the drain
//! timeout, then close what is left.
//!
//! Bounds on what a client may hold: at most `max_connections` connections per listener
//! (one more is closed at once); the HTTP/2 connection preface (after TLS, on the inbound
//! listener) within `handshake_timeout` of accepting, or the connection is closed; and a
//! connection on which no request started for `idle_timeout` (noticed within a quarter
//! more) gets a GOAWAY (streams still open finish, as in any graceful close; gRPC clients
//! reconnect on their next call), and one whose client answers no PING within
//! `idle_timeout` is closed.
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
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http2::Builder;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::body::ProxyBody;
use super::coalesce::CoalescedWrites;
use super::pool::{CONNECTION_WINDOW, MAX_HEADER_LIST, STREAM_WINDOW};

/// How a listener treats its connections.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to every client.
    pub max_concurrent_streams: u32,
    /// How long in-flight streams may run after shutdown before their connections are cut.
    pub drain_timeout: Duration,
    /// Connections open at once, at most; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// How long a client may take to send the HTTP/2 connection preface.
    pub handshake_timeout: Duration,
    /// A connection on which no request started for this long gets a GOAWAY.
    pub idle_timeout: Duration,
}

/// A connection's time limits (see [`ListenerSettings`]).
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    handshake: Duration,
    idle: Duration,
}

/// The HTTP/2 client connection preface's length (`PRI * HTTP/2.0...`).
const PREFACE_LEN: usize = 24;

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
    if !settings.idle_timeout.is_zero() {
        // A client that no longer answers (gone, or one that never reads) would keep a
        // connection open forever, even after the idle GOAWAY (whose graceful close waits
        // for a PING answer): ping each connection every idle timeout and close one that
        // does not answer within it.
        builder
            .keep_alive_interval(settings.idle_timeout)
            .keep_alive_timeout(settings.idle_timeout);
    }
    let builder = Arc::new(builder);
    let timeouts = Timeouts {
        handshake: settings.handshake_timeout,
        idle: settings.idle_timeout,
    };
    accept_loop(
        listener,
        &settings,
        shutdown,
        move |stream, draining, slot| {
            serve_connection(
                stream,
                admission.clone(),
                builder.clone(),
                service.clone(),
                draining,
                slot,
                timeouts,
            )
        },
    )
    .await
}

/// Accepts connections on `listener` until `shutdown` resolves, each served by the future
/// `connection` makes in its own task (given the drain signal and its connection slot, at
/// most `settings.max_connections` at once: one more is closed at once); then stops
/// accepting, signals the drain, waits up to `settings.drain_timeout` for the connections
/// to end and cuts the rest. Returns how many were cut.
pub(super) async fn accept_loop<C, F>(
    listener: TcpListener,
    settings: &ListenerSettings,
    shutdown: impl Future<Output = ()>,
    connection: C,
) -> usize
where
    C: Fn(TcpStream, watch::Receiver<bool>, OwnedSemaphorePermit) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, limit = settings.max_connections, "connection limit reached; closing a new connection");
                        continue;
                    };
                    connections.spawn(connection(stream, draining.clone(), slot));
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
    _slot: OwnedSemaphorePermit,
    timeouts: Timeouts,
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
    // Requests started on this connection: one relaxed add per request, read by `idle`.
    let started = Arc::new(AtomicU64::new(0));
    let counted = started.clone();
    let service = service_fn(move |mut request| {
        counted.fetch_add(1, Relaxed);
        A::annotate(&peer, &mut request);
        let response = service(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let io = CountingIo::new(io);
    let read = io.read.clone();
    let io = CoalescedWrites::new(io);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = preface_missed(&read, timeouts.handshake) => {
            tracing::debug!(timeout = ?timeouts.handshake, "no HTTP/2 preface in time; closing the connection");
            return;
        }
        () = idle(&started, timeouts.idle) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = started_draining(&mut draining) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, "downstream connection ended with an error");
    }
}

/// Resolves when `timeout` has passed and fewer bytes than the preface were read by then;
/// never otherwise.
async fn preface_missed(read: &AtomicUsize, timeout: Duration) {
    tokio::time::sleep(timeout).await;
    if read.load(Relaxed) >= PREFACE_LEN {
        std::future::pending::<()>().await;
    }
}

/// Resolves once no request started (`started` did not move) for `timeout`, noticed within
/// a quarter of it; never when `timeout` is zero (no idle timeout). Polling a counter keeps
/// the per-request cost to one relaxed add.
async fn idle(started: &AtomicU64, timeout: Duration) {
    if timeout.is_zero() {
        return std::future::pending().await;
    }
    let step = timeout / 4;
    let mut seen = started.load(Relaxed);
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(step).await;
        let now = started.load(Relaxed);
        if now != seen {
            (seen, quiet_since) = (now, tokio::time::Instant::now());
        } else if quiet_since.elapsed() >= timeout {
            return;
        }
    }
}

/// A connection's stream, counting the bytes read from it until the preface is in (to tell
/// whether it arrived); past that, reads cost nothing more.
struct CountingIo<T> {
    inner: T,
    read: Arc<AtomicUsize>,
    /// False once the preface is in.
    counting: bool,
}

impl<T> CountingIo<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            read: Arc::default(),
            counting: true,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.counting {
            let got = buf.filled().len() - before;
            let read = self.read.fetch_add(got, Relaxed) + got;
            self.counting = read < PREFACE_LEN;
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub(super) async fn started_draining(draining: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens once serving is over.
    let _ = draining.wait_for(|draining| *draining).await;
}
