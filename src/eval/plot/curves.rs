//! `curves`: a run's step metrics as small multiples, one panel per quantity (several series
//! share a panel when they share a unit), step on every x axis. A missing value breaks its
//! line; it is never drawn as 0.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{colour, Drawn, Plot, FONT};

/// One line: its label and its (step, value) points in step order.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, Option<f64>)>,
}

/// One panel: a title and its lines.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// A panel with at least one finite value, and its axes' ranges.
struct Placed {
    panel: Panel,
    x: (f64, f64),
    y: (f64, f64),
}

pub(super) struct Curves {
    title: String,
    panels: Vec<Placed>,
}

/// Panels per row.
const COLUMNS: usize = 3;

impl Curves {
    pub(super) fn new(title: String, panels: Vec<Panel>) -> Result<Self> {
        let mut kept = Vec::new();
        for p in panels {
            let finite = || {
                p.series.iter().flat_map(|s| s.points.iter()).filter(|(_, v)| v.is_some_and(f64::is_finite))
            };
            let Some(y) = range(finite().map(|(_, v)| v.unwrap_or(0.0))) else { continue };
            let (lo, hi) = finite()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, _)| (lo.min(*x), hi.max(*x)));
            // one step still needs an axis with some width
            let x = if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
            kept.push(Placed { panel: p, x, y });
        }
        if kept.is_empty() {
            bail!("no step has a finite value of any metric: nothing to plot");
        }
        Ok(Self { title, panels: kept })
    }
}

impl Plot for Curves {
    fn size(&self) -> (u32, u32) {
        let rows = self.panels.len().div_ceil(COLUMNS) as u32;
        (1500, 60 + 340 * rows)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        let root = root.titled(&self.title, (FONT, 24))?;
        let rows = self.panels.len().div_ceil(COLUMNS);
        let areas = root.split_evenly((rows, COLUMNS));
        for (Placed { panel, x, y }, area) in self.panels.iter().zip(areas.iter()) {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FONT, 17))
                .margin(12)
                .x_label_area_size(32)
                .y_label_area_size(62)
                .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
            // steps are whole: a tick between two is left unlabelled
            let steps = (x.1 - x.0).round().max(1.0) as usize + 1;
            chart
                .configure_mesh()
                .x_desc("step")
                .x_labels(steps.min(10))
                .x_label_formatter(&|v| if v.fract() == 0.0 { format!("{v:.0}") } else { String::new() })
                .y_label_formatter(&|v| axis_number(*v))
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 13))
                .draw()?;
            for (i, s) in panel.series.iter().enumerate() {
                let c = colour(i);
                // a missing value ends a line; the next value starts a new one
                let mut pieces: Vec<Vec<(f64, f64)>> = vec![vec![]];
                for (step, v) in &s.points {
                    match v.filter(|v| v.is_finite()) {
                        Some(v) => pieces.last_mut().expect("never empty").push((*step, v)),
                        None => pieces.push(vec![]),
                    }
                }
                let mut labelled = false;
                for piece in pieces.into_iter().filter(|p| !p.is_empty()) {
                    // a lone point is drawn as a dot so it is seen
                    let drawn = if piece.len() == 1 {
                        chart.draw_series(piece.iter().map(|p| Circle::new(*p, 3, c.filled())))?
                    } else {
                        chart.draw_series(LineSeries::new(piece, c.stroke_width(2)))?
                    };
                    if !labelled {
                        drawn
                            .label(s.label.as_str())
                            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
                        labelled = true;
                    }
                }
            }
            if panel.series.len() > 1 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font((FONT, 12))
                    .draw()?;
            }
        }
        Ok(())
    }
}

/// The values' range padded by 8% of its span; a constant is padded by a tenth of itself (a
/// learning rate of 1e-6 stays readable), zero by 1.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let pad = if hi > lo {
        0.08 * (hi - lo)
    } else if lo != 0.0 {
        0.1 * lo.abs()
    } else {
        1.0
    };
    Some((lo - pad, hi + pad))
}

/// An axis label: plain for ordinary magnitudes, scientific for tiny or huge ones.
fn axis_number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.2e}")
    } else {
        // as many decimals as the magnitude needs, trailing zeros trimmed
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
