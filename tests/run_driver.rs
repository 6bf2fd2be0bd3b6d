//! The run driver: events in order with strictly increasing seq, every step's rollouts on
//! disk, controls obeyed between steps, checkpoints, stop, interrupt, and resuming a run.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use common::WordsReward;
use polaris::model::tiny;
use polaris::run::driver::{Driver, Ending, RunOptions, Work};
use polaris::run::log::read;
use polaris::run::RunDir;
use polaris::run::{Control, EventKind};

fn kinds(path: &std::path::Path) -> Vec<String> {
    read(path)
        .unwrap()
        .events
        .iter()
        .map(|e| serde_json::to_value(&e.kind).unwrap()["event"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_run_logs_steps_rollouts_controls_and_checkpoints_and_resumes() {
    let model_dir = tempfile::tempdir().unwrap();
    tiny::write(model_dir.path()).unwrap();
    let lm = common::tiny_workers(model_dir.path());
    let data = common::story_examples("lamp", 3);
    let reward = WordsReward(16.0);
    let run = tempfile::tempdir().unwrap();
    let opts = RunOptions { steps: 3, prompts_per_step: 2, checkpoint_every: 2 };
    let start = |dir: &std::path::Path, config: &str, opts: RunOptions, rx: mpsc::Receiver<Control>| {
        Driver::new(
            RunDir::create(dir).unwrap(),
            config,
            Work { workers: &lm, data: &data, rewarder: &reward, validation: None },
            common::driver_trainer(),
            opts,
            rx,
        )
        .unwrap()
    };

    let (tx, rx) = mpsc::channel();
    for c in [Control::Pause, Control::Resume, Control::CheckpointNow] {
        tx.send(c).unwrap();
    }
    let mut d = start(run.path(), "steps = 3\n", opts, rx);
    let ending = d.run(serde_json::json!({"steps": 3}), None, &AtomicBool::new(false)).unwrap();
    assert_eq!(ending, Ending::Finished);
    let events = run.path().join("events.jsonl");
    assert_eq!(
        kinds(&events),
        [
            "started",
            "paused",
            "resumed",
            "checkpoint",
            "step",
            "step",
            "checkpoint",
            "step",
            "checkpoint",
            "finished"
        ]
    );
    let log = read(&events).unwrap();
    assert!(log.events.windows(2).all(|w| w[1].seq == w[0].seq + 1) && log.events[0].seq == 1);
    // 3 steps x 2 groups x 3 rows, each with its step, reward and advantage
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(run.path().join("rollouts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 18);
    assert_eq!(rows.iter().filter(|r| r["rollout"]["is_reference"] == true).count(), 6);
    assert!(rows.iter().all(|r| r["reward"].is_number()
        && r["advantage"].is_number()
        && r["breakdown"]["words"].is_number()));
    assert_eq!(rows.last().unwrap()["step"], 3);
    assert!(run.path().join("checkpoints/step-000003/state.json").exists());
    assert_eq!(std::fs::read_to_string(run.path().join("config.toml")).unwrap(), "steps = 3\n");
    drop(d);

    // resume into the same directory: the log continues, one more step
    let (_tx, rx) = mpsc::channel();
    let more = RunOptions { steps: 4, ..opts };
    let mut d = start(run.path(), "steps = 4\n", more, rx);
    assert_eq!(d.resume_latest().unwrap(), Some(3));
    assert_eq!(d.cursor, 6);
    assert_eq!(d.run(serde_json::json!({}), Some(3), &AtomicBool::new(false)).unwrap(), Ending::Finished);
    let log = read(&events).unwrap();
    assert!(log.events.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert!(matches!(log.events[10].kind, EventKind::Started { resumed_from_step: Some(3), .. }));
    assert!(matches!(log.events.last().unwrap().kind, EventKind::Finished { step: 4, .. }));
    drop(d);

    // a Stop before the first step, and an interrupt: no steps, a final record either way
    let other = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel();
    tx.send(Control::Stop).unwrap();
    let mut d = start(other.path(), "", opts, rx);
    assert_eq!(d.run(serde_json::json!({}), None, &AtomicBool::new(false)).unwrap(), Ending::Stopped);
    drop(d);
    let (_tx, rx) = mpsc::channel();
    let mut d = start(other.path(), "", opts, rx);
    assert_eq!(d.run(serde_json::json!({}), None, &AtomicBool::new(true)).unwrap(), Ending::Interrupted);
    let k = kinds(&other.path().join("events.jsonl"));
    // the second driver did not resume, so it is a fresh run at step 0 with its own final checkpoint
    assert_eq!(k, ["started", "checkpoint", "finished", "started", "checkpoint", "finished"]);
}
