//! `polaris-tui eval bench`: one of the paper's benchmarks over generation files.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use super::length::Bars;
use crate::cli::judge::JudgeConnectionArgs;
use crate::eval::bench::batch::Watch;
use crate::eval::bench::config::ReleaseConfig;
use crate::eval::bench::input::InputFields;
use crate::eval::bench::runner::{self, BenchEval};
use crate::eval::bench::{render, Task, Templates, BENCH_JSON, BENCH_MD};
use crate::eval::stats::winrate::MIN_RESAMPLES;
use crate::reward::judge::batch::BatchStatus;
use crate::reward::judge::JUDGE_MODELS;
use crate::reward::{JudgeClient, JudgeSpec, Rubric};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// story_quality, eq_bench_longform, eq_bench_creative, writingbench or longbench_write
    /// [default: the --config's task].
    #[arg(long)]
    pub task: Option<String>,
    /// Generation files (JSONL: uid, prompt, system, story per line; other fields
    /// ignored) [default: the --config's input_path]. Several stories of one system for one
    /// prompt are samples 0, 1, ...
    #[arg(long, num_args = 1..)]
    pub gens: Vec<PathBuf>,
    /// The benchmark's prompt set (JSONL with the prompt id in `uid`, `prompt_uid` or `id`):
    /// LongBench-Write's `target_length`, WritingBench's `checklist` [default: the --config's
    /// prompts_path].
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// The prompt set's id field [default: the --config's prompts_id_field, else uid].
    #[arg(long)]
    pub prompts_id_field: Option<String>,
    #[arg(long, help = concat!(crate::reward::judge::judge_models!(), " [default: the --config's engine]"))]
    pub judge: Option<String>,
    /// A POLARIS release eval config (eval/configs/*.json, e.g.
    /// ../shared/data/polaris/eval/eqbench_creative_gpt.json): task, fields, judge, sampling.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder: judgements.jsonl (every judgement, appended as it arrives: run again to
    /// resume), bench.json, bench.md, and batch.json with --batch.
    #[arg(long)]
    pub out: PathBuf,
    /// Judge through the OpenAI Batch API (half price; waits for the batch). A run stopped
    /// while it waits picks the recorded batch up again.
    #[arg(long)]
    pub batch: bool,
    /// Seconds between two looks at a batch.
    #[arg(long, default_value_t = 30.0)]
    pub poll_secs: f64,
    /// Bootstrap resamples over prompts (at least 1000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(MIN_RESAMPLES as u64..))]
    pub resamples: u64,
    /// Bootstrap seed: the same seed gives the same intervals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A TOML file with a [judge] table (settings, price table); a --config's sampling goes over it.
    #[arg(long)]
    pub judge_config: Option<PathBuf>,
    #[command(flatten)]
    pub connection: JudgeConnectionArgs,
}

struct Said;

impl Watch for Said {
    fn status(&self, s: &BatchStatus) {
        eprintln!("batch {}: {} ({} of {} done, {} failed)", s.id, s.status, s.completed, s.total, s.failed);
    }
}

