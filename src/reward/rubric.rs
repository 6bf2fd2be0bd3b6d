//! A rubric: the judge's instructions, the JSON schema its answer must follow, and the
//! scoring rules (dimensions with sign and maximum, catch-all bonus and penalty, composite
//! rules). Either the project's own TOML (`rubrics/story_quality.toml`) or an external
//! prompt + schema pair used exactly as given (such as shared/data/polaris/).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::principles::Principles;
use crate::generate::length::{cut_before_length_sentence, strip_length_sentence};
use crate::text::python::strip;

pub const BUILTIN: &str = include_str!("../../rubrics/story_quality.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sign {
    Positive,
    Negative,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Anchor {
    pub score: i64,
    pub meaning: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dimension {
    /// Answer fields are `{key}_score` and `{key}_justification`.
    pub key: String,
    pub sign: Sign,
    pub max: i64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub anchors: Vec<Anchor>,
}

impl Dimension {
    pub fn score_field(&self) -> String {
        format!("{}_score", self.key)
    }
    pub fn justification_field(&self) -> String {
        format!("{}_justification", self.key)
    }
}

/// The open-ended bonus or penalty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatchAll {
    pub key: String,
    pub max: i64,
    #[serde(default)]
    pub description: String,
}

impl CatchAll {
    pub fn score_field(&self) -> String {
        format!("{}_score", self.key)
    }
    pub fn evidence_field(&self) -> String {
        format!("{}_evidence", self.key)
    }
}

/// How the parts combine into the overall score (RECIPE.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Composite {
    /// Story Quality = overall / divisor.
    pub divisor: f64,
    /// The bonus counts 0 when negative_total > positive_total / 2.
    pub bonus_zero_when_negative_exceeds_half_positive: bool,
    /// The penalty counts at most this much ...
    pub penalty_cap: Option<i64>,
    /// ... when positive_total > negative_total x this.
    pub penalty_cap_when_positive_exceeds_negative_times: f64,
}

impl Default for Composite {
    fn default() -> Self {
        Self {
            divisor: 100.0,
            bonus_zero_when_negative_exceeds_half_positive: true,
            penalty_cap: Some(3),
            penalty_cap_when_positive_exceeds_negative_times: 1.5,
        }
    }
}

/// How the prompt and story reach the judge: a system message with the instructions, and a
/// user message from a template with {prompt} and {story} filled.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub system: String,
    pub user_template: String,
    /// How the prompt's length request is kept from the judge.
    pub length_sentence: LengthSentenceRule,
}

/// The user message of the POLARIS release (its `story_quality_user_template`).
pub const RELEASE_USER_TEMPLATE: &str = "STORY PROMPT:\n{prompt}\n\nSTORY:\n{story}\n";

/// How the length request is removed from the prompt the judge reads, so quality is judged
/// apart from length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LengthSentenceRule {
    /// The project's: every sentence asking for `N words long` goes, wherever it stands, and a
    /// quotation ending the sentence before keeps its closing mark (`strip_length_sentence`).
    Sentence,
    /// The release's: the prompt is cut at the mark before its last `words long`
    /// (`cut_before_length_sentence`); used with an external prompt + schema pair.
    Release,
}

#[derive(Debug, Clone)]
pub struct Rubric {
    pub name: String,
    /// Content hash: part of every cache key, so editing a rubric never reuses old answers.
    pub id: String,
    pub delivery: Delivery,
    /// Name sent with structured-output requests.
    pub schema_name: String,
    /// The JSON schema of one answer (an object schema).
    pub schema: Value,
    pub dimensions: Vec<Dimension>,
    pub bonus: Option<CatchAll>,
    pub penalty: Option<CatchAll>,
    pub composite: Composite,
    /// The hash of the principles the judge reads with this rubric (`with_principles`);
    /// None without.
    pub principles: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RubricToml {
    name: String,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    description: String,
    instructions: String,
    #[serde(default)]
    evidence_rules: String,
    user_template: String,
    #[serde(default)]
    composite: Option<Composite>,
    #[serde(rename = "dimension")]
    dimensions: Vec<Dimension>,
    bonus: Option<CatchAll>,
    penalty: Option<CatchAll>,
    /// An external schema file (relative to the TOML) instead of the generated one.
    schema: Option<String>,
}

impl Rubric {
    /// The project's own Story Quality rubric.
    pub fn builtin() -> Result<Self> {
        Self::from_toml_str(BUILTIN, "rubrics/story_quality.toml", None)
    }

