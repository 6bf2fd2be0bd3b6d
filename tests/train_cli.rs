//! `polaris-tui train`: a headless run, its run directory, refusing to overwrite, resuming,
//! and configuration errors.

mod common;

use std::process::{Command, Output};

fn train(args: &[&str], cache: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .arg("train")
        .args([
            "--group-size",
            "3",
            "--set",
            "run.prompts_per_step=1",
            "--set",
            "step.sampling.max_new_tokens=12",
            "--set",
            "step.thinking=false",
        ])
        .args(["--data", concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/prompts.jsonl")])
        .args(args)
        .env("POLARIS_CACHE_DIR", cache)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn steps(run: &std::path::Path) -> Vec<u64> {
    polaris::run::log::read(&run.join("events.jsonl"))
        .unwrap()
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            polaris::run::EventKind::Step(s) => Some(s.step as u64),
            _ => None,
        })
        .collect()
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
    let o = train(&["--out", out.to_str().unwrap(), "--devices", "cpu:2"], cache.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("run.devices"), "{err}");
    assert!(!err.contains("panicked"));
}
