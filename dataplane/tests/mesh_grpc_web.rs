//! gRPC-Web through weft-proxy's web listener, and through stock Envoy's (`grpc_web`, `cors`
//! filters), both configured by weft-controller in local mode from a GrpcRoute with
//! `spec.web`, to the tonic test backends. The client here speaks HTTP/1.1 as a browser
//! does (hyper's client, frames built by hand), and HTTP/2: binary and text (base64) calls,
//! server streaming with the first message timed before the end, a fault's status and message in
//! the trailer frame, a browser deadline, preflights from an allowed and another origin,
//! and (weft-proxy) metrics that say which protocol the client spoke. The page-level tests
//! with real browsers are in `mesh_browser.rs`.
//!
//! Where the two differ, by design: weft-proxy answers a preflight from an origin it does
//! not allow with 403 and refuses that origin's calls; Envoy (with
//! `forward_not_matching_preflights: false`) answers the preflight without CORS headers and
//! forwards the call, only withholding the headers. A browser refuses both alike.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Buf, Bytes};
use common::web::*;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prost::Message as _;
use weft_tests::backend::pb::{EchoReply, EchoRequest};

const ORIGIN: &str = "http://app.test:8000";

fn web_route() -> String {
    web_route_yaml(&[ORIGIN], &[])
}

async fn web_mesh(side: Side) -> WebMesh {
    WebMesh::start(side, &web_route(), &[]).await
}

/// One HTTP/1.1 exchange on a new connection: the response head and its body as it
/// arrives (each chunk with when it came).
async fn http1(
    addr: SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> (http::response::Parts, Vec<(Instant, Bytes)>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let (parts, mut body) = response.into_parts();
    let mut chunks = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            chunks.push((Instant::now(), data));
        }
    }
    (parts, chunks)
}

/// One HTTP/2 (prior-knowledge h2c) exchange on a new connection, as an HTTP/2 gRPC-Web
/// client does: the response head and its whole body.
async fn h2c(
    addr: SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> (http::response::Parts, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts, body.collect().await.unwrap().to_bytes().to_vec())
}

/// A gRPC-Web call's request: POST, the content type, the message framed.
fn web_request(
    path: &str,
    content_type: &str,
    message: &EchoRequest,
    headers: &[(&str, &str)],
) -> http::Request<Full<Bytes>> {
    let mut framed = vec![0u8];
    framed.extend((message.encoded_len() as u32).to_be_bytes());
    framed.extend(message.encode_to_vec());
    let body = if content_type.starts_with("application/grpc-web-text") {
        STANDARD.encode(&framed).into_bytes()
    } else {
        framed
    };
    let mut builder = http::Request::post(path)
        .header("host", "app.test:8000")
        .header("content-type", content_type)
        .header("x-grpc-web", "1");
    // As the official client does: Envoy answers in base64 only when asked to.
    if content_type.starts_with("application/grpc-web-text") {
        builder = builder.header("accept", "application/grpc-web-text");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::from(body))).unwrap()
}

/// A gRPC-Web body's frames: the messages, then the trailers (as `name: value` lines).
#[derive(Debug)]
struct WebAnswer {
    messages: Vec<EchoReply>,
    trailers: String,
}

impl WebAnswer {
    /// A trailer's value (`name:value` or `name: value`), or else the response header's: a
    /// Trailers-Only answer may keep the status in the headers (Envoy does; weft-proxy moves
    /// it into the trailer frame), and browsers' clients read both. With neither, the status
    /// of a non-200 answer is the HTTP status's, as browsers' clients map it (Envoy answers
    /// no route with a bare 404).
    fn status(&self, head: &http::response::Parts, name: &str) -> Option<String> {
        let trailer = self.trailers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_owned())
        });
        let header = || Some(head.headers.get(name)?.to_str().ok()?.to_owned());
        let from_http = || {
            (name == "grpc-status" && head.status != 200)
                .then(|| weft_common::grpc::code_for_http_status(head.status.as_u16()).to_string())
        };
        trailer.or_else(header).or_else(from_http)
    }
}

fn parse_web(body: &[u8]) -> WebAnswer {
    let mut rest = body;
    let mut answer = WebAnswer {
        messages: Vec::new(),
        trailers: String::new(),
    };
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = &rest[5..5 + len];
        if flag & 0x80 != 0 {
            answer.trailers = String::from_utf8(payload.to_vec()).unwrap();
        } else {
            answer.messages.push(EchoReply::decode(payload).unwrap());
        }
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty(), "a cut frame: {body:?}");
    answer
}

/// The HTTP status of an answer the proxy makes itself: weft-proxy answers 200 with the gRPC
/// status in the trailer frame; Envoy keeps its local reply's HTTP status (`envoy`: 404 for
/// no route, a fault's), which browsers' clients map to the same gRPC status.
fn local_reply_status(side: Side, envoy: u16) -> u16 {
    match side {
        Side::Weft => 200,
        Side::Envoy => envoy,
    }
}

