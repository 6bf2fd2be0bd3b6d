//! A run's status, from its directory alone: what its event log says (started, paused,
//! ended), whether the process in `daemon.pid` is alive and still the one recorded there
//! (`trainer.json`), and how it ended (`exit.json`).
//! `derive` is the one rule, used by `runs`, `stop`, `attach` and the TUI's status bar.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::event::{Event, EventKind};
use super::exit::{self, Exit, ExitKind};
use super::process;

/// What a run is doing, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Running,
    /// A Paused event not followed by Resumed, and the process alive.
    Paused,
    Finished,
    Stopped,
    /// The trainer ended with an error of its own.
    Failed,
    /// No process and no clean ending (killed, or died before it could say why).
    Crashed,
    /// No `daemon.pid` and no ending logged: a directory from before runs recorded their
    /// process, whose liveness cannot be told.
    Unknown,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Finished => "finished",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
            Phase::Crashed => "crashed",
            Phase::Unknown => "unknown",
        }
    }

    /// A process is (or should be) training it.
    pub fn is_live(self) -> bool {
        matches!(self, Phase::Running | Phase::Paused)
    }
}

/// What the event log says, as far as it goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Logged {
    /// No `started` event yet.
    #[default]
    Waiting,
    Running,
    Paused,
    /// A `finished` event, with its reason (finished, stopped, interrupted).
    Ended {
        reason: String,
    },
}

/// The event log folded into what a status needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub logged: Logged,
    /// The newest optimizer step (a resume from step k starts again from k).
    pub last_step: Option<usize>,
    /// Policy mean reward of the newest step.
    pub last_reward: Option<f64>,
    /// Unix seconds of the first and the newest event.
    pub first_time: Option<f64>,
    pub last_time: Option<f64>,
}

impl Summary {
    pub fn of(events: &[Event]) -> Self {
        let mut s = Self::default();
        for ev in events {
            s.add(ev);
        }
        s
    }

    pub fn add(&mut self, ev: &Event) {
        self.first_time.get_or_insert(ev.time);
        self.last_time = Some(ev.time);
        match &ev.kind {
            EventKind::Started { resumed_from_step, .. } => {
                self.logged = Logged::Running;
                if let Some(k) = resumed_from_step {
                    self.last_step = Some(*k);
                }
            }
            EventKind::Step(s) => {
                self.last_step = Some(s.step);
                self.last_reward = Some(s.policy_reward_mean);
            }
            EventKind::Paused { .. } => self.logged = Logged::Paused,
            EventKind::Resumed { .. } => self.logged = Logged::Running,
            EventKind::Finished { step, reason } => {
                self.last_step = Some(*step);
                self.logged = Logged::Ended { reason: reason.clone() };
            }
            EventKind::Sft(_)
            | EventKind::Val(_)
            | EventKind::Checkpoint { .. }
            | EventKind::Message { .. } => {}
            EventKind::Alert(_) => {}
        }
    }
}

/// The run's process as the system sees it now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    /// From `daemon.pid`.
    pub pid: Option<u32>,
    pub alive: bool,
    pub exit: Option<Exit>,
}

impl Process {
    pub fn read(run_dir: &Path) -> Result<Self> {
        let pid = process::read_pid(run_dir)?;
        // alive only as the process that was recorded: a reused pid reads as gone
        let alive = pid.is_some_and(|p| process::is_trainer(run_dir, p));
        Ok(Self { pid, alive, exit: exit::read(run_dir)? })
    }
}

/// What a logged `finished` event's reason means: all steps done (`finished`), or stopped
/// early (`stopped` by a Stop control, `interrupted` by SIGINT / SIGTERM).
pub fn ended(reason: &str) -> Phase {
    if reason == "finished" {
        Phase::Finished
    } else {
        Phase::Stopped
    }
}

/// The one rule. An `exit.json` of the process in `daemon.pid` says how it ended; else a live
/// process is running or paused (as its log says); else a logged ending stands; else the run
/// crashed.
pub fn derive(summary: &Summary, process: &Process) -> Phase {
    let own_exit = process.exit.as_ref().filter(|e| process.pid.is_none_or(|p| p == e.pid));
    if let Some(e) = own_exit {
        return match e.status {
            ExitKind::Finished => Phase::Finished,
            ExitKind::Stopped => Phase::Stopped,
            ExitKind::Failed => Phase::Failed,
            ExitKind::Crashed => Phase::Crashed,
        };
    }
    if let Logged::Ended { reason } = &summary.logged {
        return ended(reason);
    }
    match (process.pid, process.alive) {
        (Some(_), true) if summary.logged == Logged::Paused => Phase::Paused,
        (Some(_), true) => Phase::Running,
        (Some(_), false) => Phase::Crashed,
        (None, _) => Phase::Unknown,
    }
}

/// Everything `runs` shows of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    pub path: PathBuf,
    pub status: Phase,
    /// The trainer's pid (alive or not).
    pub pid: Option<u32>,
    /// The newest optimizer step logged (0: none yet).
    pub steps: usize,
    pub last_reward: Option<f64>,
    /// Unix seconds of the first and the newest event.
    pub started: Option<f64>,
    pub last_event: Option<f64>,
    /// How the process ended, when it said (or its supervisor did).
    pub exit: Option<Exit>,
    /// Alerts raised and not cleared (`run::alerts`), a live run's stall included.
    pub alerts: Vec<super::alerts::Alert>,
}

impl RunStatus {
    /// `running at step 12`, `crashed (killed by signal 9) at step 12`.
    pub fn describe(&self) -> String {
        describe(self.status, self.exit.as_ref().filter(|e| self.pid.is_none_or(|p| p == e.pid)), self.steps)
    }
}

/// A phase in words, with how the process ended when that adds something, and the step.
pub fn describe(phase: Phase, exit: Option<&Exit>, step: usize) -> String {
    let mut text = phase.name().to_string();
    match (phase, exit) {
        (Phase::Crashed | Phase::Failed, Some(e)) => {
            let full = e.describe();
            // the same words, without the status name the phase already says
            text.push_str(full.strip_prefix(e.status.name()).unwrap_or(&full));
        }
        (Phase::Crashed, None) => text.push_str(" (the process is gone without an exit status)"),
        _ => {}
    }
    format!("{text} at step {step}")
}

/// The status of the run in `run_dir`.
pub fn status(run_dir: &Path) -> Result<RunStatus> {
    let events = super::log::read(&super::RunDir::at(run_dir).events())?.events;
    let summary = Summary::of(&events);
    let process = Process::read(run_dir)?;
    let phase = derive(&summary, &process);
    let mut alerts: Vec<_> = super::alerts::OpenAlerts::of(&events).open().cloned().collect();
    // a paused run is quiet on purpose
    if phase == Phase::Running {
        let minutes = super::alerts::AlertsConfig::of_run_dir(run_dir)?.stalled_minutes;
        let active = super::alerts::last_activity(run_dir, summary.last_time);
        alerts.extend(super::alerts::stalled(active, super::exit::now(), minutes));
    }
    Ok(RunStatus {
        path: run_dir.to_path_buf(),
        status: phase,
        pid: process.pid,
        steps: summary.last_step.unwrap_or(0),
        last_reward: summary.last_reward,
        started: summary.first_time,
        last_event: summary.last_time,
        exit: process.exit,
        alerts,
    })
}
