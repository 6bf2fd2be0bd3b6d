//! `polaris-tui prefs build`: one pairs file from annotate studies, Elo judgements and
//! training runs (`crate::prefs::build`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::prefs::build::{annotate, elo, merge, run};
use crate::prefs::write_pairs;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The pairs file to write (whole or not at all).
    #[arg(long)]
    pub out: PathBuf,
    /// An annotate study folder (human verdicts; ties give no pair). Repeatable.
    #[arg(long)]
    pub study: Vec<PathBuf>,
    /// An `eval elo --out` folder (pairs whose two orders agree). Repeatable; needs --gens.
    #[arg(long)]
    pub elo: Vec<PathBuf>,
    /// The generation files the --elo folders judged (their stories' texts).
    #[arg(long, num_args = 1..)]
    pub gens: Vec<PathBuf>,
    /// A training run directory (its groups in rollouts.jsonl). Repeatable.
    #[arg(long)]
    pub run: Vec<PathBuf>,
    /// Reward difference a run pair needs (reference vs a row, top vs bottom row), on the
    /// scale of the rows' rewards (the clipped composite, ±2 by default).
    #[arg(long, default_value_t = 0.5)]
    pub margin: f64,
    /// Share of prompts held out (split = heldout), chosen by prompt id.
    #[arg(long, default_value_t = 0.1)]
    pub heldout: f64,
}

pub fn build(args: BuildArgs) -> Result<()> {
    if args.study.is_empty() && args.elo.is_empty() && args.run.is_empty() {
        bail!("give at least one source: --study DIR, --elo DIR (with --gens), or --run DIR");
    }
    if !(0.0..1.0).contains(&args.heldout) {
        bail!("--heldout {}: give a share from 0 up to (not including) 1", args.heldout);
    }
    if !args.gens.is_empty() && args.elo.is_empty() {
        bail!("--gens is read only with --elo");
    }
    let mut gathered = Vec::new();
    for dir in &args.study {
        let (pairs, ties) = annotate::pairs(dir)?;
        eprintln!("{}: {} pairs ({ties} ties give none)", dir.display(), pairs.len());
        gathered.extend(pairs);
    }
    for dir in &args.elo {
        let got = elo::pairs(dir, &args.gens)?;
        eprintln!(
            "{}: {} pairs ({} judgements without an agreed winner passed over)",
            dir.display(),
            got.pairs.len(),
            got.passed_over
        );
        gathered.extend(got.pairs);
    }
    for dir in &args.run {
        let pairs = run::pairs(dir, args.margin)?;
        eprintln!("{}: {} pairs (margin {})", dir.display(), pairs.len(), args.margin);
        gathered.extend(pairs);
    }
    let (pairs, summary) = merge(gathered, args.heldout);
    if pairs.is_empty() {
        bail!("no pairs: the sources hold no preference with a winner (nothing written)");
    }
    write_pairs(&args.out, &pairs)?;
    println!("{}", summary.table());
    eprintln!("wrote {} pairs to {}", pairs.len(), args.out.display());
    Ok(())
}
