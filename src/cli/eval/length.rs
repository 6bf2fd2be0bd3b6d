//! `polaris-tui eval length`: Story Quality and length ratio per requested-length bucket,
//! from models (generated here) or from existing generation files (`--gens`).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::super::judge::JudgeAccessArgs;
use super::super::{OnOff, SamplingArgs};
use crate::eval::length::render;
use crate::eval::length::run::models::resolve;
use crate::eval::length::run::settings::ModelSpec;
use crate::eval::length::run::stories::GenerationSettings;
use crate::eval::length::run::{self, LengthEval, Progress, Source};
use crate::eval::length::stats::parse_buckets;
use crate::eval::stats::winrate::MIN_RESAMPLES;
use crate::model::lora::peft;
use crate::reward::judge::JUDGE_SPECS;
use crate::reward::principles::{for_judge, load_optional};
use crate::reward::{JudgeClient, JudgeSpec, Rubric};

#[derive(Args, Debug)]
pub struct LengthArgs {
    /// A model to generate with: a Hugging Face model directory, `tiny`, or a training run's
    /// checkpoints/step-N (LoRA or full fine-tune, over the base in the run's config.toml);
    /// repeat for several.
    #[arg(long = "model", value_name = "DIR", required_unless_present = "gens", conflicts_with = "gens")]
    pub models: Vec<String>,
    /// A LoRA adapter per --model, in order: a PEFT adapter directory or a LoRA run's
    /// checkpoints/step-N folder, or `none` (give none, or one per --model).
    #[arg(long = "adapter", value_name = "DIR")]
    pub adapters: Vec<String>,
    /// A label per model, in order [default: `RUN/step-N` for a run's checkpoint, else the
    /// directory name].
    #[arg(long = "name", value_name = "LABEL")]
    pub names: Vec<String>,
    /// Existing generation files to judge instead of generating (JSONL: uid, prompt,
    /// system, story; `system` is the model label).
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub gens: Vec<PathBuf>,
    /// The prompts: a dataset JSONL (uid, prompt, target_word_count; the held-out prompts) or a
    /// generation file. The requested length is the prompt's `N words long`.
    #[arg(long, required_unless_present = "gens", conflicts_with = "gens")]
    pub prompts: Option<PathBuf>,
    /// Requested-length buckets in words, LO-HI (LO inclusive, HI exclusive, the last bucket
    /// includes its HI), in increasing order.
    #[arg(long, default_value = "1000-4000,4000-8000,8000-12000")]
    pub buckets: String,
    /// Stories per prompt and model.
    #[arg(long, default_value_t = 1, conflicts_with = "gens")]
    pub samples: usize,
    /// Let the model reason in a <think> block before the story (stripped before judging).
    #[arg(long, value_enum, default_value = "on")]
    pub thinking: OnOff,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Weight and compute precision: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// cpu, or cuda:N (in a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value = "offline", help = JUDGE_SPECS)]
    pub judge: String,
    /// `builtin` (rubrics/story_quality.toml) or a rubric TOML file.
    #[arg(long, default_value = "builtin")]
    pub rubric: String,
    /// A principles file (TOML, at most 10 rules) the judge scores with besides the rubric;
    /// judgements carry their hash. The offline judge ignores it.
    #[arg(long)]
    pub principles: Option<PathBuf>,
    /// Judge again the stories whose judgement failed (else they stay failed, counted apart).
    #[arg(long)]
    pub retry_failed: bool,
    /// Bootstrap resamples (at least 1000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(MIN_RESAMPLES as u64..))]
    pub resamples: u64,
    /// Bootstrap seed: the same seed gives the same intervals.
    #[arg(long, default_value_t = 0)]
    pub bootstrap_seed: u64,
    /// The evaluation's directory (records, length.json, length.md, quality_by_length and length_ratio .png / .svg); a re-run continues it.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub access: JudgeAccessArgs,
}

