//! The run's per-step statistics, a zoomable window over them, and thinning for drawing: a
//! chart column can show only one vertical stroke, so a long history is reduced per column to
//! its minimum and maximum (spikes survive; a 100k-step history draws in a few passes).

use crate::train::step::StepStats;

/// One curve of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    PolicyMean,
    /// policy mean ± std: the band's edges
    PolicyUpper,
    PolicyLower,
    Reference,
    BestOfGroup,
    LengthRatio,
    Loss,
    Kl,
    GradNorm,
    Lr,
    HriWeight,
}

impl Series {
    pub fn value(self, s: &StepStats) -> Option<f64> {
        let v = match self {
            Series::PolicyMean => s.policy_reward_mean,
            Series::PolicyUpper => s.policy_reward_mean + s.policy_reward_std,
            Series::PolicyLower => s.policy_reward_mean - s.policy_reward_std,
            Series::Reference => s.reference_reward_mean?,
            Series::BestOfGroup => s.best_of_group_mean,
            Series::LengthRatio => s.length_ratio_mean?,
            Series::Loss => s.loss,
            Series::Kl => s.kl,
            Series::GradNorm => s.grad_norm,
            Series::Lr => s.lr,
            Series::HriWeight => s.hri_weight,
        };
        v.is_finite().then_some(v)
    }
}

/// Which steps the charts show: the last `span` steps up to `end`. None: everything / the
/// latest step (live follow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub span: Option<usize>,
    pub end: Option<usize>,
}

/// The narrowest window zooming in reaches, in steps.
const MIN_SPAN: usize = 8;

#[derive(Debug, Default)]
pub struct History {
    /// In step order (the log's order).
    pub steps: Vec<StepStats>,
}

impl History {
    pub fn push(&mut self, s: StepStats) {
        // a resumed run repeats no step, but a re-read log might: keep the latest
        if let Some(last) = self.steps.last() {
            if s.step <= last.step {
                self.steps.retain(|x| x.step < s.step);
            }
        }
        self.steps.push(s);
    }

    pub fn latest(&self) -> Option<&StepStats> {
        self.steps.last()
    }

    fn first_last(&self) -> Option<(usize, usize)> {
        Some((self.steps.first()?.step, self.steps.last()?.step))
    }

    /// The window's step range, inclusive.
    pub fn range(&self, w: Window) -> Option<(usize, usize)> {
        let (first, last) = self.first_last()?;
        let end = w.end.map_or(last, |e| e.clamp(first, last));
        let start = w.span.map_or(first, |s| end.saturating_sub(s.saturating_sub(1)).max(first));
        Some((start, end))
    }

    /// The rows whose step lies in the window.
    pub fn visible(&self, w: Window) -> &[StepStats] {
        let Some((a, b)) = self.range(w) else { return &[] };
        let lo = self.steps.partition_point(|s| s.step < a);
        let hi = self.steps.partition_point(|s| s.step <= b);
        &self.steps[lo..hi]
    }

    pub fn zoom(&self, w: Window, zoom_in: bool) -> Window {
        let Some((first, last)) = self.first_last() else { return w };
        let total = last - first + 1;
        let (a, b) = self.range(w).unwrap_or((first, last));
        let span = b - a + 1;
        let span = if zoom_in { (span / 2).max(MIN_SPAN.min(total)) } else { span.saturating_mul(2) };
        Window { span: (span < total).then_some(span), ..w }
    }

    /// Moves the window by a quarter of its width; reaching the latest step resumes following.
    pub fn pan(&self, w: Window, forward: bool) -> Window {
        let Some((first, last)) = self.first_last() else { return w };
        let Some((a, b)) = self.range(w) else { return w };
        let step = ((b - a + 1) / 4).max(1);
        let end = if forward { b + step } else { b.saturating_sub(step).max(first + (b - a)) };
        Window { end: (end < last).then_some(end), ..w }
    }
}

/// Reduces (x, y) points, x ascending, to at most two per column of `columns` equal columns
/// over [x0, x1]: each column's lowest and highest point, in x order.
pub fn thin(points: impl Iterator<Item = (f64, f64)>, x0: f64, x1: f64, columns: usize) -> Vec<(f64, f64)> {
    let columns = columns.max(1);
    let width = (x1 - x0).max(f64::MIN_POSITIVE);
    let mut out = Vec::with_capacity(2 * columns);
    // the current column and its (min, max) points
    type Point = (f64, f64);
    let mut current: Option<(usize, Point, Point)> = None;
    let flush = |out: &mut Vec<(f64, f64)>, lo: (f64, f64), hi: (f64, f64)| {
        if lo == hi {
            out.push(lo);
        } else if lo.0 <= hi.0 {
            out.extend([lo, hi]);
        } else {
            out.extend([hi, lo]);
        }
    };
    for p in points {
        let col = (((p.0 - x0) / width) * columns as f64).clamp(0.0, (columns - 1) as f64) as usize;
        match &mut current {
            Some((c, lo, hi)) if *c == col => {
                if p.1 < lo.1 {
                    *lo = p;
                }
                if p.1 > hi.1 {
                    *hi = p;
                }
            }
            _ => {
                if let Some((_, lo, hi)) = current.take() {
                    flush(&mut out, lo, hi);
                }
                current = Some((col, p, p));
            }
        }
    }
    if let Some((_, lo, hi)) = current {
        flush(&mut out, lo, hi);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(n: usize) -> History {
        let mut h = History::default();
        for step in 1..=n {
            h.push(StepStats { step, loss: step as f64, ..Default::default() });
        }
        h
    }

    #[test]
    fn thinning_keeps_every_columns_extremes_and_bounds_the_points() {
        // a sawtooth with one spike: 100k points into 100 columns
        let pts = (0..100_000).map(|i| (i as f64, if i == 31_337 { 50.0 } else { (i % 7) as f64 }));
        let thin = thin(pts, 0.0, 99_999.0, 100);
        assert!(thin.len() <= 200, "{} points", thin.len());
        assert!(thin.contains(&(31_337.0, 50.0)), "the spike survives");
        assert!(thin.iter().all(|p| p.1 == 50.0 || (0.0..=6.0).contains(&p.1)));
        assert!(thin.windows(2).all(|w| w[0].0 <= w[1].0), "x stays ascending");
    }

    #[test]
    fn zoom_and_pan_move_the_window_and_follow_resumes_at_the_end() {
        let h = history(100);
        let w = Window::default();
        assert_eq!(h.range(w), Some((1, 100)));
        let w = h.zoom(w, true);
        assert_eq!(h.range(w), Some((51, 100)));
        let w = h.pan(w, false);
        assert_eq!(h.range(w), Some((39, 88)), "a quarter of 50 steps back");
        assert_eq!(h.visible(w).len(), 50);
        let w = h.pan(h.pan(w, true), true);
        assert_eq!(w.end, None, "reaching the end follows live again");
        let w = h.zoom(h.zoom(w, false), false);
        assert_eq!(w, Window::default(), "zooming out past everything shows everything");
    }
}
