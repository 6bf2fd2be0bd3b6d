//! The control socket: a trainer serves `control.sock` in its run directory and any number
//! of viewers attach to it (over ssh, from another terminal) to follow the run and, holding
//! the controller lease, steer it. The trainer never waits on a viewer.
//!
//! - `protocol`: length-delimited JSON frames and the messages in them.
//! - `socket`: the socket file's safety (owner-only mode, directory mode, peer uid, stale files).
//! - `lease`: who may send controls.
//! - `server`: serves one run's event log and control channel, on a thread of its own.
//! - `client`: connects, handshakes, receives events, sends controls and lease requests.

pub mod client;
pub mod lease;
pub mod protocol;
pub mod server;
pub mod socket;

pub use client::{Client, ConnectError, Incoming};
pub use protocol::{ClientMsg, Holder, ServerMsg, Who};
pub use server::{serve, Serving};
pub use socket::is_live;
