//! `polaris-tui init-config`: a commented run configuration with the recipe's defaults.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::train::config::INIT_TEMPLATE;

#[derive(Args, Debug)]
pub struct InitConfigArgs {
    /// Where to write it.
    #[arg(long, default_value = "run.toml")]
    pub out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: InitConfigArgs) -> Result<()> {
    if args.out.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", args.out.display());
    }
    let tmp = args.out.with_extension("toml.tmp");
    std::fs::write(&tmp, INIT_TEMPLATE)?;
    std::fs::rename(&tmp, &args.out)?;
    eprintln!(
        "wrote {} (the POLARIS recipe's defaults; edit it, or override keys with --set)",
        args.out.display()
    );
    Ok(())
}
