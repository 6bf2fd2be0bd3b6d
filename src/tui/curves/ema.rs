//! Smoothing as W&B and TensorBoard do it: an exponential moving average debiased like Adam's
//! moments, so the first points are not pulled toward zero:
//!   acc ← w·acc + (1 − w)·y,   norm ← w·norm + (1 − w),   smoothed = acc / norm.
//! The weight is per step: a gap of k steps (a resumed run, a step without the value) decays
//! the past by w^k. A NaN (no value at that step) gives NaN and leaves the average alone.

/// The strengths `<` and `>` move between; 0 is no smoothing.
pub const STRENGTHS: [f64; 8] = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999];

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ema {
    weight: f64,
    acc: f64,
    norm: f64,
    /// The step of the last value taken in.
    last_x: Option<f64>,
}

impl Ema {
    /// `weight` in [0, 1): 0 passes values through.
    pub fn new(weight: f64) -> Self {
        Self { weight: weight.clamp(0.0, 0.9999), ..Default::default() }
    }

    /// The smoothed value at step `x` after taking in `y`.
    pub fn push(&mut self, x: f64, y: f64) -> f64 {
        if !y.is_finite() {
            return f64::NAN;
        }
        let gap = self.last_x.map_or(1.0, |last| (x - last).max(1.0));
        let decay = if gap == 1.0 { self.weight } else { self.weight.powf(gap) };
        self.acc = decay * self.acc + (1.0 - self.weight) * y;
        self.norm = decay * self.norm + (1.0 - self.weight);
        self.last_x = Some(x);
        self.acc / self.norm
    }
}

/// The smoothed series of `ys` at steps `xs` (same length).
pub fn ema(xs: &[f64], ys: &[f64], weight: f64) -> Vec<f64> {
    let mut e = Ema::new(weight);
    xs.iter().zip(ys).map(|(&x, &y)| e.push(x, y)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed with w = 0.5 on 1, 2, 3, (none), 4 at steps 1..5:
    /// step 1: acc 0.5, norm 0.5 → 1;  step 2: acc 0.25 + 1 = 1.25, norm 0.75 → 5/3;
    /// step 3: acc 0.625 + 1.5 = 2.125, norm 0.875 → 17/7;  step 4: NaN;
    /// step 5 (gap 2, decay 0.25): acc 0.53125 + 2 = 2.53125, norm 0.71875 → 81/23.
    /// Tolerance 1e-12: a handful of f64 operations on small numbers.
    #[test]
    fn the_debiased_average_matches_hand_computed_values() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        let got = ema(&xs, &[1.0, 2.0, 3.0, f64::NAN, 4.0], 0.5);
        let want = [1.0, 5.0 / 3.0, 17.0 / 7.0, f64::NAN, 81.0 / 23.0];
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            if w.is_nan() {
                assert!(g.is_nan(), "step {}: {g}", i + 1);
            } else {
                assert!((g - w).abs() < 1e-12, "step {}: {g} vs {w}", i + 1);
            }
        }
    }

    #[test]
    fn no_smoothing_passes_values_through_and_a_constant_stays_constant() {
        let xs: Vec<f64> = (0..50).map(|i| i as f64).collect();
        let ys: Vec<f64> = xs.iter().map(|x| (x * 0.7).sin()).collect();
        assert_eq!(ema(&xs, &ys, 0.0), ys);
        // debiasing: a constant series is its own average from the first point on (no pull to 0)
        for w in STRENGTHS {
            let c = ema(&xs, &[3.25; 50], w);
            assert!(c.iter().all(|v| (v - 3.25).abs() < 1e-9), "w {w}: {c:?}");
        }
    }
}
