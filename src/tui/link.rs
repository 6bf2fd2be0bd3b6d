//! Where a viewer's events come from and where its controls go, behind one small interface:
//! the TUI follows a run the same way whether it reads the run directory alone (read only),
//! shares the process with the trainer (the demo: events from the files, controls over the
//! driver's channel) or, later, talks to a daemon over its socket.

use std::path::Path;
use std::sync::mpsc::Sender;

use anyhow::{anyhow, bail, Result};

use super::tail::Tail;
use crate::run::{Control, Event};

pub trait Link: Send {
    /// Events appended since the last call, in `seq` order, each at most once; also the
    /// problems met reading them (a damaged line), as text for the status line.
    fn poll(&mut self) -> (Vec<Event>, Vec<String>);
    /// Asks the trainer for something. Err when no trainer can be reached.
    fn send(&mut self, control: Control) -> Result<()>;
    /// Whether `send` can reach a trainer (false: a run opened read only).
    fn can_control(&self) -> bool;
    /// Who steers the run, when several viewers share it (a run attached over its socket).
    fn steering(&self) -> Steering {
        Steering::Local
    }
    /// Asks for the controller lease; `take_over` takes it from its holder.
    fn take_control(&mut self, take_over: bool) -> Result<()> {
        let _ = take_over;
        bail!("only a run attached over its control socket (polaris-tui attach) has a controller lease")
    }
    /// Whether leaving the TUI leaves the run going on elsewhere (an attached viewer).
    fn detachable(&self) -> bool {
        false
    }
}

/// Who may steer a run, as this viewer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steering {
    /// No lease: the trainer is in this process, or the run is open read only (`can_control`).
    Local,
    /// This viewer holds the controller lease.
    You,
    /// Nobody holds it.
    Nobody,
    /// Another viewer holds it: who, since when.
    Other(String),
    /// The connection to the trainer has ended.
    Gone,
}

/// Follows `events.jsonl` as it grows; controls go to an in-process driver when given one.
pub struct DirLink {
    events: Tail,
    last_seq: u64,
    controls: Option<Sender<Control>>,
}

impl DirLink {
    pub fn new(dir: &Path, controls: Option<Sender<Control>>) -> Self {
        Self { events: Tail::new(crate::run::RunDir::at(dir).events()), last_seq: 0, controls }
    }
}

impl Link for DirLink {
    fn poll(&mut self) -> (Vec<Event>, Vec<String>) {
        let (mut events, mut problems) = (Vec::new(), Vec::new());
        let lines = match self.events.read_new() {
            Ok(lines) => lines,
            Err(e) => return (events, vec![format!("{e:#}")]),
        };
        for line in lines {
            match serde_json::from_str::<Event>(&line.text) {
                // a log reopened after a torn tail is re-read from its start: skip what was seen
                Ok(ev) if ev.seq <= self.last_seq => {}
                Ok(ev) => {
                    self.last_seq = ev.seq;
                    events.push(ev);
                }
                Err(e) => problems.push(format!(
                    "{}:{}: not an event ({e}); the line is skipped",
                    self.events.path().display(),
                    line.number
                )),
            }
        }
        (events, problems)
    }

    fn send(&mut self, control: Control) -> Result<()> {
        match &self.controls {
            None => bail!("this run is open read only: no trainer to send {control:?} to"),
            Some(tx) => tx.send(control).map_err(|_| anyhow!("the trainer has gone: {control:?} not sent")),
        }
    }

    fn can_control(&self) -> bool {
        self.controls.is_some()
    }

    /// A trainer in this process (the demo) can be handed on: its caller stops it with a
    /// checkpoint and continues it as a detached daemon when the user leaves with `d`.
    fn detachable(&self) -> bool {
        self.controls.is_some()
    }
}
