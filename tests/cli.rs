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
    assert!((mean_nll + lp.iter().sum::<f64>() / lp.len() as f64).abs() < 1e-9);
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
    ] {
        let out = polaris(args, cache.path());
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
}
