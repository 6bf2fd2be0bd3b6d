//! `polaris-tui train` on the built-in tiny model, kept small (groups of 3, one prompt a step,
//! 12 new tokens, no thinking), with its registry and model cache in a folder of the test's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_polaris-tui");

pub const TINY: &[&str] = &[
    "--group-size",
    "3",
    "--set",
    "run.prompts_per_step=1",
    "--set",
    "step.sampling.max_new_tokens=12",
    "--set",
    "step.thinking=false",
];

pub fn demo_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/prompts.jsonl")
}

/// `polaris-tui train` with the tiny settings and the demo data, then `args`; `home` holds
/// the registry and the model cache.
pub fn train(home: &Path, args: &[&str]) -> Command {
    let mut c = polaris(home);
    c.arg("train").args(TINY).arg("--data").arg(demo_data()).args(args);
    c
}

/// `polaris-tui` with its registry and cache under `home`.
pub fn polaris(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("POLARIS_STATE_DIR", home).env("POLARIS_CACHE_DIR", home).env("RUST_BACKTRACE", "0");
    c
}

/// stdout and stderr together.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The trainable weights of a checkpoint folder, by name.
pub fn checkpoint_weights(dir: &Path) -> std::collections::HashMap<String, candle_core::Tensor> {
    let file = dir.join(polaris::train::checkpoint::WEIGHTS);
    candle_core::safetensors::load(&file, &candle_core::Device::Cpu).unwrap()
}

/// Whether two checkpoints hold the same weights, bit for bit.
pub fn same_weights(a: &Path, b: &Path) -> bool {
    let (a, b) = (checkpoint_weights(a), checkpoint_weights(b));
    a.len() == b.len()
        && a.iter().all(|(name, t)| {
            let u = &b[name];
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                == u.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        })
}
