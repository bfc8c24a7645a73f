//! A gRPC test backend (tonic) on a free loopback port. It answers unary and all three
//! streaming shapes, can be told to answer slowly or with a given status (per instance,
//! or per request through `EchoRequest` fields), and names itself in every reply (field
//! `instance` and response header `x-weft-instance`) so routing tests can count where
//! calls went. Unary replies echo the request's `traceparent` in `x-weft-traceparent`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// Generated from tests/proto/echo.proto.
pub mod pb {
    tonic::include_proto!("weft.test");
}

use pb::echo_server::{Echo, EchoServer};
use pb::{EchoReply, EchoRequest};

/// The response header naming the instance that answered.
pub const INSTANCE_HEADER: &str = "x-weft-instance";
/// The response header (Unary) echoing the request's `traceparent`, as the backend got it.
pub const TRACEPARENT_ECHO_HEADER: &str = "x-weft-traceparent";

/// How an instance behaves for every call (request fields add to this).
#[derive(Debug, Clone, Default)]
pub struct Behavior {
    pub delay: Duration,
    pub failure: Option<(tonic::Code, String)>,
}

struct Shared {
    instance: String,
    behavior: Mutex<Behavior>,
    calls: AtomicU64,
}

/// A running backend; stops when dropped.
pub struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Backend {
    /// Starts instance `instance` on 127.0.0.1 with a free port.
    pub async fn start(instance: &str) -> anyhow::Result<Self> {
        Self::start_on(instance, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts instance `instance` listening on `addr`.
    pub async fn start_on(instance: &str, addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|err| anyhow::anyhow!("cannot listen on {addr}: {err}"))?;
        Self::serve(instance, listener)
    }

    /// Starts instance `instance` on a socket bound elsewhere: a socket belongs to the
    /// network namespace it was created in, so a test can bind it in a namespace of its own
    /// (from a thread that entered it) and serve it from its runtime here.
    pub async fn start_with(
        instance: &str,
        listener: std::net::TcpListener,
    ) -> anyhow::Result<Self> {
        listener.set_nonblocking(true)?;
        Self::serve(instance, tokio::net::TcpListener::from_std(listener)?)
    }

    fn serve(instance: &str, listener: tokio::net::TcpListener) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            instance: instance.to_string(),
            behavior: Mutex::default(),
            calls: AtomicU64::new(0),
        });
        let (shutdown, stopped) = oneshot::channel();
        let service = EchoServer::new(EchoService(shared.clone()));
        tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .add_service(service)
                // Nagle off, as any gRPC server sets it: with it on, a small response waits for
                // the client's delayed ACK (about 40 ms) and skews latency.
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
            if let Err(err) = result {
                tracing::warn!(%err, "test backend stopped with an error");
            }
        });
        Ok(Self {
            addr,
            shared,
            shutdown: Some(shutdown),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn instance(&self) -> &str {
        &self.shared.instance
    }

    /// Calls this instance has received (of any shape).
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }

    /// Makes every call wait `delay` before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.behavior().delay = delay;
    }

    /// Makes every call fail with `code` and `message` (None: answer normally).
    pub fn set_failure(&self, failure: Option<(tonic::Code, &str)>) {
        self.behavior().failure = failure.map(|(code, message)| (code, message.to_string()));
    }

    fn behavior(&self) -> std::sync::MutexGuard<'_, Behavior> {
        self.shared
            .behavior
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A client for a backend (or anything in front of one) at `uri`, e.g. `http://127.0.0.1:1234`.
pub async fn connect(
    uri: &str,
) -> anyhow::Result<pb::echo_client::EchoClient<tonic::transport::Channel>> {
    Ok(pb::echo_client::EchoClient::connect(uri.to_string()).await?)
}

struct EchoService(Arc<Shared>);

impl EchoService {
    /// Applies the instance's and the request's delay and failure; returns the reply.
    async fn answer(&self, request: &EchoRequest, received: u32) -> Result<EchoReply, Status> {
        let behavior = self
            .0
            .behavior
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let delay = behavior.delay + Duration::from_millis(u64::from(request.delay_ms));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if request.fail_code != 0 {
            return Err(Status::new(
                request.fail_code.into(),
                request.fail_message.clone(),
            ));
        }
        if let Some((code, message)) = behavior.failure {
            return Err(Status::new(code, message));
        }
        Ok(EchoReply {
            message: request.message.clone(),
            instance: self.0.instance.clone(),
            received,
            padding: vec![b'x'; request.response_size as usize],
        })
    }

    fn count_call(&self) {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn tagged<T>(&self, body: T) -> Response<T> {
        let mut response = Response::new(body);
        if let Ok(value) = self.0.instance.parse() {
            response.metadata_mut().insert(INSTANCE_HEADER, value);
        }
        response
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.count_call();
        let reply = self.answer(request.get_ref(), 1).await?;
        let mut response = self.tagged(reply);
        // The W3C trace context as it arrived, so tests see what proxies passed on.
        if let Some(traceparent) = request.metadata().get("traceparent") {
            response
                .metadata_mut()
                .insert(TRACEPARENT_ECHO_HEADER, traceparent.clone());
        }
        Ok(response)
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        self.count_call();
        let request = request.into_inner();
        let first = self.answer(&request, 1).await?;
        let count = request.count.max(1);
        let interval = Duration::from_millis(u64::from(request.interval_ms));
        let replies = futures::stream::iter(0..count).then(move |i| {
            let reply = EchoReply {
                message: format!("{} {i}", first.message),
                ..first.clone()
            };
            async move {
                if i > 0 && !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
                Ok(reply)
            }
        });
        Ok(self.tagged(Box::pin(replies)))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        self.count_call();
        let mut inbound = request.into_inner();
        let mut received = 0u32;
        let mut last = EchoRequest::default();
        while let Some(message) = inbound.next().await {
            last = message?;
            received += 1;
        }
        let reply = self.answer(&last, received).await?;
        Ok(self.tagged(reply))
    }

    type BidiStreamStream = ReplyStream;

    async fn bidi_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Self::BidiStreamStream>, Status> {
        self.count_call();
        let inbound = request.into_inner();
        let service = EchoService(self.0.clone());
        let replies = async_stream_replies(service, inbound);
        Ok(self.tagged(replies))
    }
}

/// Answers each inbound message in order, as it arrives.
fn async_stream_replies(service: EchoService, inbound: Streaming<EchoRequest>) -> ReplyStream {
    let service = Arc::new(service);
    Box::pin(inbound.enumerate().then(move |(index, message)| {
        let service = service.clone();
        async move {
            let message = message?;
            service.answer(&message, index as u32 + 1).await
        }
    }))
}

/// An Echo request carrying `message`, answered at once.
pub fn request(message: &str) -> pb::EchoRequest {
    pb::EchoRequest {
        message: message.into(),
        ..Default::default()
    }
}
