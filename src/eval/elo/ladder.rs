//! The Elo ladder from dual-position pairwise judgements: a Bradley-Terry fit of the
//! combined verdicts, bootstrap intervals over prompts, head-to-head counts and the judge's
//! position bias from the single-order verdicts. Pure: judgements in, `EloReport` out.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::bradley_terry::{self, FitOptions, Tally};
use crate::eval::report::{EloRating, EloReport, HeadToHead, PositionBias, REPORT_VERSION};
use crate::eval::stats::winrate::{percentile, Interval, Preference, MIN_RESAMPLES};
use crate::reward::pairwise::Shown;

/// Confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// One pair judged in both orders, from system A's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgedPair {
    /// Index of the prompt (resampling unit of the bootstrap).
    pub prompt: usize,
    /// Indices into the systems.
    pub a: usize,
    pub b: usize,
    /// The combined verdict (`PairwiseResult.preference`: > 0 A, < 0 B, 0 tie).
    pub combined: Preference,
    /// The verdict with A's story shown first, and with B's shown first, as shown.
    pub a_first: Shown,
    pub b_first: Shown,
}

impl JudgedPair {
    /// Both orders picked the story in the same position: different stories.
    pub fn inconsistent(&self) -> bool {
        matches!((self.a_first, self.b_first), (Shown::First, Shown::First) | (Shown::Second, Shown::Second))
    }
}

/// What the report is about and how its intervals are drawn.
#[derive(Debug, Clone)]
pub struct EloSettings {
    pub judge: String,
    /// System names; `JudgedPair` indices point here.
    pub systems: Vec<String>,
    pub anchor: usize,
    pub anchor_rating: f64,
    pub resamples: usize,
    pub seed: u64,
    pub fit: FitOptions,
}

