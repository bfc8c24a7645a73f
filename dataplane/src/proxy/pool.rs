//! Upstream connections: one shared, multiplexed HTTP/2 connection per endpoint address and
//! security for the whole process — prior-knowledge cleartext, or mutual TLS (ALPN h2) with
//! the workload certificate in force when the connection opens, to endpoints the controller
//! marked as run by a mesh proxy (a renewed certificate is used by new connections; open
//! ones keep theirs, so rotation never cuts an RPC) — the outstanding-request count of
//! each endpoint that load balancing reads, and the errors of sending upstream, classified
//! by whether the request can have reached the application.
//!
//! Hot path: `pick` holds a read lock on the endpoint map for two lookups (a write lock
//! only the first time an address is seen); `send` holds a read lock on the endpoint's
//! connection slot just long enough to clone its `SendRequest`. No lock is held across an
//! await except the connect mutex, which only callers without a live connection wait on, so
//! concurrent first sends share one connect. An in-flight request owns its `SendRequest`
//! clone and its response body owns the HTTP/2 stream (hyper keeps the connection open while
//! streams are), so replacing a connection or forgetting an endpoint never cuts an RPC.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::body::ProxyBody;
use super::lb;
use crate::config::EndpointSet;
use crate::tls::TlsConfigs;

/// HTTP/2 flow-control windows: 1 MiB per stream, 2 MiB per connection.
pub(crate) const STREAM_WINDOW: u32 = 1 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 2 << 20;
/// Largest header block (headers or trailers) accepted.
pub(crate) const MAX_HEADER_LIST: u32 = 64 << 10;

/// An endpoint is pooled by address and by whether it is reached over mutual TLS.
type EndpointKey = (SocketAddr, bool);
type EndpointMap = RwLock<HashMap<EndpointKey, Arc<Endpoint>>>;

/// The workload certificate in force (none yet, or no mTLS in this mesh).
pub type ClientTls = watch::Receiver<Option<Arc<TlsConfigs>>>;

/// The process's upstream endpoints by address; cheap to clone (one shared pool).
#[derive(Clone)]
pub struct Upstreams {
    endpoints: Arc<EndpointMap>,
    tls: ClientTls,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self::new()
    }
}

impl Upstreams {
    /// A pool without a workload certificate: mTLS endpoints cannot be reached.
    pub fn new() -> Self {
        Self::with_tls(watch::channel(None).1)
    }

    /// A pool that reaches mTLS endpoints with the certificate `tls` holds when connecting.
    pub fn with_tls(tls: ClientTls) -> Self {
        Self {
            endpoints: Arc::default(),
            tls,
        }
    }

    /// Power-of-two-choices over `set.addrs` by outstanding requests; None when the set is empty.
    pub fn pick(&self, set: &EndpointSet) -> Option<Arc<Endpoint>> {
        let addrs = set.addrs.as_slice();
        let (first, second) = match addrs.len() {
            0 | 1 => (0, 0),
            n => (fastrand::usize(..n), fastrand::usize(..n - 1)),
        };
        let addr = {
            let map = self
                .endpoints
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let load = |i: usize| {
                let key = |addr: &SocketAddr| (*addr, set.mtls.contains(addr));
                let endpoint = addrs.get(i).and_then(|addr| map.get(&key(addr)));
                endpoint.map_or(0, |endpoint| endpoint.outstanding())
            };
            let addr = *addrs.get(lb::p2c(addrs.len(), first, second, load)?)?;
            let key = (addr, set.mtls.contains(&addr));
            if let Some(endpoint) = map.get(&key) {
                return Some(endpoint.clone());
            }
            key
        };
        let mut map = self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let endpoint = map.entry(addr).or_insert_with(|| {
            let tls = addr.1.then(|| self.tls.clone());
            Arc::new(Endpoint::new(addr.0, tls, Arc::downgrade(&self.endpoints)))
        });
        Some(endpoint.clone())
    }

    /// Drops pooled state for endpoints no longer in any set once they have nothing in flight.
    pub fn retain(&self, live: &HashSet<SocketAddr>) {
        let mut map = self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.retain(|(addr, _), endpoint| {
            let is_live = live.contains(addr);
            // Set before reading `outstanding`: either this sees the last request end, or
            // that request's `InFlight::drop` sees `retired` and removes the endpoint.
            endpoint.retired.store(!is_live, SeqCst);
            is_live || endpoint.outstanding() > 0
        });
    }

    /// Whether the pool holds state for `addr`.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        let map = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.contains_key(&(addr, false)) || map.contains_key(&(addr, true))
    }
}