/// The decoded body of a text-mode answer: each chunk is padded base64 on its own.
fn text_body(chunks: &[(Instant, Bytes)]) -> Vec<u8> {
    let text: Vec<u8> = chunks
        .iter()
        .flat_map(|(_, c)| c.chunk().to_vec())
        .collect();
    let mut decoded = Vec::new();
    // Padded runs back to back: decode quantum by quantum, as the official client does.
    for quantum in text.chunks(4) {
        decoded.extend(STANDARD.decode(quantum).unwrap());
    }
    decoded
}

fn joined(chunks: &[(Instant, Bytes)]) -> Vec<u8> {
    chunks.iter().flat_map(|(_, c)| c.to_vec()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weft_proxy_serves_unary_and_streaming_calls_in_binary_and_text_mode() {
    calls_in_binary_and_text_mode(Side::Weft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_serves_unary_and_streaming_calls_in_binary_and_text_mode() {
    calls_in_binary_and_text_mode(Side::Envoy).await;
}

async fn calls_in_binary_and_text_mode(side: Side) {
    let m = web_mesh(side).await;
    let hello = EchoRequest {
        message: "hi".into(),
        ..Default::default()
    };

    // Binary unary, from the allowed origin: routed by the path to greeter-v1.
    let request = web_request(
        "/weft.test.Echo/Unary",
        "application/grpc-web+proto",
        &hello,
        &[("origin", ORIGIN)],
    );
    let (head, chunks) = http1(m.web, request).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-type"], "application/grpc-web+proto");
    assert_eq!(head.headers["access-control-allow-origin"], ORIGIN);
    let exposed = head.headers["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("x-weft-instance"),
        "{exposed}"
    );
    let answer = parse_web(&joined(&chunks));
    assert_eq!(answer.messages.len(), 1, "{answer:?}");
    assert_eq!(answer.messages[0].instance, "v1");
    assert_eq!(
        answer.status(&head, "grpc-status").as_deref(),
        Some("0"),
        "{answer:?}"
    );

    // Text mode, server streaming to greeter-v2: three messages 300 ms apart; the first
    // arrives well before the stream ends (nothing is buffered whole).
    let streaming = EchoRequest {
        message: "s".into(),
        count: 3,
        interval_ms: 300,
        ..Default::default()
    };
    let request = web_request(
        "/weft.test.Echo/ServerStream",
        "application/grpc-web-text",
        &streaming,
        &[],
    );
    let (head, chunks) = http1(m.web, request).await;
    assert_eq!(head.status, 200);
    // weft-proxy answers in the request's content type; Envoy adds `+proto`.
    let content_type = head.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/grpc-web-text"),
        "{content_type}"
    );
    let answer = parse_web(&text_body(&chunks));
    let instances: Vec<&str> = answer
        .messages
        .iter()
        .map(|r| r.instance.as_str())
        .collect();
    assert_eq!(instances, ["v2", "v2", "v2"], "{answer:?}");
    assert_eq!(
        answer.status(&head, "grpc-status").as_deref(),
        Some("0"),
        "{answer:?}"
    );
    let (first, last) = (chunks[0].0, chunks[chunks.len() - 1].0);
    assert!(
        last.duration_since(first) >= Duration::from_millis(500),
        "the first message came {:?} before the end",
        last.duration_since(first)
    );

    // A path no web route serves: answered in gRPC-Web form, UNIMPLEMENTED.
    let request = web_request("/other.Service/Call", "application/grpc-web", &hello, &[]);
    let (head, chunks) = http1(m.web, request).await;
    assert_eq!(head.status, local_reply_status(side, 404), "{head:?}");
    let answer = parse_web(&joined(&chunks));
    assert_eq!(
        answer.status(&head, "grpc-status").as_deref(),
        Some("12"),
        "{answer:?}"
    );

    // The same call over HTTP/2 (h2c): the listener takes both versions.
    let mut request = web_request(
        "/weft.test.Echo/Unary",
        "application/grpc-web+proto",
        &hello,
        &[],
    );
    *request.version_mut() = http::Version::HTTP_2;
    request.headers_mut().remove("host");
    *request.uri_mut() = "http://app.test:8000/weft.test.Echo/Unary".parse().unwrap();
    let (head, body) = h2c(m.web, request).await;
    assert_eq!(head.status, 200);
    let answer = parse_web(&body);
    assert_eq!(answer.messages[0].instance, "v1", "{answer:?}");
    assert_eq!(
        answer.status(&head, "grpc-status").as_deref(),
        Some("0"),
        "{answer:?}"
    );

    if side == Side::Envoy {
        return;
    }
    // The metrics say what the browser spoke.
    let metrics = m.mesh.proxy(0).metrics();
    for protocol in ["grpc-web", "grpc-web-text"] {
        assert!(
            metrics.sum("weft_proxy_rpcs_total", &[("protocol", protocol)]) >= 1.0,
            "no {protocol} series"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weft_proxy_answers_a_fault_and_a_deadline_in_grpc_web_form() {
    fault_and_deadline(Side::Weft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_answers_a_fault_and_a_deadline_in_grpc_web_form() {
    fault_and_deadline(Side::Envoy).await;
}

/// A fault's status and message reach the browser. weft-proxy gives any status exactly;
/// through Envoy only those with an HTTP equivalent survive (see the controller's
/// `translate/web.rs`), so Envoy is tested with UNAVAILABLE.
async fn fault_and_deadline(side: Side) {
    let m = web_mesh(side).await;
    let (status, code) = match side {
        Side::Weft => ("RESOURCE_EXHAUSTED", "8"),
        Side::Envoy => ("UNAVAILABLE", "14"),
    };
    m.mesh.write(
        "fault.yaml",
        &fault_yaml(
            "chaos",
            &format!(
                "  targetRef: {{kind: GrpcRoute, name: greeter}}\n  match: {{method: {{method: Unary}}}}\n  \
                 abort: {{grpcStatus: {status}, message: slow down}}\n"
            ),
        ),
    );
    blocking(|| {
        m.wait_web_routes("the fault on the web routes", |routes| {
            routes.contains("+fault:default/chaos")
        });
    });
    let hello = EchoRequest {
        message: "hi".into(),
        ..Default::default()
    };
    let request = web_request(
        "/weft.test.Echo/Unary",
        "application/grpc-web+proto",
        &hello,
        &[],
    );
    let (head, chunks) = http1(m.web, request).await;
    assert_eq!(head.status, local_reply_status(side, 503), "{head:?}");
    let answer = parse_web(&joined(&chunks));
    assert!(answer.messages.is_empty(), "{answer:?}");
    assert_eq!(
        answer.status(&head, "grpc-status").as_deref(),
        Some(code),
        "{answer:?} {head:?}"
    );
    assert_eq!(
        answer.status(&head, "grpc-message").as_deref(),
        Some("slow down"),
        "{answer:?}"
    );

    // A deadline the browser sets (grpc-timeout) that the backend's delay outlasts.
    let slow = EchoRequest {
        message: "slow".into(),
        count: 1,
        delay_ms: 2000,
        ..Default::default()
    };
    let started = Instant::now();
    let request = web_request(
        "/weft.test.Echo/ServerStream",
        "application/grpc-web-text",
        &slow,
        &[("grpc-timeout", "300m")],
    );
    let (head, chunks) = http1(m.web, request).await;
    let answer = parse_web(&text_body(&chunks));
    let status = answer.status(&head, "grpc-status");
    let message = answer.status(&head, "grpc-message");
    // Envoy forwards `grpc-timeout` as it came, so the backend (tonic) runs the same
    // deadline and may end the call first, with CANCELLED "Timeout expired" (seen in CI on
    // a busy machine). weft-proxy always answers DEADLINE_EXCEEDED itself.
    let backend_first = side == Side::Envoy
        && status.as_deref() == Some("1")
        && message.as_deref() == Some("Timeout%20expired");
    assert!(
        status.as_deref() == Some("4") || backend_first,
        "{answer:?} {head:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weft_proxy_answers_preflights_and_refuses_other_origins() {
    preflights(Side::Weft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_answers_preflights_and_withholds_cors_from_other_origins() {
    preflights(Side::Envoy).await;
}

async fn preflights(side: Side) {
    let m = web_mesh(side).await;
    let preflight = |origin: &str| {
        http::Request::builder()
            .method("OPTIONS")
            .uri("/weft.test.Echo/Unary")
            .header("host", "app.test:8000")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-grpc-web")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let (head, _) = http1(m.web, preflight(ORIGIN)).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["access-control-allow-origin"], ORIGIN);
    assert_eq!(head.headers["access-control-allow-methods"], "POST");
    let allowed = head.headers["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(
        allowed.contains("x-grpc-web") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert_eq!(head.headers["access-control-max-age"], "300");

    let (head, body) = http1(m.web, preflight("https://evil.example")).await;
    assert!(!head.headers.contains_key("access-control-allow-origin"));
    if side == Side::Envoy {
        return;
    }
    assert_eq!(head.status, 403);
    let reason = String::from_utf8(joined(&body)).unwrap();
    assert!(reason.contains("https://evil.example"), "{reason}");

    // A call from that origin never reaches a backend either.
    let hello = EchoRequest::default();
    let request = web_request(
        "/weft.test.Echo/Unary",
        "application/grpc-web",
        &hello,
        &[("origin", "https://evil.example")],
    );
    let (head, _) = http1(m.web, request).await;
    assert_eq!(head.status, 403);
}
