//! `polaris-tui judge` and the judge settings at the command line: a pipe closed early,
//! folders where files belong, a judge that fails every story, settings out of range, and a
//! training run that stops as failed when its judge is down instead of training on fallbacks.

#[path = "common/judge_server.rs"]
mod judge_server;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use judge_server::*;

fn polaris() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_polaris-tui"));
    c.env("RUST_BACKTRACE", "0").env_remove("OPENAI_BASE_URL");
    c
}

fn run(args: &[&str], dir: &Path) -> Output {
    polaris().args(args).env("POLARIS_CACHE_DIR", dir).env("POLARIS_STATE_DIR", dir).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Two records; `b`'s story mentions "doomed".
fn stories(dir: &Path) -> String {
    let rec = |uid: &str, story: String| {
        serde_json::json!({"uid": uid, "prompt": "A story about a lighthouse. The story should be 300 words long.", "story": story}).to_string()
    };
    let path = dir.join("stories.jsonl");
    std::fs::write(&path, format!("{}\n{}\n", rec("a", story()), rec("b", format!("{} doomed", story()))))
        .unwrap();
    path.display().to_string()
}

#[test]
fn a_dry_run_into_a_pipe_closed_early_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.jsonl");
    // a story of ~200 kB: the request outgrows the pipe's buffer, so the writer meets the
    // closed end, as `judge --dry-run | head -c 100` does
    let rec = serde_json::json!({"uid": "a", "prompt": "A tale.", "story": story().repeat(100)});
    std::fs::write(&input, format!("{rec}\n")).unwrap();
    let mut child = polaris()
        .args(["judge", "--judge", "openai:m", "--base-url", "http://127.0.0.1:9/v1"])
        .args(["--input", input.to_str().unwrap(), "--dry-run"])
        .env("OPENAI_API_KEY", KEY)
        .env("POLARIS_CACHE_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 100];
    child.stdout.as_mut().unwrap().read_exact(&mut head).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && !stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&head).contains("\"url\""));
}

#[test]
fn folders_where_files_belong_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = stories(dir.path());
    let d = dir.path().display().to_string();
    let o = run(&["judge", "--input", &d, "--out", &format!("{d}/o.jsonl")], dir.path());
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains(&format!("--input {d} is a directory")), "{e}");
    assert!(!e.contains("UTF-8"), "{e}");
    let o = run(&["judge", "--input", &input, "--out", &d], dir.path());
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains(&format!("--out {d} is a directory")), "{e}");
    assert!(e.contains(&format!("--out {d}/judged.jsonl")), "{e}");
    // a folder that does not exist yet is made
    let nested = format!("{d}/new/deeper/judged.jsonl");
    let o = run(&["judge", "--input", &input, "--out", &nested], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&nested).unwrap().lines().count(), 2);
    // bytes that are not UTF-8 are still called that, with their line
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, b"{\"uid\": \"a\", \"prompt\": \"p\", \"story\": \"s\"}\n\xff\xfe\n").unwrap();
    let o = run(&["judge", "--input", bad.to_str().unwrap(), "--out", &nested], dir.path());
    assert!(stderr(&o).contains("bad.jsonl:2: is not UTF-8"), "{}", stderr(&o));
}

