//! The release's evaluation configs (`eval/configs/*.json`), read as they are: `task`,
//! `task_config` (input fields, the prompt set), `task_params` (prompt / schema paths, Story
//! Quality's `override_overall_from_totals`) and `engine` (provider, model, sampling, thinking
//! settings). What this workbench cannot do as the release does is said in `notes`, never
//! dropped silently. `vertex` runs on the Gemini API (`gemini:MODEL`, GEMINI_API_KEY).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

use super::input::InputFields;
use super::Task;
use crate::reward::judge::JudgeSettings;
use crate::reward::JudgeSpec;

#[derive(Debug, Clone)]
pub struct ReleaseConfig {
    pub path: PathBuf,
    pub task: Task,
    pub fields: InputFields,
    /// `task_config.input_path`, when it names a file that exists.
    pub input: Option<PathBuf>,
    /// The prompt set (`task_config.prompts_path` or `task_params.prompts_path`), when it exists.
    pub prompts: Option<PathBuf>,
    pub prompts_id_field: String,
    pub judge: JudgeSpec,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u32>,
    pub seed: Option<i64>,
    pub thinking_level: Option<String>,
    pub thinking_budget: Option<i64>,
    /// Story Quality: overall from the totals (the release's config sets it).
    pub override_overall: bool,
    /// `task_params` paths that exist: the Story Quality system message and schema, the
    /// judge prompt of the other tasks.
    pub system_message: Option<PathBuf>,
    pub json_schema: Option<PathBuf>,
    pub judge_prompt: Option<PathBuf>,
    pub notes: Vec<String>,
}

fn object<'a>(v: &'a Value, field: &str, origin: &Path) -> Result<Option<&'a Map<String, Value>>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => bail!("{}: field `{field}` must be an object", origin.display()),
    }
}

fn string(m: Option<&Map<String, Value>>, field: &str, origin: &Path, at: &str) -> Result<Option<String>> {
    match m.and_then(|m| m.get(field)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => bail!("{}: `{at}.{field}` must be a string, found {v}", origin.display()),
    }
}

fn num(m: Option<&Map<String, Value>>, field: &str, origin: &Path, at: &str) -> Result<Option<f64>> {
    match m.and_then(|m| m.get(field)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| anyhow!("{}: `{at}.{field}` must be a number, found {v}", origin.display())),
    }
}

/// A path the config names, if it exists: as written, beside the config, or beside it with
/// the release's leading `configs/` dropped (the shared copy lays `prompts/`, `schemas/` out
/// beside the configs).
fn resolve(written: &str, config: &Path) -> Option<PathBuf> {
    let dir = config.parent().unwrap_or(Path::new("."));
    let p = Path::new(written);
    let mut tries = vec![p.to_path_buf(), dir.join(p)];
    if let Ok(rest) = p.strip_prefix("configs") {
        tries.push(dir.join(rest));
    }
    tries.into_iter().find(|t| t.is_file())
}