    /// `builtin`, or a path to a rubric TOML.
    pub fn load(spec: &str) -> Result<Self> {
        if spec == "builtin" {
            Self::builtin()
        } else {
            Self::from_toml_file(Path::new(spec))
        }
    }

    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read rubric {}", path.display()))?;
        Self::from_toml_str(&text, &path.display().to_string(), path.parent())
    }

    pub fn from_toml_str(text: &str, origin: &str, dir: Option<&Path>) -> Result<Self> {
        let t: RubricToml =
            toml::from_str(text).map_err(|e| anyhow!("rubric {origin} does not parse: {e}"))?;
        let _ = (t.version, &t.description);
        if t.dimensions.is_empty() {
            bail!("rubric {origin}: no [[dimension]] tables");
        }
        for (i, d) in t.dimensions.iter().enumerate() {
            if d.max <= 0 {
                bail!("rubric {origin}: dimension {} ({}): max must be positive", i + 1, d.key);
            }
            if !is_field_name(&d.key) {
                bail!("rubric {origin}: dimension {} key {:?} must be snake_case", i + 1, d.key);
            }
        }
        let mut keys: Vec<&str> = t.dimensions.iter().map(|d| d.key.as_str()).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            bail!("rubric {origin}: dimension key {:?} appears twice", w[0]);
        }
        for (needle, what) in [("{prompt}", "user_template"), ("{story}", "user_template")] {
            if !t.user_template.contains(needle) {
                bail!("rubric {origin}: {what} must contain {needle}");
            }
        }
        let composite = t.composite.clone().unwrap_or_default();
        if composite.divisor <= 0.0 {
            bail!("rubric {origin}: composite.divisor must be positive");
        }
        let system = system_prompt(&t);
        let mut rubric = Rubric {
            name: t.name.clone(),
            id: String::new(),
            delivery: Delivery {
                system,
                user_template: t.user_template.clone(),
                length_sentence: LengthSentenceRule::Sentence,
            },
            schema_name: t.name.clone(),
            schema: Value::Null,
            dimensions: t.dimensions,
            bonus: t.bonus,
            penalty: t.penalty,
            composite,
            principles: None,
        };
        rubric.schema = match &t.schema {
            Some(file) => {
                let path = dir.unwrap_or(Path::new(".")).join(file);
                let (_, schema) = read_schema(&path)?;
                rubric
                    .check_schema(&schema)
                    .with_context(|| format!("rubric {origin}: schema {}", path.display()))?;
                schema
            }
            None => rubric.generated_schema(),
        };
        rubric.id = rubric.hash(text);
        Ok(rubric)
    }

    /// An external judge prompt and answer schema, used as the release uses them: the prompt
    /// file is the system message as it is (trimmed; any `{prompt}` / `{story_text}` left
    /// literal), the user message is the release's template, and the length request is cut
    /// off by the release's rule. Dimensions are the schema's `positive_*_score` /
    /// `negative_*_score` integer fields (maxima from the schema), the catch-alls
    /// `bonus_score` / `penalty_score`; composite rules as RECIPE.md.
    pub fn from_prompt_and_schema(prompt_path: &Path, schema_path: &Path) -> Result<Self> {
        let prompt = std::fs::read_to_string(prompt_path)
            .with_context(|| format!("cannot read judge prompt {}", prompt_path.display()))?;
        let (name, schema) = read_schema(schema_path)?;
        let props =
            schema.get("properties").and_then(Value::as_object).cloned().ok_or_else(|| {
                anyhow!("{}: the schema has no \"properties\" object", schema_path.display())
            })?;
        let max_of =
            |field: &str| -> Result<i64> {
                props.get(field).and_then(|p| p.get("maximum")).and_then(Value::as_i64).ok_or_else(|| {
                    anyhow!("{}: field {field} has no integer \"maximum\"", schema_path.display())
                })
            };
        let mut dimensions = Vec::new();
        for field in props.keys() {
            let Some(key) = field.strip_suffix("_score") else { continue };
            let sign = if key.starts_with("positive_") {
                Sign::Positive
            } else if key.starts_with("negative_") {
                Sign::Negative
            } else {
                continue;
            };
            dimensions.push(Dimension {
                key: key.to_string(),
                sign,
                max: max_of(field)?,
                title: String::new(),
                description: String::new(),
                anchors: vec![],
            });
        }
        for sign in ["positive", "negative"] {
            if !dimensions.iter().any(|d| d.key.starts_with(sign)) {
                bail!("{}: no {sign}_*_score fields; the scoring rules need them", schema_path.display());
            }
        }
        let catch_all = |key: &str| -> Result<Option<CatchAll>> {
            let field = format!("{key}_score");
            Ok(if props.contains_key(&field) {
                Some(CatchAll { key: key.to_string(), max: max_of(&field)?, description: String::new() })
            } else {
                None
            })
        };
        let delivery = Delivery {
            system: strip(&prompt).to_string(),
            user_template: RELEASE_USER_TEMPLATE.into(),
            length_sentence: LengthSentenceRule::Release,
        };
        let mut rubric = Rubric {
            name: name.clone(),
            id: String::new(),
            delivery,
            schema_name: name,
            schema,
            dimensions,
            bonus: catch_all("bonus")?,
            penalty: catch_all("penalty")?,
            composite: Composite::default(),
            principles: None,
        };
        rubric.id = rubric.hash(&prompt);
        Ok(rubric)
    }

    /// This rubric with `principles`: their section appended to the judge's instructions, and
    /// their hash in the id (part of every cache key, so a judgement cached without them, or
    /// with another version, is never reused with them) and in `principles`.
    pub fn with_principles(mut self, principles: &Principles) -> Self {
        let hash = principles.hash();
        self.delivery.system =
            format!("{}\n\n{}", self.delivery.system.trim_end(), principles.prompt_section());
        self.id = format!("{}+principles-{hash}", self.id);
        self.principles = Some(hash);
        self
    }

    /// The prompt as the judge reads it: without its length request.
    pub fn judge_prompt(&self, prompt: &str) -> String {
        match self.delivery.length_sentence {
            LengthSentenceRule::Sentence => strip_length_sentence(prompt),
            LengthSentenceRule::Release => cut_before_length_sentence(prompt),
        }
    }

    /// (system message, user message) for one story; `prompt` as `judge_prompt` gives it.
    pub fn messages(&self, prompt: &str, story: &str) -> (Option<String>, String) {
        let d = &self.delivery;
        (Some(d.system.clone()), fill(&d.user_template, &[("{prompt}", prompt), ("{story}", story)]))
    }

    pub fn positive_max(&self) -> i64 {
        self.dimensions.iter().filter(|d| d.sign == Sign::Positive).map(|d| d.max).sum()
    }

    pub fn negative_max(&self) -> i64 {
        self.dimensions.iter().filter(|d| d.sign == Sign::Negative).map(|d| d.max).sum()
    }

    /// Every score field the scoring rules read must be in the schema with its maximum.
    fn check_schema(&self, schema: &Value) -> Result<()> {
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("no \"properties\" object"))?;
        let mut missing = Vec::new();
        let fields = self
            .dimensions
            .iter()
            .map(|d| d.score_field())
            .chain(self.bonus.iter().map(CatchAll::score_field))
            .chain(self.penalty.iter().map(CatchAll::score_field));
        for f in fields {
            if !props.contains_key(&f) {
                missing.push(f);
            }
        }
        if !missing.is_empty() {
            bail!("lacks the score fields the rubric names: {}", missing.join(", "));
        }
        Ok(())
    }

    /// The answer schema for a TOML rubric: each dimension's justification and score, the
    /// catch-alls with their evidence, the totals and the overall score.
    fn generated_schema(&self) -> Value {
        let mut props = Map::new();
        let mut required = Vec::new();
        let mut add = |name: String, spec: Value| {
            required.push(Value::String(name.clone()));
            props.insert(name, spec);
        };
        for d in &self.dimensions {
            add(d.justification_field(), json!({"type": "string"}));
            add(d.score_field(), json!({"type": "integer", "minimum": 0, "maximum": d.max}));
        }
        for c in self.bonus.iter().chain(self.penalty.iter()) {
            add(format!("{}_reason", c.key), json!({"type": "string"}));
            add(c.evidence_field(), json!({"type": "array", "items": {"type": "string"}, "maxItems": 2}));
            add(c.score_field(), json!({"type": "integer", "minimum": 0, "maximum": c.max}));
        }
        let (p, n) = (self.positive_max(), self.negative_max());
        let (b, q) = (self.bonus.as_ref().map_or(0, |c| c.max), self.penalty.as_ref().map_or(0, |c| c.max));
        add("positive_total".into(), json!({"type": "integer", "minimum": 0, "maximum": p}));
        add("negative_total".into(), json!({"type": "integer", "minimum": 0, "maximum": n}));
        add("overall_score".into(), json!({"type": "integer", "minimum": -(n + q), "maximum": p + b}));
        json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
    }

    fn hash(&self, source: &str) -> String {
        let mut h = Sha256::new();
        h.update(source.as_bytes());
        h.update(self.schema.to_string().as_bytes());
        format!("{}-{}", self.name, &hex(&h.finalize())[..16])
    }
}

