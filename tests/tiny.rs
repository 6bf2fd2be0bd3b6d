//! The built-in tiny model: deterministic, a few million parameters, a working tokenizer
//! and chat template, loadable like any checkpoint.

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::DType;
use common::*;
use polaris::generate::SamplingParams;
use polaris::lm::LanguageModel;
use polaris::model::tiny;

#[test]
fn built_twice_byte_for_byte_the_same() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    tiny::write(a.path()).unwrap();
    tiny::write(b.path()).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "model.safetensors",
        "generation_config.json",
    ] {
        let x = std::fs::read(a.path().join(f)).unwrap();
        let y = std::fs::read(b.path().join(f)).unwrap();
        assert!(x == y, "{f} differs between two builds");
    }
}

#[test]
fn cached_under_the_cache_dir_and_usable() {
    let cache = tempfile::tempdir().unwrap();
    std::env::set_var("POLARIS_CACHE_DIR", cache.path());
    // tests of one binary ask for it at once: each gets the whole directory (they once
    // shared one temporary directory, and one thread's rename tore another's build)
    let built: Vec<_> = std::thread::scope(|s| {
        let askers: Vec<_> = (0..3).map(|_| s.spawn(tiny::ensure)).collect();
        askers.into_iter().map(|t| t.join().unwrap().unwrap()).collect()
    });
    let dir = built[0].clone();
    assert!(built.iter().all(|d| *d == dir), "{built:?}");
    assert!(dir.starts_with(cache.path()));
    let left: Vec<_> = std::fs::read_dir(cache.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 1, "only the model directory is left in the cache: {left:?}");
    assert_eq!(tiny::ensure().unwrap(), dir, "a later call reuses the directory");

    let lm = LanguageModel::from_dir(&dir, &cpu(DType::F32)).unwrap();
    let n = lm.model.parameter_count();
    assert!((2_000_000..10_000_000).contains(&n), "tiny model has {n} parameters");
    assert_eq!(n, lm.model.config().parameter_count());
    for t in ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>"] {
        assert!(lm.tokenizer.token_id(t).is_some(), "{t}");
    }
    assert!(lm.think.is_some());
    let im_end = lm.tokenizer.token_id("<|im_end|>").unwrap();
    assert!(lm.stop_ids.contains(&im_end));
    // round trip of text through the trained BPE
    let text = "The lighthouse keeper counted the gulls.";
    assert_eq!(lm.tokenizer.decode(&lm.tokenizer.encode(text, false).unwrap(), false).unwrap(), text);

    let (prompt, ids) = lm.prompt("Write a story. The story should be 100 words long.", false, true).unwrap();
    assert!(prompt.ends_with("<|im_start|>assistant\n<think>\n"));
    let params =
        SamplingParams { max_new_tokens: 20, thinking_budget: Some(4), seed: 5, ..SamplingParams::default() };
    let out = lm.generate(&ids, 2, &params, &mut |_| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(out.len(), 2);
    for o in &out {
        assert!(!o.tokens.is_empty());
        assert!(o.thinking_tokens <= 4);
    }
}