pub fn run(args: LengthArgs) -> Result<()> {
    let buckets = parse_buckets(&args.buckets)?;
    let source = if args.gens.is_empty() {
        let Some(prompts) = args.prompts.clone() else { bail!("--prompts FILE is needed with --model") };
        Source::Models {
            models: model_specs(&args.models, &args.adapters, &args.names)?,
            prompts,
            generation: Box::new(GenerationSettings {
                samples: args.samples,
                thinking: args.thinking.is_on(),
                dtype: args.dtype.clone(),
                device: args.device.clone(),
                sampling: args.sampling.params(None)?,
                sampling_long: args.sampling.params(Some(8000))?,
            }),
        }
    } else {
        if !args.names.is_empty() || !args.adapters.is_empty() {
            bail!(
                "--name and --adapter go with --model; with --gens each file's `system` field is the label"
            );
        }
        for f in &args.gens {
            if !f.is_file() {
                bail!("--gens {}: no such file", f.display());
            }
        }
        Source::Gens(args.gens.clone())
    };
    let client = Arc::new(judge_client(&args)?);
    let eval = LengthEval {
        out: args.out.clone(),
        source,
        buckets,
        resamples: args.resamples as usize,
        bootstrap_seed: args.bootstrap_seed,
        retry_failed: args.retry_failed,
    };
    let bars = Bars::default();
    let outcome = run::run(&eval, client.clone(), &bars)?;
    print!("{}", render::table(&outcome.report));
    // a report without a single judged story has nothing to draw; that is said, not fatal
    let plots = match crate::eval::plot::write_length_plots(&outcome.report, &args.out) {
        Ok(paths) => paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        Err(e) => format!("no plots ({e:#})"),
    };
    for notice in client.take_notices() {
        eprintln!("note: {notice}");
    }
    let t = client.totals();
    eprintln!(
        "\ngenerated {} stories, judged {} ({} stories without a judgement: failed, left out of SQ); \
         judge tokens {} in / {} out, cost ${:.4}\nwrote {}, {} and {}",
        outcome.generated,
        outcome.judged,
        outcome.failed,
        t.usage.prompt_tokens,
        t.usage.completion_tokens,
        t.usage.cost,
        args.out.join(crate::eval::report::LENGTH_JSON).display(),
        args.out.join(run::LENGTH_MD).display(),
        plots
    );
    Ok(())
}

fn judge_client(args: &LengthArgs) -> Result<JudgeClient> {
    let spec = JudgeSpec::parse(&args.judge)?;
    let principles = load_optional(args.principles.as_deref())?;
    let (rubric, notice) = for_judge(&spec, Rubric::load(&args.rubric)?, principles.as_ref());
    if let Some(notice) = notice {
        eprintln!("note: {notice}");
    }
    let settings = args.access.settings(Some(args.out.join(crate::run::dir::JUDGE_CACHE)))?;
    JudgeClient::new(spec, rubric, settings)
}

/// The models with their adapters and labels, checked.
fn model_specs(models: &[String], adapters: &[String], names: &[String]) -> Result<Vec<ModelSpec>> {
    if !adapters.is_empty() && adapters.len() != models.len() {
        bail!(
            "{} --adapter for {} --model: give one per --model, in order (`none` for a model without one)",
            adapters.len(),
            models.len()
        );
    }
    if !names.is_empty() && names.len() != models.len() {
        bail!("{} --name for {} --model: give one per --model, in order", names.len(), models.len());
    }
    let mut specs = Vec::new();
    for (i, model) in models.iter().enumerate() {
        let adapter = adapters.get(i).filter(|a| a.as_str() != "none").cloned();
        if let Some(a) = &adapter {
            if !peft::is_adapter_dir(Path::new(a)) {
                bail!(
                    "--adapter {a}: not a LoRA adapter (no {}); give a PEFT adapter directory or a LoRA \
                     run's checkpoints/step-N folder",
                    peft::CONFIG_FILE
                );
            }
        }
        let label = names.get(i).cloned().unwrap_or_else(|| default_label(model, adapter.as_deref()));
        specs.push(resolve(label, model, adapter)?);
    }
    Ok(specs)
}

/// `RUN/step-N` for a run's checkpoint folder, else the last path component.
pub fn default_label(model: &str, adapter: Option<&str>) -> String {
    let path = Path::new(adapter.unwrap_or(model));
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().to_string());
    let leaf = name(path).unwrap_or_else(|| path.display().to_string());
    match crate::run::RunDir::of_checkpoint(path) {
        Some(run) => match name(&run.path) {
            Some(run) => format!("{run}/{leaf}"),
            None => leaf,
        },
        None => leaf,
    }
}

/// Progress bars on the terminal, notes printed above them.
#[derive(Default)]
pub(in crate::cli) struct Bars {
    bar: RefCell<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn note(&self, text: &str) {
        match &*self.bar.borrow() {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn begin(&self, what: &str, total: usize) {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}  {elapsed_precise} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        *self.bar.borrow_mut() = Some(bar);
    }

    fn advance(&self) {
        if let Some(bar) = &*self.bar.borrow() {
            bar.inc(1);
        }
    }

    fn end(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::default_label;

    #[test]
    fn labels_name_the_run_and_step_of_a_checkpoint() {
        assert_eq!(default_label("tiny", None), "tiny");
        assert_eq!(default_label("../models/Qwen3.5-0.8B/", None), "Qwen3.5-0.8B");
        assert_eq!(default_label("base", Some("runs/lora/checkpoints/step-000040")), "lora/step-000040");
        assert_eq!(default_label("base", Some("adapters/story-lora")), "story-lora");
    }
}
