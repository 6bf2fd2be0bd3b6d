//! The `polaris-tui` command line: one module per subcommand, each a thin layer over
//! the library.

mod annotate;
mod attach;
mod bench;
mod data;
mod data_budget;
mod eval;
mod generate;
mod init_config;
mod judge;
mod merge;
mod open;
mod plan;
mod prefs;
mod progress;
mod report;
mod rm;
mod runs;
mod score;
mod sft;
mod stdout;
mod stop;
mod supervise;
mod train;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::device::{parse_device, parse_dtype};
use crate::generate::SamplingParams;
use crate::model::LoadOptions;
use crate::train::trained::Weights;

#[derive(Parser, Debug)]
#[command(
    name = "polaris-tui",
    version,
    about = "Train small language models to write long, good stories (GRPO + human-reference injection).",
    long_about = "Train small language models to write long, good stories (GRPO + human-reference injection).\n\nWith no subcommand, runs the demo: the built-in tiny model, warm-started on the demo stories, trained with GRPO + HRI against the offline judge (a run directory under runs/)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a length-controlled story, streamed to the terminal.
    Generate(generate::GenerateArgs),
    /// Per-token log-probs of a text under a model (the training path), with NLL and perplexity.
    Score(score::ScoreArgs),
    /// Score stories with the reward stack (rubric judge + rule components).
    Judge(judge::JudgeArgs),
    /// Training datasets: build one from a story collection, or check one.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train with GRPO + human-reference injection, headless, one line per step.
    Train(train::TrainArgs),
    /// The memory plan of a run (same flags as train): predicted peak per device, item by item, against what is available, and what to change when it does not fit.
    Plan(plan::PlanArgs),
    /// Supervised fine-tuning on a dataset's stories; writes a model directory.
    Sft(sft::SftArgs),
    /// Write a commented run configuration with the recipe's defaults.
    InitConfig(init_config::InitConfigArgs),
    /// Export trained weights (a LoRA adapter or a full fine-tune checkpoint) merged into a Hugging Face model directory.
    Merge(merge::MergeArgs),
    /// The workbench TUI on a run directory (read only; a live run is followed).
    Open(open::OpenArgs),
    /// The workbench TUI on a live run over its control socket; leaving it leaves the run going on.
    Attach(attach::AttachArgs),
    /// Blinded side-by-side human judging of two systems' stories, saved as you go.
    Annotate(annotate::AnnotateArgs),
    /// Automatic evaluation with a judge: Story Quality and length per requested-length bucket, pairwise Elo.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Evaluation reports.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Benchmarks that print a table.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Every run started on this machine, newest first, with its status; choose one to attach to.
    Runs(runs::RunsArgs),
    /// Stop a running or paused run (it checkpoints first) and wait for it to end.
    Stop(stop::StopArgs),
    /// Preference pairs (prompt, chosen, rejected) from studies, Elo judgements and runs.
    #[command(subcommand)]
    Prefs(prefs::PrefsCommand),
    /// A reward model trained on preference pairs: `rm train`, `rm eval`; score with `--judge rm:DIR`.
    #[command(subcommand)]
    Rm(rm::RmCommand),
    /// A detached run's supervisor (started by `train --detach`).
    #[command(hide = true)]
    Supervise(supervise::SuperviseArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => demo(),
        Some(Command::Generate(args)) => generate::run(args),
        Some(Command::Score(args)) => score::run(args),
        Some(Command::Judge(args)) => judge::run(args),
        Some(Command::InitConfig(args)) => init_config::run(args),
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Sft(args)) => sft::run(args),
        Some(Command::Plan(args)) => plan::run(args),
        Some(Command::Merge(args)) => merge::run(args),
        Some(Command::Data(cmd)) => data::run(cmd),
        Some(Command::Open(args)) => open::run(args),
        Some(Command::Bench(cmd)) => bench::run(cmd),
        Some(Command::Annotate(args)) => annotate::run(args),
        Some(Command::Attach(args)) => attach::run(args),
        Some(Command::Report(cmd)) => report::run(cmd),
        Some(Command::Runs(args)) => runs::run(args),
        Some(Command::Stop(args)) => stop::run(args),
        Some(Command::Supervise(args)) => supervise::run(args),
        Some(Command::Eval(cmd)) => eval::run(cmd),
        Some(Command::Prefs(cmd)) => prefs::run(cmd),
        Some(Command::Rm(cmd)) => rm::run(cmd),
    }
}

