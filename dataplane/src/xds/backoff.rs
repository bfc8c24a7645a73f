//! Reconnect delays: exponential backoff with full jitter (a uniformly random delay between
//! zero and `min(cap, base * 2^attempt)`), reset once a stream has received a response, so
//! many proxies losing the same controller do not reconnect in lockstep.

use std::time::Duration;

/// The first delay's upper bound.
pub const BASE: Duration = Duration::from_millis(100);
/// No delay is longer than this.
pub const CAP: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BASE, CAP, fastrand::Rng::new())
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, rng: fastrand::Rng) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
            rng,
        }
    }

    /// The upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next attempt; each call raises the bound for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1).min(31);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.u64(0..=nanos))
    }

    /// Back to the first delay (after a stream received a response).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(BASE, CAP, fastrand::Rng::with_seed(7));
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(backoff.ceiling().as_millis());
            backoff.next_delay();
        }
        assert_eq!(
            ceilings,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]
        );
        for _ in 0..100 {
            backoff.next_delay();
        }
        assert_eq!(backoff.ceiling(), CAP);
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let mut backoff = Backoff::new(BASE, CAP, fastrand::Rng::with_seed(1));
        let mut delays = Vec::new();
        for _ in 0..200 {
            let ceiling = backoff.ceiling();
            let delay = backoff.next_delay();
            assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
            delays.push(delay);
        }
        // Full jitter: the capped delays are spread over [0, cap], not all at the cap.
        let capped = &delays[10..];
        assert!(capped.iter().any(|d| *d < CAP / 2));
        assert!(capped.iter().any(|d| *d > CAP / 2));
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(BASE, CAP, fastrand::Rng::with_seed(3));
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.ceiling(), BASE);
        assert!(backoff.next_delay() <= BASE);
    }
}
