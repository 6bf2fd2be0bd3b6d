//! `polaris-tui train`: a headless run, its run directory, refusing to overwrite, resuming,
//! and configuration errors.

mod common;

use std::process::Output;

fn train(args: &[&str], cache: &std::path::Path) -> Output {
    common::tiny_cli::train(cache, args).output().unwrap()
}

fn steps(run: &std::path::Path) -> Vec<u64> {
    common::logged_steps(run).iter().map(|s| s.step as u64).collect()
}

#[test]
fn a_headless_run_resumes_and_refuses_to_overwrite() {
    let cache = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let out = run.path().join("r");
    let o = train(&["--out", out.to_str().unwrap(), "--steps", "2"], cache.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("step    1") && err.contains("run finished at step 2"), "{err}");
    assert_eq!(steps(&out), vec![1, 2]);
    assert!(out.join("config.toml").exists() && out.join("rollouts.jsonl").exists());
    assert!(out.join("checkpoints/step-000002/weights.safetensors").exists());

    let o = train(&["--out", out.to_str().unwrap(), "--steps", "3"], cache.path());
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--resume auto"));
    let o = train(&["--out", out.to_str().unwrap(), "--steps", "3", "--resume", "auto"], cache.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(steps(&out), vec![1, 2, 3]);
}

#[test]
fn configuration_errors_name_the_key() {
    let cache = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let out = run.path().join("r");
    let o = train(&["--out", out.to_str().unwrap(), "--set", "step.loss.clip_lo=0.1"], cache.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("clip_lo"), "{err}");
    let o = train(&["--out", out.to_str().unwrap(), "--devices", "cpu:0"], cache.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("run.devices") && err.contains("cpu:N"), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn a_kill_9_loses_at_most_the_step_in_flight_and_the_resumed_run_matches() {
    let cache = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let common = ["--steps", "5", "--set", "run.checkpoint_every=1"];
    // the uninterrupted run
    let straight = run.path().join("straight");
    let o = train(&[&["--out", straight.to_str().unwrap()][..], &common].concat(), cache.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = common::logged_steps(&straight);
    assert_eq!(want.len(), 5);

    // the same run, killed with SIGKILL once step 2 is logged
    let killed = run.path().join("killed");
    let mut child =
        common::tiny_cli::train(cache.path(), &[&["--out", killed.to_str().unwrap()][..], &common].concat())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while step_stats_tolerant(&killed) < 2 {
        assert!(std::time::Instant::now() < deadline, "the run never logged step 2");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it was killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // the log is valid JSONL up to the kill (a torn last line is the only damage allowed)
    let log = polaris::run::log::read(&killed.join("events.jsonl")).unwrap();
    let logged = log
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            polaris::run::EventKind::Step(s) => Some(s.step),
            _ => None,
        })
        .max()
        .unwrap();
    let saved = polaris::train::checkpoint::latest(&killed).unwrap();
    let saved_step: usize = saved.file_name().unwrap().to_str().unwrap()["step-".len()..].parse().unwrap();
    // a step is logged, then checkpointed: at most the step in flight is lost
    assert!(saved_step + 1 >= logged, "checkpoint {saved_step}, logged {logged}");

    let o = train(&["--out", killed.to_str().unwrap(), "--resume", "auto", "--steps", "5"], cache.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("resumed at step {saved_step}")), "{err}");
    let got = common::logged_steps(&killed);
    for s in saved_step + 1..=5 {
        // the latest record of step s (steps after the checkpoint were redone)
        let g = got.iter().rev().find(|x| x.step == s).unwrap();
        let w = &want[s - 1];
        assert_eq!(
            (g.policy_reward_mean, g.loss, g.grad_norm),
            (w.policy_reward_mean, w.loss, w.grad_norm),
            "step {s} after the resume differs from the uninterrupted run"
        );
    }
}

/// Steps logged so far, tolerating a log being written.
fn step_stats_tolerant(run: &std::path::Path) -> usize {
    polaris::run::log::read(&run.join("events.jsonl"))
        .map_or(0, |l| l.events.iter().filter(|e| matches!(e.kind, polaris::run::EventKind::Step(_))).count())
}
