//! Charts and image grids as PNG files, through `plotters` (charts) and
//! `image` (grids). Text uses the DejaVu Sans font bundled in
//! `assets/fonts`, so drawing needs no system fonts.

use crate::error::{io_err, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

/// Registers the bundled font as plotters' "sans-serif".
pub fn ensure_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = plotters::style::register_font("sans-serif", style, bytes);
        }
    });
}

/// One line of a chart.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Points (x, y).
    pub points: Vec<(f32, f32)>,
}

/// A line chart with a legend, written to `path` (PNG, `w x h` pixels).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
    size: (u32, u32),
) -> Result<()> {
    ensure_font();
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        root.fill(&WHITE)?;
        let all: Vec<(f32, f32)> = series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .collect();
        let (mut x0, mut x1) = all
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (mut y0, mut y1) = all
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if all.is_empty() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-3);
        (y0, y1) = (y0 - pad, y1 + pad);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        // Whole-number x values (epochs) get whole-number ticks.
        let integral = all.iter().all(|p| p.0.fract() == 0.0);
        let ticks = if integral {
            ((x1 - x0) as usize + 1).min(12)
        } else {
            10
        };
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_labels(ticks)
            .x_label_formatter(&|x| {
                if integral {
                    format!("{}", x.round())
                } else {
                    format!("{x:.2}")
                }
            })
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(s.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| io_err(path, e))
}

/// A bar chart of `values` with `labels` under the bars, written to `path`;
/// the bar at `highlight` is red.
pub fn bar_chart(
    path: &Path,
    title: &str,
    labels: &[String],
    values: &[f32],
    highlight: Option<usize>,
    size: (u32, u32),
) -> Result<()> {
    ensure_font();
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        root.fill(&WHITE)?;
        let n = values.len().max(1) as u32;
        let top = values.iter().copied().fold(0.0f32, f32::max).max(1e-6) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((0u32..n).into_segmented(), 0f32..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n as usize)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    labels.get(*i as usize).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .draw()?;
        for (i, &v) in values.iter().enumerate() {
            let color = if Some(i) == highlight { RED } else { BLUE };
            chart.draw_series(
                Histogram::vertical(&chart)
                    .style(color.filled())
                    .margin(6)
                    .data(std::iter::once((i as u32, v))),
            )?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| io_err(path, e))
}
