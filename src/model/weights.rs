//! Reading a checkpoint's safetensors: one file or shards listed in
//! `model.safetensors.index.json`, with key prefixes mapped onto canonical names.
//!
//! Canonical names are the plain causal-LM ones (`model.layers.N.…`, `lm_head.weight`).
//! Every error names the file and the tensor, and says what to do.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

/// Prefixes other save layouts put in front of the canonical names, rewritten on open.
const PREFIX_REWRITES: &[(&str, &str)] = &[
    // multimodal checkpoints (Qwen3.5, Qwen2-VL style): text model under language_model
    ("model.language_model.", "model."),
    ("language_model.model.", "model."),
    ("language_model.lm_head.", "lm_head."),
];

/// Key prefixes that belong to parts of a checkpoint the text model never uses.
const IGNORED_PREFIXES: &[&str] = &["model.visual.", "visual.", "mtp.", "model.mtp."];

pub struct Checkpoint {
    dir: PathBuf,
    files: Vec<(PathBuf, MmapedSafetensors)>,
    /// canonical name -> (file index, name as stored)
    index: HashMap<String, (usize, String)>,
    /// Stored keys that were skipped (vision tower, MTP head), for one log line.
    pub ignored: Vec<String>,
}

impl Checkpoint {
    /// Opens `model.safetensors`, or the shards named by `model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let paths = if index_path.exists() {
            shard_paths(&index_path)?
        } else if single.exists() {
            vec![single]
        } else {
            bail!(
                "{}: no model.safetensors and no model.safetensors.index.json; \
                 point --model at a Hugging Face model directory (PyTorch .bin weights are not read: convert them to safetensors)",
                dir.display()
            );
        };
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            if !path.exists() {
                bail!(
                    "{}: shard listed in model.safetensors.index.json is missing; re-download the checkpoint",
                    path.display()
                );
            }
            // SAFETY: the mapping is read-only; a file changed underneath us is the user's
            // to avoid, as with every mmap-based loader.
            let st = unsafe { MmapedSafetensors::new(&path) }.map_err(|e| {
                anyhow::anyhow!(
                    "{}: not a readable safetensors file (truncated or corrupt: {e}); re-download it",
                    path.display()
                )
            })?;
            files.push((path, st));
        }
        let mut index = HashMap::new();
        let mut ignored = Vec::new();
        for (i, (_, st)) in files.iter().enumerate() {
            for (stored, _) in st.tensors() {
                if IGNORED_PREFIXES.iter().any(|p| stored.starts_with(p)) {
                    ignored.push(stored);
                    continue;
                }
                index.insert(canonical_name(&stored), (i, stored));
            }
        }
        // A bare base-model save (`layers.N…`, `embed_tokens.weight`) lacks the `model.` prefix.
        if !index.keys().any(|k| k.starts_with("model.")) {
            index = index
                .into_iter()
                .map(|(k, v)| if k.starts_with("lm_head.") { (k, v) } else { (format!("model.{k}"), v) })
                .collect();
        }
        ignored.sort();
        Ok(Self { dir: dir.to_path_buf(), files, index, ignored })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The name `name` (canonical) is stored under in the checkpoint's files.
    pub fn stored_name(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|(_, stored)| stored.as_str())
    }

    /// Canonical names of every tensor held (ignored parts excluded), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.index.keys().cloned().collect();
        names.sort();
        names
    }

    /// Loads `name` with the expected `shape`, converted to `dtype` on `device`.
    pub fn load(&self, name: &str, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let Some((file, stored)) = self.index.get(name) else {
            bail!(
                "{}: tensor {name} (shape {shape:?}) is missing from the checkpoint; \
                 the weights do not match config.json",
                self.dir.display()
            );
        };
        let (path, st) = &self.files[*file];
        let view = st.get(stored).map_err(|e| anyhow::anyhow!("{}: tensor {stored}: {e}", path.display()))?;
        if view.shape() != shape {
            bail!(
                "{}: tensor {stored} has shape {:?} but config.json implies {shape:?}; \
                 the weights do not match config.json",
                path.display(),
                view.shape()
            );
        }
        let tensor = candle_core::safetensors::Load::load(&view, device)
            .with_context(|| format!("{}: cannot read tensor {stored}", path.display()))?;
        if !super::finite::all_finite(&tensor)? {
            bail!(
                "{}: tensor {stored} holds NaN or infinite values; the weights are damaged: re-download \
                 or re-export them",
                path.display()
            );
        }
        Ok(tensor.to_dtype(dtype)?)
    }
}

pub(crate) fn canonical_name(stored: &str) -> String {
    for (from, to) in PREFIX_REWRITES {
        if let Some(rest) = stored.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    stored.to_string()
}

/// Writes tensors as a safetensors file with the `{"format": "pt"}` metadata that
/// transformers checks for (what `save_pretrained` writes).
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let contiguous: Vec<(&String, Tensor)> =
        tensors.iter().map(|(k, t)| Ok((k, t.contiguous()?))).collect::<Result<_>>()?;
    safetensors::serialize_to_file(contiguous, Some(metadata), path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

impl Checkpoint {
    /// Every stored tensor (ignored parts too) as (file, name as stored).
    pub fn stored_tensors(&self) -> Vec<(&Path, String)> {
        let mut out = Vec::new();
        for (path, st) in &self.files {
            for (name, _) in st.tensors() {
                out.push((path.as_path(), name));
            }
        }
        out
    }

    /// A tensor by its stored name, in its stored dtype, on the CPU.
    pub fn load_stored(&self, path: &Path, stored: &str) -> Result<Tensor> {
        let (_, st) = self.files.iter().find(|(p, _)| p == path).expect("a file of this checkpoint");
        st.load(stored, &Device::Cpu)
            .with_context(|| format!("{}: cannot read tensor {stored}", path.display()))
    }
}

fn shard_paths(index_path: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index_path)
        .with_context(|| format!("cannot read {}", index_path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON; re-download it", index_path.display()))?;
    let Some(map) = json.get("weight_map").and_then(|m| m.as_object()) else {
        bail!("{}: missing the weight_map object", index_path.display());
    };
    let dir = index_path.parent().unwrap_or(Path::new("."));
    let mut files = BTreeMap::new();
    for (tensor, file) in map {
        let Some(file) = file.as_str() else {
            bail!("{}: weight_map entry for {tensor} is not a file name", index_path.display());
        };
        files.insert(file.to_string(), ());
    }
    Ok(files.into_keys().map(|f| dir.join(f)).collect())
}
