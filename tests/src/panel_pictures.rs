//! Pictures of dashboard panels as they look with data, for the README: a panel's series
//! (from Prometheus' `query_range`) drawn as an SVG line chart with `plotters`. The dashboards
//! test renders the mesh overview's panels with this when `WEFT_DASHBOARD_PICTURES` names a
//! directory.

use plotters::prelude::*;

/// One line of a panel: its legend and `(seconds from the start, value)` points.
pub type Series = (String, Vec<(f64, f64)>);

const SIZE: (u32, u32) = (640, 300);
const COLORS: [RGBColor; 6] = [
    RGBColor(0x2b, 0x6c, 0xb0),
    RGBColor(0xd9, 0x7b, 0x29),
    RGBColor(0x3a, 0x9a, 0x5b),
    RGBColor(0xb0, 0x3a, 0x2e),
    RGBColor(0x7b, 0x4f, 0xa8),
    RGBColor(0x55, 0x55, 0x55),
];

/// The panel as SVG; `None` when no series has a point. `unit` is Grafana's unit id
/// (`reqps`, `percentunit`, `s`, …), used to scale and label the values.
pub fn render(title: &str, unit: &str, series: &[Series]) -> Option<String> {
    let (scale, y_label) = match unit {
        "percentunit" => (100.0, "%"),
        "s" => (1000.0, "ms"),
        "reqps" => (1.0, "requests/s"),
        "ops" => (1.0, "per second"),
        "bytes" => (1.0 / 1_048_576.0, "MiB"),
        _ => (1.0, ""),
    };
    let scaled: Vec<(&String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(legend, line)| {
            let line = line
                .iter()
                .map(|(t, v)| (*t, v * scale))
                .filter(|(_, v)| v.is_finite())
                .collect();
            (legend, line)
        })
        .collect();
    let points = || scaled.iter().flat_map(|(_, line)| line.iter());
    // Nothing to draw without a point.
    points().next()?;
    let x_max = points().map(|(t, _)| *t).fold(1.0_f64, f64::max);
    let y_max = points().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let y_top = if y_max > 0.0 { y_max * 1.2 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 17))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..x_max, 0.0..y_top)
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(y_label)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .ok()?;
        for ((legend, line), color) in scaled.into_iter().zip(COLORS.iter().cycle()) {
            let color = *color;
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .ok()?
                .label(legend.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK.mix(0.3))
            .background_style(WHITE.mix(0.85))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// `{{label}}` in a Grafana legend format replaced by the series' labels.
pub fn legend(format: &str, labels: &serde_json::Value) -> String {
    let mut out = format.to_owned();
    if let Some(map) = labels.as_object() {
        for (key, value) in map {
            out = out.replace(
                &format!("{{{{{key}}}}}"),
                value.as_str().unwrap_or_default(),
            );
        }
    }
    if out.is_empty() {
        "value".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panel_draws_each_series_with_its_legend() {
        let svg = render(
            "Success rate by Service",
            "percentunit",
            &[
                ("greeter".into(), vec![(0.0, 0.8), (10.0, 0.79)]),
                ("billing".into(), vec![(0.0, 1.0), (10.0, 1.0)]),
            ],
        )
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("greeter") && svg.contains("billing"));
        assert!(render("t", "s", &[("x".into(), vec![])]).is_none());
        let labels = serde_json::json!({"destination_service": "greeter:50051"});
        assert_eq!(legend("{{destination_service}}", &labels), "greeter:50051");
        assert_eq!(legend("", &labels), "value");
    }
}
