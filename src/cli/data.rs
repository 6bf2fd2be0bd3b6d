//! `polaris-tui data ...`: build a training set from a story collection, or check one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use crate::train::data::{self, BuildOptions, Cut, Example, LengthBucket, SkipReason};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Length-stratified prompts from a story collection, split into train and validation sets.
    Build(BuildArgs),
    /// Validate a dataset (every bad record named as FILE:LINE: field) and summarise it.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// A .jsonl file (title, story or text[, premise, reasoning, uid or id] per line), or a
    /// directory of .jsonl and .txt files (a .txt file is one story, titled by its file name).
    #[arg(long)]
    pub stories: PathBuf,
    /// Where the training examples go (JSONL; written whole, then renamed into place).
    #[arg(long)]
    pub out: PathBuf,
    /// Where the validation examples go [default: val.jsonl beside --out]
    #[arg(long)]
    pub val_out: Option<PathBuf>,
    /// Share of each length bucket held out for validation (0 to under 1).
    #[arg(long, default_value_t = 0.05)]
    pub val_fraction: f64,
    /// Seed of the split: the same stories and seed give the same split on every machine.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Longest reference kept, in words: a longer story is trimmed at a paragraph end (or a
    /// sentence end inside a very long paragraph) and its prompt asks for the kept length.
    /// 4000 is the paper's longest reference.
    #[arg(long, default_value_t = data::MAX_STORY_WORDS)]
    pub max_words: usize,
    /// Shortest story kept, in words (before or after trimming). 150: a shorter reference
    /// would itself get the reward's blank penalty.
    #[arg(long, default_value_t = data::MIN_STORY_WORDS)]
    pub min_words: usize,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// A dataset: one {"uid", "prompt", "target_word_count"[, "story", "reasoning"]} per line.
    pub file: PathBuf,
    /// Also tokenise every reference as the trainer does with this model (`tiny` or a Hugging
    /// Face directory; only its tokenizer and chat template are read) and warn about those
    /// longer than the response budget: training cuts them.
    #[arg(long)]
    pub model: Option<String>,
    /// The response budget in tokens [default: step.sampling.max_new_tokens of --config, else 8192]
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// A run config (run.toml): its model, response budget and thinking mode.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Build(args) => build(args),
        DataCommand::Check(args) => check(args),
    }
}

fn build(args: BuildArgs) -> Result<()> {
    let val_out = args.val_out.clone().unwrap_or_else(|| args.out.with_file_name("val.jsonl"));
    if val_out == args.out {
        bail!("--out and the validation file are both {}; name another with --val-out", val_out.display());
    }
    let opts = BuildOptions {
        val_fraction: args.val_fraction,
        seed: args.seed,
        min_words: args.min_words,
        max_words: args.max_words,
    };
    let built = data::build_with(&args.stories, &opts)?;
    data::write_jsonl(&args.out, &built.train)?;
    let val_note = if built.val.is_empty() {
        "no validation set (none held out), nothing written for it".to_string()
    } else {
        data::write_jsonl(&val_out, &built.val)?;
        format!(
            "validation -> {} (validated on during training with `train --val {0}` or data.val)",
            val_out.display()
        )
    };

    let used = built.train.len() + built.val.len();
    let read = used + built.skipped.len();
    println!(
        "{}: {read} stories: {} kept whole, {} trimmed to at most {} words, {} skipped; split with seed {} and validation fraction {}",
        args.stories.display(),
        used - built.trimmed.len(),
        built.trimmed.len(),
        args.max_words,
        built.skipped.len(),
        args.seed,
        args.val_fraction
    );
    let train = bucket_counts(&built.train);
    let val = bucket_counts(&built.val);
    println!("{:<12}{:>8}{:>8}", "words", "train", "val");
    for b in LengthBucket::ALL {
        println!("{:<12}{:>8}{:>8}", b.label(), train[&b], val[&b]);
    }
    println!("{:<12}{:>8}{:>8}", "total", built.train.len(), built.val.len());
    println!("train -> {}; {val_note}", args.out.display());
    let mut by_cut: BTreeMap<Cut, usize> = BTreeMap::new();
    for t in &built.trimmed {
        *by_cut.entry(t.cut).or_default() += 1;
    }
    for (cut, n) in by_cut {
        let at = match cut {
            Cut::Paragraph => "at a paragraph end",
            Cut::Sentence => "at a sentence end inside a long paragraph",
        };
        println!("trimmed {n} (over {} words, cut {at})", args.max_words);
    }
    let mut by_reason: BTreeMap<SkipReason, Vec<&str>> = BTreeMap::new();
    for s in &built.skipped {
        by_reason.entry(s.reason).or_default().push(&s.source);
    }
    for (reason, sources) in by_reason {
        println!("skipped {} ({}): {}", sources.len(), reason.describe(&opts), listed(&sources));
    }
    Ok(())
}

/// The first few of `items`, and how many more.
fn listed(items: &[&str]) -> String {
    const SHOWN: usize = 5;
    let shown = items.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    match items.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{shown}, ... {more} more"),
        _ => shown,
    }
}

fn check(args: CheckArgs) -> Result<()> {
    let numbered = data::load_numbered(&args.file)?;
    let budget = (args.model.is_some() || args.config.is_some())
        .then(|| {
            super::data_budget::Budget::resolve(
                args.model.clone(),
                args.max_new_tokens,
                args.config.as_deref(),
            )
        })
        .transpose()?;
    if budget.is_none() && args.max_new_tokens.is_some() {
        bail!(
            "--max-new-tokens needs --model DIR (or --config run.toml): the budget is in that model's tokens"
        );
    }
    let examples: Vec<Example> = numbered.iter().map(|(_, e)| e.clone()).collect();
    let with_story = examples.iter().filter(|e| e.story.is_some()).count();
    let with_reasoning = examples.iter().filter(|e| e.reasoning.is_some()).count();
    println!(
        "{}: {} records, {with_story} with a reference story, {} without, {with_reasoning} with a reasoning trace",
        args.file.display(),
        examples.len(),
        examples.len() - with_story
    );
    let mut targets: Vec<usize> = examples.iter().map(|e| e.target_word_count).collect();
    targets.sort_unstable();
    println!(
        "target words: min {}, median {}, max {}",
        targets[0],
        targets[targets.len() / 2],
        targets[targets.len() - 1]
    );
    let all = bucket_counts(&examples);
    let with = bucket_counts(examples.iter().filter(|e| e.story.is_some()));
    println!("{:<12}{:>8}{:>12}", "words", "records", "with story");
    for b in LengthBucket::ALL {
        println!("{:<12}{:>8}{:>12}", b.label(), all[&b], with[&b]);
    }
    if let Some(budget) = budget {
        super::data_budget::check(&args.file, &numbered, &budget)?;
    }
    Ok(())
}

fn bucket_counts<'a>(examples: impl IntoIterator<Item = &'a Example>) -> BTreeMap<LengthBucket, usize> {
    let mut counts: BTreeMap<LengthBucket, usize> = LengthBucket::ALL.iter().map(|&b| (b, 0)).collect();
    for e in examples {
        *counts.entry(LengthBucket::of(e.target_word_count)).or_default() += 1;
    }
    counts
}
