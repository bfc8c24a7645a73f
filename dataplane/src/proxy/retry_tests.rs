//! Tests for retry decisions, backoff, the retry budget and replayable bodies.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::*;
use crate::proxy::body::boxed;

fn policy(retries: u32, codes: &[u32]) -> RetryPolicy {
    RetryPolicy {
        codes: codes.iter().copied().collect::<BTreeSet<_>>(),
        not_sent: true,
        retries,
        per_try_timeout: None,
        backoff: Duration::from_millis(25),
    }
}

#[test]
fn retries_listed_codes_until_attempts_run_out() {
    let policy = policy(2, &[code::UNAVAILABLE, code::RESOURCE_EXHAUSTED]);
    assert!(should_retry(&policy, 1, code::UNAVAILABLE));
    assert!(should_retry(&policy, 2, code::RESOURCE_EXHAUSTED));
    assert!(
        !should_retry(&policy, 3, code::UNAVAILABLE),
        "2 retries = 3 attempts"
    );
    assert!(!should_retry(&policy, 1, code::INTERNAL));
    assert!(!should_retry(&policy, 1, code::OK));
}

#[test]
fn no_retries_means_none() {
    assert!(!should_retry(
        &policy(0, &[code::UNAVAILABLE]),
        1,
        code::UNAVAILABLE
    ));
}

#[test]
fn ok_is_never_retried_even_if_listed() {
    assert!(!should_retry(&policy(3, &[code::OK]), 1, code::OK));
}

#[test]
fn backoff_grows_exponentially_with_full_jitter_up_to_ten_times() {
    let policy = policy(10, &[]);
    let ms = Duration::from_millis;
    // The top of the jitter range: 25, 50, 100, 200 ms, then capped at 250 ms.
    let expected = [25, 50, 100, 200, 250, 250, 250];
    for (retry, top) in (1..).zip(expected) {
        let at_top = backoff(&policy, retry, || 1.0);
        assert_eq!(at_top, ms(top), "retry {retry}");
        assert_eq!(backoff(&policy, retry, || 0.0), Duration::ZERO);
        let half = backoff(&policy, retry, || 0.5);
        assert_eq!(half, ms(top) / 2, "retry {retry}");
    }
    assert_eq!(
        backoff(&policy, 0, || 1.0),
        ms(25),
        "retry 0 is treated as the first"
    );
    assert_eq!(backoff(&policy, u32::MAX, || 1.0), ms(250));
}

#[test]
fn backoff_tolerates_odd_draws_and_huge_bases() {
    let mut policy = policy(1, &[]);
    assert_eq!(backoff(&policy, 1, || f64::NAN), Duration::ZERO);
    assert_eq!(backoff(&policy, 1, || -3.0), Duration::ZERO);
    assert_eq!(backoff(&policy, 1, || 7.0), policy.backoff);
    policy.backoff = Duration::MAX;
    assert!(backoff(&policy, 5, || 1.0) <= Duration::MAX);
    let rng = fastrand::Rng::with_seed(1);
    let mut rng = rng;
    policy.backoff = Duration::from_millis(10);
    for retry in 1..8 {
        let pause = backoff(&policy, retry, || rng.f64());
        assert!(pause <= Duration::from_millis(100), "{pause:?}");
    }
}

#[test]
fn budget_allows_the_reserve_without_traffic() {
    let budget = RetryBudget::new(0.2, 10, Duration::from_secs(1));
    let now = Instant::now();
    let granted = (0..100).filter(|_| budget.try_withdraw_at(now)).count();
    assert_eq!(granted, 10, "10/s over a 1 s window");
}

#[test]
fn budget_adds_a_ratio_of_requests() {
    let budget = RetryBudget::new(0.2, 0, Duration::from_secs(10));
    let now = Instant::now();
    assert!(!budget.try_withdraw_at(now), "no reserve, no requests");
    for _ in 0..50 {
        budget.on_request_at(now);
    }
    let granted = (0..100).filter(|_| budget.try_withdraw_at(now)).count();
    assert_eq!(granted, 10, "20% of 50");
    budget.on_request_at(now);
    assert!(!budget.try_withdraw_at(now), "51 × 0.2 = 10.2: still 10");
    for _ in 0..4 {
        budget.on_request_at(now);
    }
    assert!(budget.try_withdraw_at(now), "55 × 0.2 = 11");
}

