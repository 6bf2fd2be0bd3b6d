//! `polaris-tui eval elo`: a pairwise Elo ladder of systems from their generation files.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;

use crate::cli::judge::JudgeAccessArgs;
use crate::durable::write_atomic;
use crate::eval::elo::bradley_terry::FitOptions;
use crate::eval::elo::judge::{judge_missing, judged_pairs, missing};
use crate::eval::elo::ladder::{elo_report, EloSettings};
use crate::eval::elo::pairs::Matchup;
use crate::eval::elo::render;
use crate::eval::elo::store::{pairwise_prompt_id, JudgementFile};
use crate::eval::report::ELO_JSON;
use crate::eval::stats::winrate::MIN_RESAMPLES;
use crate::reward::judge::JUDGE_SPECS;
use crate::reward::pairwise::PairwisePrompt;
use crate::reward::principles::{load_optional, OFFLINE_IGNORES};
use crate::reward::{JudgeClient, JudgeSpec, Rubric};

#[derive(Args, Debug)]
pub struct EloArgs {
    /// Generation files (JSONL: uid, prompt, system, story per line); a file may hold
    /// one system or several. Stories are matched across systems by uid; several
    /// stories of one system for one prompt are samples 0, 1, ... in reading order, and
    /// sample i is paired with sample i.
    #[arg(long, num_args = 1.., required = true)]
    pub gens: Vec<PathBuf>,
    #[arg(long, help = JUDGE_SPECS)]
    pub judge: String,
    /// The pairwise prompt TOML [default: the built-in rubrics/pairwise.toml].
    #[arg(long)]
    pub pairwise_prompt: Option<PathBuf>,
    /// A principles file (TOML, at most 10 rules) the judge compares with besides the
    /// pairwise prompt; records carry their hash. The offline judge ignores it.
    #[arg(long)]
    pub principles: Option<PathBuf>,
    /// The system whose rating is fixed [default: the first system read].
    #[arg(long)]
    pub anchor: Option<String>,
    /// The anchor's rating.
    #[arg(long, default_value_t = 1000.0)]
    pub anchor_rating: f64,
    /// Bootstrap resamples over prompts (at least 1000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(MIN_RESAMPLES as u64..))]
    pub resamples: u64,
    /// Bootstrap seed: the same seed gives the same intervals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory: judgements.jsonl (one record per judged pair, kept across re-runs),
    /// elo.json, elo.md and the ladder plot elo.png / elo.svg.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub access: JudgeAccessArgs,
}

pub fn run(args: EloArgs) -> Result<()> {
    if !args.anchor_rating.is_finite() {
        bail!("--anchor-rating {}: give a finite number", args.anchor_rating);
    }
    let matchup = Matchup::read(&args.gens)?;
    let anchor = match &args.anchor {
        None => 0,
        Some(name) => matchup.system_index(name).ok_or_else(|| {
            anyhow::anyhow!(
                "--anchor `{name}` is not a system in the generation files; they hold {}",
                matchup.systems.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            )
        })?,
    };
    if let Some(w) = matchup.skipped_warning() {
        eprintln!("{w}");
    }
    let prompt = match &args.pairwise_prompt {
        Some(path) => PairwisePrompt::from_toml_file(path)?,
        None => PairwisePrompt::builtin()?,
    };
    let spec = JudgeSpec::parse(&args.judge)?;
    if let JudgeSpec::RewardModel(_) = spec {
        bail!(
            "--judge {}: eval elo asks a judge model to compare two stories (openai:MODEL, gemini:MODEL or \
             offline); a reward model's pair accuracy is `polaris-tui rm eval`",
            spec.label()
        );
    }
    let prompt = match load_optional(args.principles.as_deref())? {
        Some(_) if spec == JudgeSpec::Offline => {
            eprintln!("note: {OFFLINE_IGNORES}");
            prompt
        }
        Some(p) => prompt.with_principles(&p),
        None => prompt,
    };
    let prompt_id = pairwise_prompt_id(&prompt);
    // the offline judge measures locally: nothing worth caching
    let mut settings = args.access.settings(Some(args.out.join(crate::run::dir::JUDGE_CACHE)))?;
    if spec == JudgeSpec::Offline {
        settings.cache_dir = None;
    }
    let judge = spec.label();
    // the offline pairwise judge compares the stories' offline overall under this rubric
    let client = Arc::new(JudgeClient::new(spec, Rubric::builtin()?, settings)?);

    let (mut file, mut existing) = JudgementFile::open(&args.out, &judge, &prompt_id)?;
    if let Some(note) = &existing.torn_note {
        eprintln!("{note}");
    }
    let other = existing.unmatched(&matchup.keys());
    if other > 0 {
        eprintln!(
            "note: {} holds {other} record(s) of pairs not in these generation files; they are left out",
            file.path().display()
        );
    }
    let todo = missing(&matchup, &existing, file.path())?;
    let kept = matchup.tasks.len() - todo.len();
    eprintln!(
        "{} systems, {} prompts, {} pairs: {} already judged in {}, {} to judge with {judge}",
        matchup.systems.len(),
        matchup.prompts.len(),
        matchup.tasks.len(),
        kept,
        file.path().display(),
        todo.len()
    );
    let mut failed_now = 0;
    if !todo.is_empty() {
        let bar = indicatif::ProgressBar::new(todo.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} pairs judged  {elapsed} elapsed, {eta} left",
            )
            .expect("valid template"),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let records = runtime.block_on(judge_missing(
            &matchup,
            &todo,
            client.clone(),
            Arc::new(prompt),
            &prompt_id,
            &mut file,
            |r| {
                if !r.complete() {
                    failed_now += 1;
                }
                bar.inc(1);
            },
        ))?;
        bar.finish_and_clear();
        for (line, r) in records {
            existing.add(line, r);
        }
    }
    for notice in client.take_notices() {
        eprintln!("note: {notice}");
    }
    let t = client.totals();
    eprintln!(
        "judged {} pairs now ({failed_now} with a failed order, judged again on a re-run); cache hits {}; tokens {} in / {} out; cost ${:.4}",
        todo.len(),
        t.cache_hits,
        t.usage.prompt_tokens,
        t.usage.completion_tokens,
        t.usage.cost
    );

    let (pairs, failed) = judged_pairs(&matchup, &existing);
    if failed > 0 {
        eprintln!(
            "warning: {failed} pair(s) have a failed order and are left out of the ladder; re-run the same command to judge them again"
        );
    }
    let report = elo_report(
        &pairs,
        &EloSettings {
            judge,
            systems: matchup.systems.clone(),
            anchor,
            anchor_rating: args.anchor_rating,
            resamples: args.resamples as usize,
            seed: args.seed,
            fit: FitOptions::default(),
        },
    )?;
    let json_path = args.out.join(ELO_JSON);
    write_atomic(&json_path, format!("{}\n", serde_json::to_string_pretty(&report)?).as_bytes())?;
    let md_path = args.out.join("elo.md");
    write_atomic(&md_path, render::markdown(&report).as_bytes())?;
    let plots = crate::eval::plot::write_elo_plot(&report, &args.out)?;
    print!("{}", render::table(&report));
    let plots: Vec<String> = plots.iter().map(|p| p.display().to_string()).collect();
    eprintln!("wrote {}, {} and {}", json_path.display(), md_path.display(), plots.join(", "));
    Ok(())
}
