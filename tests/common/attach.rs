//! A library client of a run's control socket, as the attach tests drive it.

use std::time::{Duration, Instant};

use polaris::run::remote::{Client, Incoming, ServerMsg};
use polaris::run::Event;

/// Reads messages until one satisfies `want`; fails the test if the connection closes or
/// `secs` pass first (generous: a loaded machine is slow, and nothing here is a timing check).
pub fn until(c: &Client, secs: u64, want: impl Fn(&ServerMsg) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        match c.recv_timeout(Duration::from_millis(100)) {
            Some(Incoming::Msg(m)) if want(&m) => return,
            Some(Incoming::Closed(why)) => panic!("closed: {why}"),
            _ => {}
        }
    }
    panic!("timed out after {secs} s");
}

/// Every event a client receives until the trainer says goodbye (or 10 minutes of silence).
pub fn collect(c: Client) -> std::thread::JoinHandle<Vec<Event>> {
    std::thread::spawn(move || {
        let mut got = vec![];
        loop {
            match c.recv_timeout(Duration::from_secs(600)) {
                Some(Incoming::Msg(ServerMsg::Event { event })) => got.push(event),
                Some(Incoming::Msg(ServerMsg::Bye { .. })) | Some(Incoming::Closed(_)) | None => return got,
                Some(_) => {}
            }
        }
    })
}
