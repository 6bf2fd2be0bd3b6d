//! `polaris-tui sft`: supervised fine-tuning on a dataset's human stories (the warm start
//! before GRPO); writes the trained weights as a Hugging Face model directory.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;

use super::{ModelArgs, OnOff};
use crate::model::all_trainable;
use crate::model::export::save_pretrained;
use crate::train::data;
use crate::train::sft::{sft, SftConfig};

#[derive(Args, Debug)]
pub struct SftArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Dataset JSONL (rows with a `story` are learned; see `data build`).
    #[arg(long)]
    pub data: PathBuf,
    /// Output model directory (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Examples per optimizer step.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-5)]
    pub lr: f64,
    /// Response tokens kept per example; 0 keeps whole stories.
    #[arg(long, default_value_t = 0)]
    pub max_response_tokens: usize,
    /// Render prompts with thinking on (the story follows the reasoning trace).
    #[arg(long, value_enum, default_value = "on")]
    pub thinking: OnOff,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Recompute each layer in backward (activation checkpointing) so long stories fit.
    #[arg(long)]
    pub checkpoint_layers: bool,
}

pub fn run(args: SftArgs) -> Result<()> {
    if args.out.exists() {
        bail!("--out {} already exists: choose a new folder", args.out.display());
    }
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let examples = data::load(&args.data)?;
    let opts = args.model.load_options()?.trainable(all_trainable());
    let lm = args.model.weights()?.open(&opts)?;
    let cfg = SftConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        max_grad_norm: 1.0,
        max_response_tokens: args.max_response_tokens,
        thinking: args.thinking.is_on(),
        seed: args.seed,
        checkpoint_layers: args.checkpoint_layers,
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupt.clone())?;
    }
    let steps = sft(&lm, &examples, &cfg, &interrupt, |s| {
        eprintln!(
            "sft {:>4}/{}  epoch {}  nll {:.3}  grad {:.3}  {} tokens  {:.1}s",
            s.step, s.steps, s.epoch, s.loss, s.grad_norm, s.tokens, s.seconds
        );
        Ok(())
    })?;
    if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("interrupted after {} steps; nothing was written", steps.len());
    }
    save_pretrained(&lm.model, &lm.dir, &args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
