//! A run's shared language: the versioned Event and Control types, and the append-only
//! event log (`events.jsonl`) with its live broadcast; how a run's process ended
//! (`exit.json`), its status, and the registry of runs.

pub mod alerts;
pub mod claim;
pub mod daemon;
pub mod demo;
pub mod dir;
pub mod driver;
pub mod event;
pub mod exit;
pub mod heap;
pub mod launch;
pub mod log;
pub mod oom;
pub mod process;
pub mod registry;
pub mod remote;
pub mod report;
pub mod rollout;
pub mod stats;
pub mod status;
pub mod threads;
pub mod work;

pub use dir::RunDir;
pub use event::{Control, Event, EventKind, PROTOCOL_VERSION};
pub use log::EventLog;
pub use registry::most_recent_live;
