//! Drives a training run: steps the trainer, appends the step's event and rollouts to the run
//! directory, obeys controls between steps (pause, resume, checkpoint now, stop), and
//! checkpoints every K steps and at the end. It knows nothing of who watches: viewers read
//! the event log or subscribe to its broadcast, and send controls on a channel.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::alerts::{AlertsConfig, Watch};
use super::dir::RunDir;
use super::event::{Control, EventKind, Level};
use super::log::EventLog;
use crate::durable::log::{AppendLog, Lock, Tail};
use crate::run::rollout::ScoredRollout;
use crate::train::checkpoint;
use crate::train::data::Example;
use crate::train::step::{NonFinite, Rewarder, StepCancelled, TrainPrompt, Trainer};
use crate::train::validation::{due, ValidationConfig};
use crate::train::workers::Workers;

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
    /// Held-out prompts validated on during the run, if any.
    pub validation: Option<Validation<'a>>,
}

/// Validation during the run: the held-out prompts, how they are sampled and scored (the
/// validation weights are the rewarder's), and how often.
#[derive(Clone, Copy)]
pub struct Validation<'a> {
    pub data: &'a [Example],
    pub rewarder: &'a dyn Rewarder,
    pub cfg: &'a ValidationConfig,
    /// `run.val_every`: every this many steps and after the last; 0: never after training starts.
    pub every: usize,
}

pub struct Driver<'a> {
    pub dir: RunDir,
    pub log: EventLog,
    rollouts: AppendLog,
    pub trainer: Trainer,
    workers: &'a Workers,
    data: &'a [Example],
    rewarder: &'a dyn Rewarder,
    validation: Option<Validation<'a>>,
    opts: RunOptions,
    /// Prompts consumed so far (the data cursor saved in checkpoints).
    pub cursor: usize,
    /// The dataset file's SHA-256 (hex), recorded in checkpoints when known.
    pub data_sha256: Option<String>,
    controls: Receiver<Control>,
    paused: bool,
    last_checkpoint: Option<usize>,
    /// Warnings found while opening and resuming, logged once the run has started.
    notes: Vec<String>,
    /// The alert rules judged on each step: only the NaN rule unless the caller gives the
    /// run's `[alerts]` (`launch` does).
    pub alerts: Watch,
}

impl<'a> Driver<'a> {
    /// Opens the run directory's logs (continuing them on a resume, a line torn by a kill cut
    /// off) and writes the resolved configuration.
    pub fn new(
        dir: RunDir,
        config_toml: &str,
        work: Work<'a>,
        trainer: Trainer,
        opts: RunOptions,
        controls: Receiver<Control>,
    ) -> Result<Self> {
        let Work { workers, data, rewarder, validation } = work;
        if validation.is_some_and(|v| v.data.is_empty()) {
            anyhow::bail!("the validation set has no prompts");
        }
        if data.is_empty() {
            anyhow::bail!("the dataset has no prompts");
        }
        crate::durable::write_atomic(&dir.config(), config_toml.as_bytes())?;
        let log = EventLog::open(&dir.events())?;
        let (rollouts, torn) = AppendLog::open(&dir.rollouts(), Lock::None, Tail::Cut)?;
        let notes = torn
            .map(|line| {
                format!(
                    "{}:{line}: a row cut off mid-write (the run was killed) was dropped; its step is taken again",
                    dir.rollouts().display()
                )
            })
            .into_iter()
            .collect();
        let alerts = Watch::new(
            AlertsConfig::off(),
            opts.prompts_per_step,
            opts.prompts_per_step * trainer.cfg.group_size,
        );
        Ok(Self {
            alerts,
            dir,
            log,
            rollouts,
            trainer,
            workers,
            data,
            rewarder,
            validation,
            opts,
            cursor: 0,
            data_sha256: None,
            controls,
            paused: false,
            last_checkpoint: None,
            notes,
        })
    }

    /// Restores the newest checkpoint of the run directory that loads, if there is one. A
    /// damaged one (truncated, non-finite, a state that disagrees with its folder:
    /// `checkpoint::Damaged`) is moved aside as `step-N.damaged` and the one before it is
    /// tried, saying so in the log; any other refusal (another model) is an error at once.
    pub fn resume_latest(&mut self) -> Result<Option<usize>> {
        let candidates = checkpoint::all(&self.dir.path);
        if candidates.is_empty() {
            return Ok(None);
        }
        let mut failures = Vec::new();
        for dir in candidates {
            match self.restore(&dir) {
                Ok(step) => {
                    if !failures.is_empty() {
                        self.notes.push(format!("resumed from {} instead", dir.display()));
                    }
                    return Ok(Some(step));
                }
                Err(e) if e.downcast_ref::<checkpoint::Damaged>().is_none() => return Err(e),
                Err(e) => {
                    let aside = dir.with_extension("damaged");
                    let moved = std::fs::rename(&dir, &aside).is_ok();
                    let text = format!(
                        "checkpoint {} cannot be resumed from ({e:#}){}",
                        dir.display(),
                        if moved { format!("; moved aside to {}", aside.display()) } else { String::new() }
                    );
                    self.notes.push(text.clone());
                    failures.push(text);
                }
            }
        }
        anyhow::bail!(
            "no checkpoint of {} can be resumed from:\n  {}",
            self.dir.path.display(),
            failures.join("\n  ")
        )
    }

