//! Bradley-Terry strengths by maximum likelihood, and the Elo scale.
//!
//! Model: system i beats system j with probability `p_i / (p_i + p_j)`. A tie counts as half
//! a win for each side, so a comparison is i's score `s` in {0, 1/2, 1} and contributes
//! `s ln(p_i / (p_i + p_j)) + (1 - s) ln(p_j / (p_i + p_j))` to the log-likelihood.
//!
//! The fit is Hunter's MM iteration (Zermelo's): `p_i <- W_i / sum_j N_ij / (p_i + p_j)`,
//! with `W_i` i's total score and `N_ij` the comparisons of i and j; every step raises the
//! likelihood, and the strengths are rescaled to geometric mean 1 after each.
//!
//! A system that wins (or loses) every comparison has its MLE at infinity. A prior keeps
//! every rating finite: `prior_ties` virtual ties between every two systems (default 1),
//! i.e. one extra comparison scored 1/2 per pair. Against the hundreds of real comparisons
//! of an evaluation it moves a rating by a fraction of a point; with few comparisons it
//! pulls ratings towards each other, which is the honest direction.

use anyhow::{bail, Result};

/// Elo points per natural-log unit of strength: rating = 400 log10(p) = 400 / ln 10 * ln p.
pub const ELO_PER_NAT: f64 = 400.0 / std::f64::consts::LN_10;

/// Accumulated comparisons between `n` systems.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    n: usize,
    /// `score[i * n + j]`: i's total score against j (wins + ties / 2).
    score: Vec<f64>,
    /// `games[i * n + j]`: comparisons of i and j (symmetric).
    games: Vec<f64>,
}

impl Tally {
    pub fn new(n: usize) -> Self {
        Self { n, score: vec![0.0; n * n], games: vec![0.0; n * n] }
    }

    /// One comparison of `a` and `b` with A's score `score_a` (1 win, 1/2 tie, 0 loss).
    /// Panics on indices out of range, `a == b` or a score outside [0, 1]: callers build
    /// these from validated data, so any of them is a bug.
    pub fn add(&mut self, a: usize, b: usize, score_a: f64) {
        assert!(a < self.n && b < self.n && a != b, "comparison of systems {a} and {b} of {}", self.n);
        assert!((0.0..=1.0).contains(&score_a), "score {score_a} outside [0, 1]");
        self.score[a * self.n + b] += score_a;
        self.score[b * self.n + a] += 1.0 - score_a;
        self.games[a * self.n + b] += 1.0;
        self.games[b * self.n + a] += 1.0;
    }

    /// Adds every comparison of `other` (same systems).
    pub fn merge(&mut self, other: &Tally) {
        assert_eq!(self.n, other.n, "tallies of different systems");
        for (s, o) in self.score.iter_mut().zip(&other.score) {
            *s += o;
        }
        for (g, o) in self.games.iter_mut().zip(&other.games) {
            *g += o;
        }
    }

    /// Comparisons system `i` took part in.
    pub fn games_of(&self, i: usize) -> f64 {
        self.games[i * self.n..(i + 1) * self.n].iter().sum()
    }
}

/// How the fit runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// Virtual ties between every two systems (see the module notes); 0 is the plain MLE.
    pub prior_ties: f64,
    /// Converged when no log-strength moves more than this in one step (1e-9 nats is
    /// 2e-7 Elo points).
    pub tolerance: f64,
    /// Steps at most before the fit gives up with an error.
    pub max_iterations: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self { prior_ties: 1.0, tolerance: 1e-9, max_iterations: 100_000 }
    }
}

/// The fitted log-strengths (natural log, mean 0), one per system.
///
/// `start` warm-starts the iteration (e.g. the full-data fit for a bootstrap resample).
/// Errors when a system has no comparison and no prior holds it, or when the iteration
/// does not converge within `max_iterations`.
pub fn fit(tally: &Tally, opts: &FitOptions, start: Option<&[f64]>) -> Result<Vec<f64>> {
    let n = tally.n;
    if n < 2 {
        bail!("a Bradley-Terry fit needs at least two systems, found {n}");
    }
    let games = |i: usize, j: usize| tally.games[i * n + j] + if i == j { 0.0 } else { opts.prior_ties };
    // each system's total score, the prior's ties included (1/2 per other system per tie)
    let wins: Vec<f64> = (0..n)
        .map(|i| tally.score[i * n..(i + 1) * n].iter().sum::<f64>() + opts.prior_ties * (n - 1) as f64 / 2.0)
        .collect();
    for (i, &w) in wins.iter().enumerate() {
        if w <= 0.0 {
            let reason =
                if tally.games_of(i) == 0.0 { "has no comparisons" } else { "lost every comparison" };
            bail!("system {i} {reason}: its strength is not identified without a prior (prior_ties > 0)");
        }
    }
    let mut p: Vec<f64> = match start {
        Some(s) if s.len() == n => s.iter().map(|x| x.exp()).collect(),
        _ => vec![1.0; n],
    };
    let mut last_change = f64::INFINITY;
    for _ in 0..opts.max_iterations {
        let mut next: Vec<f64> = (0..n)
            .map(|i| {
                let denom: f64 = (0..n).filter(|&j| j != i).map(|j| games(i, j) / (p[i] + p[j])).sum();
                wins[i] / denom
            })
            .collect();
        let log_mean = next.iter().map(|x| x.ln()).sum::<f64>() / n as f64;
        for x in &mut next {
            *x /= log_mean.exp();
        }
        last_change = p.iter().zip(&next).map(|(a, b)| (a.ln() - b.ln()).abs()).fold(0.0, f64::max);
        p = next;
        if !last_change.is_finite() {
            break;
        }
        if last_change < opts.tolerance {
            return Ok(p.iter().map(|x| x.ln()).collect());
        }
    }
    bail!(
        "the Bradley-Terry fit did not converge in {} iterations (last step moved a log-strength by {last_change:e}, \
         tolerance {:e}); with prior_ties = 0 a system that wins or loses everything has no finite rating",
        opts.max_iterations,
        opts.tolerance
    )
}

