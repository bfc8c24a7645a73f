//! Retries: whether a policy allows another attempt ([`should_retry`]), how long to wait
//! ([`backoff`]), a process-wide [`RetryBudget`] that keeps retries from multiplying load
//! during an outage, and a [`ReplayBody`] that lets a retry resend a request body that has
//! already streamed (in part) to the first attempt.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};

use super::body::{BoxError, ProxyBody};
use super::grpc::code;
use crate::config::RetryPolicy;

/// Whether attempt `attempt` (1 = the first try) that ended with gRPC `code` may be retried
/// under `policy` (attempts left, and a code it names). Which outcomes count as which code,
/// and which may never be retried, is the attempt machine's (`attempt`).
pub fn should_retry(policy: &RetryPolicy, attempt: u32, code: u32) -> bool {
    attempt <= policy.retries && code != code::OK && policy.codes.contains(&code)
}

/// The longest backoff, as a multiple of the policy's base backoff.
const MAX_BACKOFF_FACTOR: u32 = 10;

/// The pause before retry `retry` (1-based): full jitter, uniform in `[0, ceiling)` where
/// the ceiling grows as `backoff × 2^(retry-1)` and is capped at `10 × backoff`. `draw`
/// returns uniform values in `0..1` (values outside are clamped).
pub fn backoff(policy: &RetryPolicy, retry: u32, mut draw: impl FnMut() -> f64) -> Duration {
    let growth = 1u32
        .checked_shl(retry.saturating_sub(1))
        .map_or(MAX_BACKOFF_FACTOR, |growth| growth.min(MAX_BACKOFF_FACTOR));
    let ceiling = policy.backoff.saturating_mul(growth);
    let jitter = draw();
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    Duration::try_from_secs_f64(ceiling.as_secs_f64() * jitter)
        .map_or(ceiling, |pause| pause.min(ceiling))
}

/// How many slots the budget's window is cut into (it slides one slot at a time).
const SLOTS: usize = 10;

/// Limits retries to `ratio` of the requests seen in the last `window` plus a reserve of
/// `min_per_sec × window` (Linkerd's default: 20% + 10/s over 10 s), so a failing upstream
/// sees at most ~1.2× its normal load. Lock-free: each slot packs a 32-bit slot number and a
/// 32-bit count into one atomic, so stale slots reset themselves on first touch. Concurrent
/// withdrawals may overshoot the limit by at most the number of racing threads.
pub struct RetryBudget {
    ratio: f64,
    reserve: f64,
    slot_nanos: u128,
    start: Instant,
    requests: [AtomicU64; SLOTS],
    retries: [AtomicU64; SLOTS],
}

impl Default for RetryBudget {
    /// Linkerd's budget: 20% of requests plus 10 retries per second, over 10 seconds.
    fn default() -> Self {
        Self::new(0.2, 10, Duration::from_secs(10))
    }
}

impl RetryBudget {
    pub fn new(ratio: f64, min_per_sec: u32, window: Duration) -> Self {
        Self {
            ratio: if ratio.is_finite() {
                ratio.max(0.0)
            } else {
                0.0
            },
            reserve: f64::from(min_per_sec) * window.as_secs_f64(),
            slot_nanos: (window.as_nanos() / SLOTS as u128).max(1),
            start: Instant::now(),
            requests: Default::default(),
            retries: Default::default(),
        }
    }

    /// Counts one RPC (not one attempt) towards the budget.
    pub fn on_request(&self) {
        self.on_request_at(Instant::now());
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn try_withdraw(&self) -> bool {
        self.try_withdraw_at(Instant::now())
    }

    /// [`on_request`](Self::on_request) at a given time (for tests).
    pub fn on_request_at(&self, now: Instant) {
        let slot = self.slot(now);
        bump(&self.requests[slot as usize % SLOTS], slot);
    }

    /// [`try_withdraw`](Self::try_withdraw) at a given time (for tests).
    pub fn try_withdraw_at(&self, now: Instant) -> bool {
        let slot = self.slot(now);
        let requests = window_sum(&self.requests, slot);
        let retries = window_sum(&self.retries, slot);
        // A whole retry must fit (the epsilon absorbs float error in `ratio × requests`).
        let budget = self.reserve + self.ratio * requests as f64 + 1e-9;
        if (retries + 1) as f64 > budget {
            return false;
        }
        bump(&self.retries[slot as usize % SLOTS], slot);
        true
    }

    /// The slot number of `now`, truncated to 32 bits (wraps after 2^32 slots).
    fn slot(&self, now: Instant) -> u32 {
        (now.saturating_duration_since(self.start).as_nanos() / self.slot_nanos) as u32
    }
}

/// Adds one to a packed `slot << 32 | count` cell, restarting the count if the cell holds an
/// older slot.
fn bump(cell: &AtomicU64, slot: u32) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
        let count = if (packed >> 32) as u32 == slot {
            (packed as u32).saturating_add(1)
        } else {
            1
        };
        Some(u64::from(slot) << 32 | u64::from(count))
    });
}

/// The counts of every cell whose slot lies in the window ending at `slot`.
fn window_sum(cells: &[AtomicU64; SLOTS], slot: u32) -> u64 {
    cells
        .iter()
        .map(|cell| cell.load(Ordering::Relaxed))
        .filter(|packed| slot.wrapping_sub((packed >> 32) as u32) < SLOTS as u32)
        .map(|packed| u64::from(packed as u32))
        .sum()
}

