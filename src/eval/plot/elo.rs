//! `elo`: the ladder, systems ranked by Elo (best at the top) with horizontal CI bars, the
//! anchor marked and a vertical line at its fixed rating.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::slots::Slots;
use super::{colour, padded_range, Drawn, Plot, FONT};
use crate::eval::report::EloReport;
use crate::eval::stats::cells::percent;

struct Rung {
    system: String,
    rating: f64,
    ci: Option<(f64, f64)>,
    anchor: bool,
}

pub(super) struct Ladder {
    title: String,
    /// Best first.
    rungs: Vec<Rung>,
    anchor_rating: f64,
    x: (f64, f64),
}

impl Ladder {
    pub(super) fn new(r: &EloReport) -> Result<Self> {
        let mut rungs: Vec<Rung> = r
            .ratings
            .iter()
            .filter(|e| e.rating.is_finite())
            .map(|e| Rung {
                system: e.system.clone(),
                rating: e.rating,
                ci: Some((e.ci.low, e.ci.high)).filter(|(l, h)| l.is_finite() && h.is_finite()),
                anchor: e.system == r.anchor,
            })
            .collect();
        if rungs.is_empty() {
            bail!("the Elo report has no finite rating ({} systems): nothing to plot", r.ratings.len());
        }
        // the report lists best first already; sorting again keeps the picture right if not
        rungs.sort_by(|a, b| b.rating.total_cmp(&a.rating));
        let values = rungs.iter().flat_map(|g| {
            let (lo, hi) = g.ci.unwrap_or((g.rating, g.rating));
            [g.rating, lo, hi]
        });
        let Some((lo, hi)) = padded_range(values.chain([r.anchor_rating]), 0.08) else {
            bail!("the Elo report's anchor rating is not finite");
        };
        // room on the right for each rung's printed rating and interval
        let x = (lo, hi + 0.25 * (hi - lo));
        let title = format!(
            "Elo ladder · judge {} · {} prompts · {} bootstrap CI · anchor {} = {}",
            r.judge,
            r.prompts,
            percent(r.confidence),
            r.anchor,
            r.anchor_rating
        );
        Ok(Self { title, rungs, anchor_rating: r.anchor_rating, x })
    }

    /// The y coordinate of rung `i` (0 is the best, drawn at the top).
    fn y(&self, i: usize) -> f64 {
        (self.rungs.len() - 1 - i) as f64
    }
}

impl Plot for Ladder {
    fn size(&self) -> (u32, u32) {
        (1000, 160 + 50 * self.rungs.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        let n = self.rungs.len();
        // the y axis counts up from the bottom: the best system's name is the last
        let names: Vec<String> = self
            .rungs
            .iter()
            .rev()
            .map(|g| if g.anchor { format!("{} (anchor)", g.system) } else { g.system.clone() })
            .collect();
        let widest = self.rungs.iter().map(|g| g.system.chars().count() + 9).max().unwrap_or(10);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 18))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size((widest as u32 * 8).clamp(80, 400))
            .build_cartesian_2d(self.x.0..self.x.1, Slots::new(names))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("Elo rating")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()?;

        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(DashedLineSeries::new(
                [(self.anchor_rating, -0.5), (self.anchor_rating, n as f64 - 0.5)],
                6,
                4,
                grey.stroke_width(1),
            ))?
            .label(format!("anchor rating {}", self.anchor_rating))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey.stroke_width(1)));

        let (rated, anchor) = (colour(0), colour(3));
        let whiskers = self.rungs.iter().enumerate().filter_map(|(i, g)| {
            let c = if g.anchor { anchor } else { rated };
            g.ci.map(|(lo, hi)| ErrorBar::new_horizontal(self.y(i), lo, g.rating, hi, c.stroke_width(2), 12))
        });
        chart.draw_series(whiskers)?;
        let dots = self.rungs.iter().enumerate().filter(|(_, g)| !g.anchor);
        chart
            .draw_series(dots.map(|(i, g)| Circle::new((g.rating, self.y(i)), 6, rated.filled())))?
            .label("rating with its interval")
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, rated.filled()));
        let anchors = self.rungs.iter().enumerate().filter(|(_, g)| g.anchor);
        chart
            .draw_series(
                anchors.map(|(i, g)| TriangleMarker::new((g.rating, self.y(i)), 9, anchor.filled())),
            )?
            .label("anchor (rating fixed)")
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 7, anchor.filled()));
        let labels = self.rungs.iter().enumerate().map(|(i, g)| {
            let (text, right) = match g.ci {
                Some((lo, hi)) => (format!("{:.0} [{:.0}, {:.0}]", g.rating, lo, hi), hi.max(g.rating)),
                None => (format!("{:.0}", g.rating), g.rating),
            };
            // pixels right of the interval's end, centred on the rung
            EmptyElement::at((right, self.y(i))) + Text::new(text, (14, -7), (FONT, 14).into_font())
        });
        chart.draw_series(labels)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()?;
        Ok(())
    }
}
