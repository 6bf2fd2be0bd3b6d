//! Alerts: rules that watch a run's step events and say, as events of the run's own log,
//! when something has gone wrong (a NaN, groups without signal, a collapsing reward, a device
//! near its memory limit) and when it has passed.
//!
//! Where the rules run, and why:
//! - The trainer's process (`run::driver`), on each step as it is logged: it has every step
//!   whether anyone watches or not, it is the log's one writer (so `seq` stays one sequence),
//!   and a raised alert is then in `events.jsonl` for `attach`, `open`, `runs` and `report`.
//!   It also hears a NaN first: a non-finite step is never logged as a step (JSON has no NaN),
//!   so only the driver can say which step and what went non-finite.
//! - A viewer (the TUI, `runs`), for a stalled run: a trainer that has hung, been stopped
//!   (SIGSTOP) or whose machine sleeps cannot report its own silence, so the viewer's clock
//!   judges it from the newest event's time (or `work.json`'s, rewritten as each step and
//!   micro-batch begins, so a long step is not taken for a stall). It is shown, not logged (a viewer never writes
//!   the log).

pub mod alert;
mod config;
mod rules;

use std::collections::BTreeMap;

pub use alert::{Alert, Rule};
pub use config::AlertsConfig;
pub use rules::{DeviceMemory, MemoryProbe, Watch};

use super::event::{Event, EventKind};

/// The alerts of a log that are raised and not cleared, folded event by event. A `started`
/// event closes them all: the new process judges afresh and raises again what still holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenAlerts {
    open: BTreeMap<(Rule, Option<String>), Alert>,
    /// Every alert event, in order (raised and cleared), for a list of what happened.
    pub history: Vec<Alert>,
}

impl OpenAlerts {
    pub fn of(events: &[Event]) -> Self {
        let mut s = Self::default();
        for ev in events {
            s.add(ev);
        }
        s
    }

    pub fn add(&mut self, ev: &Event) {
        match &ev.kind {
            EventKind::Started { .. } => self.open.clear(),
            EventKind::Alert(a) => self.apply(a),
            _ => {}
        }
    }

    pub fn apply(&mut self, a: &Alert) {
        let key = (a.rule, a.device.clone());
        if a.raised {
            self.open.insert(key, a.clone());
        } else {
            self.open.remove(&key);
        }
        self.history.push(a.clone());
    }

    /// Open alerts, by rule then device.
    pub fn open(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// When the run last showed life: its newest event, or its work record (`work.json`, which
/// the trainer rewrites as each step and micro-batch begins, so a long step is not a stall).
pub fn last_activity(run_dir: &std::path::Path, last_event: Option<f64>) -> Option<f64> {
    let work = std::fs::metadata(super::RunDir::at(run_dir).work())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    match (last_event, work) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The viewer's rule: a live run whose newest event is older than `minutes` (at `now`, Unix
/// seconds) is stalled. None when it is not, or the rule is off (0).
pub fn stalled(last_event: Option<f64>, now: f64, minutes: f64) -> Option<Alert> {
    let last = last_event?;
    let quiet = now - last;
    (minutes > 0.0 && quiet > minutes * 60.0).then(|| Alert {
        rule: Rule::Stalled,
        device: None,
        raised: true,
        step: None,
        text: format!(
            "no event for {:.0} min (alerts.stalled_minutes = {minutes}); is the trainer alive?",
            quiet / 60.0
        ),
    })
}
