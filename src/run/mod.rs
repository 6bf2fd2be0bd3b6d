//! A run's shared language: the versioned Event and Control types, and the append-only
//! event log (`events.jsonl`) with its live broadcast.

pub mod demo;
pub mod driver;
pub mod event;
pub mod launch;
pub mod log;
pub mod remote;

pub use event::{Control, Event, EventKind, PROTOCOL_VERSION};
pub use log::EventLog;