    /// Restores the checkpoint in `dir` (the weights of every replica, the trainer, the data
    /// cursor); returns its step. A dataset other than the one it was trained on is noted.
    pub fn restore(&mut self, dir: &Path) -> Result<usize> {
        let state = checkpoint::load(dir, &self.workers.primary().model, &mut self.trainer)?;
        self.workers.broadcast()?;
        self.cursor = state.data_cursor;
        self.last_checkpoint = Some(state.step);
        if let (Some(then), Some(now)) = (&state.data_sha256, &self.data_sha256) {
            if then != now {
                self.notes.push(format!(
                    "the dataset changed since {}: it was trained on data with SHA-256 {then}, the data now \
                     has {now}; its prompt order from step {} on is not the original run's",
                    dir.display(),
                    state.step + 1
                ));
            }
        }
        Ok(state.step)
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
        let data = checkpoint::DataPosition { cursor: self.cursor, sha256: self.data_sha256.clone() };
        let path = checkpoint::save_at(&self.dir.path, &self.workers.primary().model, &self.trainer, &data)?;
        self.last_checkpoint = Some(self.trainer.step);
        self.log
            .append(EventKind::Checkpoint { step: self.trainer.step, path: path.display().to_string() })?;
        Ok(())
    }

    /// Writes a step's (or a validation pass's) rows, fsynced: its event always has its rows
    /// on disk.
    fn write_rollouts(&mut self, rows: &[ScoredRollout]) -> Result<()> {
        let mut text = String::new();
        for r in rows {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        self.rollouts.append_lines(&text)
    }

    /// Whether a validation pass is due now (after `trainer.step` steps).
    fn validation_due(&self) -> bool {
        self.validation
            .is_some_and(|v| due(self.trainer.step, self.opts.steps, v.every, v.cfg.before_training))
    }

    /// One validation pass: its rows, then its `val` event. False when `interrupt` cut it
    /// short (nothing is logged then).
    fn validate(&mut self, interrupt: &AtomicBool) -> Result<bool> {
        let Some(v) = self.validation else { return Ok(true) };
        crate::run::work::validating(self.trainer.step);
        let prompts: Vec<TrainPrompt> = v.data.iter().map(TrainPrompt::from).collect();
        let Some((stats, rows)) =
            self.trainer.validate(self.workers, &prompts, v.cfg, v.rewarder, interrupt)?
        else {
            return Ok(false);
        };
        self.write_rollouts(&rows)?;
        self.log.append(EventKind::Val(Box::new(stats)))?;
        Ok(true)
    }

    /// Runs until `steps`, a Stop control, or `interrupt`. Validates when due (before the
    /// first step, every `run.val_every` steps and after the last; a resumed run validates
    /// at its step only if that pass was not logged), always before the step's checkpoint,
    /// so a checkpoint's step has its validation. Writes a final checkpoint.
    pub fn run(
        &mut self,
        config: serde_json::Value,
        resumed_from_step: Option<usize>,
        interrupt: &AtomicBool,
    ) -> Result<Ending> {
        self.log.append(EventKind::Started { config, resumed_from_step })?;
        for text in std::mem::take(&mut self.notes) {
            self.log.append(EventKind::Message { level: Level::Warn, text })?;
        }
        let mut pending = self.validation_due() && !validated(&self.log, self.trainer.step)?;
        let ending = loop {
            if std::mem::take(&mut pending) && !self.validate(interrupt)? {
                break Ending::Interrupted;
            }
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
                self.log.append(EventKind::Message { level: Level::Info, text })?;
            }
            let (stats, rows) = match stepped {
                Ok(done) => done,
                Err(e) if e.downcast_ref::<StepCancelled>().is_some() => {
                    self.log.append(EventKind::Message { level: Level::Info, text: format!("{e}") })?;
                    break Ending::Interrupted;
                }
                Err(e) => {
                    if let Some(nf) = e.downcast_ref::<NonFinite>() {
                        let alert = self.alerts.non_finite(nf.step, &nf.what);
                        let _ = self.log.append(EventKind::Alert(alert));
                    }
                    // said in the log too, so a viewer sees why the run ends (exit.json has it)
                    let text = format!("{e:#}");
                    let _ = self.log.append(EventKind::Message { level: Level::Error, text });
                    return Err(e);
                }
            };
            self.cursor += batch.len();
            // rollouts first: a step event always has its rows on disk
            self.write_rollouts(&rows)?;
            let alerts = self.alerts.step(&stats);
            self.log.append(EventKind::Step(Box::new(stats)))?;
            for a in alerts {
                self.log.append(EventKind::Alert(a))?;
            }
            if self.validation_due() && !self.validate(interrupt)? {
                break Ending::Interrupted;
            }
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

/// Whether the run log holds a validation pass at `step` that still stands (a resume from
/// an earlier step supersedes the passes after it, as it does steps).
fn validated(log: &EventLog, step: usize) -> Result<bool> {
    let mut at = std::collections::BTreeSet::new();
    for ev in super::log::read(log.path())?.events {
        match ev.kind {
            EventKind::Started { resumed_from_step, .. } => {
                drop(at.split_off(&resumed_from_step.map_or(0, |k| k + 1)))
            }
            EventKind::Val(v) => drop(at.insert(v.step)),
            _ => {}
        }
    }
    Ok(at.contains(&step))
}

/// Sort key of a prompt in an epoch's order: stable across machines.
fn order_key(seed: u64, epoch: usize, uid: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update((epoch as u64).to_le_bytes());
    h.update(uid.as_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}
