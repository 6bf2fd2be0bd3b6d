//! The one protocol between a trainer and whoever watches it (the TUI in-process, or a viewer
//! attached over a socket): events out, controls in. Serde, tagged, versioned.

use serde::{Deserialize, Serialize};

use super::alerts::alert::Alert;
use super::stats::{SftStep, StepStats, ValStats};

/// Bumped on any change a reader of an older version would misread.
pub const PROTOCOL_VERSION: u32 = 1;

/// One line of events.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Protocol version that wrote the event.
    pub v: u32,
    /// Strictly increasing within a run, from 1.
    pub seq: u64,
    /// Unix time, seconds.
    pub time: f64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The run began (or resumed) with this fully resolved configuration. On a resume from
    /// step k, Step events after k logged earlier (before a stop or a crash) are superseded:
    /// those steps are taken again.
    Started {
        config: serde_json::Value,
        resumed_from_step: Option<usize>,
    },
    /// One optimizer step finished.
    Step(Box<StepStats>),
    /// One step of a supervised warm start (before GRPO) finished.
    Sft(Box<SftStep>),
    /// A validation pass on the held-out prompts finished (its rows are in rollouts.jsonl,
    /// kind `val`). On a resume from step k, Val events after k logged earlier are
    /// superseded like Step events.
    Val(Box<ValStats>),
    /// A checkpoint was written (renamed into place).
    Checkpoint {
        step: usize,
        path: String,
    },
    Paused {
        step: usize,
    },
    Resumed {
        step: usize,
    },
    /// The run ended: finished, stopped by a control, or failed.
    Finished {
        step: usize,
        reason: String,
    },
    /// Something a person should see (judge trouble, a skipped record, ...).
    Message {
        level: Level,
        text: String,
    },
    /// An alert rule began or stopped holding (`run::alerts`).
    Alert(Alert),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What a viewer may ask of a trainer; acted on between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum Control {
    Pause,
    Resume,
    CheckpointNow,
    Stop,
}
