//! The attempt machine: after each attempt of an outbound call, whether to try again and
//! after how long, or to finish. Plain synchronous logic; `outbound` does the I/O and feeds
//! it what each attempt came to.
//!
//! A call is tried again only when
//! - the request provably never reached the app — the connection failed, the stream was
//!   refused (REFUSED_STREAM, or a GOAWAY below it), or the connection closed before the
//!   request was sent — and the policy retries such attempts (`retry_on` `connect-failure`
//!   or `refused-stream`, which the controller sets with every retry policy); or
//! - the app answered (Trailers-Only) with a code the policy names.
//!
//! A stream reset after the request was sent, or a per-try timeout, may have run the call:
//! it is never tried again, whatever the policy says, so a non-idempotent call never runs
//! twice. Every retry also needs attempts left, a request body that can be replayed, room in
//! the retry budget (asked last, so a retry that cannot happen spends nothing), and time
//! for its backoff before the overall deadline.

use std::time::Duration;

use super::retry;
use crate::config::RetryPolicy;

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No byte of the request reached the app.
    NotSent,
    /// The stream or its connection broke after the request was sent: the app may have run it.
    BrokenAfterSend,
    /// The per-try timeout elapsed: the app may be running it.
    PerTryTimeout,
    /// An answer without a body: this gRPC status code (Trailers-Only, or an HTTP error
    /// mapped to its code). Answers with a body are passed on, never retried.
    Answered(u32),
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after this pause.
    RetryAfter(Duration),
    /// Stop: pass the last answer on, or fail with the last attempt's error.
    Finish,
    /// A retry was due, but its backoff would outlast the overall deadline: wait this long
    /// (until the deadline) and fail with DEADLINE_EXCEEDED.
    DeadlineFirst(Duration),
}

/// The attempts of one call under its route's retry policy (`None`: one attempt only).
#[derive(Debug)]
pub struct Attempts<'p> {
    policy: Option<&'p RetryPolicy>,
    /// The attempt in progress, 1-based.
    current: u32,
}

impl<'p> Attempts<'p> {
    pub fn new(policy: Option<&'p RetryPolicy>) -> Self {
        Self { policy, current: 1 }
    }

    /// The attempt in progress (1 = the first try).
    pub fn current(&self) -> u32 {
        self.current
    }

    /// Decides after the current attempt ended with `outcome`. `can_replay`: the request
    /// body can be sent again; `budget`: takes a retry from the retry budget (asked only
    /// when everything else allows a retry); `draw`: uniform `0..1` for the backoff's
    /// jitter; `time_left`: until the overall deadline, if there is one.
    pub fn after(
        &mut self,
        outcome: Outcome,
        can_replay: bool,
        budget: impl FnOnce() -> bool,
        draw: impl FnMut() -> f64,
        time_left: Option<Duration>,
    ) -> Verdict {
        let Some(policy) = self.policy else {
            return Verdict::Finish;
        };
        let allowed = match outcome {
            Outcome::NotSent => policy.not_sent && self.current <= policy.retries,
            Outcome::Answered(code) => retry::should_retry(policy, self.current, code),
            Outcome::BrokenAfterSend | Outcome::PerTryTimeout => false,
        };
        if !allowed || !can_replay || !budget() {
            return Verdict::Finish;
        }
        let pause = retry::backoff(policy, self.current, draw);
        self.current += 1;
        match time_left {
            Some(left) if left <= pause => Verdict::DeadlineFirst(left),
            _ => Verdict::RetryAfter(pause),
        }
    }
}

#[cfg(test)]
#[path = "attempt_tests.rs"]
mod tests;