fn read_text(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn run(args: BenchArgs) -> Result<()> {
    let config = args.config.as_deref().map(ReleaseConfig::read).transpose()?;
    let task = match (&args.task, &config) {
        (Some(t), Some(c)) => {
            let t = Task::parse(t)?;
            if t != c.task {
                bail!(
                    "--task {} but {} is a {} config; give one of them",
                    t.name(),
                    c.path.display(),
                    c.task.name()
                );
            }
            t
        }
        (Some(t), None) => Task::parse(t)?,
        (None, Some(c)) => c.task,
        (None, None) => {
            bail!("give --task NAME (one of {}) or a release --config", Task::ALL.map(Task::name).join(", "))
        }
    };
    let gens = if !args.gens.is_empty() {
        args.gens.clone()
    } else {
        match config.as_ref().and_then(|c| c.input.clone()) {
            Some(p) => vec![p],
            None => bail!("give --gens FILE... (the config's input_path, if any, names no file here)"),
        }
    };
    let spec = match (&args.judge, &config) {
        (Some(j), _) => JudgeSpec::parse(j)?,
        (None, Some(c)) => c.judge.clone(),
        (None, None) => bail!("give --judge {JUDGE_MODELS} (or a release --config naming one)"),
    };
    if spec == JudgeSpec::Offline {
        bail!("--judge offline: the benchmarks need a judge model ({JUDGE_MODELS})");
    }
    crate::eval::bench::Family::of(&spec)?;
    if args.batch && !matches!(spec, JudgeSpec::OpenAi(_)) {
        bail!(
            "--batch is the OpenAI Batch API: give an openai:MODEL judge, or judge {} online",
            spec.label()
        );
    }
    let poll = Duration::try_from_secs_f64(args.poll_secs)
        .map_err(|_| anyhow!("--poll-secs {}: give a number of seconds >= 0", args.poll_secs))?;
    let mut settings = args
        .connection
        .settings(args.judge_config.as_deref(), Some(args.out.join(crate::run::dir::JUDGE_CACHE)))?;
    let mut templates = Templates::builtin();
    let mut fields = InputFields::default();
    let mut notes = vec![];
    let mut prompts = args.prompts.clone();
    let mut prompts_id_field = args.prompts_id_field.clone();
    if let Some(c) = &config {
        c.apply(&mut settings);
        settings.validate().map_err(|e| anyhow!("{}: {e}", c.path.display()))?;
        fields = c.fields.clone();
        templates.story_quality_override = c.override_overall;
        if let Some(p) = &c.system_message {
            templates.story_quality_system = read_text(p)?;
        }
        if let Some(p) = &c.json_schema {
            templates.story_quality_schema = serde_json::from_str(&read_text(p)?)
                .map_err(|e| anyhow!("{}: the schema is not JSON ({e})", p.display()))?;
        }
        if let Some(p) = &c.judge_prompt {
            let text = read_text(p)?;
            match task {
                Task::StoryQuality => templates.story_quality_system = text,
                Task::EqBenchCreative => templates.eq_creative = text,
                Task::EqBenchLongform => templates.eq_longform = text,
                Task::WritingBench => templates.writingbench = text,
                Task::LongbenchWrite => templates.longbench_write = text,
            }
        }
        prompts = prompts.or(c.prompts.clone());
        prompts_id_field = prompts_id_field.or(Some(c.prompts_id_field.clone()));
        notes.extend(c.notes.iter().cloned());
        if spec != c.judge {
            // the config's provider notes are about a judge not used
            notes.retain(|n| !n.contains("runs on the Gemini API"));
            notes.push(format!(
                "--judge {} replaces the judge of {} ({})",
                spec.label(),
                c.path.display(),
                c.judge.label()
            ));
        }
    }
    if matches!(task, Task::WritingBench | Task::LongbenchWrite) && prompts.is_none() {
        eprintln!(
            "note: no --prompts: {} reads {} from the stories' own records only",
            task.title(),
            if task == Task::WritingBench { "each checklist" } else { "each target_length" }
        );
    }
    // the benchmarks' client never uses a rubric: the release's prompts travel in each request
    let client = Arc::new(JudgeClient::new(spec, Rubric::builtin()?, settings)?);
    let eval = BenchEval {
        task,
        gens,
        prompts,
        prompts_id_field: prompts_id_field.unwrap_or_else(|| "uid".into()),
        fields,
        out: args.out.clone(),
        templates,
        batch: args.batch.then_some(poll),
        resamples: args.resamples as usize,
        seed: args.seed,
        notes,
    };
    let bars = Bars::default();
    let outcome = runner::run(&eval, client.clone(), &bars, &Said)?;
    for notice in client.take_notices() {
        eprintln!("note: {notice}");
    }
    eprintln!(
        "judged {} requests now ({} failed: run the same command again to ask them again); tokens {} in / {} out; cost ${:.4}{}",
        outcome.judged,
        outcome.failed,
        outcome.usage.prompt_tokens,
        outcome.usage.completion_tokens,
        outcome.usage.cost,
        if args.batch { " at batch prices" } else { "" }
    );
    print!("{}", render::markdown(&outcome.report));
    eprintln!("wrote {} and {}", args.out.join(BENCH_JSON).display(), args.out.join(BENCH_MD).display());
    Ok(())
}
