//! Drives a training run: steps the trainer, appends the step's event and rollouts to the run
//! directory, obeys controls between steps (pause, resume, checkpoint now, stop), and
//! checkpoints every K steps and at the end. It knows nothing of who watches: viewers read
//! the event log or subscribe to its broadcast, and send controls on a channel.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::event::{Control, EventKind};
use super::log::EventLog;
use crate::train::checkpoint;
use crate::train::data::Example;
use crate::train::step::{Rewarder, TrainPrompt, Trainer};
use crate::train::workers::Workers;

/// The files of a run directory (ARCHITECTURE.md).
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create the run directory {}", path.display()))?;
        Ok(Self { path: path.to_path_buf() })
    }
    pub fn events(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }
    pub fn rollouts(&self) -> PathBuf {
        self.path.join("rollouts.jsonl")
    }
    pub fn config(&self) -> PathBuf {
        self.path.join("config.toml")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Optimizer steps in all.
    pub steps: usize,
    /// Prompts (groups) per step.
    pub prompts_per_step: usize,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Finished,
    /// A Stop control.
    Stopped,
    /// The process was asked to end (SIGINT / SIGTERM).
    Interrupted,
}

/// What a run trains on: the model's replicas, the prompts, and how rows are scored.
#[derive(Clone, Copy)]
pub struct Work<'a> {
    pub workers: &'a Workers,
    pub data: &'a [Example],
    pub rewarder: &'a dyn Rewarder,
}

pub struct Driver<'a> {
    pub dir: RunDir,
    pub log: EventLog,
    rollouts: File,
    pub trainer: Trainer,
    workers: &'a Workers,
    data: &'a [Example],
    rewarder: &'a dyn Rewarder,
    opts: RunOptions,
    /// Prompts consumed so far (the data cursor saved in checkpoints).
    pub cursor: usize,
    controls: Receiver<Control>,
    paused: bool,
    last_checkpoint: Option<usize>,
}

impl<'a> Driver<'a> {
    /// Opens the run directory's logs (continuing them on a resume) and writes the resolved
    /// configuration.
    pub fn new(
        dir: RunDir,
        config_toml: &str,
        work: Work<'a>,
        trainer: Trainer,
        opts: RunOptions,
        controls: Receiver<Control>,
    ) -> Result<Self> {
        let Work { workers, data, rewarder } = work;
        if data.is_empty() {
            anyhow::bail!("the dataset has no prompts");
        }
        std::fs::write(dir.config(), config_toml)?;
        let log = EventLog::open(&dir.events())?;
        let rollouts = OpenOptions::new().create(true).append(true).open(dir.rollouts())?;
        Ok(Self {
            dir,
            log,
            rollouts,
            trainer,
            workers,
            data,
            rewarder,
            opts,
            cursor: 0,
            controls,
            paused: false,
            last_checkpoint: None,
        })
    }

    /// Restores the newest checkpoint of the run directory, if there is one.
    pub fn resume_latest(&mut self) -> Result<Option<usize>> {
        let Some(dir) = checkpoint::latest(&self.dir.path) else { return Ok(None) };
        let state = checkpoint::load(&dir, &self.workers.primary().model, &mut self.trainer)?;
        self.workers.broadcast()?;
        self.cursor = state.data_cursor;
        self.last_checkpoint = Some(state.step);
        Ok(Some(state.step))
    }

    /// The prompts of the next step: a seeded order over the data, reshuffled each epoch.
    fn next_batch(&self) -> Vec<&'a Example> {
        let n = self.data.len();
        (self.cursor..self.cursor + self.opts.prompts_per_step)
            .map(|k| {
                let epoch = k / n;
                let mut order: Vec<(u64, usize)> =
                    (0..n).map(|i| (order_key(self.trainer.seed, epoch, &self.data[i].uid), i)).collect();
                order.sort_unstable();
                &self.data[order[k % n].1]
            })
            .collect()
    }

    fn save_checkpoint(&mut self) -> Result<()> {
        if self.last_checkpoint == Some(self.trainer.step) {
            return Ok(());
        }
        let path =
            checkpoint::save(&self.dir.path, &self.workers.primary().model, &self.trainer, self.cursor)?;
        self.last_checkpoint = Some(self.trainer.step);
        self.log
            .append(EventKind::Checkpoint { step: self.trainer.step, path: path.display().to_string() })?;
        Ok(())
    }

    /// Runs until `steps`, a Stop control, or `interrupt`. Writes a final checkpoint.
    pub fn run(
        &mut self,
        config: serde_json::Value,
        resumed_from_step: Option<usize>,
        interrupt: &AtomicBool,
    ) -> Result<Ending> {
        self.log.append(EventKind::Started { config, resumed_from_step })?;
        let ending = loop {
            // controls are acted on between steps
            let mut stop = false;
            loop {
                let control = if self.paused {
                    match self.controls.recv_timeout(Duration::from_millis(200)) {
                        Ok(c) => Some(c),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => Some(Control::Stop),
                    }
                } else {
                    self.controls.try_recv().ok()
                };
                match control {
                    Some(Control::Pause) if !self.paused => {
                        self.paused = true;
                        self.log.append(EventKind::Paused { step: self.trainer.step })?;
                    }
                    Some(Control::Resume) if self.paused => {
                        self.paused = false;
                        self.log.append(EventKind::Resumed { step: self.trainer.step })?;
                    }
                    Some(Control::CheckpointNow) => self.save_checkpoint()?,
                    Some(Control::Stop) => stop = true,
                    Some(_) => {}
                    None if self.paused && !interrupt.load(Ordering::Relaxed) => continue,
                    None => break,
                }
                if stop {
                    break;
                }
            }
            if stop {
                break Ending::Stopped;
            }
            if interrupt.load(Ordering::Relaxed) {
                break Ending::Interrupted;
            }
            if self.trainer.step >= self.opts.steps {
                break Ending::Finished;
            }
            let batch: Vec<TrainPrompt> = self.next_batch().into_iter().map(TrainPrompt::from).collect();
            let stepped = self.trainer.step(self.workers, &batch, self.rewarder, interrupt);
            for text in self.rewarder.notices() {
                self.log.append(EventKind::Message { level: super::event::Level::Info, text })?;
            }
            let (stats, rows) = stepped?;
            self.cursor += batch.len();
            // rollouts first: a step event always has its rows on disk
            let mut text = String::new();
            for r in &rows {
                text.push_str(&serde_json::to_string(r)?);
                text.push('\n');
            }
            self.rollouts.write_all(text.as_bytes())?;
            self.rollouts.sync_data()?;
            self.log.append(EventKind::Step(Box::new(stats)))?;
            if self.opts.checkpoint_every > 0 && self.trainer.step.is_multiple_of(self.opts.checkpoint_every)
            {
                self.save_checkpoint()?;
            }
        };
        self.save_checkpoint()?;
        let reason = match ending {
            Ending::Finished => "finished",
            Ending::Stopped => "stopped",
            Ending::Interrupted => "interrupted",
        };
        self.log.append(EventKind::Finished { step: self.trainer.step, reason: reason.into() })?;
        Ok(ending)
    }
}

/// Sort key of a prompt in an epoch's order: stable across machines.
fn order_key(seed: u64, epoch: usize, uid: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update((epoch as u64).to_le_bytes());
    h.update(uid.as_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}
