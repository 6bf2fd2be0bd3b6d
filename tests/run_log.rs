//! The event log: strictly increasing seq across reopening, every line valid JSONL after a
//! torn write, live broadcast, and the protocol's serde form.

use std::io::Write;

use polaris::run::event::Level;
use polaris::run::log::read;
use polaris::run::stats::StepStats;
use polaris::run::{Control, Event, EventKind, EventLog, PROTOCOL_VERSION};

#[test]
fn seq_increases_across_reopening_and_a_torn_tail_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut log = EventLog::open(&path).unwrap();
    let mut rx = log.subscribe();
    log.append(EventKind::Started { config: serde_json::json!({"steps": 3}), resumed_from_step: None })
        .unwrap();
    log.append(EventKind::Step(Box::new(StepStats {
        step: 1,
        policy_reward_mean: 0.25,
        ..Default::default()
    })))
    .unwrap();
    // the broadcast sees exactly what was written
    assert_eq!(rx.try_recv().unwrap().seq, 1);
    assert_eq!(rx.try_recv().unwrap().seq, 2);
    drop(log);

    // a kill mid-write leaves half a line
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"v":1,"seq":3,"time":1.0,"event":"ste"#).unwrap();
    drop(f);
    let found = read(&path).unwrap();
    assert_eq!(found.events.len(), 2);
    assert!(found.torn_tail);

    // reopening truncates the tail and continues the numbering
    let mut log = EventLog::open(&path).unwrap();
    assert_eq!(log.next_seq(), 3);
    log.append(EventKind::Paused { step: 1 }).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let events: Vec<Event> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(events.iter().all(|e| e.v == PROTOCOL_VERSION));
    assert!(matches!(events[1].kind, EventKind::Step(ref s) if s.step == 1 && s.policy_reward_mean == 0.25));
}

#[test]
fn damage_before_the_end_is_an_error_that_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut log = EventLog::open(&path).unwrap();
    log.append(EventKind::Paused { step: 0 }).unwrap();
    drop(log);
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"garbage\n").unwrap();
    f.write_all(br#"{"v":1,"seq":5,"time":1.0,"event":"resumed","step":0}"#).unwrap();
    f.write_all(b"\n").unwrap();
    drop(f);
    let e = read(&path).unwrap_err().to_string();
    assert!(e.contains("events.jsonl:2: not an event"), "{e}");
    assert!(EventLog::open(&path).is_err());
}

#[test]
fn the_protocol_in_json() {
    let e = Event {
        v: 1,
        seq: 7,
        time: 0.5,
        kind: EventKind::Message { level: Level::Warn, text: "judge slow".into() },
    };
    let j = serde_json::to_value(&e).unwrap();
    assert_eq!(
        j,
        serde_json::json!({"v": 1, "seq": 7, "time": 0.5, "event": "message", "level": "warn", "text": "judge slow"})
    );
    assert_eq!(serde_json::from_value::<Event>(j).unwrap(), e);
    for (c, s) in [
        (Control::Pause, "pause"),
        (Control::Resume, "resume"),
        (Control::CheckpointNow, "checkpoint_now"),
        (Control::Stop, "stop"),
    ] {
        let j = serde_json::to_value(c).unwrap();
        assert_eq!(j["control"], s);
        assert_eq!(serde_json::from_value::<Control>(j).unwrap(), c);
    }
}
