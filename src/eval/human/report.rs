//! The human-evaluation report of a study folder: system A's win rate over B (ties as
//! half) with a bootstrap CI over prompts, pooled and per annotator, and the agreement
//! of every two annotators.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::annotate::ledger::{Judged, Ledger};
use crate::annotate::store::read_lines;
use crate::annotate::study::Study;
use crate::eval::stats::agreement::{cohens_kappa, raw_agreement};
use crate::eval::stats::winrate::{bootstrap_ci, win_rate, Interval, Preference};

#[derive(Debug, Clone, Serialize)]
pub struct HumanReport {
    pub study: String,
    pub system_a: String,
    pub system_b: String,
    pub prompts: usize,
    pub resamples: usize,
    pub seed: u64,
    pub annotators: Vec<AnnotatorProgress>,
    /// All annotators pooled first, then one row per annotator with judgments.
    pub win_rates: Vec<WinRateRow>,
    pub agreement: Vec<AgreementRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnnotatorProgress {
    pub annotator: String,
    pub judged: usize,
    pub total: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct WinRateRow {
    /// `all` or an annotator's name.
    pub scope: String,
    pub judgments: usize,
    pub prompts: usize,
    pub a_wins: usize,
    pub b_wins: usize,
    pub ties: usize,
    /// A's win rate over B, ties counted as half.
    pub win_rate: f64,
    pub ci95: Interval,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgreementRow {
    pub annotators: [String; 2],
    /// Prompts both judged.
    pub shared: usize,
    pub raw_with_ties: Option<f64>,
    /// Shared prompts neither called a tie.
    pub shared_without_ties: usize,
    pub raw_without_ties: Option<f64>,
    /// Over the three labels A wins, B wins, tie.
    pub cohens_kappa: Option<f64>,
}

/// Pooled scope name in `win_rates`.
pub const ALL: &str = "all";

impl HumanReport {
    /// Reads `study.json` and every annotator's judgments in `dir`.
    pub fn from_study(dir: &Path, resamples: usize, seed: u64) -> Result<Self> {
        let study = Study::load(dir)?;
        let files = Study::judgment_files(dir)?;
        if files.is_empty() {
            bail!(
                "{}: no judgments-*.jsonl files yet; run `polaris-tui annotate --out {}` first",
                dir.display(),
                dir.display()
            );
        }
        let mut annotators = Vec::new();
        for (name, path) in files {
            let lines = read_lines(&path)?;
            let Some(ledger) = Ledger::replay(&path, &lines, &study)? else { continue };
            if ledger.annotator != name {
                bail!(
                    "{}: written by annotator `{}` but named for `{name}`",
                    path.display(),
                    ledger.annotator
                );
            }
            annotators.push(ledger);
        }
        Self::from_ledgers(dir, &study, &annotators, resamples, seed)
    }

    pub fn from_ledgers(
        dir: &Path,
        study: &Study,
        ledgers: &[Ledger],
        resamples: usize,
        seed: u64,
    ) -> Result<Self> {
        let [a, b] = &study.systems;
        let prefs: Vec<HashMap<&str, Preference>> = ledgers
            .iter()
            .map(|l| l.judged().iter().map(|j| (j.prompt_uid.as_str(), preference(j, a))).collect())
            .collect();
        let mut win_rates = Vec::new();
        if let Some(row) = win_rate_row(ALL, study, &prefs, resamples, seed)? {
            win_rates.push(row);
        } else {
            let names: Vec<&str> = ledgers.iter().map(|l| l.annotator.as_str()).collect();
            bail!("{}: no judgments yet (annotators: {}); annotate first", dir.display(), names.join(", "));
        }
        for (ledger, p) in ledgers.iter().zip(&prefs) {
            if let Some(row) =
                win_rate_row(&ledger.annotator, study, std::slice::from_ref(p), resamples, seed)?
            {
                win_rates.push(row);
            }
        }
        let mut agreement = Vec::new();
        for i in 0..ledgers.len() {
            for j in i + 1..ledgers.len() {
                agreement.push(agreement_row(
                    [&ledgers[i].annotator, &ledgers[j].annotator],
                    &prefs[i],
                    &prefs[j],
                    study,
                ));
            }
        }
        Ok(Self {
            study: dir.display().to_string(),
            system_a: a.clone(),
            system_b: b.clone(),
            prompts: study.items.len(),
            resamples,
            seed,
            annotators: ledgers
                .iter()
                .map(|l| AnnotatorProgress {
                    annotator: l.annotator.clone(),
                    judged: l.done(),
                    total: l.total(),
                })
                .collect(),
            win_rates,
            agreement,
        })
    }
}

/// A judgment unblinded to system A's side.
pub fn preference(j: &Judged, system_a: &str) -> Preference {
    match j.winner() {
        Some(w) if w == system_a => Preference::AWins,
        Some(_) => Preference::BWins,
        None => Preference::Tie,
    }
}

fn win_rate_row(
    scope: &str,
    study: &Study,
    prefs: &[HashMap<&str, Preference>],
    resamples: usize,
    seed: u64,
) -> Result<Option<WinRateRow>> {
    // One entry per prompt in study order: every annotator's comparison of it.
    let by_prompt: Vec<Vec<Preference>> = study
        .items
        .iter()
        .map(|item| prefs.iter().filter_map(|p| p.get(item.prompt_uid.as_str()).copied()).collect())
        .filter(|v: &Vec<Preference>| !v.is_empty())
        .collect();
    let all: Vec<Preference> = by_prompt.iter().flatten().copied().collect();
    let Some(rate) = win_rate(&all) else { return Ok(None) };
    let count = |p: Preference| all.iter().filter(|&&x| x == p).count();
    Ok(Some(WinRateRow {
        scope: scope.into(),
        judgments: all.len(),
        prompts: by_prompt.len(),
        a_wins: count(Preference::AWins),
        b_wins: count(Preference::BWins),
        ties: count(Preference::Tie),
        win_rate: rate,
        ci95: bootstrap_ci(&by_prompt, resamples, seed)?,
    }))
}

fn agreement_row(
    names: [&String; 2],
    first: &HashMap<&str, Preference>,
    second: &HashMap<&str, Preference>,
    study: &Study,
) -> AgreementRow {
    let pairs: Vec<(Preference, Preference)> = study
        .items
        .iter()
        .filter_map(|item| {
            let uid = item.prompt_uid.as_str();
            Some((*first.get(uid)?, *second.get(uid)?))
        })
        .collect();
    let decisive: Vec<(Preference, Preference)> =
        pairs.iter().copied().filter(|(x, y)| *x != Preference::Tie && *y != Preference::Tie).collect();
    AgreementRow {
        annotators: [names[0].clone(), names[1].clone()],
        shared: pairs.len(),
        raw_with_ties: raw_agreement(&pairs),
        shared_without_ties: decisive.len(),
        raw_without_ties: raw_agreement(&decisive),
        cohens_kappa: cohens_kappa(&pairs),
    }
}