#[test]
fn budget_refills_as_the_window_slides() {
    let window = Duration::from_secs(10);
    let budget = RetryBudget::new(0.5, 1, window);
    let t0 = Instant::now();
    for _ in 0..20 {
        budget.on_request_at(t0);
    }
    // 10 s × 1/s reserve + 50% of 20.
    let granted = (0..100).filter(|_| budget.try_withdraw_at(t0)).count();
    assert_eq!(granted, 20);
    // Half a window later the same requests and retries still count.
    let later = t0 + window / 2;
    assert!(!budget.try_withdraw_at(later));
    // A full window later they have expired and only the reserve is back.
    let expired = t0 + window + window / 10;
    let granted = (0..100).filter(|_| budget.try_withdraw_at(expired)).count();
    assert_eq!(granted, 10);
}

#[test]
fn budget_with_a_real_clock() {
    let budget = RetryBudget::new(0.0, 1000, Duration::from_millis(10));
    let granted = (0..100).filter(|_| budget.try_withdraw()).count();
    assert_eq!(granted, 10, "1000/s over 10 ms");
    std::thread::sleep(Duration::from_millis(25));
    budget.on_request();
    assert!(budget.try_withdraw(), "refilled once the window passed");
    assert!(RetryBudget::default().try_withdraw());
}

type Sender = mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

/// A request body fed frame by frame from the test.
fn channel_body() -> (Sender, ProxyBody) {
    let (tx, rx) = mpsc::channel(8);
    (tx, boxed(StreamBody::new(ReceiverStream::new(rx))))
}

fn data(text: &'static str) -> Result<Frame<Bytes>, BoxError> {
    Ok(Frame::data(Bytes::from_static(text.as_bytes())))
}

fn trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    trailers
}

async fn next_data(body: &mut ReplayBody) -> Bytes {
    let frame = body.frame().await.unwrap().unwrap();
    frame.into_data().unwrap()
}

#[tokio::test]
async fn frames_stream_through_before_the_body_ends() {
    let (tx, source) = channel_body();
    let (mut first, _handle) = replayable(source, 1024);
    tx.send(data("ping")).await.unwrap();
    assert_eq!(next_data(&mut first).await, "ping");
    tx.send(data("pong")).await.unwrap();
    assert_eq!(next_data(&mut first).await, "pong");
    assert!(!first.is_end_stream());
    drop(tx);
    assert!(first.frame().await.is_none());
}

#[tokio::test]
async fn a_retry_replays_frames_and_trailers() {
    let (tx, source) = channel_body();
    let (first, handle) = replayable(source, 1024);
    tx.send(data("one")).await.unwrap();
    tx.send(data("two")).await.unwrap();
    tx.send(Ok(Frame::trailers(trailers()))).await.unwrap();
    drop(tx);
    let collected = first.collect().await.unwrap();
    assert_eq!(collected.trailers(), Some(&trailers()));
    assert_eq!(collected.to_bytes(), "onetwo");

    for _ in 0..2 {
        let retry = handle.retry_body().unwrap();
        let collected = retry.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers()));
        assert_eq!(collected.to_bytes(), "onetwo");
    }
}

