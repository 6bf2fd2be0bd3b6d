//! Fuzzing every parser of outside input on stable Rust: a seeded mutation loop over each
//! target's corpus (mutate.rs), bounded by executions or seconds, any panic or broken
//! invariant saved under tests/fuzz_regressions/<target>/ and replayed by
//! `kept_crash_inputs_stay_fixed` from then on.
//!
//! `cargo test --release --test fuzz` runs POLARIS_FUZZ_EXECS executions per target
//! (default 1,500) from POLARIS_FUZZ_SEED (default fixed, so the suite is deterministic);
//! CI runs each target for POLARIS_FUZZ_SECS seconds from the seed .ci/run sets (fixed there).
//! `-- --nocapture` shows the execution counts.

mod mutate;
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mutate::Mutator;
use targets::{Target, Verdict, TARGETS};

/// An input taking longer than this is a finding (a hang in the making).
const SLOW: Duration = Duration::from_secs(5);
/// Corpus entries kept at most per target (accepted mutants join it).
const CORPUS: usize = 512;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")))
}

fn regressions(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions").join(target)
}

/// Runs one input: panics caught, slowness measured.
fn execute(t: &Target, input: &[u8], scratch: &std::path::Path) -> (Result<Verdict, String>, Duration) {
    let started = Instant::now();
    let out = catch_unwind(AssertUnwindSafe(|| (t.run)(input, scratch))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())
    });
    (out, started.elapsed())
}

/// Why `input` is a finding, if it is one.
fn finding(out: Result<Verdict, String>, took: Duration) -> Option<String> {
    match out {
        Err(panic) => Some(format!("panicked: {panic}")),
        Ok(Err(broken)) => Some(format!("invariant broken: {broken}")),
        Ok(Ok(_)) if took > SLOW => Some(format!("took {took:?}")),
        Ok(Ok(_)) => None,
    }
}

/// Keeps a finding as a regression input; the path, for the report.
fn keep(target: &str, input: &[u8]) -> PathBuf {
    use sha2::{Digest, Sha256};
    let dir = regressions(target);
    std::fs::create_dir_all(&dir).unwrap();
    let hash: String = Sha256::digest(input).iter().take(8).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("crash-{hash}"));
    std::fs::write(&path, input).unwrap();
    path
}

fn fuzz(name: &str) {
    let t = TARGETS.iter().find(|t| t.name == name).expect("a target of that name");
    let secs = env_u64("POLARIS_FUZZ_SECS");
    let execs = env_u64("POLARIS_FUZZ_EXECS").unwrap_or(if secs.is_some() { u64::MAX } else { 1500 });
    let seed = env_u64("POLARIS_FUZZ_SEED").unwrap_or(0x5eed);
    let deadline = secs.map(|s| Instant::now() + Duration::from_secs(s));
    let scratch = tempfile::tempdir().unwrap();
    let mut corpus = (t.seeds)();
    // the seeds must pass: a target that rejects its own seeds tests nothing
    for s in &corpus {
        let (out, took) = execute(t, s, scratch.path());
        assert!(matches!(out, Ok(Ok(_))) && took < SLOW, "{name}: a seed fails: {out:?}");
    }
    let name_seed = name.bytes().fold(seed, |h, b| h.rotate_left(5) ^ u64::from(b));
    let mut m = Mutator::new(name_seed);
    let started = Instant::now();
    let (mut n, mut accepted, mut slowest) = (0u64, 0u64, Duration::ZERO);
    while n < execs && deadline.is_none_or(|d| Instant::now() < d) {
        let (a, b) = (m.below(corpus.len()), m.below(corpus.len()));
        let input = m.mutate(&corpus[a], &corpus[b]);
        let (out, took) = execute(t, &input, scratch.path());
        n += 1;
        slowest = slowest.max(took);
        if let Some(why) = finding(out.clone(), took) {
            let kept = keep(name, &input);
            let shown: String = String::from_utf8_lossy(&input).chars().take(300).collect();
            panic!(
                "fuzz {name} (seed {seed}, execution {n}): {why}\ninput ({} bytes, kept as {}): {shown:?}",
                input.len(),
                kept.display()
            );
        }
        if matches!(out, Ok(Ok(true))) {
            accepted += 1;
            if corpus.len() < CORPUS && input.len() <= 64 * 1024 {
                corpus.push(input);
            }
        }
    }
    eprintln!(
        "fuzz {name}: {n} executions in {:.1} s (seed {seed}), {accepted} accepted, corpus {}, slowest {slowest:?}",
        started.elapsed().as_secs_f64(),
        corpus.len()
    );
}

#[test]
fn fuzz_dataset_records() {
    fuzz("dataset_records");
}

#[test]
fn fuzz_judge_answers() {
    fuzz("judge_answers");
}

#[test]
fn fuzz_events() {
    fuzz("events");
}

#[test]
fn fuzz_config() {
    fuzz("config");
}

#[test]
fn fuzz_annotate_inputs() {
    fuzz("annotate_inputs");
}

#[test]
fn fuzz_retry_after() {
    fuzz("retry_after");
}

#[test]
fn fuzz_principles() {
    fuzz("principles");
}

#[test]
fn fuzz_preference_pairs() {
    fuzz("preference_pairs");
}

/// Every input a fuzz run kept passes now.
#[test]
fn kept_crash_inputs_stay_fixed() {
    let scratch = tempfile::tempdir().unwrap();
    let mut failing = Vec::new();
    let mut replayed = 0;
    for t in TARGETS {
        let Ok(entries) = std::fs::read_dir(regressions(t.name)) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            if !path.file_name().unwrap().to_string_lossy().starts_with("crash-") {
                continue;
            }
            let input = std::fs::read(&path).unwrap();
            let (out, took) = execute(t, &input, scratch.path());
            replayed += 1;
            if let Some(why) = finding(out, took) {
                failing.push(format!("{}: {why}", path.display()));
            }
        }
    }
    assert!(failing.is_empty(), "{} kept inputs fail:\n{}", failing.len(), failing.join("\n"));
    eprintln!("{replayed} kept crash inputs replayed");
}

/// The harness itself: a panic and a broken invariant are findings, a clean run is not.
#[test]
fn a_panic_or_a_broken_invariant_is_a_finding() {
    let t = Target {
        name: "self_test",
        seeds: Vec::new,
        run: |input, _| match input {
            b"boom" => panic!("boom"),
            b"bent" => Err("bent".into()),
            _ => Ok(true),
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let verdict = |input: &[u8]| {
        let (out, took) = execute(&t, input, dir.path());
        finding(out, took)
    };
    assert_eq!(verdict(b"boom").as_deref(), Some("panicked: boom"));
    assert_eq!(verdict(b"bent").as_deref(), Some("invariant broken: bent"));
    assert_eq!(verdict(b"fine"), None);
}
