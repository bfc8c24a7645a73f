//! The connection layer over loopback against the real tonic test backend: pooled upstream
//! HTTP/2 (`Endpoint::send`: a hand-built unary call, one shared connect under concurrency,
//! reconnecting after a backend restart, refused connects, refused streams and GOAWAYs below
//! the stream classified as before-request, keepalive replacing a connection whose peer froze),
//! and the listener (`listener::serve` with a tiny forwarding service:
//! unary and all streaming shapes through it, status trailers passed through, in-flight
//! streams surviving endpoint removal, the graceful drain and its deadline).

#![allow(clippy::unwrap_used)] // a panic is how a failed step is reported

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::raw_h2::{RawConnection, raw_h2_server};
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use prost::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use weft_proxy::config::{EndpointSet, Http2Keepalive};
use weft_proxy::proxy::body::{ProxyBody, boxed};
use weft_proxy::proxy::grpc;
use weft_proxy::proxy::listener::{ListenerSettings, PlainTcp, serve};
use weft_proxy::proxy::pool::{ConnectOptions, UpstreamError, Upstreams};
use weft_tests::backend::pb::{EchoReply, EchoRequest};
use weft_tests::backend::{Backend, INSTANCE_HEADER, connect};

const CONNECT: Duration = Duration::from_secs(2);

fn set_of(addr: SocketAddr) -> EndpointSet {
    EndpointSet {
        name: "test".into(),
        addrs: vec![addr],
        ..Default::default()
    }
}

fn echo(message: &str, delay_ms: u32) -> EchoRequest {
    EchoRequest {
        message: message.into(),
        delay_ms,
        ..Default::default()
    }
}

/// A gRPC unary request for `/weft.test.Echo/Unary`, origin-form like a hand-written client.
fn unary_request(message: &str) -> Request<ProxyBody> {
    let encoded = echo(message, 0).encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + encoded.len());
    frame.put_u8(0);
    frame.put_u32(encoded.len() as u32);
    frame.put_slice(&encoded);
    Request::post("/weft.test.Echo/Unary")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(boxed(Full::new(frame.freeze())))
        .unwrap()
}

/// The reply and `grpc-status` of a unary response.
async fn read_unary(response: Response<Incoming>) -> (EchoReply, String) {
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.unwrap();
    let status = collected.trailers().unwrap()["grpc-status"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body: Bytes = collected.to_bytes();
    let _compressed = body.get_u8();
    let len = body.get_u32() as usize;
    (EchoReply::decode(&body[..len]).unwrap(), status)
}

/// Forwards every request to the one endpoint at `target`, keeping it counted outstanding
/// until the response body ends (as the real stacks do).
fn forwarder(
    upstreams: Upstreams,
    target: SocketAddr,
) -> impl Fn(Request<Incoming>) -> BoxFuture<'static, Response<ProxyBody>> + Clone {
    let set = Arc::new(set_of(target));
    move |request: Request<Incoming>| {
        let (upstreams, set) = (upstreams.clone(), set.clone());
        Box::pin(async move {
            let endpoint = upstreams.pick(&set).unwrap();
            let in_flight = endpoint.start();
            let (parts, body) = request.into_parts();
            match endpoint
                .send(Request::from_parts(parts, boxed(body)), CONNECT)
                .await
            {
                Ok(response) => response.map(|body| {
                    boxed(body.map_frame(move |frame| {
                        let _ = &in_flight;
                        frame
                    }))
                }),
                Err(err) => grpc::trailers_only(grpc::code::UNAVAILABLE, &err.message()),
            }
        })
    }
}

struct Proxy {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<usize>,
}

