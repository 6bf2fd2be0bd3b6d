//! `polaris-tui principles refine`: rounds of generator -> detector -> reflector over a
//! dataset's prompts and human stories, into an append-only folder that a later invocation
//! continues (`reward::principles::refine`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use super::eval::length::Bars;
use super::judge::JudgeAccessArgs;
use crate::eval::human::agreement::{judge_agreement, judged_pairs, SourceAgreement};
use crate::eval::length::run::Progress;
use crate::reward::judge::{JudgeSettings, JUDGE_MODELS};
use crate::reward::principles::refine::store::{Manifest, RefineDir, CACHE};
use crate::reward::principles::refine::{refine, Agents, Limits, Row};
use crate::reward::principles::strategies::Strategies;
use crate::reward::principles::Principles;
use crate::reward::{JudgeClient, JudgeSpec, Rubric};
use crate::train::data;

#[derive(Subcommand, Debug)]
pub enum PrinciplesCommand {
    /// Refine principles adversarially: a generator spoils human stories by bad-sample
    /// strategies, a detector judges with the principles, a reflector revises both lists.
    /// Continues the --out folder's rounds when it has some.
    Refine(Box<RefineArgs>),
}

#[derive(Args, Debug)]
pub struct RefineArgs {
    /// A dataset JSONL (uid, prompt, target_word_count, story): its prompts are spoiled, its
    /// human stories are the good examples the detector must pass.
    #[arg(long)]
    pub data: PathBuf,
    /// The starting principles (TOML, at most 10 rules).
    #[arg(long)]
    pub principles: PathBuf,
    /// The starting bad-sample strategies (TOML, at most 10 [[strategy]] with name and how)
    /// [default: the built-in set].
    #[arg(long)]
    pub strategies: Option<PathBuf>,
    /// The refinement's folder (append-only; a re-run continues it from its last complete round).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, help = concat!("The agent that writes flawed stories: ", crate::reward::judge::judge_models!()))]
    pub generator: String,
    #[arg(long, help = concat!("The agent that judges stories with the principles: ", crate::reward::judge::judge_models!()))]
    pub detector: String,
    #[arg(long, help = concat!("The agent that revises the principles and strategies: ", crate::reward::judge::judge_models!()))]
    pub reflector: String,
    /// Rounds at most, counting those done before.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: u64,
    /// Dataset rows per round (one flawed and one human story each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Stop when the detection rate has not beaten its best for this many rounds (0: never).
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    /// An `annotate` study folder: report the judge's agreement with its human verdicts
    /// (raw and Cohen's kappa) with the starting and with the refined principles. The judge
    /// is the --detector model scoring with the builtin rubric and the principles.
    #[arg(long, value_name = "STUDY")]
    pub against: Option<PathBuf>,
    #[command(flatten)]
    pub access: JudgeAccessArgs,
}

pub fn run(cmd: PrinciplesCommand) -> Result<()> {
    match cmd {
        PrinciplesCommand::Refine(args) => refine_cmd(*args),
    }
}

fn agent(flag: &str, spec: &str, settings: &JudgeSettings) -> Result<Arc<JudgeClient>> {
    let parsed =
        JudgeSpec::parse(spec).map_err(|_| anyhow::anyhow!("--{flag} {spec:?}: expected {JUDGE_MODELS}"))?;
    match parsed {
        JudgeSpec::Offline => bail!(
            "--{flag} offline: the offline judge measures text, it cannot write or read; give a judge model ({JUDGE_MODELS})"
        ),
        JudgeSpec::RewardModel(_) => bail!(
            "--{flag} {spec}: a reward model scores a story, it cannot write or revise one; give a judge model ({JUDGE_MODELS})"
        ),
        _ => {}
    }
    let client = JudgeClient::new(parsed, Rubric::builtin()?, settings.clone())
        .with_context(|| format!("--{flag}"))?;
    Ok(Arc::new(client))
}

