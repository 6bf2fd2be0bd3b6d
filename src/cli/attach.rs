//! `polaris-tui attach [RUN_DIR]`: the workbench on a live run over its control socket (from
//! another terminal, or over `ssh -t`); without RUN_DIR, the most recent live run of the
//! registry (`polaris-tui runs` lists them); `attach RUN_DIR OTHER...` overlays other runs'
//! curves on its dashboard. Leaving (d or q) leaves the run going on. A run
//! nobody serves is opened from its files, read only.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::run::remote::{is_live, ConnectError};
use crate::tui::SocketLink;

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The run directory of a live run (its trainer serves RUN_DIR/control.sock)
    /// [default: the most recently started run that is still running or paused].
    pub run_dir: Option<PathBuf>,
    /// Further runs whose curves are overlaid on the dashboard's, read from their files
    /// (the first run alone is attached to and steered).
    #[arg(value_name = "COMPARE_DIR")]
    pub compare: Vec<PathBuf>,
    /// Colour theme: dark, light, high-contrast, or one of yours (NO_COLOR overrides).
    #[arg(long)]
    pub theme: Option<String>,
    /// Who judges in the Annotate tab [default: $USER].
    #[arg(long)]
    pub annotator: Option<String>,
}

pub fn run(args: AttachArgs) -> Result<()> {
    let dir = &match args.run_dir {
        Some(dir) => dir,
        None => match crate::run::most_recent_live() {
            Some(dir) => {
                eprintln!("attaching to {}, the most recent live run", dir.display());
                dir
            }
            None => bail!(
                "no live run to attach to: `polaris-tui runs` lists every run (attach to a finished one \
                 with `polaris-tui attach RUN_DIR` to read its history); start one with \
                 `polaris-tui train --config FILE --detach`"
            ),
        },
    };
    let (theme, annotator) = (args.theme.as_deref(), args.annotator.as_deref());
    let others = &args.compare;
    crate::tui::check_run_dirs(others.iter().map(PathBuf::as_path))?;
    let link = match SocketLink::connect(dir) {
        Ok(link) => link,
        Err(ConnectError::NotLive(why)) => {
            eprintln!("{}: the run is not live ({why}); opening its history read only", dir.display());
            return crate::tui::open_compared(dir, others, theme, annotator);
        }
        Err(ConnectError::Refused(text)) => {
            bail!("{}: the trainer refused this viewer: {text}", dir.display())
        }
        Err(ConnectError::Failed(e)) => return Err(e.context(format!("cannot attach to {}", dir.display()))),
    };
    let pid = link.trainer_pid();
    crate::tui::run_compared(dir, Box::new(link), others, theme, annotator)?;
    if is_live(dir) {
        eprintln!(
            "detached from {}: the run goes on (trainer pid {pid}); attach again with `polaris-tui attach {}`",
            dir.display(),
            dir.display()
        );
    } else {
        eprintln!("{}: the run has ended", dir.display());
    }
    Ok(())
}
