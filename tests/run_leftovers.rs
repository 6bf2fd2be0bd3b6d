//! Leftovers and torn files: what a kill during a write leaves (a checkpoint's temporary
//! folder, a temporary of a file written whole, a torn last line of rollouts.jsonl) is
//! cleaned or cut when the run starts again; a full disk during a checkpoint names the file
//! and leaves no partial folder.

mod common;

use std::path::Path;

use common::tiny_cli::{demo_data, text, train, BIN, TINY};

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn warnings(run: &Path) -> Vec<String> {
    common::logged_messages(run).into_iter().map(|(_, text)| text).collect()
}

#[test]
fn temporaries_left_by_a_killed_writer_are_removed_when_the_run_starts_again() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let run = runs.path().join("r");
    let o = train(home.path(), &["--steps", "1", "--out", run.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // a checkpoint and an exit.json whose writer was killed before its rename, and one of a
    // live writer (this test's process) that must be left alone
    let dead = dead_pid();
    let torn_checkpoint = run.join(format!("checkpoints/.tmp-step-000002-{dead}"));
    std::fs::create_dir_all(&torn_checkpoint).unwrap();
    std::fs::write(torn_checkpoint.join("weights.safetensors"), b"half a checkpoint").unwrap();
    let torn_exit = run.join(format!(".exit.json.{dead}-0.tmp"));
    std::fs::write(&torn_exit, b"{\"status\": \"fin").unwrap();
    let live = run.join(format!("checkpoints/.tmp-step-000009-{}", std::process::id()));
    std::fs::create_dir_all(&live).unwrap();

    let o = train(home.path(), &["--steps", "2", "--out", run.to_str().unwrap(), "--resume", "auto"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!torn_checkpoint.exists() && !torn_exit.exists(), "the dead writer's temporaries are gone");
    assert!(live.exists(), "a live writer's temporary is kept");
    let said = warnings(&run);
    assert!(
        said.iter()
            .any(|w| w.contains("removed 2 temporary file(s)")
                && w.contains(&format!(".tmp-step-000002-{dead}"))),
        "{said:?}"
    );
}

#[test]
fn a_torn_last_line_of_rollouts_is_cut_when_the_run_resumes() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let run = runs.path().join("r");
    let o = train(home.path(), &["--steps", "1", "--out", run.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let rows = run.join("rollouts.jsonl");
    let whole = std::fs::read_to_string(&rows).unwrap();
    let n = whole.lines().count();
    // a kill in the middle of appending step 2's rows
    std::fs::write(&rows, format!("{whole}{{\"step\":2,\"prompt\":\"Write a sto")).unwrap();

    let o = train(home.path(), &["--steps", "2", "--out", run.to_str().unwrap(), "--resume", "auto"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let text = std::fs::read_to_string(&rows).unwrap();
    assert!(text.starts_with(&whole) && text.ends_with('\n'));
    let steps: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps.len(), 2 * n, "step 1's rows, then step 2's whole rows");
    assert!(steps[n..].iter().all(|&s| s == 2));
    let said = warnings(&run);
    let line = format!("rollouts.jsonl:{}: a row cut off mid-write", n + 1);
    assert!(said.iter().any(|w| w.contains(&line)), "{said:?}");
}

#[test]
fn a_full_disk_during_a_checkpoint_names_the_file_and_leaves_no_partial_folder() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    // the tiny model (14 MiB of weights) built into the cache while there is room
    let warm = runs.path().join("warm");
    let o = train(home.path(), &["--steps", "1", "--out", warm.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // then a limit of 2 MiB a file (RLIMIT_FSIZE, SIGXFSZ ignored: writes past it fail with
    // EFBIG, as on a full disk): the logs fit, the checkpoint's weights do not
    let run = runs.path().join("full");
    let o = std::process::Command::new("sh")
        .args(["-c", "trap '' XFSZ; ulimit -f 4096; exec \"$@\"", "sh", BIN, "train"])
        .args(TINY)
        .arg("--data")
        .arg(demo_data())
        .args(["--steps", "1", "--out", run.to_str().unwrap()])
        .env("POLARIS_STATE_DIR", home.path())
        .env("POLARIS_CACHE_DIR", home.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let said = text(&o);
    assert!(!o.status.success(), "{said}");
    assert!(said.contains("checkpoint of step 1 not saved"), "{said}");
    assert!(said.contains("cannot write") && said.contains("weights.safetensors"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    let left: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "no partial checkpoint folder: {left:?}");
    let e = polaris::run::exit::read(&run).unwrap().unwrap();
    assert_eq!(e.status, polaris::run::exit::ExitKind::Failed);
    assert!(e.message.contains("weights.safetensors"), "{}", e.message);
}
