//! `polaris-tui open RUN_DIR`: the workbench on any run, from its files.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct OpenArgs {
    /// A run directory (written by `polaris-tui train --out DIR`); a live run is followed
    /// as its files grow, a finished one shown read only.
    pub run_dir: PathBuf,
    /// Colour theme: dark, light, high-contrast, or one of yours (NO_COLOR overrides).
    #[arg(long)]
    pub theme: Option<String>,
    /// Who judges in the Annotate tab (names RUN_DIR/annotate/*/judgments-NAME.jsonl)
    /// [default: $USER].
    #[arg(long)]
    pub annotator: Option<String>,
}

pub fn run(args: OpenArgs) -> Result<()> {
    crate::tui::open(&args.run_dir, args.theme.as_deref(), args.annotator.as_deref())
}
