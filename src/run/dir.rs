//! The files of a run directory (ARCHITECTURE.md), each named here and only here:
//!
//! ```text
//! RUN/
//!   config.toml          the resolved configuration            (driver, write-then-rename)
//!   events.jsonl         the event log, one event a line        (run::log, append + fsync)
//!   rollouts.jsonl       every scored row of every step         (driver, append + fsync)
//!   checkpoints/step-NNNNNN/   weights, optimizer, state        (train::checkpoint)
//!   judge-cache/         the judge's answers by request digest  (reward::judge::cache)
//!   eval/NAME/           evaluations of the run                 (eval length / elo / bench)
//!   annotate/            human studies built from its rollouts  (annotate)
//!   playground/          stories kept from the Playground tab   (tui::playground)
//!   report/              `report`'s tables and plots
//!   data.jsonl           the demo run's prompts                 (run::demo)
//!   control.sock         the live run's control socket          (run::remote)
//!   daemon.pid           the trainer's pid                      (run::process)
//!   trainer.json         that process's identity (start time, boot)
//!   trainer.lock         held by the one process training it    (run::claim)
//!   work.json            what the trainer is doing now          (run::work)
//!   exit.json            how the trainer's process ended        (run::exit)
//!   daemon.log           a detached trainer's stdout and stderr (run::daemon)
//!   tui.log              the TUI's journal                      (tui::journal)
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The judge's answer cache, a folder beside the outputs of a run or an evaluation
/// (`RUN/judge-cache`, `OUT/judge-cache`).
pub const JUDGE_CACHE: &str = "judge-cache";

/// A run directory, and the path of each of its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates the directory (and its parents) if it is not there.
    pub fn create(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create the run directory {}", path.display()))?;
        Ok(Self::at(path))
    }

    /// The run directory at `path`, whether or not it exists.
    pub fn at(path: &Path) -> Self {
        Self { path: path.to_path_buf() }
    }

    pub fn config(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    pub fn events(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }

    pub fn rollouts(&self) -> PathBuf {
        self.path.join("rollouts.jsonl")
    }

    /// The folder of the run's checkpoints.
    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// `checkpoints/step-NNNNNN`: the checkpoint after `step` optimizer steps (its files are
    /// `train::checkpoint::{WEIGHTS, OPTIMIZER, STATE}`, since a checkpoint folder is also
    /// read outside a run, by `--adapter` and `merge`).
    pub fn checkpoint(&self, step: usize) -> PathBuf {
        self.checkpoints().join(format!("step-{step:06}"))
    }

    /// N of a checkpoint folder named `step-N`; None for any other name (a `.damaged` one).
    pub fn checkpoint_step(folder: &Path) -> Option<usize> {
        folder.file_name()?.to_str()?.strip_prefix("step-")?.parse().ok()
    }

    /// The run a checkpoint folder belongs to: `RUN` of `RUN/checkpoints/step-N` (any
    /// folder inside a folder named `checkpoints`); None for a folder elsewhere.
    pub fn of_checkpoint(folder: &Path) -> Option<Self> {
        let checkpoints = folder.parent().filter(|p| p.file_name().is_some_and(|n| n == "checkpoints"))?;
        checkpoints.parent().map(Self::at)
    }

    pub fn judge_cache(&self) -> PathBuf {
        self.path.join(JUDGE_CACHE)
    }

    /// The folder of the run's evaluations, one folder each.
    pub fn eval(&self) -> PathBuf {
        self.path.join("eval")
    }

    /// The folder of the studies annotated from the run's rollouts.
    pub fn annotate(&self) -> PathBuf {
        self.path.join("annotate")
    }

    pub fn playground(&self) -> PathBuf {
        self.path.join("playground")
    }

    /// `report`'s default output folder.
    pub fn report(&self) -> PathBuf {
        self.path.join("report")
    }

    /// The demo run's prompts, written into its own directory.
    pub fn demo_data(&self) -> PathBuf {
        self.path.join("data.jsonl")
    }

    pub fn socket(&self) -> PathBuf {
        self.path.join("control.sock")
    }

    pub fn pid(&self) -> PathBuf {
        self.path.join("daemon.pid")
    }

    /// What tells the process in `daemon.pid` from a later one given the same pid.
    pub fn trainer_identity(&self) -> PathBuf {
        self.path.join("trainer.json")
    }

    /// The lock file held by the one process that trains the run.
    pub fn trainer_lock(&self) -> PathBuf {
        self.path.join("trainer.lock")
    }

    pub fn work(&self) -> PathBuf {
        self.path.join("work.json")
    }

    pub fn exit(&self) -> PathBuf {
        self.path.join("exit.json")
    }

    pub fn daemon_log(&self) -> PathBuf {
        self.path.join("daemon.log")
    }

    pub fn tui_log(&self) -> PathBuf {
        self.path.join("tui.log")
    }
}

#[cfg(test)]
mod tests {
    use super::RunDir;
    use std::path::Path;

    #[test]
    fn the_files_keep_the_names_older_runs_have_on_disk() {
        let run = RunDir::at(Path::new("/r"));
        let names = [
            (run.config(), "config.toml"),
            (run.events(), "events.jsonl"),
            (run.rollouts(), "rollouts.jsonl"),
            (run.checkpoint(12), "checkpoints/step-000012"),
            (run.judge_cache(), "judge-cache"),
            (run.eval(), "eval"),
            (run.annotate(), "annotate"),
            (run.playground(), "playground"),
            (run.report(), "report"),
            (run.demo_data(), "data.jsonl"),
            (run.socket(), "control.sock"),
            (run.pid(), "daemon.pid"),
            (run.trainer_identity(), "trainer.json"),
            (run.trainer_lock(), "trainer.lock"),
            (run.work(), "work.json"),
            (run.exit(), "exit.json"),
            (run.daemon_log(), "daemon.log"),
            (run.tui_log(), "tui.log"),
        ];
        for (path, name) in names {
            assert_eq!(path, Path::new("/r").join(name));
        }
        assert_eq!(RunDir::checkpoint_step(&run.checkpoint(12)), Some(12));
        assert_eq!(RunDir::checkpoint_step(Path::new("/r/checkpoints/step-000012.damaged")), None);
        assert_eq!(RunDir::checkpoint_step(Path::new("/r/checkpoints/.tmp-step-000012-7")), None);
        assert_eq!(RunDir::of_checkpoint(&run.checkpoint(12)), Some(run));
        assert_eq!(RunDir::of_checkpoint(Path::new("/r/adapters/step-000012")), None);
    }
}
