//! `polaris-tui merge`: a base model with a LoRA adapter folded in, or with a full
//! fine-tune checkpoint's weights, written as a Hugging Face model directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use crate::model::lora::peft;
use crate::model::merge::{merge, Trained};
use crate::model::tiny;
use crate::train::checkpoint::WEIGHTS;
use crate::train::trained;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The base model directory the adapter or checkpoint was trained from, or `tiny`.
    #[arg(long)]
    pub base: String,
    /// A PEFT adapter directory, or a run's checkpoints/step-N folder (LoRA or full fine-tune).
    #[arg(long)]
    pub adapter: PathBuf,
    /// The new model directory (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: MergeArgs) -> Result<()> {
    let base = if args.base == "tiny" { tiny::ensure()? } else { PathBuf::from(&args.base) };
    if !base.is_dir() {
        bail!(
            "--base {}: no such model directory (give a Hugging Face model directory, or `tiny`)",
            args.base
        );
    }
    let trained = detect(&args.adapter)?;
    let report = merge(&base, &trained, &args.out)?;
    let what = match trained {
        Trained::Adapter(_) => "LoRA-merged",
        Trained::Full(_) => "replaced",
    };
    eprintln!("wrote {} ({} tensors, {} {what})", args.out.display(), report.tensors, report.changed);
    Ok(())
}

/// An adapter directory (a LoRA run's checkpoint is one) or a full fine-tune checkpoint.
fn detect(dir: &Path) -> Result<Trained> {
    match trained::Trained::in_dir(dir) {
        Some(trained::Trained::Adapter(d)) => Ok(Trained::Adapter(d)),
        Some(trained::Trained::Checkpoint(d)) => Ok(Trained::Full(d.join(WEIGHTS))),
        None => bail!(
            "--adapter {}: neither a LoRA adapter ({}) nor a full fine-tune checkpoint ({WEIGHTS}); \
             give a PEFT adapter directory or a run's checkpoints/step-N folder",
            dir.display(),
            peft::CONFIG_FILE
        ),
    }
}
