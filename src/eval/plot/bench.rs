//! `bench_table`: the paper-style table as small multiples, one panel per column (each
//! benchmark on its own scale), a bar per system with its CI as a whisker; a system without
//! a value in a column has no bar there.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::slots::Slots;
use super::{colour, padded_range, Drawn, Plot, FONT};
use crate::eval::bench::table::PaperTable;
use crate::eval::stats::cells::percent;

/// A mean and its interval, if the system has one.
type Mean = Option<(f64, Option<(f64, f64)>)>;

struct Bar {
    system: usize,
    mean: f64,
    ci: Option<(f64, f64)>,
}

struct Panel {
    title: String,
    bars: Vec<Bar>,
    y: (f64, f64),
}

pub(super) struct Chart {
    title: String,
    systems: Vec<String>,
    panels: Vec<Panel>,
}

impl Chart {
    pub(super) fn new(t: &PaperTable) -> Result<Self> {
        let mut panels = vec![];
        let mut columns: Vec<(String, Vec<Mean>)> = t
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v = t
                    .rows
                    .iter()
                    .map(|r| r.cells[i].as_ref().map(|c| (c.mean, c.ci.map(|ci| (ci.low, ci.high)))))
                    .collect();
                (c.title.clone(), v)
            })
            .collect();
        if t.elo.is_some() {
            columns.push((
                "Elo".into(),
                t.rows
                    .iter()
                    .map(|r| r.elo.as_ref().map(|c| (c.mean, c.ci.map(|ci| (ci.low, ci.high)))))
                    .collect(),
            ));
        }
        for (title, values) in columns {
            let bars: Vec<Bar> = values
                .into_iter()
                .enumerate()
                .filter_map(|(system, v)| {
                    v.filter(|(m, _)| m.is_finite()).map(|(mean, ci)| Bar { system, mean, ci })
                })
                .collect();
            if bars.is_empty() {
                continue;
            }
            let all = bars.iter().flat_map(|b| {
                let (lo, hi) = b.ci.unwrap_or((b.mean, b.mean));
                [b.mean, lo, hi]
            });
            let Some((lo, hi)) = padded_range(all.chain([0.0]), 0.08) else { continue };
            panels.push(Panel { title, bars, y: (lo, hi) });
        }
        if panels.is_empty() {
            bail!(
                "the benchmark table has no value to plot ({} systems, {} columns)",
                t.rows.len(),
                t.columns.len()
            );
        }
        Ok(Self {
            title: format!("Benchmarks · mean with {} bootstrap CI over prompts", percent(t.confidence)),
            systems: t.rows.iter().map(|r| r.system.clone()).collect(),
            panels,
        })
    }
}

impl Plot for Chart {
    fn size(&self) -> (u32, u32) {
        ((320 * self.panels.len() as u32).max(640), 520)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        let root = root.titled(&self.title, (FONT, 20))?;
        let areas = root.split_evenly((1, self.panels.len()));
        for (panel, area) in self.panels.iter().zip(&areas) {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FONT, 15))
                .margin(12)
                .x_label_area_size(60)
                .y_label_area_size(55)
                .build_cartesian_2d(Slots::new(self.systems.clone()), panel.y.0..panel.y.1)?;
            chart.configure_mesh().disable_x_mesh().label_style((FONT, 12)).draw()?;
            let base = panel.y.0.max(0.0).min(panel.y.1);
            for b in &panel.bars {
                let x = b.system as f64;
                let c = colour(b.system);
                chart.draw_series([Rectangle::new(
                    [(x - 0.35, base), (x + 0.35, b.mean)],
                    c.mix(0.75).filled(),
                )])?;
                if let Some((lo, hi)) = b.ci {
                    chart.draw_series([ErrorBar::new_vertical(
                        x,
                        lo,
                        b.mean,
                        hi,
                        BLACK.stroke_width(2),
                        10,
                    )])?;
                }
            }
        }
        Ok(())
    }
}
