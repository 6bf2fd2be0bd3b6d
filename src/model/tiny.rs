//! The built-in tiny model: a qwen3 of a few million parameters, created deterministically
//! from a seed, with a byte-level BPE tokenizer trained on the demo texts, written once as
//! a Hugging Face directory under the user's cache dir.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use candle_core::{DType, Device, Tensor};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use super::config::ModelConfig;
use super::params::{LoadOptions, Source};
use super::Model;

pub const CONFIG_JSON: &str = include_str!("../../assets/tiny/config.json");
pub const CHAT_TEMPLATE: &str = include_str!("../../assets/tiny/chat_template.jinja");
pub const DEMO_STORIES: &str = include_str!("../../assets/demo/stories.jsonl");
pub const DEMO_PROMPTS: &str = include_str!("../../assets/demo/prompts.jsonl");

/// Seed of the initial weights.
pub const SEED: u64 = 20_261_121;
/// Bumped when the way the directory is built changes.
const FORMAT: &str = "tiny-v1";

/// Special tokens: (text, special). `<think>` tags stay visible when decoding.
const ADDED: &[(&str, bool)] = &[
    ("<|endoftext|>", true),
    ("<|im_start|>", true),
    ("<|im_end|>", true),
    ("<think>", false),
    ("</think>", false),
];

/// The cache root: `$POLARIS_CACHE_DIR`, else the platform cache dir.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("POLARIS_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    dirs::cache_dir()
        .map(|d| d.join("polaris-tui"))
        .ok_or_else(|| anyhow!("no cache directory on this system: set POLARIS_CACHE_DIR"))
}

/// The tiny model's directory, created on first use. It is built in a temporary directory
/// of its own and renamed into place, so a reader sees all of it or none. Threads of one
/// process wait for one build (they once shared, and tore, one temporary directory); other
/// processes may build theirs, identical, side by side.
pub fn ensure() -> Result<PathBuf> {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let dir = cache_root()?.join(format!("tiny-{:016x}", fingerprint()));
    if dir.join("model.safetensors").exists() {
        return Ok(dir);
    }
    let _one_build = BUILDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if dir.join("model.safetensors").exists() {
        return Ok(dir); // another thread built it while this one waited
    }
    let parent = dir.parent().expect("cache dir has a parent");
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    // one build per process at a time (the lock above), so the pid makes the name unique
    let tmp = parent.join(format!(".tmp-{}-{}", FORMAT, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("building the tiny model in {}", tmp.display())));
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // another process finished first: theirs is identical
        Err(_) if dir.join("model.safetensors").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(anyhow!("cannot move {} to {}: {e}", tmp.display(), dir.display()))
        }
    }
}

/// Writes the whole model directory into `dir`.
pub fn write(dir: &Path) -> Result<()> {
    let tokenizer = train_tokenizer()?;
    tokenizer.save(dir.join("tokenizer.json"), false).map_err(|e| anyhow!("saving the tokenizer: {e}"))?;
    std::fs::write(dir.join("config.json"), CONFIG_JSON)?;
    std::fs::write(dir.join("chat_template.jinja"), CHAT_TEMPLATE)?;
    let tok_cfg = serde_json::json!({
        "bos_token": null,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "add_bos_token": false,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 4096
    });
    std::fs::write(dir.join("tokenizer_config.json"), serde_json::to_string_pretty(&tok_cfg)?)?;
    let end_ids: Vec<u32> =
        ["<|im_end|>", "<|endoftext|>"].iter().filter_map(|t| tokenizer.token_to_id(t)).collect();
    let gen_cfg =
        serde_json::json!({ "eos_token_id": end_ids, "temperature": 0.6, "top_p": 0.95, "top_k": 20 });
    std::fs::write(dir.join("generation_config.json"), serde_json::to_string_pretty(&gen_cfg)?)?;

    let cfg = config()?;
    let model =
        Model::build(&cfg, Source::random(SEED, 0.02, 0.0), &LoadOptions::new(DType::F32, Device::Cpu))?;
    let tensors: HashMap<String, Tensor> = model.tensors().iter().cloned().collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}

pub fn config() -> Result<ModelConfig> {
    ModelConfig::from_json(&serde_json::from_str(CONFIG_JSON)?)
}

/// Byte-level BPE trained on the demo stories and prompts; deterministic for fixed texts.
pub fn train_tokenizer() -> Result<tokenizers::Tokenizer> {
    let vocab = config()?.vocab_size;
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(ADDED.iter().map(|&(t, s)| AddedToken::from(t, s)).collect())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tok = tokenizers::Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.with_post_processor(Some(ByteLevel::default().trim_offsets(false)));
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    tok.train(&mut trainer, training_texts().into_iter())
        .map_err(|e| anyhow!("training the tiny tokenizer: {e}"))?;
    tok.add_tokens(ADDED.iter().filter(|(_, s)| !s).map(|&(t, _)| AddedToken::from(t, false)))
        .map_err(|e| anyhow!("{e}"))?;
    tok.add_special_tokens(
        ADDED.iter().filter(|(_, s)| *s).map(|&(t, _)| AddedToken::from(t, true)).collect::<Vec<_>>(),
    )
    .map_err(|e| anyhow!("{e}"))?;
    Ok(tok)
}

/// Every story and prompt text of the demo data.
fn training_texts() -> Vec<String> {
    let mut texts = Vec::new();
    for line in DEMO_STORIES.lines().chain(DEMO_PROMPTS.lines()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        for key in ["title", "premise", "prompt", "story"] {
            if let Some(s) = v.get(key).and_then(|s| s.as_str()) {
                texts.push(s.to_string());
            }
        }
    }
    texts
}

/// FNV-1a over everything the directory is built from (stable across Rust versions).
fn fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [FORMAT, CONFIG_JSON, CHAT_TEMPLATE, DEMO_STORIES, DEMO_PROMPTS] {
        for &b in part.as_bytes().iter().chain(&[0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^ SEED
}
