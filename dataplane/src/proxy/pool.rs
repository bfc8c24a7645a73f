//! Upstream connections: one shared, multiplexed HTTP/2 connection per endpoint address and
//! security for the whole process — prior-knowledge cleartext, or mutual TLS (ALPN h2) with
//! the workload certificate in force when the connection opens, to endpoints the controller
//! marked as run by a mesh proxy (a renewed certificate is used by new connections; open
//! ones keep theirs, so rotation never cuts an RPC) — the outstanding-request count of
//! each endpoint that load balancing reads, and the errors of sending upstream, classified
//! by whether the request can have reached the application.
//!
//! Resilience state lives here too, next to what it guards:
//! - each cluster's circuit-breaker counters (`breaker`), by cluster name, so they survive
//!   config updates that keep the name; forgotten with [`Upstreams::retain_clusters`] when
//!   the cluster leaves the config (attempts still in flight give back to the counters they
//!   took from);
//! - each endpoint's outlier-detection state (`outlier`). Like connections it is kept per
//!   endpoint address, not per cluster: an endpoint in two clusters (one pod behind two
//!   Services, which is rare) is ejected from both when one cluster's outlier detection
//!   ejects it, for as long as that cluster says; only clusters with outlier detection skip
//!   ejected endpoints, and each cluster's `max_ejection_percent` counts its own endpoints;
//! - connect settings: a connection is shared by every cluster that reaches its endpoint,
//!   so the connect timeout and HTTP/2 keepalive of the cluster whose attempt opens it
//!   apply to it for its lifetime ([`ConnectOptions`]).
//!
//! Hot path: `pick` holds a read lock on the pool for two endpoint lookups and, for
//! `pick_for`, one cluster lookup (a write lock only the first time an address or cluster is
//! seen); skipping ejected endpoints costs two atomic loads and a clock read, and only for
//! clusters with outlier detection. `send` holds a read lock on the endpoint's connection
//! slot just long enough to clone its `SendRequest`. No lock is held across an await except
//! the connect mutex, which only callers without a live connection wait on, so concurrent
//! first sends share one connect. Recording an attempt's result for outlier detection takes
//! the endpoint's outlier mutex, and only for clusters with outlier detection. An in-flight
//! request owns its `SendRequest` clone and its response body owns the HTTP/2 stream (hyper
//! keeps the connection open while streams are), so replacing a connection or forgetting an
//! endpoint never cuts an RPC.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::body::ProxyBody;
use super::breaker::{ClusterBreakers, PendingLimit, PendingSlot, RequestSlot};
use super::coalesce::CoalescedWrites;
use super::lb;
use super::outlier::{ClusterView, Ejection, HostState};
use crate::config::{ClusterConfig, EndpointSet, Http2Keepalive, OutlierDetection};
use crate::tls::TlsConfigs;

/// HTTP/2 flow-control windows: 1 MiB per stream, 2 MiB per connection.
pub(crate) const STREAM_WINDOW: u32 = 1 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 2 << 20;
/// Largest header block (headers or trailers) accepted.
pub(crate) const MAX_HEADER_LIST: u32 = 64 << 10;

/// An endpoint is pooled by address and by whether it is reached over mutual TLS.
type EndpointKey = (SocketAddr, bool);

/// What the pool holds, under one lock so a pick reads both with one read lock.
#[derive(Default)]
struct Pool {
    endpoints: HashMap<EndpointKey, Arc<Endpoint>>,
    /// Circuit-breaker counters by cluster name.
    clusters: HashMap<String, Arc<ClusterBreakers>>,
}

type SharedPool = RwLock<Pool>;

/// The workload certificate in force (none yet, or no mTLS in this mesh).
pub type ClientTls = watch::Receiver<Option<Arc<TlsConfigs>>>;

/// The process's upstream endpoints by address, and its clusters' circuit-breaker
/// counters; cheap to clone (one shared pool).
#[derive(Clone)]
pub struct Upstreams {
    pool: Arc<SharedPool>,
    tls: ClientTls,
}

