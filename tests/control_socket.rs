//! The control socket at the protocol level: a server over a run log and a control channel
//! (no model), real clients over the real socket. Replay after a seq, replay then live with
//! no gap or duplicate, several viewers, the lease, version refusal, the socket's mode.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use polaris::run::event::Level;
use polaris::run::remote::{serve, Client, ClientMsg, ConnectError, Incoming, ServerMsg, Who};
use polaris::run::{Control, Event, EventKind, EventLog, RunDir, PROTOCOL_VERSION};

fn message(i: usize) -> EventKind {
    EventKind::Message { level: Level::Info, text: format!("event {i}") }
}

/// A run directory with `n` events logged, served.
fn served(n: usize) -> (tempfile::TempDir, EventLog, mpsc::Receiver<Control>, polaris::run::remote::Serving) {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(&tmp.path().join("events.jsonl")).unwrap();
    for i in 0..n {
        log.append(message(i)).unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let serving = serve(tmp.path(), log.live(), tx, false).unwrap();
    (tmp, log, rx, serving)
}

/// Waits (up to a minute: a loaded machine) for the next message matching `want`,
/// collecting the events seen on the way.
fn until(c: &Client, seen: &mut Vec<Event>, want: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match c.recv_timeout(Duration::from_millis(100)) {
            Some(Incoming::Msg(m)) => {
                if let ServerMsg::Event { event } = &m {
                    seen.push(event.clone());
                }
                if want(&m) {
                    return m;
                }
            }
            Some(Incoming::Closed(why)) => panic!("closed: {why}"),
            None => {}
        }
    }
    panic!("timed out waiting")
}

/// Events until (and including) seq `last`.
fn events_until(c: &Client, last: u64) -> Vec<Event> {
    let mut seen = vec![];
    until(c, &mut seen, |m| matches!(m, ServerMsg::Event { event } if event.seq >= last));
    seen
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

fn logged(dir: &Path) -> Vec<Event> {
    polaris::run::log::read(&dir.join("events.jsonl")).unwrap().events
}

#[test]
fn a_reattach_replays_exactly_the_events_after_its_seq_then_streams_live() {
    let (tmp, mut log, _rx, _serving) = served(10);
    let c = Client::connect(tmp.path(), 6).unwrap();
    for i in 10..15 {
        log.append(message(i)).unwrap();
    }
    let got = events_until(&c, 15);
    // the log's events after 6, in order, each once: the replay and the live stream meet
    let want: Vec<Event> = logged(tmp.path()).into_iter().filter(|e| e.seq > 6).collect();
    assert_eq!(got, want);
    assert_eq!(seqs(&got), (7..=15).collect::<Vec<_>>());
}

#[test]
fn two_viewers_receive_the_same_sequence_even_when_events_arrive_while_they_connect() {
    let (tmp, mut log, _rx, _serving) = served(3);
    let a = Client::connect(tmp.path(), 0).unwrap();
    // events appended while the second viewer subscribes and replays
    let writer = std::thread::spawn(move || {
        for i in 3..200 {
            log.append(message(i)).unwrap();
        }
        log
    });
    let b = Client::connect(tmp.path(), 0).unwrap();
    let _log = writer.join().unwrap();
    let (ga, gb) = (events_until(&a, 200), events_until(&b, 200));
    assert_eq!(seqs(&ga), (1..=200).collect::<Vec<_>>());
    assert_eq!(ga, gb);
    assert_eq!(ga, logged(tmp.path()));
}

#[test]
fn the_lease_first_asker_gets_it_others_are_refused_by_name_and_can_take_over() {
    let (tmp, _log, rx, _serving) = served(1);
    let mut a = Client::connect(tmp.path(), 0).unwrap();
    let mut b = Client::connect(tmp.path(), 0).unwrap();
    let mut seen = vec![];
    // nobody holds it: a control is refused
    b.control(Control::Pause).unwrap();
    let m = until(&b, &mut seen, |m| matches!(m, ServerMsg::Denied { .. }));
    assert!(format!("{m:?}").contains("nobody holds it"), "{m:?}");

    a.request_lease(false).unwrap();
    until(&a, &mut seen, |m| matches!(m, ServerMsg::Lease { yours: true, .. }));
    // b hears who holds it
    let m = until(&b, &mut seen, |m| matches!(m, ServerMsg::Lease { holder: Some(_), .. }));
    let me = Who::me();
    assert!(matches!(&m, ServerMsg::Lease { holder: Some(h), yours: false } if h.who.pid == me.pid), "{m:?}");

    a.control(Control::Pause).unwrap();
    until(&a, &mut seen, |m| matches!(m, ServerMsg::Accepted { control: Control::Pause }));
    assert_eq!(rx.try_recv().unwrap(), Control::Pause);

    // a control from the viewer without the lease is refused and names the holder
    b.control(Control::Stop).unwrap();
    let ServerMsg::Denied { text } = until(&b, &mut seen, |m| matches!(m, ServerMsg::Denied { .. })) else {
        unreachable!()
    };
    assert!(text.contains("Stop refused") && text.contains(&me.to_string()), "{text}");
    assert!(rx.try_recv().is_err(), "the refused Stop reached the trainer");
    // asking without taking over is refused, naming the holder
    b.request_lease(false).unwrap();
    let ServerMsg::Denied { text } = until(&b, &mut seen, |m| matches!(m, ServerMsg::Denied { .. })) else {
        unreachable!()
    };
    assert!(text.contains("holds the controller lease") && text.contains(&me.to_string()), "{text}");

    // take over: b steers, a is told it lost the lease and is refused from now on
    b.request_lease(true).unwrap();
    until(&b, &mut seen, |m| matches!(m, ServerMsg::Lease { yours: true, .. }));
    until(&a, &mut seen, |m| matches!(m, ServerMsg::LeaseLost { .. }));
    a.control(Control::Resume).unwrap();
    until(&a, &mut seen, |m| matches!(m, ServerMsg::Denied { .. }));
    b.control(Control::Resume).unwrap();
    until(&b, &mut seen, |m| matches!(m, ServerMsg::Accepted { .. }));
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![Control::Resume]);

    // the holder disconnecting releases the lease
    drop(b);
    until(&a, &mut seen, |m| matches!(m, ServerMsg::Lease { holder: None, .. }));
    a.request_lease(false).unwrap();
    until(&a, &mut seen, |m| matches!(m, ServerMsg::Lease { yours: true, .. }));
}

