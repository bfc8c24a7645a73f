//! Run-to-run comparison: each headline figure of this run against the previous run's
//! (kept in `bench/results.json`). A figure reproduces when the previous median lies in
//! this run's [min–max] over rounds, the noise this run reports.

use super::data::Headline;
use super::table::{Table, num};

/// How ratio headlines are named (`report::data`).
pub const RATIO_PREFIX: &str = "T1 weft / Envoy";

pub fn render(previous: Option<&[Headline]>, current: &[Headline]) -> String {
    let Some(previous) = previous else {
        return "No previous run to compare with (`bench/results.json` absent): run the command again.\n".into();
    };
    let mut t = Table::new([
        "figure",
        "previous median",
        "this run median [min–max]",
        "change",
        "within this run's noise",
    ]);
    // Ratios (weft / Envoy, both sides measured in the same round) and absolute figures
    // are counted apart: a busier machine moves every absolute figure of a run at once.
    let (mut within, mut total) = ([0, 0], [0, 0]);
    for (name, now) in current {
        let Some((_, before)) = previous.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let change = if before.median != 0.0 {
            format!(
                "{:+.0}%",
                100.0 * (now.median - before.median) / before.median.abs()
            )
        } else {
            "–".into()
        };
        let kind = usize::from(!name.starts_with(RATIO_PREFIX));
        let verdict = if now.rounds < 2 {
            "single measurement".to_string()
        } else {
            total[kind] += 1;
            if now.contains(before.median, 0.0) {
                within[kind] += 1;
                "yes".to_string()
            } else {
                "no".to_string()
            }
        };
        t.row([
            name.clone(),
            num(before.median),
            format!("{} [{}–{}]", num(now.median), num(now.min), num(now.max)),
            change,
            verdict,
        ]);
    }
    format!(
        "Of the previous run's repeated figures, these fall within this run's [min–max]: {} of {} \
         ratios weft / Envoy, {} of {} absolute figures.\n\n{}",
        within[0],
        total[0],
        within[1],
        total[1],
        t.render()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    #[test]
    fn compares_by_name() {
        let s = |v: &[f64]| Summary::of(v).unwrap();
        let previous = vec![
            ("a".to_string(), s(&[10.0])),
            ("b".to_string(), s(&[50.0])),
            (format!("{RATIO_PREFIX}, x"), s(&[0.5])),
        ];
        let current = vec![
            (format!("{RATIO_PREFIX}, x"), s(&[0.4, 0.6])),
            ("a".to_string(), s(&[9.0, 11.0, 12.0])),
            ("b".to_string(), s(&[10.0, 11.0])),
            ("c".to_string(), s(&[1.0])),
        ];
        let text = render(Some(&previous), &current);
        assert!(
            text.contains("1 of 1 ratios weft / Envoy, 1 of 2 absolute"),
            "{text}"
        );
        assert!(
            text.contains("| a | 10.0 | 11.0 [9.00–12.0] | +10% | yes |"),
            "{text}"
        );
        assert!(text.contains("| b | 50.0 |"));
        assert!(!text.contains("| c |"));
        assert!(render(None, &current).starts_with("No previous run"));
    }
}
