use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use super::*;
use crate::proxy::body::{BoxError, ProxyBody, boxed};
use crate::proxy::grpc;

fn headers(content_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("value"),
    );
    headers
}

fn body_of(frames: Vec<Frame<Bytes>>) -> ProxyBody {
    let stream = futures::stream::iter(frames.into_iter().map(Ok::<_, BoxError>));
    boxed(StreamBody::new(stream))
}

fn trailers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map
}

/// Every data frame of `body`, in order; panics on an HTTP trailers frame (gRPC-Web sends
/// none).
async fn data_frames(mut body: ProxyBody) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("body error");
        out.push(
            frame
                .into_data()
                .expect("only data frames in a gRPC-Web body"),
        );
    }
    out
}

fn message(payload: &[u8]) -> Bytes {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(payload);
    Bytes::from(framed)
}

#[test]
fn content_types_name_the_encoding_and_keep_the_format() {
    let cases = [
        ("application/grpc-web", Some((Encoding::Binary, ""))),
        (
            "application/grpc-web+proto",
            Some((Encoding::Binary, "+proto")),
        ),
        ("Application/GRPC-Web-Text", Some((Encoding::Text, ""))),
        (
            "application/grpc-web-text+proto",
            Some((Encoding::Text, "+proto")),
        ),
        (
            "application/grpc-web+proto; charset=utf-8",
            Some((Encoding::Binary, "+proto")),
        ),
        ("application/grpc", None),
        ("application/grpc-webby", None),
        ("text/plain", None),
    ];
    for (content_type, expected) in cases {
        let call = WebCall::of(&headers(content_type));
        let got = call.as_ref().map(|c| (c.encoding, c.suffix.as_str()));
        assert_eq!(got, expected, "{content_type}");
    }
}

#[tokio::test]
async fn a_text_request_reaches_upstream_as_grpc_over_http2_with_its_body_decoded() {
    let call = WebCall::of(&headers("application/grpc-web-text+proto")).expect("gRPC-Web");
    let encoded = text::encode(&message(b"hello"));
    let (first, second) = encoded.split_at(3);
    let mut request = Request::new(body_of(vec![
        Frame::data(Bytes::copy_from_slice(first)),
        Frame::data(Bytes::copy_from_slice(second)),
    ]));
    *request.version_mut() = Version::HTTP_11;
    request
        .headers_mut()
        .extend(headers("application/grpc-web-text+proto"));
    request
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(encoded.len()));

    let grpc_request = request_to_grpc(&call, request);
    assert_eq!(grpc_request.version(), Version::HTTP_2);
    assert_eq!(
        grpc_request.headers()[CONTENT_TYPE],
        "application/grpc+proto"
    );
    assert_eq!(grpc_request.headers()[TE], "trailers");
    assert!(!grpc_request.headers().contains_key(CONTENT_LENGTH));
    let body = grpc_request.into_body().collect().await.expect("body");
    assert_eq!(body.to_bytes(), message(b"hello"));
}

#[tokio::test]
async fn a_response_streams_its_messages_then_its_trailers_as_the_trailer_frame() {
    let call = WebCall::of(&headers("application/grpc-web+proto")).expect("gRPC-Web");
    let mut response = Response::new(body_of(vec![
        Frame::data(message(b"one")),
        Frame::data(message(b"two")),
        Frame::trailers(trailers(&[("grpc-status", "0"), ("x-custom", "kept")])),
    ]));
    response
        .headers_mut()
        .extend(headers("application/grpc+proto"));

    let web = response_to_web(&call, response);
    assert_eq!(web.headers()[CONTENT_TYPE], "application/grpc-web+proto");
    let frames = data_frames(web.into_body()).await;
    let mut trailer = vec![0x80, 0, 0, 0, 32];
    trailer.extend_from_slice(b"grpc-status: 0\r\nx-custom: kept\r\n");
    assert_eq!(
        frames,
        [message(b"one"), message(b"two"), Bytes::from(trailer)]
    );
}

#[tokio::test]
async fn a_proxy_answer_reaches_the_browser_with_its_exact_status_and_message() {
    let call = WebCall::of(&headers("application/grpc-web-text")).expect("gRPC-Web");
    let answer = grpc::trailers_only(grpc::code::UNAVAILABLE, "fault injected: 100% café");

    let web = response_to_web(&call, answer);
    assert_eq!(web.headers()[CONTENT_TYPE], "application/grpc-web-text");
    assert!(
        !web.headers().contains_key("grpc-status"),
        "status moves to the body"
    );
    let frames = data_frames(web.into_body()).await;
    assert_eq!(frames.len(), 1, "one trailer frame: {frames:?}");
    let mut decoder = text::TextDecoder::default();
    let frame = decoder.decode(&frames[0]).expect("base64");
    let block = String::from_utf8_lossy(&frame[5..]).into_owned();
    assert_eq!(frame[0], 0x80);
    assert_eq!(
        block,
        "grpc-status: 14\r\ngrpc-message: fault injected: 100%25 caf%C3%A9\r\n"
    );
}

#[tokio::test]
async fn each_streamed_message_is_sent_before_the_next_one_arrives() {
    let call = WebCall::of(&headers("application/grpc-web-text")).expect("gRPC-Web");
    let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<Frame<Bytes>, BoxError>>();
    let response = Response::new(boxed(StreamBody::new(receiver)));
    let mut body = response_to_web(&call, response).into_body();

    sender
        .unbounded_send(Ok(Frame::data(message(b"first"))))
        .expect("send");
    let first = body.frame().await.expect("a frame").expect("no error");
    let first = first.into_data().expect("data");
    let mut decoder = text::TextDecoder::default();
    assert_eq!(
        decoder.decode(&first).expect("base64"),
        message(b"first"),
        "whole, padded"
    );

    sender
        .unbounded_send(Ok(Frame::trailers(trailers(&[("grpc-status", "0")]))))
        .expect("send");
    drop(sender);
    let rest = data_frames(body).await;
    assert_eq!(rest.len(), 1, "then the trailer frame only");
}

#[tokio::test]
async fn a_text_request_cut_inside_a_quantum_fails_its_body() {
    let call = WebCall::of(&headers("application/grpc-web-text")).expect("gRPC-Web");
    let request = Request::new(body_of(vec![Frame::data(Bytes::from_static(b"AAAAAAU"))]));
    let err = request_to_grpc(&call, request)
        .into_body()
        .collect()
        .await
        .expect_err("truncated");
    assert!(
        err.to_string().contains("ends inside a base64 quantum"),
        "{err}"
    );
}
