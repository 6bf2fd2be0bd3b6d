//! LoRA adapters in HF PEFT's layout, so PEFT and vLLM load what polaris trains:
//! `adapter_config.json` (the fields PEFT 0.19 writes) and `adapter_model.safetensors` with
//! keys `base_model.model.<module path>.lora_A.weight` / `.lora_B.weight`, the module path
//! being the one in the base checkpoint (Qwen3.5: `model.language_model.layers.N.…`) and
//! no adapter name in the key (PEFT strips `default` on save).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use super::adapters::{AdapterModule, Adapters};
use super::config::{LoraConfig, ALL_LINEAR};
use crate::model::finite::all_finite;
use crate::model::weights::{canonical_name, save_safetensors};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const KEY_PREFIX: &str = "base_model.model.";

/// PEFT's key of a module's A or B (`which`: `lora_A` or `lora_B`).
pub fn peft_key(module_path: &str, which: &str) -> String {
    format!("{KEY_PREFIX}{module_path}.{which}.weight")
}

/// Whether `dir` holds a PEFT adapter.
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file()
}

/// adapter_config.json's content. `all-linear` is written as the module names it matched,
/// as PEFT does, so loaders that do not know the shorthand find the modules.
pub fn config_json(adapters: &Adapters) -> Value {
    let c = &adapters.config;
    let targets: Vec<String> = if c.target_modules.iter().any(|t| t == ALL_LINEAR) {
        let mut leaves: Vec<String> = adapters
            .modules
            .iter()
            .map(|m| m.name.rsplit('.').next().unwrap_or(&m.name).to_string())
            .collect();
        leaves.sort();
        leaves.dedup();
        leaves
    } else {
        c.target_modules.clone()
    };
    json!({
        "alora_invocation_tokens": null,
        "alpha_pattern": {},
        "arrow_config": null,
        "auto_mapping": null,
        "base_model_name_or_path": adapters.base_model,
        "bias": "none",
        "corda_config": null,
        "ensure_weight_tying": false,
        "eva_config": null,
        "exclude_modules": null,
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layer_replication": null,
        "layers_pattern": null,
        "layers_to_transform": null,
        "loftq_config": {},
        "lora_alpha": c.alpha,
        "lora_bias": false,
        "lora_dropout": c.dropout,
        "lora_ga_config": null,
        "megatron_config": null,
        "megatron_core": "megatron.core",
        "modules_to_save": null,
        "peft_type": "LORA",
        "qalora_group_size": 16,
        "r": c.r,
        "rank_pattern": {},
        "revision": null,
        "target_modules": targets,
        "target_parameters": null,
        "task_type": "CAUSAL_LM",
        "trainable_token_indices": null,
        "use_bdlora": null,
        "use_dora": false,
        "use_qalora": false,
        "use_rslora": c.use_rslora,
    })
}

/// The adapter's tensors by PEFT key, in the model's dtype.
pub fn tensors(modules: &[AdapterModule]) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::with_capacity(2 * modules.len());
    for m in modules {
        out.insert(peft_key(&m.path, "lora_A"), m.a.detach().to_device(&Device::Cpu)?);
        out.insert(peft_key(&m.path, "lora_B"), m.b.detach().to_device(&Device::Cpu)?);
    }
    Ok(out)
}

/// Writes both files into `dir` (created if needed), each written then renamed and fsynced.
pub fn save(dir: &Path, adapters: &Adapters) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let weights_tmp = dir.join(format!(".{WEIGHTS_FILE}.tmp"));
    save_safetensors(&tensors(&adapters.modules)?, &weights_tmp)?;
    let config_tmp = dir.join(format!(".{CONFIG_FILE}.tmp"));
    std::fs::write(&config_tmp, serde_json::to_string_pretty(&config_json(adapters))? + "\n")
        .with_context(|| format!("cannot write {}", config_tmp.display()))?;
    for (tmp, name) in [(weights_tmp, WEIGHTS_FILE), (config_tmp, CONFIG_FILE)] {
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
            .with_context(|| format!("cannot move {} into place", tmp.display()))?;
    }
    Ok(())
}