impl Proxy {
    async fn start(upstreams: Upstreams, target: SocketAddr, drain_timeout: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let settings = ListenerSettings {
            max_concurrent_streams: 100,
            drain_timeout,
            max_connections: 100,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(3600),
        };
        let service = forwarder(upstreams, target);
        let serving = tokio::spawn(serve(listener, PlainTcp, service, settings, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            serving,
        }
    }

    fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn begin_shutdown(&mut self) {
        let _ = self.stop.take().unwrap().send(());
    }

    /// Shuts down (if not begun) and returns how many connections the drain cut.
    async fn stop(mut self) -> usize {
        if self.stop.is_some() {
            self.begin_shutdown();
        }
        self.serving.await.unwrap()
    }
}

#[tokio::test]
async fn unary_sent_on_an_endpoint_reaches_the_backend() {
    let backend = Backend::start("a").await.unwrap();
    let upstreams = Upstreams::new();
    assert!(upstreams.pick(&EndpointSet::default()).is_none());
    let endpoint = upstreams.pick(&set_of(backend.addr())).unwrap();
    assert_eq!(endpoint.addr(), backend.addr());
    let in_flight = endpoint.start();
    assert_eq!(endpoint.outstanding(), 1);
    let response = endpoint.send(unary_request("hi"), CONNECT).await.unwrap();
    assert_eq!(response.headers()[INSTANCE_HEADER], "a");
    let (reply, status) = read_unary(response).await;
    assert_eq!(
        (reply.message, reply.instance, status),
        ("hi".into(), "a".into(), "0".into())
    );
    drop(in_flight);
    assert_eq!(endpoint.outstanding(), 0);
    assert_eq!(backend.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_sends_share_one_connection() {
    let backend = Backend::start("a").await.unwrap();
    let relay = Relay::start(backend.addr()).await;
    let endpoint = Upstreams::new().pick(&set_of(relay.addr)).unwrap();
    let sends = (0..32).map(|i| {
        let endpoint = endpoint.clone();
        tokio::spawn(async move { endpoint.send(unary_request(&i.to_string()), CONNECT).await })
    });
    for sent in futures::future::join_all(sends).await {
        assert_eq!(read_unary(sent.unwrap().unwrap()).await.1, "0");
    }
    let connections = relay.accepted.load(Ordering::SeqCst);
    assert_eq!(connections, 1, "one TCP connection for all sends");
    relay.task.abort();
}

/// A TCP relay to a target that counts the connections it accepts.
struct Relay {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                relays.spawn(async move {
                    let mut outbound = TcpStream::connect(target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }
}

#[tokio::test]
async fn a_restarted_backend_is_reconnected() {
    let first = Backend::start("first").await.unwrap();
    let addr = first.addr();
    let endpoint = Upstreams::new().pick(&set_of(addr)).unwrap();
    let (reply, _) = read_unary(endpoint.send(unary_request("1"), CONNECT).await.unwrap()).await;
    assert_eq!(reply.instance, "first");
    drop(first);
    let second = loop {
        // The stopped server releases the port asynchronously.
        match Backend::start_on("second", addr).await {
            Ok(backend) => break backend,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    // Let the old server's GOAWAY reach the idle pooled connection (tonic drains gracefully).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (reply, status) =
        read_unary(endpoint.send(unary_request("2"), CONNECT).await.unwrap()).await;
    assert_eq!((reply.instance.as_str(), status.as_str()), ("second", "0"));
    assert_eq!(second.calls(), 1);
}

#[tokio::test]
async fn a_closed_port_is_refused_before_the_request() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = Upstreams::new().pick(&set_of(addr)).unwrap();
    let err = endpoint
        .send(unary_request("x"), CONNECT)
        .await
        .unwrap_err();
    assert_eq!(err, UpstreamError::ConnectRefused { addr });
    assert!(err.is_before_request());
    assert_eq!(
        err.message(),
        format!("upstream {addr}: connection refused")
    );
}

/// A raw HTTP/2 server that resets every stream with `reason`.
async fn resetting_server(reason: h2::Reason) -> (SocketAddr, JoinHandle<()>) {
    raw_h2_server(move |mut connection: RawConnection| async move {
        while let Some(Ok((_request, mut respond))) = connection.accept().await {
            respond.send_reset(reason);
        }
    })
    .await
}

#[tokio::test]
async fn refused_streams_and_resets_are_classified() {
    let cases = [
        (h2::Reason::REFUSED_STREAM, true),
        (h2::Reason::INTERNAL_ERROR, false),
    ];
    for (reason, before_request) in cases {
        let (addr, server) = resetting_server(reason).await;
        let endpoint = Upstreams::new().pick(&set_of(addr)).unwrap();
        let sent = endpoint.send(unary_request("x"), CONNECT).await;
        let err = sent.unwrap_err();
        assert_eq!(err.is_before_request(), before_request, "{reason:?}: {err}");
        let prefix = format!("upstream {addr}: ");
        assert!(err.message().starts_with(&prefix), "{err}");
        server.abort();
    }
}

/// A raw HTTP/2 server that sends each connection a GOAWAY (NO_ERROR) whose last stream id
/// (0) is below every request, and serves nothing.
async fn goaway_server() -> (SocketAddr, JoinHandle<()>) {
    raw_h2_server(|mut connection: RawConnection| async move {
        connection.abrupt_shutdown(h2::Reason::NO_ERROR);
        while connection.accept().await.is_some() {}
        // Keep the socket open, as servers do after a GOAWAY, so the client reads it rather
        // than racing a closed connection.
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(connection);
    })
    .await
}

/// A GOAWAY (NO_ERROR) whose last stream id is below the request: refused, whether the
/// request was on its way (h2 fails the stream with the GOAWAY) or not yet sent (hyper
/// returns it unsent, and the one resend on a new connection meets the same).
#[tokio::test]
async fn a_goaway_below_the_stream_is_refused() {
    let (addr, server) = goaway_server().await;
    let endpoint = Upstreams::new().pick(&set_of(addr)).unwrap();
    let err = endpoint
        .send(unary_request("x"), CONNECT)
        .await
        .unwrap_err();
    assert!(err.is_before_request(), "{err}");
    server.abort();
}

/// A raw HTTP/2 server that answers each connection's first request (gRPC OK, an empty
/// message) and then freezes: it keeps the connection but never reads it again, so PINGs go
/// unanswered and requests hang. Counts the connections it accepted.
async fn freezing_server() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let (addr, task) = raw_h2_server(move |mut connection: RawConnection| {
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            if let Some(Ok((_request, mut respond))) = connection.accept().await {
                let response = Response::builder()
                    .header("content-type", "application/grpc")
                    .body(())
                    .unwrap();
                let mut stream = respond.send_response(response, false).unwrap();
                stream
                    .send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false)
                    .unwrap();
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                stream.send_trailers(trailers).unwrap();
                // Drive the connection long enough for the answer to leave, then freeze.
                let _ = tokio::time::timeout(Duration::from_millis(200), connection.accept()).await;
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(connection);
        }
    })
    .await;
    (addr, accepted, task)
}

/// Sends one unary request on `endpoint` with `options` and reads the answer to its end;
/// gives up after `within`.
async fn call_within(
    endpoint: &weft_proxy::proxy::pool::Endpoint,
    options: ConnectOptions<'_>,
    within: Duration,
) -> Result<(), String> {
    let call = async {
        let response = endpoint
            .send(unary_request("x"), options)
            .await
            .map_err(|err| err.to_string())?;
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let trailers = body.trailers().cloned().unwrap_or_default();
        match trailers.get("grpc-status") {
            Some(status) if status == "0" => Ok(()),
            other => Err(format!("grpc-status {other:?}")),
        }
    };
    tokio::time::timeout(within, call)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {within:?}")))
}

/// Upstream HTTP/2 keepalive (a BackendPolicy's `http2Keepalive`): a connection whose peer
/// stops answering PINGs is closed within interval + timeout, so the next request opens a
/// new connection and is answered. Without keepalive the same request hangs on the frozen
/// connection.
#[tokio::test]
async fn keepalive_replaces_a_connection_whose_peer_froze() {
    let keepalive = Http2Keepalive {
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
    };
    for with_keepalive in [true, false] {
        let (addr, accepted, server) = freezing_server().await;
        let endpoint = Upstreams::new().pick(&set_of(addr)).unwrap();
        let options = || ConnectOptions {
            keepalive: with_keepalive.then_some(keepalive),
            ..ConnectOptions::from(CONNECT)
        };
        call_within(&endpoint, options(), Duration::from_secs(5))
            .await
            .unwrap();
        // Interval + timeout, and a margin.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let second = call_within(&endpoint, options(), Duration::from_secs(2)).await;
        if with_keepalive {
            assert_eq!(second, Ok(()), "with keepalive");
            assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection");
        } else {
            assert!(
                second.is_err(),
                "without keepalive the frozen connection answered"
            );
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        }
        server.abort();
    }
}

#[tokio::test]
async fn unary_and_streaming_calls_pass_through_the_listener() {
    let backend = Backend::start("a").await.unwrap();
    let proxy = Proxy::start(Upstreams::new(), backend.addr(), Duration::from_secs(5)).await;
    let mut client = connect(&proxy.uri()).await.unwrap();

    let reply = client.unary(echo("hello", 0)).await.unwrap();
    assert_eq!(reply.metadata().get(INSTANCE_HEADER).unwrap(), "a");
    assert_eq!(reply.into_inner().message, "hello");

    let failing = EchoRequest {
        fail_code: 5,
        fail_message: "no such thing".into(),
        ..echo("", 0)
    };
    let status = client.unary(failing).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::NotFound, "no such thing")
    );

    let streamed = EchoRequest {
        count: 3,
        ..echo("s", 0)
    };
    let mut replies = client.server_stream(streamed).await.unwrap().into_inner();
    let mut received = Vec::new();
    while let Some(reply) = replies.message().await.unwrap() {
        received.push(reply.message);
    }
    assert_eq!(received, ["s 0", "s 1", "s 2"]);

    let uploads = futures::stream::iter([echo("1", 0), echo("2", 0), echo("3", 0)]);
    let reply = client.client_stream(uploads).await.unwrap().into_inner();
    assert_eq!((reply.message.as_str(), reply.received), ("3", 3));

    // Each reply arrives before the next message is sent: nothing is buffered either way.
    let (tx, rx) = mpsc::channel(1);
    tx.send(echo("one", 0)).await.unwrap();
    let mut replies = client
        .bidi_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replies.message().await.unwrap().unwrap().message, "one");
    tx.send(echo("two", 0)).await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().received, 2);
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());

    assert_eq!(proxy.stop().await, 0);
}