#[test]
fn a_wrong_protocol_version_is_refused_naming_both_versions() {
    let (tmp, _log, _rx, _serving) = served(1);
    let hello = ClientMsg::Hello { protocol: PROTOCOL_VERSION + 1, last_seq: 0, who: Who::me() };
    let Err(ConnectError::Refused(text)) = Client::connect_with(tmp.path(), &hello) else {
        panic!("a wrong version was not refused")
    };
    assert!(text.contains(&format!("version {PROTOCOL_VERSION}")), "{text}");
    assert!(text.contains(&format!("version {}", PROTOCOL_VERSION + 1)), "{text}");
    assert!(text.contains("same polaris-tui build"), "{text}");
    // and the server goes on serving others
    Client::connect(tmp.path(), 0).unwrap();
}

#[test]
fn the_socket_is_owner_only_and_removed_when_serving_ends() {
    let (tmp, log, _rx, serving) = served(1);
    let sock = RunDir::at(tmp.path()).socket();
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), std::fs::metadata(tmp.path()).unwrap().uid());
    let c = Client::connect(tmp.path(), 0).unwrap();
    drop(serving);
    assert!(!sock.exists());
    // the viewer hears the goodbye after the events
    let mut seen = vec![];
    until(&c, &mut seen, |m| matches!(m, ServerMsg::Bye { .. }));
    assert_eq!(seqs(&seen), vec![1]);
    assert!(matches!(Client::connect(tmp.path(), 0), Err(ConnectError::NotLive(_))));
    drop(log);
}

#[test]
fn a_directory_others_can_write_to_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let log = EventLog::open(&tmp.path().join("events.jsonl")).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (tx, _rx) = mpsc::channel();
    let e = serve(tmp.path(), log.live(), tx, false).err().unwrap().to_string();
    assert!(e.contains("writable by group or others") && e.contains("chmod go-w"), "{e}");
    assert!(!RunDir::at(tmp.path()).socket().exists());
}

#[test]
fn a_viewer_that_falls_behind_is_resynchronised_from_the_log() {
    use polaris::run::remote::protocol::{read_msg, write_msg};
    let (tmp, mut log, _rx, _serving) = served(0);
    // a raw viewer that says hello and then reads nothing for a while: its socket fills,
    // the server's writes to it wait, and the broadcast ring (1024 events) overflows
    let mut raw = std::os::unix::net::UnixStream::connect(RunDir::at(tmp.path()).socket()).unwrap();
    write_msg(&mut raw, &ClientMsg::Hello { protocol: PROTOCOL_VERSION, last_seq: 0, who: Who::me() })
        .unwrap();
    let fat = "x".repeat(2000);
    for i in 0..3000 {
        log.append(EventKind::Message { level: Level::Info, text: format!("{i} {fat}") }).unwrap();
    }
    let (mut seqs, mut notices) = (vec![], vec![]);
    while seqs.last() != Some(&3000) {
        match read_msg::<ServerMsg>(&mut raw).unwrap().expect("the server closed") {
            ServerMsg::Event { event } => seqs.push(event.seq),
            ServerMsg::Notice { text } => notices.push(text),
            _ => {}
        }
    }
    assert_eq!(seqs, (1..=3000).collect::<Vec<_>>(), "a gap or a duplicate after the resync");
    assert!(notices.iter().any(|n| n.contains("resynchronised from the run log")), "{notices:?}");
}
