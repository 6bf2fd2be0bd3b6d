//! `polaris-tui stop RUN_DIR`: asks a live run's trainer to stop (SIGTERM: it finishes or
//! abandons its current step, checkpoints, and writes exit.json), then waits for it to end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Args;

use crate::run::process;
use crate::run::status::{status, Phase};

#[derive(Args, Debug)]
pub struct StopArgs {
    /// The run directory of a running or paused run.
    pub run_dir: PathBuf,
    /// Seconds to wait for it to end (it checkpoints first) before giving up waiting.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

pub fn run(args: StopArgs) -> Result<()> {
    let dir = &args.run_dir;
    let run = crate::run::RunDir::at(dir);
    if !run.pid().is_file() && !run.events().is_file() {
        bail!("{}: not a run directory (no daemon.pid, no events.jsonl)", dir.display());
    }
    let st = status(dir)?;
    if !st.status.is_live() {
        bail!("{}: nothing to stop: the run is {}", dir.display(), st.describe());
    }
    let pid = st.pid.ok_or_else(|| anyhow!("{}: a live run without daemon.pid", dir.display()))?;
    process::check_trainer(dir, pid)
        .map_err(|why| anyhow!("{}: will not signal its trainer: {why}", dir.display()))?;
    process::signal(pid, libc::SIGTERM)?;
    eprintln!("asked the trainer (pid {pid}) to stop; it checkpoints first ...");
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let st = status(dir)?;
        // the log's `finished` event comes before the trainer writes exit.json and exits:
        // wait for the process too, so what is printed (and left on disk) is its last word
        if !st.status.is_live() && !process::is_trainer(dir, pid) {
            println!("{}: {}", dir.display(), st.describe());
            return match st.status {
                Phase::Stopped | Phase::Finished => Ok(()),
                _ => Err(anyhow!("the run did not end cleanly; see {}/daemon.log", dir.display())),
            };
        }
        if Instant::now() >= deadline {
            bail!(
                "{}: still {} after {} s; it stops after its current step. Check again with \
                 `polaris-tui runs`, or end it now with `kill -9 {pid}` (losing the step in flight)",
                dir.display(),
                if st.status.is_live() { st.status.name() } else { "ending (its process has not exited)" },
                args.timeout
            );
        }
    }
}
