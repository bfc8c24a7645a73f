//! The charts RESULTS.md shows, drawn as SVG with `plotters` from the same runs as its tables:
//! added latency (p50, p99) of weft-proxy and Envoy per topology, saturation calls/s per
//! proxy core per topology, and the control plane's change → last ACK per number of proxies.
//! Each bar is the median of the rounds; a chart without data is left out.

use plotters::prelude::*;

use crate::cp;
use crate::dp::figures::{self, Pct};
use crate::dp::model::{TopoId, Workload};
use crate::dp::{self};
use crate::stats;

/// One chart: its file name (under `charts/`) and SVG text.
#[derive(Debug, Clone)]
pub struct Chart {
    pub file: &'static str,
    pub title: String,
    pub svg: String,
}

const WEFT: RGBColor = RGBColor(0x2b, 0x6c, 0xb0);
const ENVOY: RGBColor = RGBColor(0xd9, 0x7b, 0x29);
const SIZE: (u32, u32) = (900, 420);

/// The weft/Envoy topology pairs, as the charts label them.
const PAIRS: [(TopoId, TopoId, &str); 3] = [
    (TopoId::WeftHop, TopoId::EnvoyHop, "one hop"),
    (TopoId::WeftPair, TopoId::EnvoyPair, "pair"),
    (TopoId::WeftPairMtls, TopoId::EnvoyPairMtls, "pair, mTLS"),
];

/// Every chart the reports have data for.
pub fn render(dp: Option<&dp::Report>, cp: Option<&cp::Report>) -> Vec<Chart> {
    let mut charts = Vec::new();
    if let Some(report) = dp {
        charts.extend(latency(report));
        charts.extend(saturation(report));
    }
    if let Some(report) = cp {
        charts.extend(control_plane(report));
    }
    charts
}

/// Draws the legend (upper left) and writes the SVG out.
fn finish<'a, X: Ranged, Y: Ranged>(
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> Option<()> {
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .ok()?;
    root.present().ok()
}

/// Grouped bars: per category, weft's and Envoy's value; `None` values are not drawn.
fn grouped_bars(
    title: &str,
    y_label: &str,
    categories: &[(String, Option<f64>, Option<f64>)],
) -> Option<String> {
    let top = categories
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    if top <= 0.0 {
        return None;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let n = categories.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..n, 0.0..top * 1.15)
            .ok()?;
        let labels: Vec<String> = categories.iter().map(|(c, _, _)| c.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(categories.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 && i < labels.len() {
                    labels[i].clone()
                } else {
                    String::new()
                }
            })
            .y_desc(y_label)
            .draw()
            .ok()?;
        for (series, color, offset, name) in
            [(0, WEFT, 0.12, "weft-proxy"), (1, ENVOY, 0.5, "Envoy")]
        {
            let bars = categories.iter().enumerate().filter_map(|(i, (_, a, b))| {
                let value = if series == 0 { *a } else { *b }?;
                value.is_finite().then(|| {
                    let x = i as f64 + offset;
                    Rectangle::new([(x, 0.0), (x + 0.38, value)], color.filled())
                })
            });
            chart
                .draw_series(bars)
                .ok()?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        finish(&root, &mut chart)?;
    }
    Some(svg)
}

fn latency(report: &dp::Report) -> Option<Chart> {
    let workload = report
        .workloads
        .iter()
        .copied()
        .find(|w| matches!(w, Workload::Open(_)))?;
    let mut categories = Vec::new();
    for (weft, envoy, label) in PAIRS {
        for pct in [Pct::P50, Pct::P99] {
            let median =
                |topo| figures::added_latency(&report.runs, topo, workload, pct).map(|s| s.median);
            categories.push((
                format!("{label} {}", pct.label()),
                median(weft),
                median(envoy),
            ));
        }
    }
    let title = format!("Added latency, {} (µs, median of rounds)", workload.label());
    Some(Chart {
        file: "latency.svg",
        svg: grouped_bars(&title, "µs added", &categories)?,
        title,
    })
}

fn saturation(report: &dp::Report) -> Option<Chart> {
    let per_core = |topo| {
        figures::summary(
            &report.runs,
            topo,
            Workload::Closed,
            figures::calls_per_core,
        )
        .map(|s| s.median)
    };
    let categories: Vec<_> = PAIRS
        .iter()
        .map(|(weft, envoy, label)| ((*label).to_owned(), per_core(*weft), per_core(*envoy)))
        .collect();
    let title = "Saturation: calls/s per proxy core (closed loop, median of rounds)".to_owned();
    Some(Chart {
        file: "saturation.svg",
        svg: grouped_bars(&title, "calls/s per core", &categories)?,
        title,
    })
}

/// Lines: per change kind, the median change → last ACK over proxies (log-log).
fn control_plane(report: &cp::Report) -> Option<Chart> {
    let mut counts: Vec<usize> = report.runs.iter().map(|r| r.proxies).collect();
    counts.sort_unstable();
    counts.dedup();
    let kinds = ["endpoint", "route", "new-service"];
    let series: Vec<(&str, Vec<(f64, f64)>)> = kinds
        .iter()
        .map(|kind| {
            let points = counts
                .iter()
                .filter_map(|&n| {
                    let values: Vec<f64> = report
                        .runs
                        .iter()
                        .filter(|r| r.proxies == n)
                        .flat_map(|r| r.changes.iter())
                        .filter(|c| c.kind == *kind)
                        .flat_map(|c| c.convergence_ms.iter().copied())
                        .collect();
                    stats::Summary::of(&values).map(|s| (n as f64, s.median))
                })
                .collect();
            (*kind, points)
        })
        .collect();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    if all.len() < 2 {
        return None;
    }
    let (x_max, y_max) = all.iter().fold((1.0_f64, 1.0_f64), |(x, y), (px, py)| {
        (x.max(*px), y.max(*py))
    });
    let y_min = all.iter().map(|(_, y)| *y).fold(y_max, f64::min).max(0.1);
    let title = "Control plane: one change → last proxy's ACK (ms, median)".to_owned();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (50.0..x_max * 2.0).log_scale(),
                (y_min / 2.0..y_max * 2.0).log_scale(),
            )
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("connected proxies")
            .y_desc("ms")
            .draw()
            .ok()?;
        let colors = [WEFT, ENVOY, RGBColor(0x3a, 0x9a, 0x5b)];
        for ((kind, points), color) in series.iter().zip(colors) {
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .ok()?
                .label(format!("{kind} change"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .ok()?;
        }
        finish(&root, &mut chart)?;
    }
    Some(Chart {
        file: "control-plane.svg",
        title,
        svg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_bars_draw_every_value_and_nothing_without_data() {
        let svg = grouped_bars(
            "t",
            "µs",
            &[
                ("one hop p50".into(), Some(98.0), Some(220.0)),
                ("pair p50".into(), None, Some(400.0)),
            ],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("one hop p50") && svg.contains("weft-proxy") && svg.contains("Envoy"));
        // Three bars plus the legend's two swatches, filled in the series colours.
        let bars =
            svg.matches("fill=\"#2B6CB0\"").count() + svg.matches("fill=\"#D97B29\"").count();
        assert_eq!(bars, 5, "{svg}");
        assert!(grouped_bars("t", "µs", &[("x".into(), None, None)]).is_none());
    }
}
