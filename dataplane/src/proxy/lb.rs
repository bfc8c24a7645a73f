//! The per-RPC load-balancing choice: power of two choices (P2C). Two distinct endpoints are
//! drawn at random and the one with fewer outstanding requests wins, which keeps load even
//! without a global view and never herds every caller onto the same "least loaded" endpoint.
//!
//! Pure: the caller supplies the random draws, the load of each candidate and (for
//! [`p2c_excluding`]) which are ejected, so the choice is tested here and `pool` feeds it
//! `fastrand` draws, live outstanding counts and ejection deadlines.

/// Picks one of `n` candidates by power of two choices; `None` when `n == 0`.
///
/// `first` and `second` are raw random draws (any `usize`; they are reduced into range): the
/// first candidate is `first % n`, the second is a *different* candidate chosen uniformly
/// among the other `n - 1`. `load(i)` is candidate `i`'s outstanding requests; it is called
/// at most twice, and not at all when `n == 1`. Ties go to the first candidate (which is
/// already random). The balancer uses [`p2c_excluding`]; this is its core, tested alone.
#[cfg(test)]
fn p2c(n: usize, first: usize, second: usize, load: impl Fn(usize) -> usize) -> Option<usize> {
    let (a, b) = candidates(n, first, second)?;
    Some(less_loaded(a, b, load))
}

/// Power of two choices among the candidates that are not `excluded` (ejected by outlier
/// detection); when every one is, among all of them (Envoy's panic mode). `draw(m)` is
/// uniform in `0..m` (`m ≥ 1`).
///
/// Cheap when few are excluded: the two candidates are drawn among all `n`, and when
/// neither is excluded (always, when none is) that is the choice, as plain P2C makes it. Only
/// when one is are the eligible candidates collected and two drawn among them afresh. Either
/// way the pair compared is uniform among pairs of eligible candidates.
pub fn p2c_excluding(
    n: usize,
    mut draw: impl FnMut(usize) -> usize,
    load: impl Fn(usize) -> usize,
    excluded: impl Fn(usize) -> bool,
) -> Option<usize> {
    let (first, second) = draws(n, &mut draw);
    let (a, b) = candidates(n, first, second)?;
    if !excluded(a) && !excluded(b) {
        return Some(less_loaded(a, b, load));
    }
    let eligible: Vec<usize> = (0..n).filter(|&i| !excluded(i)).collect();
    if eligible.is_empty() {
        return Some(less_loaded(a, b, load));
    }
    let (first, second) = draws(eligible.len(), &mut draw);
    let (a, b) = candidates(eligible.len(), first, second)?;
    let chosen = less_loaded(a, b, |j| eligible.get(j).map_or(usize::MAX, |&i| load(i)));
    eligible.get(chosen).copied()
}

/// The two candidates P2C compares (the same one twice when `n == 1`).
fn candidates(n: usize, first: usize, second: usize) -> Option<(usize, usize)> {
    match n {
        0 => None,
        1 => Some((0, 0)),
        _ => {
            let a = first % n;
            let mut b = second % (n - 1);
            if b >= a {
                b += 1;
            }
            Some((a, b))
        }
    }
}

/// `b` if it has strictly fewer outstanding requests than `a`, else `a` (no load read
/// when they are the same candidate).
fn less_loaded(a: usize, b: usize, load: impl Fn(usize) -> usize) -> usize {
    if a != b && load(b) < load(a) { b } else { a }
}

/// Two raw draws for `n` candidates (none needed below two).
fn draws(n: usize, draw: &mut impl FnMut(usize) -> usize) -> (usize, usize) {
    if n < 2 {
        return (0, 0);
    }
    (draw(n), draw(n - 1))
}

#[cfg(test)]
mod tests {
    use super::{p2c, p2c_excluding};

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

    /// Draws from a fixed list, cycling; records the ranges asked for.
    fn scripted(values: &[usize]) -> impl FnMut(usize) -> usize + '_ {
        let mut next = 0;
        move |n| {
            let value = values[next % values.len()];
            next += 1;
            value % n
        }
    }

    #[test]
    fn excluding_nothing_is_plain_p2c() {
        let loads = [5, 1, 3];
        for first in 0..3 {
            for second in 0..2 {
                assert_eq!(
                    p2c_excluding(3, scripted(&[first, second]), |i| loads[i], |_| false),
                    p2c(3, first, second, |i| loads[i])
                );
            }
        }
        assert_eq!(p2c_excluding(0, scripted(&[0]), |_| 0, |_| false), None);
        let mut asked = 0;
        let one = p2c_excluding(
            1,
            |_| {
                asked += 1;
                0
            },
            |_| 0,
            |_| false,
        );
        assert_eq!((one, asked), (Some(0), 0), "no draws for one candidate");
    }

    #[test]
    fn excluded_candidates_are_never_chosen() {
        let loads = [0, 9, 0, 9];
        let excluded = |i: usize| i.is_multiple_of(2);
        for first in 0..4 {
            for second in 0..3 {
                for third in 0..2 {
                    let chosen = p2c_excluding(
                        4,
                        scripted(&[first, second, third, 0]),
                        |i| loads[i],
                        excluded,
                    );
                    assert!(matches!(chosen, Some(1 | 3)), "{chosen:?}");
                }
            }
        }
        // One eligible: always it.
        assert_eq!(
            p2c_excluding(5, scripted(&[0, 0]), |_| 0, |i| i != 3),
            Some(3)
        );
    }

    #[test]
    fn every_candidate_excluded_balances_over_all() {
        let loads = [4, 1, 7];
        assert_eq!(
            p2c_excluding(3, scripted(&[0, 0]), |i| loads[i], |_| true),
            Some(1)
        );
        assert_eq!(p2c_excluding(1, scripted(&[0]), |_| 0, |_| true), Some(0));
    }

    #[test]
    fn eligible_candidates_share_the_load_evenly() {
        // Candidate 0 excluded; 1, 2 and 3 equally loaded: each chosen about a third of the
        // time over every draw sequence.
        let mut seen = [0usize; 4];
        for a in 0..4 {
            for b in 0..3 {
                for c in 0..3 {
                    for d in 0..2 {
                        let draws = [a, b, c, d];
                        if let Some(i) = p2c_excluding(4, scripted(&draws), |_| 0, |i| i == 0) {
                            seen[i] += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1] == seen[2] && seen[2] == seen[3], "{seen:?}");
    }
}