#[tokio::test]
async fn a_retry_replays_then_continues_from_the_source() {
    let (tx, source) = channel_body();
    let (mut first, handle) = replayable(source, 1024);
    tx.send(data("a")).await.unwrap();
    assert_eq!(next_data(&mut first).await, "a");

    // The first attempt failed while the client was still streaming.
    let mut second = handle.retry_body().unwrap();
    assert_eq!(next_data(&mut second).await, "a");
    tx.send(data("b")).await.unwrap();
    assert_eq!(next_data(&mut second).await, "b");

    // The abandoned first attempt fails rather than stealing frames or ending cleanly.
    let err = first.frame().await.unwrap().unwrap_err();
    assert!(err.is::<Superseded>());
    assert!(!first.is_end_stream());

    // Frames the second attempt read are replayed to a third.
    let mut third = handle.retry_body().unwrap();
    assert_eq!(next_data(&mut third).await, "a");
    assert_eq!(next_data(&mut third).await, "b");
    drop(tx);
    assert!(third.frame().await.is_none());
    assert!(third.is_end_stream());
    assert!(second.frame().await.unwrap().is_err());
}

#[tokio::test]
async fn an_abandoned_attempt_waiting_on_the_source_is_woken() {
    let (tx, source) = channel_body();
    let (mut first, handle) = replayable(source, 1024);
    let waiting = tokio::spawn(async move { first.frame().await.map(|f| f.is_err()) });
    tokio::task::yield_now().await;
    let mut second = handle.retry_body().unwrap();
    assert_eq!(waiting.await.unwrap(), Some(true), "woken with Superseded");
    tx.send(data("late")).await.unwrap();
    assert_eq!(next_data(&mut second).await, "late");
}

#[tokio::test]
async fn an_overflowing_body_cannot_be_retried_but_still_streams() {
    let (tx, source) = channel_body();
    let (mut first, handle) = replayable(source, 8);
    tx.send(data("12345")).await.unwrap();
    assert_eq!(next_data(&mut first).await, "12345");
    assert!(handle.retry_body().is_some(), "5 bytes fit");
    // The retry body is now the reader; keep going with it.
    let mut current = handle.retry_body().unwrap();
    assert_eq!(next_data(&mut current).await, "12345");
    tx.send(data("6789")).await.unwrap();
    assert_eq!(next_data(&mut current).await, "6789");
    assert!(handle.retry_body().is_none(), "9 bytes > 8");
    tx.send(data("more")).await.unwrap();
    assert_eq!(next_data(&mut current).await, "more");
    drop(tx);
    assert!(current.frame().await.is_none());
}

#[tokio::test]
async fn exactly_the_limit_is_still_replayable() {
    let source = boxed(http_body_util::Full::new(Bytes::from_static(b"12345678")));
    let (first, handle) = replayable(source, 8);
    assert_eq!(first.collect().await.unwrap().to_bytes(), "12345678");
    let retry = handle.retry_body().unwrap();
    assert_eq!(retry.collect().await.unwrap().to_bytes(), "12345678");
}

#[tokio::test]
async fn a_failed_source_cannot_be_retried() {
    let (tx, source) = channel_body();
    let (mut first, handle) = replayable(source, 1024);
    tx.send(Err("client reset".into())).await.unwrap();
    assert!(first.frame().await.unwrap().is_err());
    assert!(handle.retry_body().is_none());
}

#[tokio::test]
async fn an_empty_body_replays_as_empty() {
    let (first, handle) = replayable(crate::proxy::body::empty(), 16);
    assert!(first.is_end_stream());
    assert!(first.collect().await.unwrap().to_bytes().is_empty());
    let retry = handle.retry_body().unwrap();
    assert!(retry.is_end_stream());
    let collected = retry.collect().await.unwrap();
    assert!(collected.trailers().is_none());
    assert!(collected.to_bytes().is_empty());
}

#[tokio::test]
async fn recording_stops_once_no_retry_can_follow() {
    let (tx, source) = channel_body();
    let (mut first, handle) = replayable(source, 1024);
    tx.send(data("kept")).await.unwrap();
    assert_eq!(next_data(&mut first).await, "kept");
    let mut second = handle.retry_body().unwrap();
    drop(handle);
    // The attempt still replays what was recorded, then streams on without recording.
    assert_eq!(next_data(&mut second).await, "kept");
    tx.send(data("streamed")).await.unwrap();
    assert_eq!(next_data(&mut second).await, "streamed");
    assert_eq!(lock(&second.shared).frames.len(), 1);
    assert!(first.frame().await.unwrap().is_err());
}
