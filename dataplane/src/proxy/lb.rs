//! The per-RPC load-balancing choice: power of two choices (P2C). Two distinct endpoints are
//! drawn at random and the one with fewer outstanding requests wins, which keeps load even
//! without a global view and never herds every caller onto the same "least loaded" endpoint.
//!
//! Pure: the caller supplies the random draws and the load of each candidate, so the choice
//! is tested here and `pool` feeds it `fastrand` draws and live outstanding counts.

/// Picks one of `n` candidates by power of two choices; `None` when `n == 0`.
///
/// `first` and `second` are raw random draws (any `usize`; they are reduced into range): the
/// first candidate is `first % n`, the second is a *different* candidate chosen uniformly
/// among the other `n - 1`. `load(i)` is candidate `i`'s outstanding requests; it is called
/// at most twice, and not at all when `n == 1`. Ties go to the first candidate (which is
/// already random).
pub fn p2c(n: usize, first: usize, second: usize, load: impl Fn(usize) -> usize) -> Option<usize> {
    match n {
        0 => None,
        1 => Some(0),
        _ => {
            let a = first % n;
            let mut b = second % (n - 1);
            if b >= a {
                b += 1;
            }
            Some(if load(b) < load(a) { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::p2c;

    #[test]
    fn empty_set_has_no_choice() {
        assert_eq!(p2c(0, 3, 7, |_| 0), None);
    }

    #[test]
    fn single_endpoint_is_always_chosen_without_reading_load() {
        for draw in [0, 1, 5, usize::MAX] {
            assert_eq!(
                p2c(1, draw, draw, |_| panic!("load read for one endpoint")),
                Some(0)
            );
        }
    }

    #[test]
    fn prefers_the_less_loaded_candidate() {
        let loads = [5, 1];
        assert_eq!(p2c(2, 0, 0, |i| loads[i]), Some(1));
        assert_eq!(p2c(2, 1, 0, |i| loads[i]), Some(1));
    }

    #[test]
    fn tie_goes_to_the_first_draw() {
        let loads = [2, 2, 2];
        assert_eq!(p2c(3, 2, 0, |i| loads[i]), Some(2));
        assert_eq!(p2c(3, 0, 1, |i| loads[i]), Some(0));
    }

    #[test]
    fn the_two_candidates_are_always_distinct() {
        for n in 2..6 {
            for first in 0..n {
                for second in 0..n - 1 {
                    // Make the second candidate strictly better so the result reveals it.
                    let a = first % n;
                    let chosen =
                        p2c(n, first, second, |i| usize::from(i == a)).unwrap_or(usize::MAX);
                    assert_ne!(chosen, a, "n={n} first={first} second={second}");
                    assert!(chosen < n);
                }
            }
        }
    }

    #[test]
    fn every_endpoint_can_be_chosen_and_the_most_loaded_never_is() {
        let loads = [0, 3, 9, 1];
        let mut seen = [0usize; 4];
        for first in 0..4 {
            for second in 0..3 {
                if let Some(i) = p2c(4, first, second, |i| loads[i]) {
                    seen[i] += 1;
                }
            }
        }
        assert_eq!(seen[2], 0, "the busiest endpoint loses every comparison");
        assert!(seen[0] > seen[3] && seen[3] > seen[1] && seen[1] > 0);
    }

    #[test]
    fn out_of_range_draws_are_reduced() {
        // usize::MAX % 3 == 0 and usize::MAX % 2 == 1, which skips over 0 to candidate 2.
        let loads = [4, 9, 0];
        assert_eq!(p2c(3, usize::MAX, usize::MAX, |i| loads[i]), Some(2));
    }
}
