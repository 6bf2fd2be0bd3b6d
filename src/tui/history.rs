//! The run's per-step statistics, a zoomable window over them, and thinning for drawing: a
//! chart column can show only one vertical stroke, so a long history is reduced per column to
//! its minimum and maximum (spikes survive; a 100k-step history draws in a few passes).

use super::curves::column::Column;
use super::curves::ema::Ema;
use crate::run::stats::StepStats;
use crate::run::stats::ValStats;

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
    // the reward's components (policy rows' means, unweighted)
    StoryQuality,
    Repetition,
    LengthPenalty,
    BlankPenalty,
    OverlongPenalty,
    ReferenceRank,
    ReferenceBeatsAll,
    /// zero-variance groups over groups
    ZeroVarianceShare,
    ClipFracLow,
    ClipFracHigh,
    Entropy,
    JudgeLatencyP50,
    JudgeLatencyP95,
    /// US dollars this step
    JudgeCost,
    /// share of policy rows inside the length band
    LengthInBand,
}

impl Series {
    pub const ALL: [Series; 26] = [
        Series::PolicyMean,
        Series::PolicyUpper,
        Series::PolicyLower,
        Series::Reference,
        Series::BestOfGroup,
        Series::LengthRatio,
        Series::Loss,
        Series::Kl,
        Series::GradNorm,
        Series::Lr,
        Series::HriWeight,
        Series::StoryQuality,
        Series::Repetition,
        Series::LengthPenalty,
        Series::BlankPenalty,
        Series::OverlongPenalty,
        Series::ReferenceRank,
        Series::ReferenceBeatsAll,
        Series::ZeroVarianceShare,
        Series::ClipFracLow,
        Series::ClipFracHigh,
        Series::Entropy,
        Series::JudgeLatencyP50,
        Series::JudgeLatencyP95,
        Series::JudgeCost,
        Series::LengthInBand,
    ];

    pub fn value(self, s: &StepStats) -> Option<f64> {
        let c = s.components.as_ref();
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
            Series::StoryQuality => c?.story_quality,
            Series::Repetition => c?.repetition,
            Series::LengthPenalty => c?.length,
            Series::BlankPenalty => c?.blank,
            Series::OverlongPenalty => c?.overlong,
            Series::ReferenceRank => s.reference_rank_mean?,
            Series::ReferenceBeatsAll => s.reference_beats_all?,
            // older logs do not say how many groups there were
            Series::ZeroVarianceShare => {
                s.zero_variance_groups as f64 / (s.groups > 0).then_some(s.groups)? as f64
            }
            Series::ClipFracLow => s.clip_frac_low,
            Series::ClipFracHigh => s.clip_frac_high,
            Series::Entropy => s.entropy,
            Series::JudgeLatencyP50 => s.judge_latency_p50?,
            Series::JudgeLatencyP95 => s.judge_latency_p95?,
            Series::JudgeCost => s.judge_cost,
            Series::LengthInBand => s.length_in_band?,
        };
        v.is_finite().then_some(v)
    }
}

/// A curve of the history: a fixed series, or a rubric dimension (by its index in
/// `History::dimensions`, the order the run's judgements named them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurveKey {
    Series(Series),
    Dimension(usize),
}

/// A rubric dimension's mean score by row.
#[derive(Debug, Clone)]
pub struct DimensionColumn {
    pub key: String,
    /// The dimension's highest score.
    pub max: i64,
    pub column: Column,
    pub smoothed: Option<Column>,
}

/// One curve over a window, ready for `curves::column::thin`.
pub struct CurveView<'a> {
    /// The steps of every row up to the window's end.
    pub xs: &'a [f64],
    /// Rows [lo, hi) are the window's.
    pub rows: (usize, usize),
    pub raw: &'a Column,
    /// With smoothing on.
    pub smoothed: Option<&'a Column>,
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
    /// In step order (the log's order). Each step's rubric dimensions are moved into
    /// `dimensions` (16 named scores a step would hold ~1 KiB each in a 100k-step run).
    pub steps: Vec<StepStats>,
    /// Each series' values by row of `steps` (NaN where absent), kept column by column so
    /// drawing a curve streams 8 bytes per step instead of a whole `StepStats`.
    columns: Vec<Column>,
    /// With smoothing on: each series smoothed (EMA, `curves::ema`), by row.
    smoothed: Vec<Column>,
    /// The EMA weight (0: off) and each smoothed column's running average, fixed series
    /// first, then the dimensions.
    smoothing: f64,
    emas: Vec<Ema>,
    pub dimensions: Vec<DimensionColumn>,
    /// The step of each row, as the charts' x.
    xs: Vec<f64>,
    /// Validation passes (`val` events) in step order, and their steps and mean rewards as
    /// the validation curve's points.
    pub val: Vec<ValStats>,
    val_xs: Vec<f64>,
    val_ys: Vec<f64>,
}

