//! The fault decision for one RPC: whether to delay it and whether to abort it with a gRPC
//! status and message, each drawn independently against its per-million probability. Pure:
//! the caller supplies the random draws, so tests script them and the stack applies the
//! result (sleep, then answer Trailers-Only).

use std::time::Duration;

use crate::config::FaultConfig;

/// The denominator of fault percentages (`per_million` = parts per million of RPCs).
pub const MILLION: u32 = 1_000_000;

/// What to do to one RPC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultDecision {
    /// Sleep this long before going on.
    pub delay: Option<Duration>,
    /// Answer with this gRPC code and message instead of forwarding.
    pub abort: Option<(u32, String)>,
}

impl FaultDecision {
    /// Whether any fault applies (for the `fault_injected` metric label).
    pub fn injected(&self) -> bool {
        self.delay.is_some() || self.abort.is_some()
    }
}

/// Decides the faults for one RPC. `draw` returns uniform values in `0..1_000_000`; it is
/// called once for the delay and once, independently, for the abort — and only when the
/// outcome is uncertain (a fault configured with a probability strictly between 0 and 100%),
/// so RPCs under no fault or certain faults cost no random numbers.
pub fn decide(fault: &FaultConfig, mut draw: impl FnMut() -> u32) -> FaultDecision {
    let delay = fault
        .delay
        .as_ref()
        .filter(|delay| hit(delay.per_million, &mut draw))
        .map(|delay| delay.delay);
    let abort = fault
        .abort
        .as_ref()
        .filter(|abort| hit(abort.per_million, &mut draw))
        .map(|abort| (abort.grpc_status, abort.message.clone()));
    FaultDecision { delay, abort }
}

/// Whether an event with probability `per_million` / 1 000 000 happens.
fn hit(per_million: u32, draw: &mut impl FnMut() -> u32) -> bool {
    match per_million {
        0 => false,
        p if p >= MILLION => true,
        p => draw() < p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AbortFault, DelayFault};

    fn config(delay: Option<u32>, abort: Option<u32>) -> FaultConfig {
        FaultConfig {
            delay: delay.map(|per_million| DelayFault {
                delay: Duration::from_millis(10),
                per_million,
            }),
            abort: abort.map(|per_million| AbortFault {
                grpc_status: 14,
                message: "injected by weft".into(),
                per_million,
            }),
        }
    }

    /// A draw function that returns `values` in order and fails the test if asked for more.
    fn scripted(values: &[u32]) -> impl FnMut() -> u32 + '_ {
        let mut next = values.iter();
        move || *next.next().expect("more draws than scripted")
    }

    fn abort() -> Option<(u32, String)> {
        Some((14, "injected by weft".into()))
    }

    #[test]
    fn no_fault_configured_injects_nothing_and_draws_nothing() {
        let decision = decide(&config(None, None), scripted(&[]));
        assert_eq!(decision, FaultDecision::default());
        assert!(!decision.injected());
    }

    #[test]
    fn zero_and_hundred_percent_need_no_draw() {
        let never = decide(&config(Some(0), Some(0)), scripted(&[]));
        assert!(!never.injected());
        let always = decide(&config(Some(MILLION), Some(MILLION)), scripted(&[]));
        assert_eq!(always.delay, Some(Duration::from_millis(10)));
        assert_eq!(always.abort, abort());
        assert!(always.injected());
    }

    #[test]
    fn partial_percentages_compare_against_the_draw() {
        // 5% = 50 000 per million: draws below inject, draws at or above do not.
        let fault = config(None, Some(50_000));
        assert_eq!(decide(&fault, scripted(&[0])).abort, abort());
        assert_eq!(decide(&fault, scripted(&[49_999])).abort, abort());
        assert_eq!(decide(&fault, scripted(&[50_000])).abort, None);
        assert_eq!(decide(&fault, scripted(&[999_999])).abort, None);
        // One part per million: only the lowest draw.
        let rare = config(Some(1), None);
        assert!(decide(&rare, scripted(&[0])).delay.is_some());
        assert!(decide(&rare, scripted(&[1])).delay.is_none());
        // 999 999 per million: every draw but the highest.
        let almost = config(Some(999_999), None);
        assert!(decide(&almost, scripted(&[999_998])).delay.is_some());
        assert!(decide(&almost, scripted(&[999_999])).delay.is_none());
    }

    #[test]
    fn delay_and_abort_are_drawn_independently() {
        let fault = config(Some(500_000), Some(500_000));
        // First draw decides the delay, second the abort.
        let cases = [
            ([0, 0], true, true),
            ([0, 999_999], true, false),
            ([999_999, 0], false, true),
            ([999_999, 999_999], false, false),
        ];
        for (draws, delayed, aborted) in cases {
            let decision = decide(&fault, scripted(&draws));
            assert_eq!(decision.delay.is_some(), delayed, "{draws:?}");
            assert_eq!(decision.abort.is_some(), aborted, "{draws:?}");
            assert_eq!(decision.injected(), delayed || aborted);
        }
    }

    #[test]
    fn a_certain_delay_leaves_the_abort_its_own_draw() {
        let fault = config(Some(MILLION), Some(500_000));
        let decision = decide(&fault, scripted(&[123]));
        assert!(decision.delay.is_some());
        assert_eq!(decision.abort, abort());
    }

    #[test]
    fn rates_converge_with_a_real_generator() {
        let fault = config(Some(200_000), Some(50_000));
        let mut rng = fastrand::Rng::with_seed(7);
        let (mut delays, mut aborts) = (0, 0);
        for _ in 0..100_000 {
            let decision = decide(&fault, || rng.u32(0..MILLION));
            delays += u32::from(decision.delay.is_some());
            aborts += u32::from(decision.abort.is_some());
        }
        assert!((19_000..21_000).contains(&delays), "{delays}");
        assert!((4_500..5_500).contains(&aborts), "{aborts}");
    }
}