impl ReleaseConfig {
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            anyhow!("{}: not JSON ({e}); give one of the release's eval configs", path.display())
        })?;
        if !v.is_object() {
            bail!("{}: not a JSON object; give one of the release's eval configs", path.display());
        }
        let task_name = match v.get("task") {
            Some(Value::String(s)) => s.clone(),
            _ => bail!("{}: field `task` (a string, e.g. \"eq_bench_creative\") is missing", path.display()),
        };
        if task_name == "story_elo" {
            bail!("{}: task story_elo is the pairwise Elo: run `polaris-tui eval elo --gens A.jsonl B.jsonl ...`", path.display());
        }
        let task = Task::parse(&task_name).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let mut notes = vec![];
        for k in v.as_object().into_iter().flat_map(|o| o.keys()) {
            if !matches!(k.as_str(), "task" | "task_config" | "task_params" | "engine") {
                notes.push(format!("{}: field `{k}` is not read", path.display()));
            }
        }
        let tc = object(&v, "task_config", path)?;
        let tp = object(&v, "task_params", path)?;
        let engine = object(&v, "engine", path)?.ok_or_else(|| {
            anyhow!("{}: field `engine` (provider, model, sampling) is missing", path.display())
        })?;
        let s = |m, f: &str, at: &str| string(m, f, path, at);
        let mut fields = InputFields::default();
        if let Some(f) = s(tc, "story_field", "task_config")? {
            fields.story = f;
        }
        if let Some(f) = s(tc, "prompt_field", "task_config")? {
            fields.prompt = f;
        }
        fields.id = s(tc, "id_field", "task_config")?;
        fields.default_system = s(tc, "default_model_name", "task_config")?;
        let input = s(tc, "input_path", "task_config")?.and_then(|p| resolve(&p, path));
        let prompts_written = s(tc, "prompts_path", "task_config")?.or(s(tp, "prompts_path", "task_params")?);
        let prompts = prompts_written.as_deref().and_then(|p| resolve(p, path));
        let prompts_id_field = s(tc, "prompts_id_field", "task_config")?
            .or(s(tp, "prompts_id_field", "task_params")?)
            .unwrap_or_else(|| "uid".into());
        let provider = s(Some(engine), "provider", "engine")?
            .ok_or_else(|| anyhow!("{}: `engine.provider` is missing (openai or vertex)", path.display()))?;
        let model = s(Some(engine), "model", "engine")?
            .ok_or_else(|| anyhow!("{}: `engine.model` is missing", path.display()))?;
        let judge = match provider.as_str() {
            "openai" => JudgeSpec::OpenAi(model),
            "vertex" | "gemini" => {
                notes.push(format!(
                    "{}: provider {provider} runs on the Gemini API (gemini:{model}, key from GEMINI_API_KEY), not Vertex AI",
                    path.display()
                ));
                JudgeSpec::Gemini(model)
            }
            other => bail!("{}: `engine.provider` {other:?}: give openai or vertex", path.display()),
        };
        let sampling = match engine.get("sampling") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => bail!("{}: `engine.sampling` must be an object", path.display()),
        };
        let n = |f: &str| num(sampling, f, path, "engine.sampling");
        let max_tokens = ["max_output_tokens", "max_tokens", "max_completion_tokens", "max_new_tokens"]
            .iter()
            .map(|f| n(f))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .next();
        let max_tokens = match max_tokens {
            Some(m) if m >= 1.0 && m <= u32::MAX as f64 => Some(m as u32),
            Some(m) => bail!("{}: `engine.sampling` max tokens {m}: give a positive integer", path.display()),
            None => None,
        };
        let thinking = engine
            .get("provider_overrides")
            .and_then(|o| o.get("vertex").or_else(|| o.get("gemini")))
            .and_then(|o| o.get("thinking_config"))
            .and_then(Value::as_object);
        let thinking_level =
            string(thinking, "thinkingLevel", path, "engine.provider_overrides.vertex.thinking_config")?;
        let thinking_budget =
            num(thinking, "thinkingBudget", path, "engine.provider_overrides.vertex.thinking_config")?
                .map(|b| b as i64);
        if thinking.and_then(|t| t.get("includeThoughts")).and_then(Value::as_bool) == Some(true) {
            notes.push(format!("{}: includeThoughts: the judge's thoughts are never kept", path.display()));
        }
        if let Some(p) = engine.get("provider_params").and_then(Value::as_object) {
            if p.get("vertex_mode").and_then(Value::as_str) == Some("batch") {
                notes.push(format!(
                    "{}: vertex_mode batch: the Gemini API is called online; --batch is the OpenAI Batch API",
                    path.display()
                ));
            }
        }
        let override_overall =
            tp.and_then(|t| t.get("override_overall_from_totals")).and_then(Value::as_bool).unwrap_or(false);
        if task == Task::StoryQuality && !override_overall {
            notes.push(format!(
                "{}: override_overall_from_totals is not set: the judge's own overall_score is kept",
                path.display()
            ));
        }
        let mut file = |field: &str| -> Result<Option<PathBuf>> {
            let Some(written) = s(tp, field, "task_params")? else { return Ok(None) };
            let found = resolve(&written, path);
            if found.is_none() {
                notes.push(format!(
                    "{}: task_params.{field} {written:?} is not found (as written, or beside the config): the \
                     release's file embedded in this build is used",
                    path.display()
                ));
            }
            Ok(found)
        };
        let (system_message, json_schema, judge_prompt) =
            (file("system_message_path")?, file("json_schema_path")?, file("judge_prompt_path")?);
        Ok(Self {
            path: path.to_path_buf(),
            task,
            fields,
            input,
            prompts,
            prompts_id_field,
            judge,
            temperature: n("temperature")?,
            top_p: n("top_p")?,
            max_tokens,
            seed: n("seed")?.map(|s| s as i64),
            thinking_level,
            thinking_budget,
            override_overall,
            system_message,
            json_schema,
            judge_prompt,
            notes,
        })
    }

    /// The config's sampling over `s` (what it does not set stays).
    pub fn apply(&self, s: &mut JudgeSettings) {
        if let Some(t) = self.temperature {
            s.temperature = t;
        }
        if let Some(p) = self.top_p {
            s.top_p = p;
        }
        if let Some(m) = self.max_tokens {
            s.max_tokens = m;
        }
        s.seed = self.seed.or(s.seed);
        if matches!(self.judge, JudgeSpec::Gemini(_)) {
            s.thinking_level = self.thinking_level.clone().or(s.thinking_level.take());
            s.thinking_budget = self.thinking_budget.or(s.thinking_budget);
        }
    }
}
