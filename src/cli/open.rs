//! `polaris-tui open RUN_DIR [RUN_DIR...]`: the workbench on any run, from its files; further
//! runs are overlaid on its dashboard's curves.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct OpenArgs {
    /// Run directories (written by `polaris-tui train --out DIR`); a live run is followed
    /// as its files grow, a finished one shown read only. The first is the one the tabs show;
    /// every run's curves are overlaid on the dashboard, one colour each, aligned by step.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub run_dirs: Vec<PathBuf>,
    /// Colour theme: dark, light, high-contrast, or one of yours (NO_COLOR overrides).
    #[arg(long)]
    pub theme: Option<String>,
    /// Who judges in the Annotate tab (names RUN_DIR/annotate/*/judgments-NAME.jsonl)
    /// [default: $USER].
    #[arg(long)]
    pub annotator: Option<String>,
}

pub fn run(args: OpenArgs) -> Result<()> {
    let (first, others) = args.run_dirs.split_first().expect("clap requires one RUN_DIR");
    crate::tui::open_compared(first, others, args.theme.as_deref(), args.annotator.as_deref())
}