impl History {
    pub fn push(&mut self, mut s: StepStats) {
        // a resumed run repeats no step, but a re-read log might: keep the latest
        if self.steps.last().is_some_and(|last| s.step <= last.step) {
            let cut = self.steps.partition_point(|x| x.step < s.step);
            self.cut(cut);
        }
        if self.columns.is_empty() {
            self.columns = vec![Column::default(); Series::ALL.len()];
        }
        let x = s.step as f64;
        let row = self.xs.len();
        self.xs.push(x);
        for (series, column) in Series::ALL.iter().zip(&mut self.columns) {
            column.push(series.value(&s).unwrap_or(f64::NAN));
        }
        for d in std::mem::take(&mut s.dimensions) {
            let at = match self.dimensions.iter().position(|c| c.key == d.key) {
                Some(at) => at,
                None => {
                    let smoothed = (self.smoothing > 0.0).then(|| Column::missing(row));
                    let column = Column::missing(row);
                    self.dimensions.push(DimensionColumn { key: d.key, max: d.max, column, smoothed });
                    if self.smoothing > 0.0 {
                        self.emas.push(Ema::new(self.smoothing));
                    }
                    self.dimensions.len() - 1
                }
            };
            let c = &mut self.dimensions[at];
            c.max = c.max.max(d.max);
            if c.column.len() == row {
                c.column.push(if d.mean.is_finite() { d.mean } else { f64::NAN });
            }
        }
        // dimensions this step did not score
        for c in &mut self.dimensions {
            if c.column.len() == row {
                c.column.push(f64::NAN);
            }
        }
        self.steps.push(s);
        if self.smoothing > 0.0 {
            self.smooth_row(row);
        }
    }

    /// Keeps the first `cut` rows.
    fn cut(&mut self, cut: usize) {
        self.steps.truncate(cut);
        self.columns.iter_mut().for_each(|c| c.truncate(cut));
        self.dimensions.iter_mut().for_each(|c| c.column.truncate(cut));
        self.xs.truncate(cut);
        // the running averages cannot be wound back: smooth again from the start
        self.set_smoothing(self.smoothing);
    }

    /// Smooths every curve with EMA weight `weight` (0: off, and the smoothed copies go).
    pub fn set_smoothing(&mut self, weight: f64) {
        self.smoothing = weight;
        self.smoothed.clear();
        self.dimensions.iter_mut().for_each(|d| d.smoothed = None);
        self.emas.clear();
        if weight <= 0.0 {
            return;
        }
        let n = self.columns.len() + self.dimensions.len();
        self.emas = vec![Ema::new(weight); n];
        self.smoothed = vec![Column::default(); self.columns.len()];
        self.dimensions.iter_mut().for_each(|d| d.smoothed = Some(Column::default()));
        for row in 0..self.xs.len() {
            self.smooth_row(row);
        }
    }

    pub fn smoothing(&self) -> f64 {
        self.smoothing
    }

    /// Extends every smoothed column by row `row`.
    fn smooth_row(&mut self, row: usize) {
        let x = self.xs[row];
        let mut emas = self.emas.iter_mut();
        for (raw, smooth) in self.columns.iter().zip(&mut self.smoothed) {
            if let Some(e) = emas.next() {
                smooth.push(e.push(x, raw.values()[row]));
            }
        }
        for d in &mut self.dimensions {
            if let (Some(e), Some(smooth)) = (emas.next(), d.smoothed.as_mut()) {
                smooth.push(e.push(x, d.column.values()[row]));
            }
        }
    }