/// One upstream address: its outstanding requests and its shared HTTP/2 connection.
pub struct Endpoint {
    addr: SocketAddr,
    /// Reached over mutual TLS with the certificate this holds at connect time.
    tls: Option<ClientTls>,
    outstanding: AtomicUsize,
    /// No longer in any endpoint set; removed from the pool when its last request ends.
    retired: AtomicBool,
    pool: Weak<EndpointMap>,
    /// The live connection, if any (a closed one is replaced on the next send).
    conn: RwLock<Option<SendRequest<ProxyBody>>>,
    /// Held while connecting; holds the last attempt's error for the callers that waited.
    connecting: tokio::sync::Mutex<Option<UpstreamError>>,
    /// Connect attempts finished so far.
    attempts: AtomicU64,
}

impl Endpoint {
    fn new(addr: SocketAddr, tls: Option<ClientTls>, pool: Weak<EndpointMap>) -> Self {
        Self {
            addr,
            tls,
            outstanding: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            pool,
            conn: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(None),
            attempts: AtomicU64::new(0),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether RPCs to this endpoint go over mutual TLS.
    pub fn is_mtls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(SeqCst)
    }

    /// Counts one request outstanding until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, SeqCst);
        InFlight(self.clone())
    }

    /// Sends on the endpoint's shared HTTP/2 connection, connecting (once, even under
    /// concurrent callers) when there is none or it closed; `connect_timeout` bounds
    /// connecting. A request the connection closed under before sending any of it is sent
    /// once more on a fresh connection. A request URI without scheme or authority gets
    /// `http` and the endpoint's address.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
        connect_timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let request = with_origin(request, self.addr);
        let mut sender = self.sender(connect_timeout).await?;
        let mut failed = match sender.try_send_request(request).await {
            Ok(response) => return Ok(response),
            Err(failed) => failed,
        };
        let Some(request) = failed.take_message() else {
            return Err(classify(self.addr, &failed.into_error()));
        };
        let mut sender = self.sender(connect_timeout).await?;
        let sent = sender.try_send_request(request).await;
        sent.map_err(|failed| classify(self.addr, &failed.into_error()))
    }

    /// A handle on the live connection, connecting first when there is none.
    async fn sender(&self, timeout: Duration) -> Result<SendRequest<ProxyBody>, UpstreamError> {
        if let Some(sender) = self.live() {
            return Ok(sender);
        }
        let seen = self.attempts.load(SeqCst);
        let mut last_error = self.connecting.lock().await;
        if let Some(sender) = self.live() {
            return Ok(sender);
        }
        if self.attempts.load(SeqCst) != seen
            && let Some(err) = last_error.as_ref()
        {
            // Someone else's attempt failed while this caller waited: share its answer
            // rather than queueing one connect timeout after another.
            return Err(err.clone());
        }
        let tls = match &self.tls {
            None => None,
            Some(tls) => match tls.borrow().clone() {
                Some(configs) => Some(configs),
                None => {
                    return Err(UpstreamError::Connect {
                        addr: self.addr,
                        reason: "mutual TLS needed, and this proxy has no certificate yet".into(),
                    });
                }
            },
        };
        let connected = connect(self.addr, tls, timeout).await;
        match &connected {
            Ok(sender) => {
                *last_error = None;
                *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(sender.clone());
            }
            Err(err) => *last_error = Some(err.clone()),
        }
        self.attempts.fetch_add(1, SeqCst);
        connected
    }

    fn live(&self) -> Option<SendRequest<ProxyBody>> {
        let conn = self.conn.read().unwrap_or_else(PoisonError::into_inner);
        conn.as_ref().filter(|sender| !sender.is_closed()).cloned()
    }

    /// Removes a retired endpoint from its pool once nothing is in flight.
    fn remove_if_idle(self: &Arc<Self>) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let mut map = pool.write().unwrap_or_else(PoisonError::into_inner);
        let key = (self.addr, self.tls.is_some());
        let same = map.get(&key).is_some_and(|e| Arc::ptr_eq(e, self));
        if same && self.retired.load(SeqCst) && self.outstanding() == 0 {
            map.remove(&key);
        }
    }
}

/// One request outstanding on an endpoint, until dropped.
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.outstanding.fetch_sub(1, SeqCst) == 1 && self.0.retired.load(SeqCst) {
            self.0.remove_if_idle();
        }
    }
}

/// Why a request got no response from upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {addr}: connection refused")]
    ConnectRefused { addr: SocketAddr },
    #[error("upstream {addr}: connect timed out after {timeout:?}")]
    ConnectTimeout { addr: SocketAddr, timeout: Duration },
    /// Any other failure to connect (unreachable, reset during the handshake, ...).
    #[error("upstream {addr}: connect failed: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    /// The upstream refused the stream (REFUSED_STREAM, or a GOAWAY before processing it),
    /// or the connection closed before the request was sent.
    #[error("upstream {addr}: request refused before processing: {reason}")]
    Refused { addr: SocketAddr, reason: String },
    /// The connection or stream broke before the response headers arrived; the application
    /// may have seen the request.
    #[error("upstream {addr}: connection reset before the response: {reason}")]
    Reset { addr: SocketAddr, reason: String },
    /// The proxy reset the stream itself: the request body failed (the client went away).
    #[error("upstream {addr}: request canceled: {reason}")]
    Canceled { addr: SocketAddr, reason: String },
}

