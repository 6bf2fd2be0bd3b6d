//! The `polaris-tui` binary: JSON records, reproducibility, errors and exit codes.

mod common;

use std::process::{Command, Output};

use common::*;

fn polaris(args: &[&str], cache: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args(args)
        .env("POLARIS_CACHE_DIR", cache)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn stories() -> String {
    shared().join("models/stories260K-hf").display().to_string()
}

#[test]
fn generate_json_record_and_greedy_matches_the_golden() {
    let cache = tempfile::tempdir().unwrap();
    let m = stories();
    let out = polaris(
        &[
            "generate",
            "--model",
            &m,
            "--raw",
            "--prompt",
            "",
            "--temperature",
            "0",
            "--max-new-tokens",
            "40",
            "--json",
        ],
        cache.path(),
    );
    let v = json(&out);
    for key in
        ["prompt_token_ids", "token_ids", "thinking", "story", "words", "length_ratio", "tokens_per_second"]
    {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    // an empty raw prompt is just BOS, so greedy decoding reproduces llama2.c's golden ids
    assert_eq!(u32s(&v["prompt_token_ids"]), vec![1]);
    let golden = read_json(&shared().join("models/stories260K-hf/golden_greedy_ids.json"));
    assert_eq!(u32s(&v["token_ids"]), u32s(&golden["greedy_generated_ids"])[..40].to_vec());
    assert!(v["words"].as_u64().unwrap() > 5);
    assert!(v["length_ratio"].is_null());
}

#[test]
fn same_seed_same_story_and_length_ratio_reported() {
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "generate",
        "--model",
        "tiny",
        "--prompt",
        "Write about a fox.",
        "--words",
        "100",
        "--seed",
        "3",
        "--temperature",
        "1",
        "--max-new-tokens",
        "40",
        "--json",
    ];
    let a = json(&polaris(&args, cache.path()));
    let b = json(&polaris(&args, cache.path()));
    assert_eq!(a["token_ids"], b["token_ids"]);
    assert!(a["prompt"].as_str().unwrap().contains("The story should be 100 words long."));
    assert_eq!(a["requested_words"], 100);
    let ratio = a["length_ratio"].as_f64().unwrap();
    assert!((ratio - a["words"].as_f64().unwrap() / 100.0).abs() < 1e-12);
}

#[test]
fn streaming_prints_the_story_and_a_summary() {
    let cache = tempfile::tempdir().unwrap();
    let out = polaris(
        &[
            "generate",
            "--model",
            &stories(),
            "--raw",
            "--prompt",
            "Once upon a time",
            "--temperature",
            "0",
            "--max-new-tokens",
            "30",
        ],
        cache.path(),
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Lily"), "{text}");
    let summary = String::from_utf8_lossy(&out.stderr);
    for word in ["words", "length ratio", "tokens", "tokens/s"] {
        assert!(summary.contains(word), "{summary}");
    }
}

#[test]
fn score_json_fields_and_consistency() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(shared().join("models/stories260K-hf/golden_greedy_text.txt")).unwrap();
    let path = dir.path().join("story.txt");
    std::fs::write(&path, &text).unwrap();
    let v = json(&polaris(
        &["score", "--model", &stories(), "--text", path.to_str().unwrap(), "--raw", "--json"],
        cache.path(),
    ));
    let ids = u32s(&v["token_ids"]);
    let lp = f64s(&v["logprobs"]);
    assert_eq!(lp.len(), ids.len() - 1);
    assert!(lp.iter().all(|&x| x <= 0.0));
    let mean_nll = v["mean_nll"].as_f64().unwrap();
    // the log-probs are printed as f32 (shortest decimal, within half an f32 ulp: 6e-8
    // relative each) and mean_nll is their f64 mean before printing: 1e-7 of the mean's size
    let mean = lp.iter().sum::<f64>() / lp.len() as f64;
    let size = lp.iter().map(|x| x.abs()).sum::<f64>() / lp.len() as f64;
    assert!((mean_nll + mean).abs() < 1e-7 * size.max(1.0), "{mean_nll} vs {}", -mean);
    assert!((v["perplexity"].as_f64().unwrap() - mean_nll.exp()).abs() < 1e-9);
    // the model's own greedy text is very likely under it
    assert!(mean_nll < 1.0, "mean NLL {mean_nll}");

    // as a response to a prompt: only the response is scored
    let v = json(&polaris(
        &[
            "score",
            "--model",
            "tiny",
            "--text",
            path.to_str().unwrap(),
            "--prompt",
            "Tell a story.",
            "--json",
        ],
        cache.path(),
    ));
    assert!(v["scored_from"].as_u64().unwrap() > 5);
    assert_eq!(
        v["scored_tokens"].as_u64().unwrap() as usize,
        u32s(&v["token_ids"]).len() - v["scored_from"].as_u64().unwrap() as usize
    );
}

#[test]
fn errors_exit_nonzero_with_a_message_and_no_panic() {
    let cache = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["generate", "--model", "/nonexistent/model", "--prompt", "x"], "no such model directory"),
        (
            &[
                "generate",
                "--model",
                "tiny",
                "--prompt",
                "x",
                "--repetition-penalty",
                "1.1",
                "--presence-penalty",
                "0.5",
            ],
            "never both",
        ),
        (&["generate", "--model", "tiny", "--prompt", "x", "--device", "cuda:0"], "cuda"),
        (&["score", "--model", "tiny", "--text", "/nonexistent.txt"], "/nonexistent.txt"),
    ];
    for (args, expect) in cases {
        let out = polaris(args, cache.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn every_subcommand_has_help() {
    let cache = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["generate", "--help"],
        &["score", "--help"],
        &["bench", "--help"],
        &["bench", "generate", "--help"],
        &["open", "--help"],
        &["bench", "tui", "--help"],
        &["bench", "gpu-check", "--help"],
    ] {
        let out = polaris(args, cache.path());
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn judge_scores_a_file_and_reports_bad_records() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("stories.jsonl");
    let story =
        std::fs::read_to_string(shared().join("models/stories260K-hf/golden_greedy_text.txt")).unwrap();
    let rec = |uid: &str| {
        serde_json::json!({"uid": uid, "prompt": "A story about Lily. The story should be 200 words long.", "story": story, "note": "kept"}).to_string()
    };
    std::fs::write(&input, format!("{}\n{}\n", rec("a"), rec("b"))).unwrap();
    let out = dir.path().join("judged.jsonl");
    let o =
        polaris(&["judge", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()], cache.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["note"], "kept"); // the input record is kept whole
        let b = &l["breakdown"];
        for key in [
            "words",
            "length_ratio",
            "story_quality",
            "self_repetition",
            "length_penalty",
            "blank_penalty",
            "reward",
            "judgement",
        ] {
            assert!(b.get(key).is_some(), "missing {key}");
        }
        assert_eq!(l["overall"], b["judgement"]["overall"]);
        assert_eq!(b["judgement"]["dimensions"].as_array().unwrap().len(), 16);
    }
    // the POLARIS prompt + schema as given
    let pol = shared().join("data/polaris");
    let o = polaris(
        &[
            "judge",
            "--rubric-prompt",
            pol.join("story_quality_seq.txt").to_str().unwrap(),
            "--rubric-schema",
            pol.join("story_quality_seq.schema.json").to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // a bad record names file, line and field
    std::fs::write(&input, format!("{}\n{{\"uid\": \"c\", \"prompt\": \"p\"}}\n", rec("a"))).unwrap();
    let o =
        polaris(&["judge", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()], cache.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("stories.jsonl:2: field story is missing"), "{err}");
}

#[test]
fn judge_dry_run_prints_the_request_with_the_key_masked() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.jsonl");
    std::fs::write(&input, "{\"uid\": \"a\", \"prompt\": \"A tale. The story should be 900 words long.\", \"story\": \"Once.\"}\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args([
            "judge",
            "--judge",
            "openai:gpt-test",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--input",
            input.to_str().unwrap(),
            "--dry-run",
        ])
        .env("OPENAI_API_KEY", "sk-secret-value-1234")
        .env("POLARIS_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!text.contains("sk-secret-value-1234") && text.contains("sk-s"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["url"], "http://127.0.0.1:9/v1/chat/completions");
    assert_eq!(v["body"]["model"], "gpt-test");
    assert!(!v["body"]["messages"][1]["content"].as_str().unwrap().contains("900 words long"));
    // without a key it refuses before sending anything
    let o = Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args([
            "judge",
            "--judge",
            "openai:gpt-test",
            "--input",
            input.to_str().unwrap(),
            "--out",
            dir.path().join("o.jsonl").to_str().unwrap(),
        ])
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("OPENAI_API_KEY"));
}

/// `bench gpu-check` at its tiny size on the CPU: the device side runs the device-generic
/// path (what a GPU runs), so every check of scripts/gpu-check runs here and must pass its
/// bound; the table names every check. Nothing here touches a GPU.
#[test]
fn gpu_check_runs_every_check_on_the_cpu_and_prints_one_table() {
    let cache = tempfile::tempdir().unwrap();
    let models = shared().join("models").display().to_string();
    let out = polaris(
        &["bench", "gpu-check", "--device", "cpu", "--size", "tiny", "--models", &models],
        cache.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| check"))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    assert!(rows.iter().all(|r| r.len() == 5), "every row has five cells: {stdout}");
    let count = |check: &str| rows.iter().filter(|r| r[0] == check).count();
    // three reference checkpoints, f32 and bf16, scoring and generation
    assert_eq!(count("parity: scoring log-probs"), 6, "{stdout}");
    assert_eq!(count("parity: generation logits"), 6, "{stdout}");
    assert_eq!(count("GRPO step vs CPU"), 2, "{stdout}");
    assert_eq!(count("GRPO step"), 1, "{stdout}");
    assert_eq!(count("decode"), 2, "{stdout}");
    assert_eq!(count("collectives"), 2, "{stdout}");
    assert!(rows.iter().all(|r| r[4] != "FAIL"), "{stdout}");
    assert!(rows.iter().filter(|r| r[4] == "ok").count() >= 17, "{stdout}");
    // a device this build cannot open: one clear line, non-zero, no table
    let out = polaris(&["bench", "gpu-check", "--device", "cuda:7", "--size", "tiny"], cache.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cuda:7") && !err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty());
}

/// scripts/gpu-check on a machine whose nvidia-smi lists no GPU (a stand-in on PATH) or
/// has none at all: one line saying so, exit 1, before any build.
#[test]
fn the_gpu_check_script_refuses_a_machine_without_a_gpu() {
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("nvidia-smi");
    std::fs::write(&fake, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu-check");
    for (path, says) in [
        (format!("{}:/usr/bin:/bin", bin.path().display()), "nvidia-smi lists none"),
        ("/usr/bin:/bin".to_string(), "nvidia-smi is not installed"),
    ] {
        if path == "/usr/bin:/bin" && std::path::Path::new("/usr/bin/nvidia-smi").exists() {
            continue; // a real GPU machine: only the stand-in case applies
        }
        let out = Command::new("bash").arg(&script).env("PATH", &path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("gpu-check: no NVIDIA GPU here") && err.contains(says), "{err}");
        assert!(out.stdout.is_empty());
    }
}

/// `bench generate` end to end at a toy length (the numbers are the benchmark's business;
/// this holds its table together): every implementation's row for both models, the ratios,
/// and whether our weights got their 2 MiB pages.
#[test]
fn bench_generate_prints_its_table() {
    let cache = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let m = stories();
    let dir = models.path().display().to_string();
    let out = polaris(
        &[
            "bench",
            "generate",
            "--models-dir",
            &dir,
            "--stories260k",
            &m,
            "--repeats",
            "1",
            "--tokens",
            "2",
            "--group",
            "2",
        ],
        cache.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    for model in ["stories260K", "llama-15M"] {
        for (imp, rows) in [
            ("polaris decode", 1),
            ("polaris decode", 2),
            ("candle-transformers", 2),
            ("polaris engine (sampling)", 2),
        ] {
            assert!(
                stdout.contains(&format!("| {model} | {imp} | {rows} |")),
                "no {model} {imp} x{rows} in\n{stdout}"
            );
        }
        assert!(
            stdout.contains(&format!("{model} (medians): ")) && stdout.contains("group of 2 vs single"),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("{model}: our weights ")) && stdout.contains("MiB on 2 MiB pages"),
            "{stdout}"
        );
    }
}
