//! When to renew the proxy's certificate (`renew_at`, shared with the controller's renewal
//! of Envoy's), and how long to wait after a failed renewal. Plain arithmetic; `fetch` does
//! the waiting.

use std::time::Duration;

pub use weft_common::time::renew_at;

/// The first retry after a failed renewal.
const RETRY_BASE: Duration = Duration::from_secs(1);
/// No retry waits longer: the old certificate is still in force, but its remaining life is
/// finite, and a controller that is back should be used soon.
const RETRY_CAP: Duration = Duration::from_secs(30);

/// The wait before retry `attempt` (0 for the first) of a failed renewal: 1 s, doubling up
/// to 30 s.
pub fn retry_delay(attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    RETRY_BASE.saturating_mul(factor).min(RETRY_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_one_second_to_thirty() {
        let delays: Vec<u64> = (0..7).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(retry_delay(u32::MAX), RETRY_CAP);
    }
}
