//! Tests for the message-counting body.

use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::*;
use crate::proxy::body::{ProxyBody, boxed};

/// gRPC messages with the given payload lengths, back to back.
fn messages(lengths: &[usize]) -> Bytes {
    let mut out = BytesMut::new();
    for &len in lengths {
        out.put_u8(0);
        out.put_u32(len as u32);
        out.put_bytes(b'x', len);
    }
    out.freeze()
}

/// A body that yields `chunks` as DATA frames, then `trailers` if any.
fn body_of(chunks: Vec<Bytes>, trailers: Option<HeaderMap>) -> ProxyBody {
    let mut frames: Vec<Result<Frame<Bytes>, BoxError>> =
        chunks.into_iter().map(|c| Ok(Frame::data(c))).collect();
    frames.extend(trailers.map(|t| Ok(Frame::trailers(t))));
    boxed(StreamBody::new(futures::stream::iter(frames)))
}

fn status_trailers(status: &'static str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    trailers
}

/// Records every report the body makes.
fn recorder() -> (
    Arc<Mutex<Vec<StreamEnd>>>,
    impl FnOnce(StreamEnd) + Send + 'static,
) {
    let ends = Arc::new(Mutex::new(Vec::new()));
    let sink = ends.clone();
    (ends, move |end| sink.lock().unwrap().push(end))
}

async fn count(chunks: Vec<Bytes>, trailers: Option<HeaderMap>) -> Vec<StreamEnd> {
    let (ends, on_end) = recorder();
    let body = CountingBody::new(body_of(chunks, trailers), on_end);
    body.collect().await.unwrap();
    ends.lock().unwrap().clone()
}

#[tokio::test]
async fn one_message_per_frame() {
    let chunks = vec![messages(&[3]), messages(&[0]), messages(&[100])];
    let ends = count(chunks, Some(status_trailers("0"))).await;
    let expected = StreamEnd {
        messages: 3,
        grpc_status: Some(0),
        error: false,
    };
    assert_eq!(ends, [expected]);
}

#[tokio::test]
async fn several_messages_share_one_frame() {
    let chunks = vec![messages(&[1, 0, 70_000, 2])];
    let ends = count(chunks, Some(status_trailers("14"))).await;
    assert_eq!(ends[0].messages, 4);
    assert_eq!(ends[0].grpc_status, Some(14));
}

#[tokio::test]
async fn messages_straddle_frames_at_every_split() {
    let all = messages(&[2, 300, 0, 7]);
    // Split the stream at every offset, including inside the 5-byte prefixes.
    for at in 0..=all.len() {
        let chunks = vec![all.slice(..at), all.slice(at..)];
        let ends = count(chunks, None).await;
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].messages, 4, "split at {at}");
        assert_eq!(ends[0].grpc_status, None);
        assert!(!ends[0].error);
    }
    // One byte per frame.
    let bytes: Vec<Bytes> = (0..all.len()).map(|i| all.slice(i..=i)).collect();
    assert_eq!(count(bytes, None).await[0].messages, 4);
}

#[tokio::test]
async fn a_truncated_message_is_not_counted() {
    let all = messages(&[10, 10]);
    let ends = count(vec![all.slice(..all.len() - 1)], None).await;
    assert_eq!(ends[0].messages, 1);
}

#[tokio::test]
async fn data_passes_through_unchanged() {
    let payload = messages(&[5, 6]);
    let (_ends, on_end) = recorder();
    let body = CountingBody::new(body_of(vec![payload.clone()], None), on_end);
    assert_eq!(body.collect().await.unwrap().to_bytes(), payload);
}

#[tokio::test]
async fn an_error_reports_once() {
    let (ends, on_end) = recorder();
    let frames: Vec<Result<Frame<Bytes>, BoxError>> =
        vec![Ok(Frame::data(messages(&[1]))), Err("reset".into())];
    let mut body = CountingBody::new(
        boxed(StreamBody::new(futures::stream::iter(frames))),
        on_end,
    );
    assert!(body.frame().await.unwrap().is_ok());
    assert!(body.frame().await.unwrap().is_err());
    drop(body);
    let expected = StreamEnd {
        messages: 1,
        grpc_status: None,
        error: true,
    };
    assert_eq!(*ends.lock().unwrap(), [expected]);
}

#[tokio::test]
async fn a_body_dropped_midway_reports_an_error_once() {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    let (ends, on_end) = recorder();
    let mut body = CountingBody::new(boxed(StreamBody::new(ReceiverStream::new(rx))), on_end);
    tx.send(Ok(Frame::data(messages(&[4, 4])))).await.unwrap();
    body.frame().await.unwrap().unwrap();
    assert!(
        ends.lock().unwrap().is_empty(),
        "nothing reported mid-stream"
    );
    drop(body);
    let expected = StreamEnd {
        messages: 2,
        grpc_status: None,
        error: true,
    };
    assert_eq!(*ends.lock().unwrap(), [expected]);
}

#[tokio::test]
async fn the_end_reports_once_even_when_dropped_afterwards() {
    let (ends, on_end) = recorder();
    let mut body = CountingBody::new(
        body_of(vec![messages(&[1])], Some(status_trailers("0"))),
        on_end,
    );
    while body.frame().await.is_some() {}
    assert!(body.frame().await.is_none());
    drop(body);
    assert_eq!(ends.lock().unwrap().len(), 1);
    assert_eq!(ends.lock().unwrap()[0].grpc_status, Some(0));
}

#[tokio::test]
async fn an_empty_body_dropped_unpolled_ended_cleanly() {
    // A Trailers-Only response: the server never polls its (empty) body.
    let (ends, on_end) = recorder();
    let body = CountingBody::new(crate::proxy::body::empty(), on_end);
    assert!(body.is_end_stream());
    drop(body);
    assert_eq!(*ends.lock().unwrap(), [StreamEnd::default()]);
}

#[tokio::test]
async fn the_end_is_reported_when_the_last_data_frame_ends_the_stream() {
    // hyper stops polling once `is_end_stream` turns true after a DATA frame.
    let (ends, on_end) = recorder();
    let full = boxed(http_body_util::Full::new(messages(&[3])));
    let mut body = CountingBody::new(full, on_end);
    body.frame().await.unwrap().unwrap();
    assert!(body.is_end_stream());
    assert_eq!(ends.lock().unwrap().len(), 1);
    drop(body);
    let end = ends.lock().unwrap()[0];
    assert_eq!((end.messages, end.error), (1, false));
}

#[test]
fn a_named_counting_body_boxes_its_callback() {
    let on_end: OnEnd = Box::new(|_| {});
    let body: CountingBody<ProxyBody> = CountingBody::new(crate::proxy::body::empty(), on_end);
    drop(body);
}

proptest::proptest! {
    /// However messages are cut into DATA frames, each is counted exactly once.
    #[test]
    fn every_message_is_counted_once_however_the_stream_is_cut(
        lengths in proptest::collection::vec(0usize..300, 0..20),
        cuts in proptest::collection::vec(0usize..6_000, 0..30),
    ) {
        let stream = messages(&lengths);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut counter = MessageCounter::default();
        let mut at = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            counter.feed(&stream[at..cut]);
            at = cut;
        }
        proptest::prop_assert_eq!(counter.messages, lengths.len() as u64);
    }
}
