//! Nothing a user or a run wrote is lost to a crash. Whole files are written to a temporary
//! and renamed over the old one (`atomic`); append-only JSONL files go through one log type
//! (`log::AppendLog`: lock, torn last line, append + fsync), typed records over it for the
//! evaluations (`records::RecordLog`); and JSONL inputs are read back line by line with
//! errors naming file and line (`jsonl`).

pub mod atomic;
pub mod jsonl;
pub mod log;
pub mod records;

pub use atomic::{clean_temporaries, write_atomic};
pub use log::{AppendLog, Lock, Tail};
