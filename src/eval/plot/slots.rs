//! A category axis for plotters: category i sits at i and owns the slot i ± 0.5, so series
//! can be nudged apart and bars given a width inside it, and its tick is labelled with the
//! category's name (plotters' own segmented axis takes no positions between categories).

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

#[derive(Debug, Clone)]
pub(super) struct Slots {
    /// Category i's name.
    labels: Vec<String>,
}

impl Slots {
    pub(super) fn new(labels: Vec<String>) -> Self {
        Self { labels }
    }

    fn n(&self) -> f64 {
        self.labels.len().max(1) as f64
    }
}

impl Ranged for Slots {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value + 0.5) / self.n();
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        (0..self.labels.len()).map(|i| i as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        -0.5..self.n() - 0.5
    }
}

impl ValueFormatter<f64> for Slots {
    fn format_ext(&self, value: &f64) -> String {
        let i = value.round();
        (i >= 0.0).then(|| self.labels.get(i as usize)).flatten().cloned().unwrap_or_default()
    }
}
