//! `polaris-tui init-config`: a commented run configuration with the recipe's defaults, or a
//! preset (`--preset polaris-main`: the POLARIS release's main run).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use crate::train::config::{TrainConfig, INIT_TEMPLATE};
use crate::train::preset::polaris_main_toml;

#[derive(Args, Debug)]
pub struct InitConfigArgs {
    /// Where to write it.
    #[arg(long, default_value = "run.toml")]
    pub out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
    /// A preset instead of the recipe's defaults.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// The POLARIS release's main run (polaris_main.yaml): its batch, group, sampling,
    /// thinking, lengths, clip ratios, lr, HRI schedule, reward, judge and checkpoint cadence,
    /// scored as its trainer scores (reward.score = "release").
    PolarisMain,
}

pub fn run(args: InitConfigArgs) -> Result<()> {
    if args.out.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", args.out.display());
    }
    let text = match args.preset {
        None => INIT_TEMPLATE.to_string(),
        Some(Preset::PolarisMain) => polaris_main_toml(),
    };
    // what is written must load; its devices are the training machine's, checked when the
    // run starts there (the preset's four CUDA devices need a cuda build)
    let cfg = TrainConfig::parse(&text, "the preset", &["run.devices=cpu".into()])?;
    let tmp = args.out.with_extension("toml.tmp");
    std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    match args.preset {
        None => eprintln!(
            "wrote {} (the POLARIS recipe's defaults; edit it, or override keys with --set)",
            args.out.display()
        ),
        Some(_) => {
            eprintln!("wrote {} (the POLARIS release's main run, polaris_main.yaml)", args.out.display());
            eprintln!(
                "  run.devices names the release's 4 GPUs (cuda:0..cuda:3, a `--features cuda` build); \
                 elsewhere pass --set run.devices=cpu"
            );
            let paths = [
                ("data.train", Some(cfg.data.train.as_str())),
                ("model.path", Some(cfg.model.path.as_str())),
                ("reward.rubric_prompt", cfg.reward.rubric_prompt.as_deref()),
                ("reward.rubric_schema", cfg.reward.rubric_schema.as_deref()),
            ];
            for (key, path) in paths {
                if let Some(p) = path.filter(|p| !Path::new(p).exists()) {
                    eprintln!(
                        "  {key} = {p:?} does not exist here: edit it, or pass --set {key}=PATH to train"
                    );
                }
            }
        }
    }
    Ok(())
}
