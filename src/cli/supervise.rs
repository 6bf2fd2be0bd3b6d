//! `polaris-tui supervise --dir RUN_DIR -- ARGS` (hidden): a detached run's supervisor,
//! started by `train --detach` (see `run::daemon`).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct SuperviseArgs {
    /// The run directory (daemon.pid, exit.json).
    #[arg(long)]
    pub dir: PathBuf,
    /// This program's arguments for the trainer.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

pub fn run(args: SuperviseArgs) -> Result<()> {
    let code = crate::run::daemon::supervise(&args.dir, &args.command)?;
    std::process::exit(code)
}
