//! Pure statistics for the rig: percentiles of latency samples (nearest rank on sorted
//! samples, no interpolation, so p99.9 of 10 000 samples is the 9 990th) and the
//! median/min/max summary used for every figure that is repeated across rounds.

use serde::{Deserialize, Serialize};

/// Latency percentiles of one run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub count: usize,
}

impl Percentiles {
    /// Percentiles of `samples` (any order); `None` when there are none.
    pub fn of(samples: &mut [f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        Some(Self {
            p50: nearest_rank(samples, 50.0),
            p99: nearest_rank(samples, 99.0),
            p999: nearest_rank(samples, 99.9),
            count: samples.len(),
        })
    }

    /// Each percentile the median of `all`'s (for runs too many to pool sample by sample);
    /// counts add up.
    pub fn median_of(all: &[Percentiles]) -> Self {
        Self {
            p50: median_by(all, |p| p.p50),
            p99: median_by(all, |p| p.p99),
            p999: median_by(all, |p| p.p999),
            count: all.iter().map(|p| p.count).sum(),
        }
    }
}

/// The nearest-rank percentile `p` (0–100] of `values` in any order.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    nearest_rank(&sorted, p)
}

/// The nearest-rank percentile `p` (0–100] of ascending `sorted` samples.
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // The epsilon keeps float error (0.999 × 1000 = 999.000…1) from skipping a rank.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A figure measured once per round: the median of the rounds, with min and max.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rounds: usize,
}

impl Summary {
    /// Summarises the finite values of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        finite.sort_by(f64::total_cmp);
        let n = finite.len();
        let median = if n % 2 == 1 {
            finite[n / 2]
        } else {
            (finite[n / 2 - 1] + finite[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: finite[0],
            max: finite[n - 1],
            rounds: n,
        })
    }

    /// Summarises `f` of each item (one per round); `None` when none is finite.
    pub fn by<T>(items: &[T], f: impl Fn(&T) -> f64) -> Option<Self> {
        Self::of(&items.iter().map(f).collect::<Vec<_>>())
    }

    /// Whether `value` lies within this summary's [min, max], widened by `slack` (a
    /// fraction of the median) to allow for a figure measured with few rounds.
    pub fn contains(&self, value: f64, slack: f64) -> bool {
        let pad = self.median.abs() * slack;
        value >= self.min - pad && value <= self.max + pad
    }
}

/// The median of `f` of each item, NaN when there is none.
pub fn median_by<T>(items: &[T], f: impl Fn(&T) -> f64) -> f64 {
    Summary::by(items, f).map_or(f64::NAN, |s| s.median)
}

/// `a / b`, or NaN when `b` is zero or either is not finite.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 || !a.is_finite() || !b.is_finite() {
        f64::NAN
    } else {
        a / b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<f64> = (1..=1000).rev().map(f64::from).collect();
        let p = Percentiles::of(&mut samples).unwrap();
        assert_eq!((p.p50, p.p99, p.p999, p.count), (500.0, 990.0, 999.0, 1000));
        assert_eq!(nearest_rank(&[7.0], 99.9), 7.0);
        assert!(Percentiles::of(&mut []).is_none());
    }

    #[test]
    fn summary_median_min_max() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.rounds), (2.0, 1.0, 3.0, 3));
        let s = Summary::of(&[4.0, 1.0, f64::NAN, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.rounds), (2.5, 4));
        assert!(Summary::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn summary_contains_with_slack() {
        let s = Summary::of(&[10.0, 12.0, 11.0]).unwrap();
        assert!(s.contains(10.0, 0.0) && s.contains(12.0, 0.0));
        assert!(!s.contains(13.0, 0.0));
        assert!(s.contains(13.0, 0.1));
    }

    #[test]
    fn ratio_guards_zero() {
        assert_eq!(ratio(1.0, 4.0), 0.25);
        assert!(ratio(1.0, 0.0).is_nan());
        assert!(ratio(f64::NAN, 1.0).is_nan());
    }
}