/// An endpoint chosen for an attempt, and the circuit-breaker counters of its cluster.
pub struct Picked {
    pub endpoint: Arc<Endpoint>,
    pub breakers: Arc<ClusterBreakers>,
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
            pool: Arc::default(),
            tls,
        }
    }

    /// Power-of-two-choices over `set.addrs` by outstanding requests; None when the set is
    /// empty. Ejected endpoints are not skipped (the local app, tests).
    pub fn pick(&self, set: &EndpointSet) -> Option<Arc<Endpoint>> {
        let key = {
            let pool = self.read();
            let key = choose(&pool, set, false)?;
            if let Some(endpoint) = pool.endpoints.get(&key) {
                return Some(endpoint.clone());
            }
            key
        };
        Some(self.write_endpoint(&mut self.write(), key))
    }

    /// An endpoint of `cluster` for one attempt, by power of two choices over `set.addrs`
    /// (skipping endpoints ejected by outlier detection when the cluster has it, unless every
    /// one is), and the cluster's circuit-breaker counters; None when the set is empty.
    pub fn pick_for(&self, cluster: &ClusterConfig, set: &EndpointSet) -> Option<Picked> {
        let avoid_ejected = cluster.outlier_detection.is_some();
        let key = {
            let pool = self.read();
            let key = choose(&pool, set, avoid_ejected)?;
            let endpoint = pool.endpoints.get(&key);
            let breakers = pool.clusters.get(&cluster.name);
            if let (Some(endpoint), Some(breakers)) = (endpoint, breakers) {
                return Some(Picked {
                    endpoint: endpoint.clone(),
                    breakers: breakers.clone(),
                });
            }
            key
        };
        let mut pool = self.write();
        let endpoint = self.write_endpoint(&mut pool, key);
        let breakers = pool.clusters.entry(cluster.name.clone()).or_default();
        Some(Picked {
            endpoint,
            breakers: breakers.clone(),
        })
    }

    /// The endpoint at `key`, added to the pool if it is not there yet.
    fn write_endpoint(&self, pool: &mut Pool, key: EndpointKey) -> Arc<Endpoint> {
        let endpoint = pool.endpoints.entry(key).or_insert_with(|| {
            let tls = key.1.then(|| self.tls.clone());
            Arc::new(Endpoint::new(key.0, tls, Arc::downgrade(&self.pool)))
        });
        endpoint.clone()
    }

    /// Records the result of an attempt on `endpoint` of a cluster with outlier detection
    /// `config` and endpoints `set`, as HTTP `status` (see `outlier`); returns the ejection
    /// it caused, which balancing honours from now on.
    pub fn record_outlier(
        &self,
        endpoint: &Endpoint,
        set: &EndpointSet,
        config: &OutlierDetection,
        status: u16,
    ) -> Option<Ejection> {
        let now = monotonic_now();
        let mut state = endpoint
            .outlier
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let cluster = || self.ejected_in(set, now);
        let ejection = state.record(config, status, now, cluster, |n| fastrand::u64(..n.max(1)))?;
        endpoint.ejected_until.store(nanos(ejection.until), SeqCst);
        Some(ejection)
    }

    /// How many of `set`'s endpoints are ejected at `now`.
    fn ejected_in(&self, set: &EndpointSet, now: Duration) -> ClusterView {
        let pool = self.read();
        let ejected = set
            .addrs
            .iter()
            .filter_map(|addr| pool.endpoints.get(&(*addr, set.mtls.contains(addr))))
            .filter(|endpoint| endpoint.is_ejected(now))
            .count();
        ClusterView {
            ejected,
            endpoints: set.addrs.len(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Pool> {
        self.pool.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Pool> {
        self.pool.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops pooled state for endpoints no longer in any set once they have nothing in flight.
    pub fn retain(&self, live: &HashSet<SocketAddr>) {
        let mut pool = self.write();
        pool.endpoints.retain(|(addr, _), endpoint| {
            let is_live = live.contains(addr);
            // Set before reading `outstanding`: either this sees the last request end, or
            // that request's `InFlight::drop` sees `retired` and removes the endpoint.
            endpoint.retired.store(!is_live, SeqCst);
            is_live || endpoint.outstanding() > 0
        });
    }

    /// Forgets the circuit-breaker counters of clusters no longer in the config. Attempts
    /// still in flight to such a cluster give back to the counters they took from; should the
    /// cluster come back, it starts from zero.
    pub fn retain_clusters(&self, live: impl Fn(&str) -> bool) {
        self.write().clusters.retain(|name, _| live(name));
    }

    /// Whether the pool holds state for `addr`.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        let pool = self.read();
        pool.endpoints.contains_key(&(addr, false)) || pool.endpoints.contains_key(&(addr, true))
    }

    /// The circuit-breaker counters of cluster `name`, if an attempt has been made to it.
    pub fn breakers(&self, name: &str) -> Option<Arc<ClusterBreakers>> {
        self.read().clusters.get(name).cloned()
    }
}

/// The key of the endpoint of `set` chosen by power of two choices, skipping endpoints
/// ejected by outlier detection when `avoid_ejected` (see [`lb::p2c_excluding`]).
fn choose(pool: &Pool, set: &EndpointSet, avoid_ejected: bool) -> Option<EndpointKey> {
    let addrs = set.addrs.as_slice();
    let key = |addr: &SocketAddr| (*addr, set.mtls.contains(addr));
    let endpoint = |i: usize| addrs.get(i).and_then(|addr| pool.endpoints.get(&key(addr)));
    let load = |i: usize| endpoint(i).map_or(0, |endpoint| endpoint.outstanding());
    let now = avoid_ejected.then(monotonic_now);
    let ejected = |i: usize| {
        now.is_some_and(|now| endpoint(i).is_some_and(|endpoint| endpoint.is_ejected(now)))
    };
    let chosen = lb::p2c_excluding(addrs.len(), |n| fastrand::usize(..n), load, ejected)?;
    addrs.get(chosen).map(key)
}

/// The process's monotonic clock for outlier detection: the time since its first reading.
fn monotonic_now() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

/// A time on that clock as nanoseconds (saturating: 584 years).
fn nanos(at: Duration) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
}

/// How an attempt connects when its endpoint has no live connection, from the attempt's
/// cluster. Connections are pooled per endpoint address, so the timeout and keepalive of
/// the cluster whose attempt opens a connection apply to it for its lifetime, whichever
/// clusters send on it later.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions<'a> {
    /// Bounds connecting (TCP, TLS and the HTTP/2 handshake).
    pub timeout: Duration,
    /// HTTP/2 PINGs on the new connection; `None`: none.
    pub keepalive: Option<Http2Keepalive>,
    /// The cluster's limit on attempts waiting for a connection (`maxPendingRequests`);
    /// `None`: no limit (the local app).
    pub pending: Option<PendingLimit<'a>>,
}

impl From<Duration> for ConnectOptions<'_> {
    /// Just a connect timeout: no keepalive, no pending limit.
    fn from(timeout: Duration) -> Self {
        Self {
            timeout,
            keepalive: None,
            pending: None,
        }
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
    pool: Weak<SharedPool>,
    /// Ejected by outlier detection until this time on [`monotonic_now`]'s clock, in
    /// nanoseconds (0: never ejected). Balancing compares it with the clock, so the endpoint
    /// returns to service as soon as the time has passed, without a timer.
    ejected_until: AtomicU64,
    /// Outlier-detection state, locked only to record results for clusters that have it.
    outlier: Mutex<HostState>,
    /// The live connection, if any (a closed one is replaced on the next send).
    conn: RwLock<Option<SendRequest<ProxyBody>>>,
    /// Held while connecting; holds the last attempt's error for the callers that waited.
    connecting: tokio::sync::Mutex<Option<UpstreamError>>,
    /// Connect attempts finished so far.
    attempts: AtomicU64,
}

impl Endpoint {
    fn new(addr: SocketAddr, tls: Option<ClientTls>, pool: Weak<SharedPool>) -> Self {
        Self {
            addr,
            tls,
            outstanding: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            pool,
            ejected_until: AtomicU64::new(0),
            outlier: Mutex::new(HostState::default()),
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

    /// Whether outlier detection has ejected the endpoint at `now` ([`monotonic_now`]).
    fn is_ejected(&self, now: Duration) -> bool {
        self.ejected_until.load(SeqCst) > nanos(now)
    }

    /// Whether outlier detection has the endpoint ejected now.
    pub fn ejected(&self) -> bool {
        self.is_ejected(monotonic_now())
    }

    /// Counts one request outstanding until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, SeqCst);
        InFlight {
            endpoint: self.clone(),
            _slot: None,
        }
    }

    /// Counts one request outstanding, and in flight in its cluster's circuit breaker
    /// (`slot`), until the guard drops.
    pub fn start_in(self: &Arc<Self>, slot: RequestSlot) -> InFlight {
        self.outstanding.fetch_add(1, SeqCst);
        InFlight {
            endpoint: self.clone(),
            _slot: Some(slot),
        }
    }

    /// Sends on the endpoint's shared HTTP/2 connection, connecting (once, even under
    /// concurrent callers) when there is none or it closed, as `connect` says (a bare
    /// `Duration` is a connect timeout). A request the connection closed under before
    /// sending any of it is sent once more on a fresh connection. A request URI without
    /// scheme or authority gets `http` and the endpoint's address.
    pub async fn send<'a>(
        &self,
        request: Request<ProxyBody>,
        connect: impl Into<ConnectOptions<'a>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let connect = connect.into();
        let request = with_origin(request, self.addr);
        let mut sender = self.sender(connect).await?;
        let mut failed = match sender.try_send_request(request).await {
            Ok(response) => return Ok(response),
            Err(failed) => failed,
        };
        let Some(request) = failed.take_message() else {
            return Err(classify(self.addr, &failed.into_error()));
        };
        let mut sender = self.sender(connect).await?;
        let sent = sender.try_send_request(request).await;
        sent.map_err(|failed| classify(self.addr, &failed.into_error()))
    }

    /// A handle on the live connection, connecting first when there is none. Waiting for a
    /// connection (one's own connect or another caller's) counts against the cluster's
    /// pending limit.
    async fn sender(
        &self,
        connect: ConnectOptions<'_>,
    ) -> Result<SendRequest<ProxyBody>, UpstreamError> {
        if let Some(sender) = self.live() {
            return Ok(sender);
        }
        let _waiting = match connect.pending {
            None => None,
            Some(limit) => Some(PendingSlot::acquire(limit).map_err(|waiting| {
                UpstreamError::PendingOverflow {
                    addr: self.addr,
                    waiting,
                    max: limit.max,
                }
            })?),
        };
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
        let connected = open(self.addr, tls, connect.timeout, connect.keepalive).await;
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
        let mut pool = pool.write().unwrap_or_else(PoisonError::into_inner);
        let key = (self.addr, self.tls.is_some());
        let same = pool
            .endpoints
            .get(&key)
            .is_some_and(|e| Arc::ptr_eq(e, self));
        if same && self.retired.load(SeqCst) && self.outstanding() == 0 {
            pool.endpoints.remove(&key);
        }
    }
}

/// One request outstanding on an endpoint (and, for an outbound attempt, in flight in its
/// cluster's circuit breaker), until dropped.
pub struct InFlight {
    endpoint: Arc<Endpoint>,
    _slot: Option<RequestSlot>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let endpoint = &self.endpoint;
        if endpoint.outstanding.fetch_sub(1, SeqCst) == 1 && endpoint.retired.load(SeqCst) {
            endpoint.remove_if_idle();
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
    /// Not sent: waiting for a connection would exceed the cluster's `maxPendingRequests`.
    #[error(
        "upstream {addr}: {waiting} requests already waiting for a connection \
         (maxPendingRequests {max})"
    )]
    PendingOverflow {
        addr: SocketAddr,
        waiting: u32,
        max: u32,
    },
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
                | Self::PendingOverflow { .. }
        )
    }

    /// The HTTP status outlier detection counts this as (Envoy's local-origin errors, not
    /// split from the upstream's answers): 504 for a connect timeout, 503 for any other
    /// failure to connect or to get an answer; `None` for what is no fault of the endpoint
    /// (the client went away, the circuit breaker's overflow).
    pub fn outlier_status(&self) -> Option<u16> {
        match self {
            Self::ConnectTimeout { .. } => Some(504),
            Self::ConnectRefused { .. }
            | Self::Connect { .. }
            | Self::Refused { .. }
            | Self::Reset { .. } => Some(503),
            Self::Canceled { .. } | Self::PendingOverflow { .. } => None,
        }
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
/// client session (PINGing as `keepalive` says), and spawns the connection's driver task.
async fn open(
    addr: SocketAddr,
    tls: Option<Arc<TlsConfigs>>,
    timeout: Duration,
    keepalive: Option<Http2Keepalive>,
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
            None => h2_handshake(addr, stream, keepalive).await,
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
                let stream = connector
                    .connect(crate::tls::server_name(), stream)
                    .await
                    .map_err(|err| UpstreamError::Connect {
                        addr,
                        reason: format!("mutual TLS handshake failed: {err}"),
                    })?;
                h2_handshake(addr, stream, keepalive).await
            }
        }
    };
    match tokio::time::timeout(timeout, connecting).await {
        Ok(connected) => connected,
        Err(_) => Err(UpstreamError::ConnectTimeout { addr, timeout }),
    }
}

/// An HTTP/2 client session on `io` (writes coalesced per runtime turn: `coalesce`), its
/// driver task spawned. With `keepalive`, a PING every interval, idle or not (as Envoy
/// does), and the connection closes when one goes unanswered for the timeout.
async fn h2_handshake<T>(
    addr: SocketAddr,
    io: T,
    keepalive: Option<Http2Keepalive>,
) -> Result<SendRequest<ProxyBody>, UpstreamError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST);
    if let Some(keepalive) = keepalive {
        builder
            .keep_alive_interval(keepalive.interval)
            .keep_alive_timeout(keepalive.timeout)
            .keep_alive_while_idle(true);
    }
    let (sender, connection) = builder
        .handshake::<_, ProxyBody>(TokioIo::new(CoalescedWrites::new(io)))
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