fn rows(path: &Path) -> Result<Vec<Row>> {
    let rows: Vec<Row> = data::load(path)?
        .into_iter()
        .filter_map(|e| {
            e.story.filter(|s| !s.trim().is_empty()).map(|story| Row { uid: e.uid, prompt: e.prompt, story })
        })
        .collect();
    if rows.is_empty() {
        bail!(
            "--data {}: no row has a human story (field `story`); the detector needs them as the good examples: \
             build a dataset with `polaris-tui data build --stories FILE --out {}`",
            path.display(),
            path.display()
        );
    }
    Ok(rows)
}

fn refine_cmd(args: RefineArgs) -> Result<()> {
    let start = Principles::load(&args.principles)?;
    let strategies = match &args.strategies {
        Some(p) => Strategies::load(p)?,
        None => Strategies::builtin(),
    };
    let rows = rows(&args.data)?;
    let settings = args.access.settings(Some(args.out.join(CACHE)))?;
    let agents = Agents {
        generator: agent("generator", &args.generator, &settings)?,
        detector: agent("detector", &args.detector, &settings)?,
        reflector: agent("reflector", &args.reflector, &settings)?,
    };
    let limits = Limits { rounds: args.rounds as usize, batch: args.batch as usize, patience: args.patience };
    let manifest = Manifest::new(
        &args.data,
        data::file_sha256(&args.data)?,
        &start,
        &strategies,
        limits.batch,
        [args.generator.clone(), args.detector.clone(), args.reflector.clone()],
    );
    let (mut dir, rounds, torn) = RefineDir::open(&args.out, &manifest, &start, &strategies)?;
    let progress = Bars::default();
    if let Some(note) = torn {
        progress.note(&format!("note: {note}"));
    }
    if !rounds.is_empty() {
        progress.note(&format!("continuing {}: {} rounds done", args.out.display(), rounds.len()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;

    let study = match &args.against {
        Some(dir) => Some(judged_pairs(dir)?),
        None => None,
    };
    let agree = |principles: &Principles, what: &str| -> Result<Option<SourceAgreement>> {
        let Some((_, pairs)) = &study else { return Ok(None) };
        let judge = JudgeClient::new(
            JudgeSpec::parse(&args.detector)?,
            Rubric::builtin()?.with_principles(principles),
            settings.clone(),
        )?;
        progress.note(&format!("judging the study's {} pairs with the {what} principles ...", pairs.len()));
        Ok(Some(runtime.block_on(judge_agreement(&Arc::new(judge), pairs))))
    };
    let before = agree(&start, "starting")?;

    let done = refine(&runtime, &mut dir, rounds, &rows, &agents, limits, &progress)?;
    let last = done.rounds.len();
    let mut usage = crate::reward::judge::http::Usage::default();
    for r in &done.rounds {
        usage.add(&r.usage);
    }
    eprintln!(
        "stopped after round {last}: {}. {} new rounds this time; all rounds: {} tokens in / {} out, ${:.4}",
        done.ending, done.new_rounds, usage.prompt_tokens, usage.completion_tokens, usage.cost
    );
    let final_path = dir.principles_path(last);
    eprintln!("principles after round {last}: {} (version {})", final_path.display(), done.principles.hash());

    if let (Some(before), Some(after)) = (before, agree(&done.principles, "refined")?) {
        let report = json!({"study": args.against.as_ref().map(|p| p.display().to_string()), "before": before, "after": after});
        crate::durable::write_atomic(&args.out.join("against.json"), format!("{report:#}\n").as_bytes())?;
        for (what, a) in [("before", &before), ("after", &after)] {
            let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
            eprintln!(
                "agreement with the study's human verdicts {what} refinement ({}): raw {} over {} comparisons, \
                 Cohen's kappa {}; {} pairs unscored",
                a.source,
                f(a.raw),
                a.compared,
                f(a.cohens_kappa),
                a.unscored
            );
        }
        eprintln!("wrote {}", args.out.join("against.json").display());
    }
    Ok(())
}
