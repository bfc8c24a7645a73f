//! Retries never run a call twice, end to end through weft-proxy configured by
//! weft-controller: a backend that resets the stream after receiving the request is called
//! once although the route retries UNAVAILABLE, while a backend that refuses the stream
//! (REFUSED_STREAM: the app never saw it) is tried again and the call succeeds.
//!
//! The backends are raw HTTP/2 servers (the h2 crate), so the test decides exactly which
//! frame each stream gets.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::raw_h2::{RawConnection, raw_h2_server};
use common::*;
use prost::Message as _;
use tokio::task::JoinHandle;
use tonic::Code;

/// What a raw backend does with the `n`th request (0-based), after reading its whole body.
#[derive(Clone, Copy)]
enum Answer {
    Reset(h2::Reason),
    Reply,
}

/// A raw HTTP/2 gRPC backend: counts requests and answers each as `answer(n)` says.
struct RawBackend {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RawBackend {
    async fn start(answer: fn(usize) -> Answer) -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let (addr, task) = raw_h2_server(move |mut connection: RawConnection| {
            let counter = counter.clone();
            async move {
                while let Some(Ok((request, respond))) = connection.accept().await {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(request, respond, answer(n)));
                }
            }
        })
        .await;
        Self {
            addr,
            requests,
            task,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the request (so the app has "seen" it), then resets or replies.
async fn serve(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    answer: Answer,
) {
    let mut body = request.into_body();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    match answer {
        Answer::Reset(reason) => respond.send_reset(reason),
        Answer::Reply => {
            let response = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let Ok(mut stream) = respond.send_response(response, false) else {
                return;
            };
            let reply = EchoReply {
                message: "raw".into(),
                instance: "raw".into(),
                ..Default::default()
            }
            .encode_to_vec();
            let mut frame = BytesMut::new();
            frame.put_u8(0);
            frame.put_u32(reply.len() as u32);
            frame.put_slice(&reply);
            let _ = stream.send_data(frame.freeze(), false);
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let _ = stream.send_trailers(trailers);
        }
    }
}

/// A mesh whose Service greeter is `backend`, under a route retrying UNAVAILABLE 3 times;
/// returns it with a client through the proxy.
async fn mesh_in_front_of(backend: &RawBackend) -> (Mesh, EchoClient<tonic::transport::Channel>) {
    let mut mesh = Mesh::new();
    mesh.write("services.yaml", &service_yaml("greeter", &[backend.addr]));
    mesh.write("route.yaml", &retrying_route());
    blocking(|| {
        mesh.start_controller();
        mesh.start_proxy(ProxyOptions::new("client-0"));
        mesh.proxy(0).wait_config("the retry policy", |dump| {
            routes(dump).iter().any(|r| r["retry"]["retries"] == 3)
        });
    });
    let client = client(mesh.proxy(0).outbound.port(), GREETER).await;
    (mesh, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reset_after_the_app_saw_the_request_is_not_retried() {
    let backend = RawBackend::start(|_| Answer::Reset(h2::Reason::INTERNAL_ERROR)).await;
    let (mesh, mut client) = mesh_in_front_of(&backend).await;
    let status = unary(&mut client, request("once"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("connection reset before the response"),
        "{status:?}"
    );
    assert_eq!(backend.requests(), 1, "the call ran more than once");
    let retries = blocking(|| mesh.proxy(0).metrics().sum("weft_proxy_retries_total", &[]));
    assert_eq!(retries, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_is_retried_and_the_call_succeeds() {
    let backend = RawBackend::start(|n| match n {
        0 => Answer::Reset(h2::Reason::REFUSED_STREAM),
        _ => Answer::Reply,
    })
    .await;
    let (mesh, mut client) = mesh_in_front_of(&backend).await;
    let reply = unary(&mut client, request("twice"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.instance, "raw");
    assert_eq!(backend.requests(), 2, "refused once, then answered");
    let retries = blocking(|| mesh.proxy(0).metrics().sum("weft_proxy_retries_total", &[]));
    assert_eq!(retries, 1.0);
}
