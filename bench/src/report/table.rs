//! Markdown building blocks: a table, and how numbers are shown (median [min–max] of the
//! rounds, ratios, sizes).

use crate::stats::Summary;

/// A markdown table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | ").replace('\n', " "));
        let mut out = line(&self.header);
        out += &line(
            &self
                .header
                .iter()
                .map(|_| "---".to_string())
                .collect::<Vec<_>>(),
        );
        for row in &self.rows {
            let mut row = row.clone();
            row.resize(self.header.len(), String::new());
            out += &line(&row);
        }
        out
    }
}

/// A number with sensible precision for a table.
pub fn num(value: f64) -> String {
    if !value.is_finite() {
        "–".into()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// `median [min–max]` of a summary, each scaled by `scale`; `–` when absent.
pub fn summary(s: Option<Summary>, scale: f64) -> String {
    match s {
        Some(s) if s.rounds > 1 => format!(
            "{} [{}–{}]",
            num(s.median * scale),
            num(s.min * scale),
            num(s.max * scale)
        ),
        Some(s) => num(s.median * scale),
        None => "–".into(),
    }
}

/// A ratio as `0.42×`.
pub fn ratio(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2}×")
    } else {
        "–".into()
    }
}

/// Bytes as MB (10^6), for RSS.
pub const MB: f64 = 1e-6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_padded_table() {
        let mut t = Table::new(["a", "b"]);
        t.row(["1"]);
        t.row(["2", "x\ny"]);
        assert_eq!(
            t.render(),
            "| a | b |\n| --- | --- |\n| 1 |  |\n| 2 | x y |\n"
        );
    }

    #[test]
    fn numbers_and_summaries() {
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(0.1234), "0.12");
        assert_eq!(num(f64::NAN), "–");
        let s = Summary::of(&[1.0, 2.0, 4.0]);
        assert_eq!(summary(s, 1.0), "2.00 [1.00–4.00]");
        assert_eq!(summary(Summary::of(&[150.0]), 1.0), "150");
        assert_eq!(summary(None, 1.0), "–");
        assert_eq!(ratio(0.4242), "0.42×");
        assert_eq!(ratio(f64::NAN), "–");
    }
}