/// Reads adapter_config.json: the LoRA settings, or an error naming the field for anything
/// this build cannot apply (DoRA, per-module ranks, biases, modules_to_save, ...).
pub fn read_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: cannot read it; an adapter directory holds {CONFIG_FILE} and {WEIGHTS_FILE}",
            path.display()
        )
    })?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    let field = |k: &str| v.get(k).filter(|x| !x.is_null());
    let bad = |k: &str, why: &str| anyhow!("{}: field {k}: {why}", path.display());
    match field("peft_type").and_then(Value::as_str) {
        Some("LORA") => {}
        other => return Err(bad("peft_type", &format!("{other:?}; only LORA adapters are supported"))),
    }
    let r = field("r").and_then(Value::as_u64).ok_or_else(|| bad("r", "missing or not a whole number"))?;
    let alpha = match field("lora_alpha") {
        None => 8.0, // PEFT's default
        Some(a) => a.as_f64().ok_or_else(|| bad("lora_alpha", "not a number"))?,
    };
    let dropout = match field("lora_dropout") {
        None => 0.0,
        Some(d) => d.as_f64().ok_or_else(|| bad("lora_dropout", "not a number"))?,
    };
    let target_modules = match field("target_modules") {
        Some(Value::String(s)) if s == ALL_LINEAR => vec![s.clone()],
        Some(Value::String(s)) => {
            return Err(bad(
                "target_modules",
                &format!("the regular expression {s:?} is not supported; list module names"),
            ))
        }
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| bad("target_modules", "not a list of names"))
            })
            .collect::<Result<_>>()?,
        _ => return Err(bad("target_modules", "missing; list the adapted module names")),
    };
    let flag = |k: &str| field(k).and_then(Value::as_bool).unwrap_or(false);
    let empty = |k: &str| match field(k) {
        None => true,
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    for k in ["use_dora", "fan_in_fan_out", "lora_bias", "use_qalora"] {
        if flag(k) {
            return Err(bad(k, "true is not supported by this build"));
        }
    }
    for k in ["rank_pattern", "alpha_pattern", "modules_to_save", "layers_to_transform", "layer_replication"]
    {
        if !empty(k) {
            return Err(bad(k, "only empty or null is supported by this build"));
        }
    }
    if let Some(b) = field("bias").and_then(Value::as_str) {
        if b != "none" {
            return Err(bad("bias", &format!("{b:?}; only \"none\" is supported")));
        }
    }
    let cfg = LoraConfig { r: r as usize, alpha, dropout, target_modules, use_rslora: flag("use_rslora") };
    cfg.validate().map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(cfg)
}

/// A saved adapter's A and B tensors, by canonical module path.
pub struct AdapterWeights {
    file: PathBuf,
    /// (canonical module path, `lora_A` | `lora_B`) -> (key as stored, tensor)
    tensors: HashMap<(String, String), (String, Tensor)>,
}

impl AdapterWeights {
    /// Reads adapter_model.safetensors; every key must be a LoRA tensor in PEFT's layout.
    pub fn read(dir: &Path) -> Result<Self> {
        let file = dir.join(WEIGHTS_FILE);
        if !file.is_file() {
            bail!("{}: missing; an adapter directory holds {CONFIG_FILE} and {WEIGHTS_FILE}", file.display());
        }
        let raw = candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| anyhow!("{}: not a readable safetensors file ({e})", file.display()))?;
        let mut tensors = HashMap::with_capacity(raw.len());
        for (key, t) in raw {
            let parsed = key.strip_prefix(KEY_PREFIX).and_then(|rest| {
                let (module, which) = rest.strip_suffix(".weight")?.rsplit_once('.')?;
                matches!(which, "lora_A" | "lora_B").then(|| (module.to_string(), which.to_string()))
            });
            let Some((module, which)) = parsed else {
                bail!(
                    "{}: tensor {key} is not a LoRA tensor in PEFT's layout \
                     (base_model.model.<module>.lora_A.weight or .lora_B.weight)",
                    file.display()
                );
            };
            tensors.insert((canonical_name(&module), which), (key, t));
        }
        Ok(Self { file, tensors })
    }

    /// A or B of canonical `module`, checked against the shape the base model implies.
    pub fn get(
        &self,
        module: &str,
        which: &str,
        shape: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let Some((key, t)) = self.tensors.get(&(module.to_string(), which.to_string())) else {
            bail!(
                "{}: no tensor {} for module {module}, which target_modules in {CONFIG_FILE} selects; \
                 the adapter is incomplete or was trained on another base model",
                self.file.display(),
                peft_key(module, which)
            );
        };
        if t.dims() != shape {
            bail!(
                "{}: tensor {key} has shape {:?}, but the base model's {module} with this r needs {shape:?}; \
                 the adapter was trained on another base model",
                self.file.display(),
                t.dims()
            );
        }
        if !all_finite(t)? {
            bail!(
                "{}: tensor {key} holds NaN or infinite values; the adapter is damaged (a run that \
                 diverged?): use an earlier checkpoint",
                self.file.display()
            );
        }
        Ok(t.to_dtype(dtype)?.to_device(device)?)
    }

    /// Whether the adapter has tensors for canonical `module`.
    pub fn has(&self, module: &str) -> bool {
        self.tensors.keys().any(|(m, _)| m == module)
    }

    /// Errors on a tensor no module of the model took.
    pub fn check_all_used(&self, modules: &[AdapterModule]) -> Result<()> {
        self.check_all_taken(&modules.iter().map(|m| m.name.clone()).collect())
    }

    /// Errors on a tensor of a module outside `taken` (canonical module paths).
    pub fn check_all_taken(&self, taken: &HashSet<String>) -> Result<()> {
        let mut unused: Vec<&str> = self
            .tensors
            .iter()
            .filter(|((m, _), _)| !taken.contains(m))
            .map(|(_, (k, _))| k.as_str())
            .collect();
        unused.sort_unstable();
        if let Some(key) = unused.first() {
            bail!(
                "{}: tensor {key} adapts a module that the base model has no linear projection for, \
                 or that target_modules in {CONFIG_FILE} does not select ({} such tensors); \
                 the adapter was trained on another base model",
                self.file.display(),
                unused.len()
            );
        }
        Ok(())
    }
}