    /// A curve over the steps `a..=b`, raw and (with smoothing on) smoothed.
    pub fn curve(&self, key: CurveKey, (a, b): (usize, usize)) -> Option<CurveView<'_>> {
        let (lo, hi) = self.rows_in((a, b));
        let (raw, smoothed) = match key {
            CurveKey::Series(series) => {
                (self.columns.get(series as usize)?, self.smoothed.get(series as usize))
            }
            CurveKey::Dimension(i) => {
                let d = self.dimensions.get(i)?;
                (&d.column, d.smoothed.as_ref())
            }
        };
        Some(CurveView { xs: &self.xs[..hi], rows: (lo, hi), raw, smoothed })
    }

    /// The latest finite value of a curve.
    pub fn latest_value(&self, key: CurveKey) -> Option<f64> {
        let values = match key {
            CurveKey::Series(series) => self.columns.get(series as usize)?.values(),
            CurveKey::Dimension(i) => self.dimensions.get(i)?.column.values(),
        };
        values.iter().rev().copied().find(|v| !v.is_nan())
    }

    /// A validation pass; one at a step already held replaces it and those after it (a
    /// resumed run validates those steps again).
    pub fn push_val(&mut self, v: ValStats) {
        self.truncate_val(self.val.partition_point(|x| x.step < v.step));
        self.val_xs.push(v.step as f64);
        self.val_ys.push(if v.reward_mean.is_finite() { v.reward_mean } else { f64::NAN });
        self.val.push(v);
    }

    fn truncate_val(&mut self, cut: usize) {
        self.val.truncate(cut);
        self.val_xs.truncate(cut);
        self.val_ys.truncate(cut);
    }

    /// Drops steps after `step` (a run resumed from that checkpoint takes them again), and
    /// the validation passes after it.
    pub fn truncate_after(&mut self, step: usize) {
        let cut = self.steps.partition_point(|x| x.step <= step);
        self.cut(cut);
        self.truncate_val(self.val.partition_point(|x| x.step <= step));
    }

    /// The validation curve over the window: (steps, mean validation rewards).
    pub fn val_series(&self, w: Window) -> (&[f64], &[f64]) {
        self.range(w).map_or((&[], &[]), |r| self.val_in(r))
    }

    /// The validation curve over the steps `a..=b`.
    pub fn val_in(&self, (a, b): (usize, usize)) -> (&[f64], &[f64]) {
        let lo = self.val.partition_point(|v| v.step < a);
        let hi = self.val.partition_point(|v| v.step <= b);
        (&self.val_xs[lo..hi], &self.val_ys[lo..hi])
    }

    pub fn latest_val(&self) -> Option<&ValStats> {
        self.val.last()
    }

    /// One series over the window: (steps, values), NaN where a step has no value.
    pub fn series(&self, series: Series, w: Window) -> (&[f64], &[f64]) {
        let (lo, hi) = self.bounds(w);
        match self.columns.get(series as usize) {
            Some(c) => (&self.xs[lo..hi], &c.values()[lo..hi]),
            None => (&[], &[]),
        }
    }

    /// Row indices [lo, hi) of the window.
    fn bounds(&self, w: Window) -> (usize, usize) {
        self.range(w).map_or((0, 0), |r| self.rows_in(r))
    }

    /// Row indices [lo, hi) of the steps `a..=b`.
    pub fn rows_in(&self, (a, b): (usize, usize)) -> (usize, usize) {
        (self.steps.partition_point(|s| s.step < a), self.steps.partition_point(|s| s.step <= b))
    }

    pub fn latest(&self) -> Option<&StepStats> {
        self.steps.last()
    }

    /// The first and last step with anything to draw: a training step or a validation pass
    /// (the one before training is at step 0).
    pub fn first_last(&self) -> Option<(usize, usize)> {
        let ends = |first: Option<usize>, last: Option<usize>| Some((first?, last?));
        let train = ends(self.steps.first().map(|s| s.step), self.steps.last().map(|s| s.step));
        let val = ends(self.val.first().map(|v| v.step), self.val.last().map(|v| v.step));
        match (train, val) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (one, other) => one.or(other),
        }
    }

    /// The window's step range, inclusive.
    pub fn range(&self, w: Window) -> Option<(usize, usize)> {
        Some(w.range(self.first_last()?))
    }

    /// The rows whose step lies in the window.
    pub fn visible(&self, w: Window) -> &[StepStats] {
        let (lo, hi) = self.bounds(w);
        &self.steps[lo..hi]
    }

    pub fn zoom(&self, w: Window, zoom_in: bool) -> Window {
        self.first_last().map_or(w, |ends| w.zoom(ends, zoom_in))
    }

    /// Moves the window by a quarter of its width; reaching the latest step resumes following.
    pub fn pan(&self, w: Window, forward: bool) -> Window {
        self.first_last().map_or(w, |ends| w.pan(ends, forward))
    }
}

impl Window {
    /// The window's step range, inclusive, over steps `first..=last` (one run's, or several
    /// runs' together).
    pub fn range(self, (first, last): (usize, usize)) -> (usize, usize) {
        let end = self.end.map_or(last, |e| e.clamp(first, last));
        let start = self.span.map_or(first, |s| end.saturating_sub(s.saturating_sub(1)).max(first));
        (start, end)
    }

    pub fn zoom(self, (first, last): (usize, usize), zoom_in: bool) -> Window {
        let total = last - first + 1;
        let (a, b) = self.range((first, last));
        let span = b - a + 1;
        let span = if zoom_in { (span / 2).max(MIN_SPAN.min(total)) } else { span.saturating_mul(2) };
        Window { span: (span < total).then_some(span), ..self }
    }