/// Assembles a TOML rubric's system prompt: instructions, dimensions with anchors, the
/// catch-alls, evidence rules, and how to answer.
fn system_prompt(t: &RubricToml) -> String {
    let mut s = String::new();
    s.push_str(t.instructions.trim());
    for (sign, heading) in [
        (Sign::Positive, "POSITIVE DIMENSIONS (achievements; higher is better)"),
        (Sign::Negative, "NEGATIVE DIMENSIONS (failures; higher is worse, 0 when absent)"),
    ] {
        s.push_str(&format!("\n\n## {heading}\n"));
        for d in t.dimensions.iter().filter(|d| d.sign == sign) {
            s.push_str(&format!("\n### {} (`{}`, 0-{})\n{}\n", d.title, d.key, d.max, d.description.trim()));
            for a in &d.anchors {
                s.push_str(&format!("- {}: {}\n", a.score, a.meaning.trim()));
            }
        }
    }
    for (c, what) in [(&t.bonus, "BONUS"), (&t.penalty, "PENALTY")] {
        if let Some(c) = c {
            s.push_str(&format!("\n## {what} (`{}_score`, 0-{})\n{}\nGive up to two exact quotes in `{}_evidence` and one sentence in `{}_reason`.\n", c.key, c.max, c.description.trim(), c.key, c.key));
        }
    }
    if !t.evidence_rules.trim().is_empty() {
        s.push_str(&format!("\n## EVIDENCE\n{}\n", t.evidence_rules.trim()));
    }
    s.push_str(
        "\n## ANSWER\nReply with one JSON object and nothing else, following the schema: for each dimension its \
         `_justification` then its integer `_score`; then the catch-all fields; then positive_total (sum of the \
         positive scores), negative_total (sum of the negative scores) and overall_score = positive_total - \
         negative_total + bonus_score - penalty_score.\n",
    );
    s
}