#[test]
fn every_judgement_failing_is_an_error_and_writes_nothing() {
    let r = polaris::reward::Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    let (base, server) = serve_blocking(move |_, body| {
        if body.to_string().contains("doomed") || body.to_string().contains("revoked") {
            Reply::status(401, "invalid api key")
        } else {
            Reply::ok(openai_body(&answer))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let input = stories(dir.path());
    let out = dir.path().join("judged.jsonl");
    let judge = |input: &str| {
        polaris()
            .args(["judge", "--judge", "openai:judge-model", "--base-url", &base, "--no-cache"])
            .args(["--input", input, "--out", out.to_str().unwrap()])
            .env("OPENAI_API_KEY", KEY)
            .output()
            .unwrap()
    };
    // one of two failing: written, exit 0, the failure counted
    let o = judge(&input);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("judge failures 1"), "{}", stderr(&o));
    assert_eq!(server.hits(), 2);
    // both failing: exit 1, the reason, and the earlier output left as it was
    let before = std::fs::read_to_string(&out).unwrap();
    let all = dir.path().join("all.jsonl");
    std::fs::write(&all, std::fs::read_to_string(&input).unwrap().replace("lighthouse", "revoked")).unwrap();
    let o = judge(all.to_str().unwrap());
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("every judgement failed (2 of 2)"), "{e}");
    assert!(e.contains("2 x HTTP 401") && e.contains("invalid api key") && !e.contains(KEY), "{e}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), before);
}

#[test]
fn settings_out_of_range_are_refused_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let input = stories(dir.path());
    let out = dir.path().join("o.jsonl").display().to_string();
    for (set, key, range) in [
        ("judge.timeout_secs=-1", "judge.timeout_secs = -1", "(0, 86400]"),
        ("judge.backoff_secs=-3", "judge.backoff_secs = -3", "[0, 86400]"),
        ("judge.max_failure_rate=2", "judge.max_failure_rate = 2", "[0, 1]"),
    ] {
        // a short run, should the setting ever be taken again
        let short =
            ["--steps", "1", "--set", "step.sampling.max_new_tokens=4", "--set", "run.prompts_per_step=1"];
        let o =
            run(&[&["train", "--out", &format!("{out}.run"), "--set", set][..], &short].concat(), dir.path());
        let e = stderr(&o);
        assert!(!o.status.success() && e.contains(key) && e.contains(range), "{set}: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
    let config = dir.path().join("judge.toml");
    std::fs::write(&config, "[judge]\ntimeout_secs = -1\n").unwrap();
    let o =
        run(&["judge", "--input", &input, "--out", &out, "--config", config.to_str().unwrap()], dir.path());
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("judge.toml") && e.contains("judge.timeout_secs = -1"), "{e}");
    let o = run(&["judge", "--input", &input, "--out", &out, "--concurrency", "0"], dir.path());
    assert!(!o.status.success() && stderr(&o).contains("judge.concurrency = 0"), "{}", stderr(&o));
    assert!(!Path::new(&out).exists());
}

/// A headless run of the built-in tiny model against the judge at `base`; small steps.
fn train(base: &str, out: &Path, extra: &[&str]) -> Output {
    polaris()
        .args(["train", "--judge", "openai:judge-model", "--steps", "2", "--group-size", "3"])
        .args(["--data", concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/prompts.jsonl")])
        .args(["--out", out.to_str().unwrap()])
        .args(["--set", &format!("judge.base_url={base}"), "--set", "judge.retries=0"])
        .args(["--set", "run.prompts_per_step=1", "--set", "step.sampling.max_new_tokens=12"])
        .args(["--set", "step.thinking=false"])
        .args(extra)
        .env("OPENAI_API_KEY", KEY)
        .env("POLARIS_CACHE_DIR", out.parent().unwrap())
        .env("POLARIS_STATE_DIR", out.parent().unwrap())
        .output()
        .unwrap()
}

#[test]
fn a_run_whose_judge_is_down_stops_as_failed_before_training() {
    let (base, server) = serve_blocking(|_, _| Reply::status(503, "the judge is down"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = train(&base, &out, &[]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("step 1: the judge failed on 3 of 3 rows (100%)"), "{e}");
    assert!(e.contains("judge.max_failure_rate = 0.25") && e.contains("HTTP 503"), "{e}");
    assert_eq!(server.hits(), 3);
    let exit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("exit.json")).unwrap()).unwrap();
    assert_eq!(exit["status"], "failed", "{exit}");
    assert!(exit["message"].as_str().unwrap().contains("judge.max_failure_rate"));
    // nothing of the step was trained on, logged or saved
    let log = polaris::run::log::read(&out.join("events.jsonl")).unwrap();
    assert!(!log.events.iter().any(|e| matches!(e.kind, polaris::run::EventKind::Step(_))));
    assert!(
        !out.join("checkpoints").exists() || std::fs::read_dir(out.join("checkpoints")).unwrap().count() == 0
    );

    // with the gate open (1: never stop) it trains on the fallback, as the release does
    let open = dir.path().join("open");
    let o = train(&base, &open, &["--set", "judge.max_failure_rate=1"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