    /// Moves the window by a quarter of its width; reaching the latest step resumes following.
    pub fn pan(self, (first, last): (usize, usize), forward: bool) -> Window {
        let (a, b) = self.range((first, last));
        let step = ((b - a + 1) / 4).max(1);
        let end = if forward { b + step } else { b.saturating_sub(step).max(first + (b - a)) };
        Window { end: (end < last).then_some(end), ..self }
    }
}

/// Reduces a series (`xs` ascending, `ys` NaN where absent) over [x0, x1] to at most two
/// points per column of `columns` equal columns: the column's lowest and highest value, at
/// its first and last x, in the order the column runs (rising: low then high).
pub fn thin(xs: &[f64], ys: &[f64], x0: f64, x1: f64, columns: usize) -> Vec<(f64, f64)> {
    let columns = columns.max(1);
    let width = (x1 - x0).max(f64::MIN_POSITIVE);
    let mut out = Vec::with_capacity(2 * columns);
    let mut start = 0;
    for c in 0..columns {
        let end = if c + 1 == columns {
            xs.len()
        } else {
            let edge = x0 + width * (c + 1) as f64 / columns as f64;
            start + xs[start..].partition_point(|&x| x < edge)
        };
        let (cx, cy) = (&xs[start..end], &ys[start..end]);
        start = end;
        // f64::min / max skip NaN
        let (lo, hi) =
            cy.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &y| (lo.min(y), hi.max(y)));
        if lo > hi {
            continue; // empty, or nothing but NaN
        }
        let (first_x, last_x) = (cx[0], cx[cx.len() - 1]);
        if lo == hi {
            out.push((first_x, lo));
            continue;
        }
        let first = cy.iter().copied().find(|y| !y.is_nan()).unwrap_or(lo);
        let last = cy.iter().copied().rfind(|y| !y.is_nan()).unwrap_or(hi);
        if first <= last {
            out.extend([(first_x, lo), (last_x, hi)]);
        } else {
            out.extend([(first_x, hi), (last_x, lo)]);
        }
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
        // a sawtooth with one spike and a gap: 100k points into 100 columns
        let xs: Vec<f64> = (0..100_000).map(|i| i as f64).collect();
        let ys: Vec<f64> = (0..100_000)
            .map(|i| match i {
                31_337 => 50.0,
                50_000..60_000 => f64::NAN,
                _ => (i % 7) as f64,
            })
            .collect();
        let thin = thin(&xs, &ys, 0.0, 99_999.0, 100);
        assert_eq!(thin.len(), 2 * 90, "two points per column, none in the 10 empty ones");
        assert!(thin.iter().any(|p| p.1 == 50.0), "the spike survives");
        assert!(thin.iter().all(|p| p.1 == 50.0 || p.1 == 0.0 || p.1 == 6.0), "only extremes are kept");
        assert!(thin.iter().all(|p| !(50_000.0..60_000.0).contains(&p.0)), "the gap stays empty");
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
        let (xs, loss) = h.series(Series::Loss, w);
        assert_eq!((xs.len(), xs[0], loss[49]), (50, 39.0, 88.0));
        let w = h.pan(h.pan(w, true), true);
        assert_eq!(w.end, None, "reaching the end follows live again");
        let w = h.zoom(h.zoom(w, false), false);
        assert_eq!(w, Window::default(), "zooming out past everything shows everything");
    }

    #[test]
    fn validation_passes_widen_the_range_and_a_resume_replaces_them() {
        let mut h = history(40);
        for step in [0, 20, 40] {
            h.push_val(ValStats { step, reward_mean: step as f64 / 100.0, ..Default::default() });
        }
        // the pass before training is drawn at step 0
        assert_eq!(h.range(Window::default()), Some((0, 40)));
        assert_eq!(h.val_series(Window::default()), (&[0.0, 20.0, 40.0][..], &[0.0, 0.2, 0.4][..]));
        let w = Window { span: Some(21), end: None };
        assert_eq!(h.val_series(w).0, &[20.0, 40.0]);
        // resumed from step 20: the pass at 40 goes, and one logged again at 20 replaces it
        h.truncate_after(20);
        assert_eq!(h.val.len(), 2);
        h.push_val(ValStats { step: 20, reward_mean: -1.0, ..Default::default() });
        assert_eq!(h.val_series(Window::default()).1, &[0.0, -1.0]);
        assert_eq!(h.latest_val().map(|v| v.step), Some(20));
        // only a validation pass so far (before the first step): there is a range to draw
        let mut only = History::default();
        only.push_val(ValStats::default());
        assert_eq!(only.range(Window::default()), Some((0, 0)));
    }
}
