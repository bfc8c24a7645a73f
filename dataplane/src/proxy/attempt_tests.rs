//! Every case of the attempt machine: what each outcome leads to under a policy, and the
//! limits on retrying (attempts, replay, budget, deadline).

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::proxy::grpc::code;

fn policy(retries: u32, codes: &[u32]) -> RetryPolicy {
    RetryPolicy {
        codes: codes.iter().copied().collect::<BTreeSet<_>>(),
        not_sent: true,
        retries,
        per_try_timeout: Some(Duration::from_millis(100)),
        backoff: Duration::from_millis(20),
    }
}

/// Decides with a replayable body, an open budget, jitter 0.5 and no deadline.
fn decide(attempts: &mut Attempts<'_>, outcome: Outcome) -> Verdict {
    attempts.after(outcome, true, || true, || 0.5, None)
}

const HALF_BACKOFF: Verdict = Verdict::RetryAfter(Duration::from_millis(10));

#[test]
fn without_a_policy_every_outcome_finishes() {
    let mut attempts = Attempts::new(None);
    for outcome in [
        Outcome::NotSent,
        Outcome::BrokenAfterSend,
        Outcome::PerTryTimeout,
        Outcome::Answered(code::UNAVAILABLE),
    ] {
        assert_eq!(
            decide(&mut attempts, outcome),
            Verdict::Finish,
            "{outcome:?}"
        );
    }
    assert_eq!(attempts.current(), 1);
}

#[test]
fn a_request_that_never_left_is_retried_when_the_policy_retries_unsent_requests() {
    let internal_only = policy(2, &[code::INTERNAL]);
    let mut attempts = Attempts::new(Some(&internal_only));
    assert_eq!(
        decide(&mut attempts, Outcome::NotSent),
        HALF_BACKOFF,
        "whatever the codes"
    );
    assert_eq!(attempts.current(), 2);
    let codes_only = RetryPolicy {
        not_sent: false,
        ..policy(2, &[code::UNAVAILABLE])
    };
    let mut attempts = Attempts::new(Some(&codes_only));
    assert_eq!(decide(&mut attempts, Outcome::NotSent), Verdict::Finish);
    let no_retries = policy(0, &[code::UNAVAILABLE]);
    let mut attempts = Attempts::new(Some(&no_retries));
    assert_eq!(decide(&mut attempts, Outcome::NotSent), Verdict::Finish);
}

#[test]
fn a_request_that_may_have_run_is_never_retried() {
    let everything = policy(
        5,
        &[code::UNAVAILABLE, code::DEADLINE_EXCEEDED, code::INTERNAL],
    );
    for outcome in [Outcome::BrokenAfterSend, Outcome::PerTryTimeout] {
        let mut attempts = Attempts::new(Some(&everything));
        assert_eq!(
            decide(&mut attempts, outcome),
            Verdict::Finish,
            "{outcome:?}"
        );
        assert_eq!(attempts.current(), 1);
    }
}

#[test]
fn answers_are_retried_when_the_policy_names_their_code() {
    let policy = policy(3, &[code::UNAVAILABLE, code::RESOURCE_EXHAUSTED]);
    let mut attempts = Attempts::new(Some(&policy));
    assert_eq!(
        decide(&mut attempts, Outcome::Answered(code::RESOURCE_EXHAUSTED)),
        HALF_BACKOFF
    );
    assert_eq!(
        decide(&mut attempts, Outcome::Answered(code::INTERNAL)),
        Verdict::Finish
    );
    assert_eq!(
        decide(&mut attempts, Outcome::Answered(code::OK)),
        Verdict::Finish
    );
}

#[test]
fn retries_stop_when_attempts_run_out_and_backoff_grows() {
    let policy = policy(2, &[code::UNAVAILABLE]);
    let mut attempts = Attempts::new(Some(&policy));
    let unavailable = Outcome::Answered(code::UNAVAILABLE);
    assert_eq!(decide(&mut attempts, unavailable), HALF_BACKOFF);
    assert_eq!(
        decide(&mut attempts, unavailable),
        Verdict::RetryAfter(Duration::from_millis(20)),
        "the second retry's ceiling doubles"
    );
    assert_eq!(
        decide(&mut attempts, unavailable),
        Verdict::Finish,
        "2 retries = 3 attempts"
    );
    assert_eq!(attempts.current(), 3);
}

#[test]
fn a_body_that_cannot_be_replayed_stops_retries_without_spending_budget() {
    let policy = policy(2, &[code::UNAVAILABLE]);
    let mut attempts = Attempts::new(Some(&policy));
    let mut asked = false;
    let verdict = attempts.after(
        Outcome::NotSent,
        false,
        || {
            asked = true;
            true
        },
        || 0.5,
        None,
    );
    assert_eq!(verdict, Verdict::Finish);
    assert!(
        !asked,
        "the budget was asked for a retry that could not happen"
    );
}

#[test]
fn an_empty_budget_stops_retries() {
    let policy = policy(2, &[code::UNAVAILABLE]);
    let mut attempts = Attempts::new(Some(&policy));
    let verdict = attempts.after(Outcome::NotSent, true, || false, || 0.5, None);
    assert_eq!(verdict, Verdict::Finish);
}

#[test]
fn a_backoff_past_the_deadline_waits_for_it_instead() {
    let policy = policy(2, &[code::UNAVAILABLE]);
    let mut attempts = Attempts::new(Some(&policy));
    let left = Duration::from_millis(4);
    let verdict = attempts.after(Outcome::NotSent, true, || true, || 0.5, Some(left));
    assert_eq!(verdict, Verdict::DeadlineFirst(left));
    let mut attempts = Attempts::new(Some(&policy));
    let plenty = Some(Duration::from_secs(1));
    assert_eq!(
        attempts.after(Outcome::NotSent, true, || true, || 0.5, plenty),
        HALF_BACKOFF
    );
}