/// Fits the ladder and fills the report.
pub fn elo_report(pairs: &[JudgedPair], s: &EloSettings) -> Result<EloReport> {
    let n = s.systems.len();
    if n < 2 {
        bail!("an Elo ladder needs at least two systems, found {}", n);
    }
    if s.anchor >= n {
        bail!("anchor index {} of {n} systems", s.anchor);
    }
    if s.resamples < MIN_RESAMPLES {
        bail!("{} bootstrap resamples: use at least {MIN_RESAMPLES}", s.resamples);
    }
    if pairs.is_empty() {
        bail!("no judged pairs: nothing to fit");
    }
    // per prompt (in order of first appearance): its comparisons and its single-order counts
    let mut prompt_index = std::collections::HashMap::new();
    let mut tallies: Vec<Tally> = Vec::new();
    let mut positions: Vec<[usize; 2]> = Vec::new();
    for p in pairs {
        let k = *prompt_index.entry(p.prompt).or_insert_with(|| {
            tallies.push(Tally::new(n));
            positions.push([0, 0]);
            tallies.len() - 1
        });
        tallies[k].add(p.a, p.b, p.combined.score());
        for shown in [p.a_first, p.b_first] {
            match shown {
                Shown::First => positions[k][0] += 1,
                Shown::Second => positions[k][1] += 1,
                Shown::Tie => {}
            }
        }
    }
    let mut all = Tally::new(n);
    for t in &tallies {
        all.merge(t);
    }
    let unrated: Vec<&str> =
        (0..n).filter(|&i| all.games_of(i) == 0.0).map(|i| s.systems[i].as_str()).collect();
    if !unrated.is_empty() {
        bail!(
            "no judged pair involves {}: nothing to rate {} by (does its generation file share prompt_uids with the others?)",
            unrated.join(", "),
            if unrated.len() == 1 { "it" } else { "them" }
        );
    }
    let fitted = bradley_terry::fit(&all, &s.fit, None)?;
    let ratings = bradley_terry::elo(&fitted, s.anchor, s.anchor_rating);

    // bootstrap: resample prompts with replacement, refit, percentiles per system
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(s.resamples); n];
    let mut first_rates = Vec::with_capacity(s.resamples);
    for _ in 0..s.resamples {
        let mut t = Tally::new(n);
        let mut pos = [0usize; 2];
        for _ in 0..tallies.len() {
            let k = rng.random_range(0..tallies.len());
            t.merge(&tallies[k]);
            pos[0] += positions[k][0];
            pos[1] += positions[k][1];
        }
        let r =
            bradley_terry::elo(&bradley_terry::fit(&t, &s.fit, Some(&fitted))?, s.anchor, s.anchor_rating);
        for (d, x) in draws.iter_mut().zip(r) {
            d.push(x);
        }
        // a resample without a decisive single-order verdict has no rate; it is left out
        if pos[0] + pos[1] > 0 {
            first_rates.push(pos[0] as f64 / (pos[0] + pos[1]) as f64);
        }
    }
    let interval = |v: &mut Vec<f64>| -> Interval {
        v.sort_by(f64::total_cmp);
        let tail = (1.0 - CONFIDENCE) / 2.0 * 100.0;
        Interval { low: percentile(v, tail), high: percentile(v, 100.0 - tail) }
    };

    let mut wlt = vec![[0usize; 3]; n];
    let mut h2h: Vec<HeadToHead> = Vec::new();
    let mut h2h_index = std::collections::HashMap::new();
    for p in pairs {
        // head-to-head rows keep the systems' order: the earlier system is `a`
        let (lo, hi, lo_pref) = if p.a < p.b { (p.a, p.b, p.combined) } else { (p.b, p.a, flip(p.combined)) };
        let k = *h2h_index.entry((lo, hi)).or_insert_with(|| {
            h2h.push(HeadToHead {
                a: s.systems[lo].clone(),
                b: s.systems[hi].clone(),
                a_wins: 0,
                b_wins: 0,
                ties: 0,
            });
            h2h.len() - 1
        });
        match lo_pref {
            Preference::AWins => {
                h2h[k].a_wins += 1;
                wlt[lo][0] += 1;
                wlt[hi][1] += 1;
            }
            Preference::BWins => {
                h2h[k].b_wins += 1;
                wlt[hi][0] += 1;
                wlt[lo][1] += 1;
            }
            Preference::Tie => {
                h2h[k].ties += 1;
                wlt[lo][2] += 1;
                wlt[hi][2] += 1;
            }
        }
    }
    h2h.sort_by_key(|h| (s.systems.iter().position(|x| *x == h.a), s.systems.iter().position(|x| *x == h.b)));

    let mut rated: Vec<EloRating> = (0..n)
        .map(|i| EloRating {
            system: s.systems[i].clone(),
            rating: ratings[i],
            ci: interval(&mut draws[i]),
            wins: wlt[i][0],
            losses: wlt[i][1],
            ties: wlt[i][2],
        })
        .collect();
    rated.sort_by(|x, y| y.rating.total_cmp(&x.rating));

    let first_wins: usize = positions.iter().map(|p| p[0]).sum();
    let second_wins: usize = positions.iter().map(|p| p[1]).sum();
    let judgements = 2 * pairs.len();
    let decisive = first_wins + second_wins;
    let position = PositionBias {
        judgements,
        first_wins,
        second_wins,
        ties: judgements - decisive,
        first_win_rate: (decisive > 0).then(|| first_wins as f64 / decisive as f64),
        first_win_rate_ci: (decisive > 0 && !first_rates.is_empty()).then(|| interval(&mut first_rates)),
        inconsistent_pairs: pairs.iter().filter(|p| p.inconsistent()).count(),
        pairs: pairs.len(),
    };
    Ok(EloReport {
        v: REPORT_VERSION,
        judge: s.judge.clone(),
        anchor: s.systems[s.anchor].clone(),
        anchor_rating: s.anchor_rating,
        confidence: CONFIDENCE,
        resamples: s.resamples,
        prompts: tallies.len(),
        ratings: rated,
        pairs: h2h,
        position,
    })
}

fn flip(p: Preference) -> Preference {
    match p {
        Preference::AWins => Preference::BWins,
        Preference::BWins => Preference::AWins,
        Preference::Tie => Preference::Tie,
    }
}

/// The combined verdict of a pairwise preference (> 0 A, < 0 B, 0 tie).
pub fn combined(preference: f64) -> Preference {
    if preference > 0.0 {
        Preference::AWins
    } else if preference < 0.0 {
        Preference::BWins
    } else {
        Preference::Tie
    }
}
