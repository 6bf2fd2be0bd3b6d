//! The TUI attached to a trainer over its control socket: events from the server (the log's
//! history, then live), controls sent only while this viewer holds the controller lease
//! (the server enforces it too), and the lease's news for the status bar.

use std::path::Path;

use anyhow::{bail, Result};

use super::link::{Link, Steering};
use crate::run::remote::{Client, ConnectError, Incoming, ServerMsg};
use crate::run::{Control, Event};

pub struct SocketLink {
    client: Client,
    last_seq: u64,
    steering: Steering,
}

impl SocketLink {
    /// Attaches to the run in `dir` from its first event.
    pub fn connect(dir: &Path) -> Result<Self, ConnectError> {
        Ok(Self { client: Client::connect(dir, 0)?, last_seq: 0, steering: Steering::Nobody })
    }

    /// The trainer's process id.
    pub fn trainer_pid(&self) -> u32 {
        self.client.trainer_pid
    }
}

impl Link for SocketLink {
    fn poll(&mut self) -> (Vec<Event>, Vec<String>) {
        let (mut events, mut said) = (Vec::new(), Vec::new());
        while let Some(got) = self.client.try_recv() {
            match got {
                Incoming::Msg(ServerMsg::Event { event }) => {
                    if event.seq > self.last_seq {
                        self.last_seq = event.seq;
                        events.push(event);
                    }
                }
                Incoming::Msg(ServerMsg::Lease { holder, yours }) => {
                    self.steering = match (yours, holder) {
                        (true, _) => Steering::You,
                        (false, None) => Steering::Nobody,
                        (false, Some(h)) => Steering::Other(h.to_string()),
                    };
                }
                Incoming::Msg(ServerMsg::LeaseLost { to }) => {
                    said.push(format!("{to} took control; you are read only now"));
                    self.steering = Steering::Other(to.to_string());
                }
                Incoming::Msg(ServerMsg::Denied { text } | ServerMsg::Notice { text }) => said.push(text),
                Incoming::Msg(ServerMsg::Accepted { .. } | ServerMsg::Welcome { .. }) => {}
                Incoming::Msg(ServerMsg::Bye { text } | ServerMsg::Refused { text })
                | Incoming::Closed(text) => {
                    if self.steering != Steering::Gone {
                        said.push(format!("{text}; what is shown stays, read only"));
                        self.steering = Steering::Gone;
                    }
                }
            }
        }
        (events, said)
    }

    fn send(&mut self, control: Control) -> Result<()> {
        match &self.steering {
            Steering::You => self.client.control(control),
            Steering::Other(holder) => {
                bail!("{control:?} not sent: {holder} controls this run; C takes control")
            }
            Steering::Gone => bail!("the trainer has gone: {control:?} not sent"),
            Steering::Nobody | Steering::Local => {
                bail!("{control:?} not sent: you do not control this run; C takes control")
            }
        }
    }

    fn can_control(&self) -> bool {
        self.steering == Steering::You
    }

    fn steering(&self) -> Steering {
        self.steering.clone()
    }

    fn take_control(&mut self, take_over: bool) -> Result<()> {
        if self.steering == Steering::Gone {
            bail!("the trainer has gone: there is nothing to control");
        }
        self.client.request_lease(take_over)
    }

    fn detachable(&self) -> bool {
        true
    }
}
