//! `quality_by_length`: mean Story Quality per requested-length bucket, one line and marker
//! series per model with CI error bars. `length_ratio`: mean generated / requested words per
//! bucket, grouped bars per model with CI error bars and a reference line at 1.0.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::slots::Slots;
use super::{colour, padded_range, Drawn, Plot, FONT};
use crate::eval::report::{LengthReport, LengthRow};
use crate::eval::stats::cells::percent;
use crate::eval::stats::winrate::Interval;

/// One model's value in one bucket.
#[derive(Debug, Clone, Copy)]
struct Point {
    /// Index into the report's buckets.
    bucket: usize,
    mean: f64,
    ci: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Quality,
    Ratio,
}

pub(super) struct Chart {
    kind: Kind,
    title: String,
    buckets: Vec<String>,
    /// Per model, in the report's order: its label and the buckets it has a value for.
    series: Vec<(String, Vec<Point>)>,
    /// Value axis range.
    y: (f64, f64),
}

impl Chart {
    pub(super) fn quality(r: &LengthReport) -> Result<Self> {
        let title = format!("Story Quality by requested length · judge {}", r.judge);
        Self::new(r, Kind::Quality, title, |row| (row.sq_mean, row.sq_ci))
    }

    pub(super) fn ratio(r: &LengthReport) -> Result<Self> {
        Self::new(r, Kind::Ratio, "Length ratio (generated / requested words)".into(), |row| {
            (row.length_ratio_mean, row.length_ratio_ci)
        })
    }

    fn new(
        r: &LengthReport,
        kind: Kind,
        title: String,
        value: impl Fn(&LengthRow) -> (Option<f64>, Option<Interval>),
    ) -> Result<Self> {
        if r.models.is_empty() || r.buckets.is_empty() || r.rows.is_empty() {
            bail!(
                "the length report is empty ({} models, {} buckets, {} rows): nothing to plot",
                r.models.len(),
                r.buckets.len(),
                r.rows.len()
            );
        }
        let mut series: Vec<(String, Vec<Point>)> = r.models.iter().map(|m| (m.clone(), vec![])).collect();
        for row in &r.rows {
            let Some(bucket) = r.buckets.iter().position(|b| b.label == row.bucket) else {
                bail!(
                    "the length report's row for model `{}` names bucket `{}`, which is not in its buckets",
                    row.model,
                    row.bucket
                );
            };
            let Some(m) = r.models.iter().position(|m| *m == row.model) else {
                bail!("the length report has a row for model `{}`, which is not in its models", row.model);
            };
            let (mean, ci) = value(row);
            let Some(mean) = mean.filter(|v| v.is_finite()) else { continue };
            let ci = ci.map(|c| (c.low, c.high)).filter(|(l, h)| l.is_finite() && h.is_finite());
            series[m].1.push(Point { bucket, mean, ci });
        }
        for (_, points) in &mut series {
            points.sort_by_key(|p| p.bucket);
        }
        let values = series.iter().flat_map(|(_, p)| p).flat_map(|p| {
            let (lo, hi) = p.ci.unwrap_or((p.mean, p.mean));
            [p.mean, lo, hi]
        });
        let what = if kind == Kind::Quality { "Story Quality (sq_mean)" } else { "length ratio" };
        let y = match kind {
            Kind::Quality => padded_range(values, 0.1),
            // bars start at 0, and the reference line at 1.0 is always in view
            Kind::Ratio => padded_range(values.chain([0.0, 1.0]), 0.08).map(|(_, hi)| (0.0, hi)),
        };
        let Some(y) = y else {
            bail!("the length report has no {what} in any row: nothing to plot (was anything judged?)");
        };
        let buckets = r.buckets.iter().map(|b| b.label.clone()).collect();
        let ci = format!("{} bootstrap CI over prompts", percent(r.confidence));
        Ok(Self { kind, title: format!("{title} · {ci}"), buckets, series, y })
    }

    /// Where model `m` of `n` sits within a bucket's slot (centred on the bucket's index).
    fn offset(&self, m: usize) -> f64 {
        let n = self.series.len() as f64;
        let width = if self.kind == Kind::Ratio { 0.8 } else { 0.3 };
        (m as f64 + 0.5) / n * width - width / 2.0
    }
}

impl Plot for Chart {
    fn size(&self) -> (u32, u32) {
        (1000, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        let n = self.buckets.len();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 20))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(Slots::new(self.buckets.clone()), self.y.0..self.y.1)?;
        let y_desc = match self.kind {
            Kind::Quality => "mean Story Quality",
            Kind::Ratio => "mean length ratio",
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("requested length (words)")
            .y_desc(y_desc)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()?;

        if self.kind == Kind::Ratio {
            let grey = RGBColor(90, 90, 90);
            chart
                .draw_series(DashedLineSeries::new(
                    [(-0.5, 1.0), (n as f64 - 0.5, 1.0)],
                    8,
                    5,
                    grey.stroke_width(2),
                ))?
                .label("requested length (1.0)")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey.stroke_width(2)));
        }
        let bar = 0.8 / self.series.len() as f64;
        for (m, (model, points)) in self.series.iter().enumerate() {
            let c = colour(m);
            let dx = self.offset(m);
            let at = |p: &Point| p.bucket as f64 + dx;
            match self.kind {
                Kind::Quality => {
                    // a line only joins neighbouring buckets: a bucket without a value breaks it
                    for run in points.chunk_by(|a, b| b.bucket == a.bucket + 1) {
                        let line = run.iter().map(|p| (at(p), p.mean));
                        chart.draw_series(LineSeries::new(line, c.stroke_width(2)))?;
                    }
                    chart
                        .draw_series(points.iter().map(|p| Circle::new((at(p), p.mean), 5, c.filled())))?
                        .label(model.as_str())
                        .legend(move |(x, y)| {
                            EmptyElement::at((x, y))
                                + PathElement::new([(0, 0), (20, 0)], c.stroke_width(2))
                                + Circle::new((10, 0), 4, c.filled())
                        });
                }
                Kind::Ratio => {
                    let bars = points.iter().map(|p| {
                        let x = at(p);
                        Rectangle::new([(x - bar / 2.0, 0.0), (x + bar / 2.0, p.mean)], c.mix(0.75).filled())
                    });
                    chart.draw_series(bars)?.label(model.as_str()).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 6), (x + 20, y + 6)], c.mix(0.75).filled())
                    });
                }
            }
            // the interval in the series' colour on the lines, in black over the bars
            let style = if self.kind == Kind::Quality { c.stroke_width(2) } else { BLACK.stroke_width(2) };
            let whiskers = points.iter().filter_map(|p| {
                p.ci.map(|(lo, hi)| ErrorBar::new_vertical(at(p), lo, p.mean, hi, style, 10))
            });
            chart.draw_series(whiskers)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 15))
            .draw()?;
        Ok(())
    }
}