/// The error an abandoned attempt's body ends with, so its HTTP/2 stream is reset rather than
/// ended cleanly with a truncated request.
#[derive(Debug, thiserror::Error)]
#[error("request body taken over by a retry")]
pub struct Superseded;

/// Wraps a request body so it can be sent again: frames stream through to the first attempt
/// unbuffered (a bidi ping-pong keeps working) while up to `limit` bytes are recorded (as
/// `Bytes` handles, not copies). Returns the first attempt's body and a handle for retries.
pub fn replayable(body: ProxyBody, limit: usize) -> (ReplayBody, ReplayHandle) {
    let shared = Arc::new(Mutex::new(Replay {
        source: Some(body),
        generation: 0,
        limit,
        recorded: 0,
        frames: Vec::new(),
        trailers: None,
        ended: false,
        replayable: true,
        waiting: None,
    }));
    let first = ReplayBody::new(shared.clone(), 0);
    (first, ReplayHandle { shared })
}

/// Makes the bodies of retries.
pub struct ReplayHandle {
    shared: Arc<Mutex<Replay>>,
}

impl ReplayHandle {
    /// Whether [`retry_body`](Self::retry_body) would give a body now.
    pub fn can_replay(&self) -> bool {
        lock(&self.shared).replayable
    }

    /// The body for another attempt: it replays the recorded frames, then continues from the
    /// source. From now on only this body reads the source; earlier attempts' bodies fail
    /// with [`Superseded`]. `None` when more than `limit` bytes have passed or the source
    /// failed, so the request cannot be replayed.
    pub fn retry_body(&self) -> Option<ReplayBody> {
        let (body, waiting) = {
            let mut state = lock(&self.shared);
            if !state.replayable {
                return None;
            }
            state.generation += 1;
            let body = ReplayBody::new(self.shared.clone(), state.generation);
            (body, state.waiting.take())
        };
        // Wake the abandoned attempt so it sees it was superseded and resets its stream.
        if let Some(waker) = waiting {
            waker.wake();
        }
        Some(body)
    }
}

impl Drop for ReplayHandle {
    /// No retry can follow: stop recording, so a long stream does not keep its first `limit`
    /// bytes alive (frames already recorded stay for an attempt still replaying them).
    fn drop(&mut self) {
        lock(&self.shared).replayable = false;
    }
}

/// One attempt's view of a replayable request body.
pub struct ReplayBody {
    shared: Arc<Mutex<Replay>>,
    generation: u64,
    /// Recorded frames this attempt has sent.
    sent: usize,
    /// Whether this attempt has sent the trailers (or the end).
    finished: bool,
}

/// What every attempt of one request shares.
struct Replay {
    /// `None` once it ended or failed.
    source: Option<ProxyBody>,
    /// The attempt that may read `source`.
    generation: u64,
    limit: usize,
    /// Bytes in `frames`.
    recorded: usize,
    frames: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    ended: bool,
    /// False once the body overflowed `limit` or the source failed.
    replayable: bool,
    /// The task of the attempt waiting on `source`, woken when a retry takes over.
    waiting: Option<Waker>,
}

fn lock(shared: &Mutex<Replay>) -> MutexGuard<'_, Replay> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ReplayBody {
    fn new(shared: Arc<Mutex<Replay>>, generation: u64) -> Self {
        Self {
            shared,
            generation,
            sent: 0,
            finished: false,
        }
    }
}

impl Replay {
    fn record(&mut self, data: &Bytes) {
        if !self.replayable {
            return;
        }
        self.recorded += data.len();
        if self.recorded > self.limit {
            self.give_up();
        } else {
            self.frames.push(data.clone());
        }
    }

    fn give_up(&mut self) {
        self.replayable = false;
        self.frames = Vec::new();
        self.trailers = None;
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let mut state = lock(&this.shared);
        if state.generation != this.generation {
            return Poll::Ready(Some(Err(Superseded.into())));
        }
        if let Some(data) = state.frames.get(this.sent) {
            this.sent += 1;
            return Poll::Ready(Some(Ok(Frame::data(data.clone()))));
        }
        if state.ended {
            if std::mem::replace(&mut this.finished, true) {
                return Poll::Ready(None);
            }
            return Poll::Ready(state.trailers.clone().map(|t| Ok(Frame::trailers(t))));
        }
        let Some(source) = state.source.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(source).poll_frame(cx);
        if polled.is_pending()
            && !state
                .waiting
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waiting = Some(cx.waker().clone());
        }
        match ready!(polled) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    state.record(&data);
                    this.sent = state.frames.len();
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => {
                    if let Some(trailers) = frame.trailers_ref().filter(|_| state.replayable) {
                        state.trailers = Some(trailers.clone());
                    }
                    state.ended = true;
                    state.source = None;
                    this.finished = true;
                    Poll::Ready(Some(Ok(frame)))
                }
            },
            Some(Err(err)) => {
                state.give_up();
                state.source = None;
                Poll::Ready(Some(Err(err)))
            }
            None => {
                state.ended = true;
                state.source = None;
                this.finished = true;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let state = lock(&self.shared);
        if state.generation != self.generation || self.sent < state.frames.len() {
            return false;
        }
        match &state.source {
            Some(source) => source.is_end_stream(),
            None => self.finished || (state.ended && state.trailers.is_none()),
        }
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