#[tokio::test]
async fn an_in_flight_stream_survives_its_endpoint_leaving_the_pool() {
    let backend = Backend::start("a").await.unwrap();
    let upstreams = Upstreams::new();
    let proxy = Proxy::start(upstreams.clone(), backend.addr(), Duration::from_secs(5)).await;
    let mut client = connect(&proxy.uri()).await.unwrap();
    let (tx, rx) = mpsc::channel(1);
    tx.send(echo("one", 0)).await.unwrap();
    let mut replies = client
        .bidi_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replies.message().await.unwrap().unwrap().message, "one");

    upstreams.retain(&HashSet::new());
    assert!(
        upstreams.contains(backend.addr()),
        "kept while a stream is in flight"
    );
    tx.send(echo("two", 0)).await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().message, "two");
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());

    let forgotten = async {
        while upstreams.contains(backend.addr()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(2), forgotten)
        .await
        .unwrap();
    assert_eq!(proxy.stop().await, 0);
}

#[tokio::test]
async fn drain_lets_in_flight_calls_finish_and_refuses_new_connections() {
    let backend = Backend::start("a").await.unwrap();
    let mut proxy = Proxy::start(Upstreams::new(), backend.addr(), Duration::from_secs(10)).await;
    let mut client = connect(&proxy.uri()).await.unwrap();
    let call = tokio::spawn(async move { client.unary(echo("slow", 1500)).await });
    while backend.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    proxy.begin_shutdown();
    let refused = async {
        while TcpStream::connect(proxy.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), refused)
        .await
        .unwrap();
    assert!(
        !call.is_finished(),
        "the slow call is still in flight when connects are refused"
    );

    assert_eq!(call.await.unwrap().unwrap().into_inner().message, "slow");
    assert_eq!(proxy.stop().await, 0);
}

#[tokio::test]
async fn drain_deadline_cuts_what_is_left() {
    let backend = Backend::start("a").await.unwrap();
    let proxy = Proxy::start(Upstreams::new(), backend.addr(), Duration::from_millis(200)).await;
    let mut client = connect(&proxy.uri()).await.unwrap();
    let call = tokio::spawn(async move { client.unary(echo("too slow", 30_000)).await });
    while backend.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(proxy.stop().await, 1);
    let failed = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .unwrap()
        .unwrap();
    assert!(failed.is_err());
}

#[tokio::test]
async fn http1_is_not_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Backend::start("a").await.unwrap();
    let proxy = Proxy::start(Upstreams::new(), backend.addr(), Duration::from_secs(1)).await;
    let mut socket = TcpStream::connect(proxy.addr).await.unwrap();
    socket
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = socket.read_to_end(&mut answer);
    let _ = tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .unwrap();
    assert!(!answer.starts_with(b"HTTP/"), "answered HTTP/1: {answer:?}");
    assert_eq!(backend.calls(), 0);
    assert_eq!(proxy.stop().await, 0);
}