impl UpstreamError {
    /// Whether no request bytes can have reached the application (safe to retry anything).
    pub fn is_before_request(&self) -> bool {
        matches!(
            self,
            Self::ConnectRefused { .. }
                | Self::ConnectTimeout { .. }
                | Self::Connect { .. }
                | Self::Refused { .. }
        )
    }

    /// A short grpc-message, e.g. "upstream 127.0.0.1:50051: connection refused".
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// Classifies a failed send by the error's type: hyper's own kinds, then the h2 error it
/// wraps (which frame, from which side), never by message text.
/// - canceled: the connection closed before the request was sent → refused;
/// - a GOAWAY from the peer with NO_ERROR: h2 fails with it only the streams above the
///   GOAWAY's last stream id, which the peer never processed → refused (a GOAWAY with an
///   error code fails every open stream, processed or not → reset);
/// - RST_STREAM(REFUSED_STREAM) from the peer → refused;
/// - a reset this side sent (the request body failed: the client went away) → canceled;
/// - anything else (the connection broke, another reset) → reset: the app may have seen it.
fn classify(addr: SocketAddr, err: &hyper::Error) -> UpstreamError {
    if err.is_canceled() {
        let reason = "connection closed before the request was sent".to_owned();
        return UpstreamError::Refused { addr, reason };
    }
    let reason = std::error::Error::source(err).map_or_else(|| err.to_string(), |e| e.to_string());
    let from_peer =
        |h2: &h2::Error, frame_reason| h2.is_remote() && h2.reason() == Some(frame_reason);
    match h2_error(err) {
        Some(h2) if h2.is_go_away() && from_peer(h2, h2::Reason::NO_ERROR) => {
            UpstreamError::Refused { addr, reason }
        }
        Some(h2) if h2.is_reset() && from_peer(h2, h2::Reason::REFUSED_STREAM) => {
            UpstreamError::Refused { addr, reason }
        }
        Some(h2) if h2.is_reset() && !h2.is_remote() => UpstreamError::Canceled { addr, reason },
        _ if err.is_user() => UpstreamError::Canceled { addr, reason },
        _ => UpstreamError::Reset { addr, reason },
    }
}

/// The h2 error somewhere in `err`'s chain of sources.
fn h2_error(err: &hyper::Error) -> Option<&h2::Error> {
    let mut source = std::error::Error::source(err);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return Some(h2);
        }
        source = err.source();
    }
    None
}

/// Opens a TCP connection (TCP_NODELAY), mutual TLS on it when `tls` is given, and an HTTP/2
/// client session, and spawns the connection's driver task.
async fn connect(
    addr: SocketAddr,
    tls: Option<Arc<TlsConfigs>>,
    timeout: Duration,
) -> Result<SendRequest<ProxyBody>, UpstreamError> {
    let connecting = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::ConnectionRefused => UpstreamError::ConnectRefused { addr },
                _ => UpstreamError::Connect {
                    addr,
                    reason: err.to_string(),
                },
            })?;
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%addr, %err, "cannot set TCP_NODELAY upstream");
        }
        match tls {
            None => h2_handshake(addr, stream).await,
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
                let stream = connector
                    .connect(crate::tls::server_name(), stream)
                    .await
                    .map_err(|err| UpstreamError::Connect {
                        addr,
                        reason: format!("mutual TLS handshake failed: {err}"),
                    })?;
                h2_handshake(addr, stream).await
            }
        }
    };
    match tokio::time::timeout(timeout, connecting).await {
        Ok(connected) => connected,
        Err(_) => Err(UpstreamError::ConnectTimeout { addr, timeout }),
    }
}

/// An HTTP/2 client session on `io`, its driver task spawned.
async fn h2_handshake<T>(addr: SocketAddr, io: T) -> Result<SendRequest<ProxyBody>, UpstreamError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .handshake::<_, ProxyBody>(TokioIo::new(io))
        .await
        .map_err(|err| UpstreamError::Connect {
            addr,
            reason: err.to_string(),
        })?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%addr, %err, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Fills in `http` and the endpoint's address when the request URI lacks them (requests a
/// listener received already carry both).
fn with_origin(mut request: Request<ProxyBody>, addr: SocketAddr) -> Request<ProxyBody> {
    let uri = request.uri();
    if uri.scheme().is_some() && uri.authority().is_some() {
        return request;
    }
    let mut parts = uri.clone().into_parts();
    parts.scheme.get_or_insert(Scheme::HTTP);
    if parts.authority.is_none() {
        parts.authority = Authority::try_from(addr.to_string()).ok();
    }
    parts
        .path_and_query
        .get_or_insert(PathAndQuery::from_static("/"));
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