/// Elo ratings from log-strengths: `400 log10 p`, shifted so that system `anchor` sits at
/// `anchor_rating`.
pub fn elo(log_strength: &[f64], anchor: usize, anchor_rating: f64) -> Vec<f64> {
    let shift = anchor_rating - ELO_PER_NAT * log_strength[anchor];
    log_strength.iter().map(|l| ELO_PER_NAT * l + shift).collect()
}

/// The probability that a system rated `r_a` beats one rated `r_b` (the Elo curve; ties
/// as half).
pub fn expected_score(r_a: f64, r_b: f64) -> f64 {
    1.0 / (1.0 + 10f64.powf((r_b - r_a) / 400.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_systems_fit_the_closed_form() {
        // 30 wins, 10 losses, no prior: p_a / p_b = 3, so A is 400 log10 3 = 190.85 above B
        let mut t = Tally::new(2);
        for k in 0..40 {
            t.add(0, 1, if k < 30 { 1.0 } else { 0.0 });
        }
        let opts = FitOptions { prior_ties: 0.0, ..FitOptions::default() };
        let r = elo(&fit(&t, &opts, None).unwrap(), 1, 1000.0);
        // tolerance: the iteration stops within 1e-9 nats, far below 1e-6 points
        assert!((r[0] - (1000.0 + 400.0 * 3f64.log10())).abs() < 1e-6, "{r:?}");
        assert_eq!(r[1], 1000.0);
        // ties count as half: 20 wins, 20 ties, 0 losses is a score of 30 of 40 again
        let mut t = Tally::new(2);
        for k in 0..40 {
            t.add(0, 1, if k < 20 { 1.0 } else { 0.5 });
        }
        let r2 = elo(&fit(&t, &opts, None).unwrap(), 1, 1000.0);
        assert!((r2[0] - r[0]).abs() < 1e-6);
    }

    #[test]
    fn the_fit_satisfies_the_likelihood_equations() {
        // at the MLE every system's observed score equals its expected score
        // sum_j N_ij p_i / (p_i + p_j): checked independently of how the fit got there
        let mut t = Tally::new(4);
        let games = [(0, 1, 7, 3, 2), (0, 2, 4, 4, 1), (1, 2, 6, 1, 0), (2, 3, 2, 5, 3), (0, 3, 3, 3, 0)];
        for &(a, b, wins, losses, ties) in &games {
            for _ in 0..wins {
                t.add(a, b, 1.0);
            }
            for _ in 0..losses {
                t.add(a, b, 0.0);
            }
            for _ in 0..ties {
                t.add(a, b, 0.5);
            }
        }
        let opts = FitOptions { prior_ties: 0.0, tolerance: 1e-12, ..FitOptions::default() };
        let p: Vec<f64> = fit(&t, &opts, None).unwrap().iter().map(|l| l.exp()).collect();
        for i in 0..4 {
            let observed: f64 = (0..4).map(|j| t.score[i * 4 + j]).sum();
            let expected: f64 =
                (0..4).filter(|&j| j != i).map(|j| t.games[i * 4 + j] * p[i] / (p[i] + p[j])).sum();
            // tolerance: a 1e-12 step in log-strength leaves a residual far below 1e-8
            assert!((observed - expected).abs() < 1e-8, "system {i}: {observed} vs {expected}");
        }
    }

    #[test]
    fn a_system_that_wins_everything_stays_finite_with_the_prior_and_errors_without() {
        let mut t = Tally::new(3);
        for _ in 0..20 {
            t.add(0, 1, 1.0);
            t.add(0, 2, 1.0);
            t.add(1, 2, 0.5);
        }
        let r = elo(&fit(&t, &FitOptions::default(), None).unwrap(), 1, 1000.0);
        assert!(r[0].is_finite() && r[0] > r[1] + 300.0, "{r:?}");
        assert!((r[1] - r[2]).abs() < 1e-6, "1 and 2 tie each other and lose alike: {r:?}");
        let plain = FitOptions { prior_ties: 0.0, max_iterations: 2000, ..FitOptions::default() };
        let e = fit(&t, &plain, None).unwrap_err().to_string();
        assert!(e.contains("did not converge in 2000 iterations"), "{e}");
    }

    #[test]
    fn an_iteration_cap_that_is_too_small_is_an_error_not_a_result() {
        let mut t = Tally::new(3);
        t.add(0, 1, 1.0);
        t.add(1, 2, 1.0);
        let opts = FitOptions { max_iterations: 1, ..FitOptions::default() };
        let e = fit(&t, &opts, None).unwrap_err().to_string();
        assert!(e.contains("did not converge in 1 iterations"), "{e}");
    }

    #[test]
    fn a_system_without_comparisons_is_an_error_without_the_prior() {
        let mut t = Tally::new(3);
        t.add(0, 1, 1.0);
        t.add(0, 1, 0.0);
        let plain = FitOptions { prior_ties: 0.0, ..FitOptions::default() };
        let e = fit(&t, &plain, None).unwrap_err().to_string();
        assert!(e.contains("system 2 has no comparisons"), "{e}");
    }
}