/// The demo run (no subcommand): the workbench TUI on it when stdin and stdout are a
/// terminal, else headless with a progress bar and one line per step.
fn demo() -> Result<()> {
    use std::io::IsTerminal;
    let dir = crate::run::demo::fresh_dir();
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        let cfg = crate::run::demo::config(&dir)?;
        eprintln!(
            "polaris-tui demo: the built-in tiny model, a short supervised warm start on the demo stories, \
             then GRPO + HRI with the offline judge. Ctrl-C stops it (checkpointed); continue with \
             `polaris-tui train --config {0}/config.toml --resume auto`.",
            dir.display()
        );
        let (_controls, rx) = std::sync::mpsc::channel();
        return train::run_headless(&cfg, crate::run::launch::Resume::Auto, rx);
    }
    let live = crate::run::demo::start(&dir)?;
    // `polaris-tui stop` on the demo ends its run as leaving the TUI does
    signal_hook::flag::register(signal_hook::consts::SIGTERM, live.interrupt.clone())?;
    let shown = crate::tui::run_live(&live.dir, live.controls.clone(), None);
    // leaving the TUI ends the demo run between steps, with a final checkpoint; `d` then
    // continues it from that checkpoint in a detached process of its own
    live.interrupt.store(true, std::sync::atomic::Ordering::Relaxed);
    eprintln!("stopping the demo run in {} (it checkpoints first) ...", live.dir.display());
    let ended = live.thread.join().map_err(|_| anyhow::anyhow!("the demo run panicked"))?;
    let leave = shown?;
    ended?;
    if leave == crate::tui::Leave::Detach {
        return train::continue_detached(&live.dir);
    }
    eprintln!(
        "continue it with `polaris-tui train --config {0}/config.toml --resume auto`",
        live.dir.display()
    );
    Ok(())
}

/// Which model, in which precision, on which device.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A Hugging Face model directory, `tiny` for the built-in model, or a run's
    /// checkpoints/step-N (its base model with the checkpoint over it).
    #[arg(long, default_value = "tiny")]
    pub model: String,
    /// Weight and compute precision: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// cpu, or cuda:N (in a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// A LoRA adapter to apply: a PEFT adapter directory or a LoRA run's checkpoint folder.
    #[arg(long)]
    pub adapter: Option<std::path::PathBuf>,
}

impl ModelArgs {
    /// The precision and device; the adapter comes with `weights`.
    pub fn load_options(&self) -> Result<LoadOptions> {
        Ok(LoadOptions::new(parse_dtype(&self.dtype)?, parse_device(&self.device)?))
    }

    /// What --model and --adapter name (a run's checkpoint stands for its base model with the
    /// checkpoint over it).
    pub fn weights(&self) -> Result<Weights> {
        Weights::resolve(&self.model, self.adapter.as_deref())
    }

    /// Opens the model, reporting in one line any checkpoint parts it skipped.
    pub fn open(&self) -> Result<crate::lm::LanguageModel> {
        let lm = self.weights()?.open(&self.load_options()?)?;
        if let Some(note) = lm.model.skipped_note() {
            eprintln!("note: {note}");
        }
        Ok(lm)
    }
}

/// Sampling flags; anything not given keeps the model card's default (RECIPE.md).
#[derive(Args, Debug, Clone, Default)]
pub struct SamplingArgs {
    /// 0 is greedy decoding [default: 0.6]
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass [default: 0.95]
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Keep the k most likely tokens, 0 = off [default: 20]
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Drop tokens below min_p x the top probability, 0 = off [default: 0]
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Penalise tokens already in the context, 1 = off [default: 1.0]
    #[arg(long)]
    pub repetition_penalty: Option<f32>,
    /// Penalise tokens already generated, 0 = off; not together with --repetition-penalty [default: 0]
    #[arg(long)]
    pub presence_penalty: Option<f32>,
    /// Generated tokens at most, thinking included [default: 8192; 14336 for 8k+ words]
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Thinking tokens at most before `</think>` is forced; 0 = no budget [default: 3072]
    #[arg(long)]
    pub thinking_budget: Option<usize>,
    /// Random seed: the same seed gives the same text [default: 0]
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The flags over the defaults; `words` picks the long-story token budget.
    pub fn params(&self, words: Option<usize>) -> Result<SamplingParams> {
        let mut p = SamplingParams::default();
        if words.is_some_and(|w| w >= 8000) {
            p.max_new_tokens = 14336;
        }
        if let Some(v) = self.temperature {
            p.temperature = v;
        }
        if let Some(v) = self.top_p {
            p.top_p = v;
        }
        if let Some(v) = self.top_k {
            p.top_k = v;
        }
        if let Some(v) = self.min_p {
            p.min_p = v;
        }
        if let Some(v) = self.repetition_penalty {
            p.repetition_penalty = v;
        }
        if let Some(v) = self.presence_penalty {
            p.presence_penalty = v;
        }
        if let Some(v) = self.max_new_tokens {
            p.max_new_tokens = v;
        }
        if let Some(v) = self.thinking_budget {
            p.thinking_budget = (v > 0).then_some(v);
        }
        if let Some(v) = self.seed {
            p.seed = v;
        }
        p.validate()?;
        Ok(p)
    }
}

/// `on` / `off` flags.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn is_on(self) -> bool {
        self == OnOff::On
    }
}