/// Reads a schema file: a bare object schema, or an OpenAI structured-output wrapper
/// `{name, strict, schema}`. Returns (name, object schema).
fn read_schema(path: &Path) -> Result<(String, Value)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read schema {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("schema {} is not valid JSON", path.display()))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("judge")
        .split('.')
        .next()
        .unwrap_or("judge")
        .to_string();
    let (name, schema) = match v.get("schema").filter(|s| s.is_object()) {
        Some(inner) => {
            (v.get("name").and_then(Value::as_str).map(str::to_string).unwrap_or(stem), inner.clone())
        }
        None => (stem, v),
    };
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        bail!("schema {}: the answer schema must be of \"type\": \"object\"", path.display());
    }
    jsonschema::validator_for(&schema)
        .map_err(|e| anyhow!("schema {} is not a valid JSON schema: {e}", path.display()))?;
    Ok((name, schema))
}

fn fill(template: &str, pairs: &[(&str, &str)]) -> String {
    // single pass, so a story containing "{prompt}" is not filled in again
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'outer: while !rest.is_empty() {
        for (key, value) in pairs {
            if let Some(after) = rest.strip_prefix(key) {
                out.push_str(value);
                rest = after;
                continue 'outer;
            }
        }
        let ch = rest.chars().next().expect("non-empty");
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
