//! A run's configuration (config.toml): every default is the recipe's (RECIPE.md). Any key
//! can be overridden with `--set section.key=value`; an invalid value is an error naming the
//! key. `init-config` writes INIT_TEMPLATE, whose values are tested to equal the defaults.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

mod ranges;
pub use ranges::{Invalid, MAX_PROMPTS_PER_STEP};

use super::sft::SftConfig;
use super::step::StepConfig;
use super::validation::ValidationConfig;
use crate::model::LoraConfig;
use crate::reward::breakdown::Weights;
use crate::reward::disqualify::DisqualifyGates;
use crate::reward::principles::{for_judge, load_optional, OFFLINE_IGNORES};
use crate::reward::rows::RowRules;
use crate::reward::score::{ScoreMode, Scoring, ThinkTerms};
use crate::reward::{JudgeClient, JudgeSettings, JudgeSpec, Rubric};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Run directory (default runs/<name>).
    pub out: Option<String>,
    pub name: String,
    pub steps: usize,
    /// Prompts (GRPO groups) per step.
    pub prompts_per_step: usize,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    pub seed: u64,
    /// cpu, cpu:N, or cuda:0,cuda:1,...
    pub devices: String,
    /// Validate on `data.val` every this many steps and after the last (0: never after
    /// training starts); `[validation]` says how. Nothing is validated without `data.val`.
    pub val_every: usize,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            out: None,
            name: "run".into(),
            steps: 160,
            prompts_per_step: 8,
            checkpoint_every: 20,
            seed: 0,
            devices: "cpu".into(),
            val_every: 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face model directory, or `tiny`.
    pub path: String,
    pub dtype: String,
    pub lora: LoraSection,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self { path: "tiny".into(), dtype: "f32".into(), lora: LoraSection::default() }
    }
}

/// `[model.lora]`: train LoRA adapters instead of every weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraSection {
    /// Off: full fine-tune.
    pub enabled: bool,
    pub r: usize,
    /// The update is scaled by alpha / r.
    pub alpha: f64,
    /// 0 by default, not PEFT's 0.05: see model/lora.rs on dropout and GRPO's ratio.
    pub dropout: f64,
    /// Module names (`q_proj` matches every module whose path ends in it) or `all-linear`;
    /// one name may be given as a plain string.
    #[serde(deserialize_with = "one_or_many")]
    pub target_modules: Vec<String>,
}

impl Default for LoraSection {
    fn default() -> Self {
        Self { enabled: false, r: 16, alpha: 32.0, dropout: 0.0, target_modules: vec!["all-linear".into()] }
    }
}

impl LoraSection {
    /// The adapter's shape when LoRA is on.
    pub fn config(&self) -> Option<LoraConfig> {
        self.enabled.then(|| LoraConfig {
            r: self.r,
            alpha: self.alpha,
            dropout: self.dropout,
            target_modules: self.target_modules.clone(),
            use_rslora: false,
        })
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// Dataset JSONL (uid, prompt, target_word_count, story, reasoning).
    pub train: String,
    /// Held-out prompts in the same format (`data build` writes val.jsonl), validated on
    /// during training; none: no validation.
    pub val: Option<String>,
}

impl Default for DataSection {
    fn default() -> Self {
        Self { train: "assets/demo/prompts.jsonl".into(), val: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardSection {
    /// offline or a judge model (`reward::judge::JUDGE_SPECS`)
    pub judge: String,
    /// builtin, or a rubric TOML
    pub rubric: String,
    /// An external judge prompt + schema pair instead of `rubric`.
    pub rubric_prompt: Option<String>,
    pub rubric_schema: Option<String>,
    /// A principles file (`reward::principles`) the judge scores with besides the rubric;
    /// the offline judge ignores it.
    pub principles: Option<String>,
    pub weights: Weights,
    /// What GRPO ranks rows by: composite (the clipped composite) or release (the released
    /// trainer's last-token value of its per-token reward); see reward/score.rs.
    pub score: ScoreMode,
    /// release score: thinking tokens past this many each get −think_penalty.
    pub think_cap_tokens: usize,
    pub think_penalty: f64,
    /// The reference is not judged; its reward is +weights.clip (the fork's gt_override_best).
    pub reference_best: bool,
    pub disqualify: DisqualifyGates,
}

impl Default for RewardSection {
    fn default() -> Self {
        let scoring = Scoring::default();
        Self {
            judge: "offline".into(),
            rubric: "builtin".into(),
            rubric_prompt: None,
            rubric_schema: None,
            principles: None,
            weights: Weights::training(),
            score: scoring.mode,
            think_cap_tokens: scoring.think.cap_tokens,
            think_penalty: scoring.think.penalty,
            reference_best: false,
            disqualify: DisqualifyGates::default(),
        }
    }
}

impl RewardSection {
    /// The rubric the judge scores with: the external prompt + schema pair when both are
    /// given, else `rubric` (builtin or a rubric TOML).
    /// With `principles`, a judge model reads them too (`principles::for_judge`).
    pub fn rubric(&self) -> Result<Rubric> {
        let rubric = match (&self.rubric_prompt, &self.rubric_schema) {
            (Some(p), Some(s)) => Rubric::from_prompt_and_schema(p.as_ref(), s.as_ref()),
            _ => Rubric::load(&self.rubric),
        }?;
        let principles =
            load_optional(self.principles.as_deref().map(Path::new)).context("reward.principles")?;
        Ok(for_judge(&JudgeSpec::parse(&self.judge)?, rubric, principles.as_ref()).0)
    }

    /// What to say once about `principles`: the offline judge ignores them.
    pub fn principles_notice(&self) -> Option<&'static str> {
        let offline = JudgeSpec::parse(&self.judge).is_ok_and(|s| s == JudgeSpec::Offline);
        (self.principles.is_some() && offline).then_some(OFFLINE_IGNORES)
    }

    /// The judge of a run (launch and the Playground build it here): `judge` scoring with
    /// `rubric` under `settings`.
    pub fn judge_client(&self, rubric: Rubric, settings: JudgeSettings) -> Result<JudgeClient> {
        JudgeClient::new(JudgeSpec::parse(&self.judge)?, rubric, settings)
    }

    /// The rules a run scores its rows with; the disqualification gates are checked against
    /// the rubric the judge uses.
    pub fn row_rules(&self, rubric: &Rubric) -> Result<RowRules> {
        Ok(RowRules {
            weights: self.weights,
            scoring: Scoring {
                mode: self.score,
                think: ThinkTerms { cap_tokens: self.think_cap_tokens, penalty: self.think_penalty },
            },
            reference_best: self.reference_best,
            gates: self.disqualify.resolve(rubric)?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub run: RunSection,
    pub model: ModelSection,
    pub data: DataSection,
    pub reward: RewardSection,
    pub judge: JudgeSettings,
    /// Supervised warm start on the dataset's stories before GRPO (epochs = 0: none).
    pub sft: SftConfig,
    pub step: StepConfig,
    /// How `data.val` is sampled and scored during training.
    pub validation: ValidationConfig,
    /// When the run raises alerts (`run::alerts`).
    pub alerts: crate::run::alerts::AlertsConfig,
}

impl TrainConfig {
    /// Parses a config file's text, then applies `--set` overrides in order.
    ///
    /// The file and the overrides are merged key by key over the full defaults, so a partial
    /// table (`[step.sampling]` with one key) keeps the recipe's other values rather than
    /// the defaults of its own type. A bad value is reported where it was written: the
    /// `--set` that gave it, else `origin` (the file).
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Self> {
        let user: toml::Table = toml::from_str(text).map_err(|e| anyhow!("{origin} does not parse: {e}"))?;
        let mut table: toml::Table = toml::Value::try_from(TrainConfig::default())?
            .as_table()
            .cloned()
            .ok_or_else(|| anyhow!("defaults are not a table"))?;
        merge(&mut table, user);
        for o in overrides {
            set(&mut table, o)?;
        }
        let source = |key: &str| where_set(key, overrides).unwrap_or_else(|| origin.to_string());
        ranges::non_finite(&table, "").map_err(|e| anyhow!("{}: {e}", source(&e.key)))?;
        let cfg: TrainConfig = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
            let e = e.to_string();
            // serde's message ends with "in `step.group_size`" when it knows the key
            let key = e.rsplit_once("in `").and_then(|(_, k)| k.split_once('`')).map(|(k, _)| k.to_string());
            let unknown = e.split_once("unknown field `").and_then(|(_, rest)| rest.split_once('`'));
            let key = match (key, unknown) {
                (Some(k), Some((field, _))) => format!("{k}.{field}"),
                (Some(k), None) => k,
                (None, Some((field, _))) => field.to_string(),
                (None, None) => String::new(),
            };
            anyhow!("{}: {}{}", source(&key), e.trim_end(), where_else(&e))
        })?;
        cfg.invalid().map_err(|e| anyhow!("{}: {e}", source(&e.key)))?;
        Ok(cfg)
    }

    /// Checks that serde cannot: ranges and relations between keys.
    pub fn validate(&self) -> Result<()> {
        self.invalid().map_err(|e| anyhow!("{e}"))
    }

    /// `validate`, with the key at fault.
    fn invalid(&self) -> std::result::Result<(), Invalid> {
        let within = |key: &str, r: Result<()>| r.map_err(|e| Invalid::new(key, format!("{key}: {e:#}")));
        // errors that name their key themselves
        let named = |key: &str, r: Result<()>| r.map_err(|e| Invalid::new(key, format!("{e:#}")));
        let check = |key: &str, ok: bool, why: &str| {
            if ok {
                Ok(())
            } else {
                Err(Invalid::new(key, format!("{key} {why}")))
            }
        };
        ranges::check(self)?;
        let s = &self.step;
        let l = &s.loss;
        check(
            "step.loss.reference_clip_low",
            l.reference_clip_low.is_none_or(|v| (0.0..1.0).contains(&v)),
            "must be in [0, 1) (unset: step.loss.clip_low)",
        )?;
        check(
            "step.loss.reference_clip_high",
            l.reference_clip_high.is_none_or(|v| v > 0.0 && v.is_finite()),
            "must be positive (unset: step.loss.clip_high)",
        )?;
        check(
            "step.score_clip",
            s.score_clip >= 0.0 && s.score_clip.is_finite(),
            "must be >= 0 (0 turns it off)",
        )?;
        check("step.bc.peak", !s.bc.enabled || (s.bc.peak >= 0.0 && s.bc.peak.is_finite()), "must be >= 0")?;
        let r = &self.reward;
        check(
            "reward.think_penalty",
            r.think_penalty.is_finite() && r.think_penalty >= 0.0,
            "must be >= 0 (0 turns it off)",
        )?;
        let d = &r.disqualify;
        check(
            "reward.disqualify.words_under_fraction",
            d.words_under_fraction >= 0.0 && d.words_under_fraction.is_finite(),
            "must be >= 0 (0 turns the word gate off)",
        )?;
        within("run.devices", crate::train::workers::parse_devices(&self.run.devices).map(|_| ()))?;
        within("step.sampling", self.step.sampling.validate())?;
        named("validation", self.validation.validate(&s.sampling))?;
        within("reward.judge", crate::reward::JudgeSpec::parse(&self.reward.judge).map(|_| ()))?;
        named("judge", self.judge.validate())?;
        within("model.dtype", crate::device::parse_dtype(&self.model.dtype).map(|_| ()))?;
        if let Some(lora) = self.model.lora.config() {
            within("model.lora", lora.validate())?;
        }
        named("alerts", self.alerts.validate())?;
        Ok(())
    }

    /// The resolved configuration as TOML (written to the run directory).
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

/// The last `--set` that wrote `key`, a table holding it, or a key inside it (`--set
/// step.lr.lr=...` for an error at `step.lr`), as `--set KEY=VALUE`.
fn where_set(key: &str, overrides: &[String]) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let within = |outer: &str, inner: &str| {
        inner == outer || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('.'))
    };
    overrides.iter().rev().find_map(|o| {
        let set = o.split_once('=').map_or(o.as_str(), |(k, _)| k).trim();
        // `--set step.lr.kind=...` replaces the whole `step.lr` table
        let set = set.strip_suffix(".kind").unwrap_or(set);
        (within(set, key) || within(key, set)).then(|| format!("--set {}", o.trim()))
    })
}

/// Deep merge: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) if !is_tagged(b) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Tagged enums (`{ kind = ... }`) are replaced whole: their fields depend on the kind.
fn is_tagged(t: &toml::Table) -> bool {
    t.contains_key("kind")
}

/// For serde's "unknown field `x`": where a key `x` is in the configuration, if anywhere
/// (`step.max_new_tokens` is `step.sampling.max_new_tokens`).
fn where_else(error: &str) -> String {
    fn find(table: &toml::Table, prefix: &str, name: &str, out: &mut Vec<String>) {
        for (k, v) in table {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            if k == name {
                out.push(path.clone());
            }
            if let toml::Value::Table(t) = v {
                find(t, &path, name, out);
            }
        }
    }
    let Some(name) = error.split_once("unknown field `").and_then(|(_, rest)| rest.split_once('`')) else {
        return String::new();
    };
    // the defaults hold every key (an error path: built again only here)
    let Ok(toml::Value::Table(defaults)) = toml::Value::try_from(TrainConfig::default()) else {
        return String::new();
    };
    let mut found = Vec::new();
    find(&defaults, "", name.0, &mut found);
    if found.is_empty() {
        return String::new();
    }
    format!("\n`{}` is a key at {}", name.0, found.join(", "))
}

/// Dotted parts of a `--set` key at most: every real key has fewer.
const MAX_KEY_PARTS: usize = 8;

/// `a.b.c=value`: value read as a TOML literal (number, boolean, string in quotes, array),
/// else taken as a plain string.
fn set(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let Some((key, raw)) = assignment.split_once('=') else {
        bail!("--set {assignment:?}: expected KEY=VALUE, e.g. step.group_size=8");
    };
    let (key, raw) = (key.trim(), raw.trim());
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {assignment:?}: empty part in the key");
    }
    // the deepest key is 4 parts (step.hri_schedule.decay.final_value); a far deeper one
    // would nest tables past what deserialising them can hold on a thread's stack
    if parts.len() > MAX_KEY_PARTS {
        bail!(
            "--set {key}: {} dotted parts; no configuration key has more than {MAX_KEY_PARTS}",
            parts.len()
        );
    }
    let mut cur = table;
    // a tagged table (lr, decay, aggregation) is replaced whole when its kind changes
    if parts.last() == Some(&"kind") {
        let mut t = toml::Table::new();
        t.insert("kind".into(), value);
        return set_table(cur, &parts[..parts.len() - 1], t);
    }
    for p in &parts[..parts.len() - 1] {
        let entry = cur.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| anyhow!("--set {key}: {p} is not a table"))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

fn set_table(mut cur: &mut toml::Table, path: &[&str], value: toml::Table) -> Result<()> {
    let Some((last, init)) = path.split_last() else { bail!("--set kind needs a table path") };
    for p in init {
        let entry = cur.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| anyhow!("--set: {p} is not a table"))?;
    }
    cur.insert(last.to_string(), toml::Value::Table(value));
    Ok(())
}

/// What `polaris-tui init-config` writes: the recipe's defaults, commented.
pub const INIT_TEMPLATE: &str = concat!(
    r#"# polaris-tui run configuration. Defaults are the POLARIS recipe's (shared/docs/RECIPE.md).
# Any key can be overridden on the command line: --set step.group_size=8

[run]
name = "run"                  # run directory: runs/<name> unless out is set
steps = 160                   # optimizer steps
prompts_per_step = 8          # GRPO groups per step
checkpoint_every = 20         # also on stop and at the end
seed = 0
devices = "cpu"               # cpu, cpu:N, or cuda:0,cuda:1,... (cuda feature)
val_every = 20                # validate on data.val every this many steps and after the last (0: never)

[model]
path = "tiny"                 # a Hugging Face model directory, or the built-in tiny model
dtype = "f32"                 # f32, bf16 or f16

[model.lora]                  # LoRA adapters instead of a full fine-tune (saved in HF PEFT's layout)
enabled = false
r = 16
alpha = 32.0                  # the update is scaled by alpha / r; LoRA usually wants a larger step.lr (~1e-5)
dropout = 0.0                 # PEFT's default is 0.05; 0 keeps GRPO's ratio on the sampling policy
target_modules = ["all-linear"]   # or names: ["q_proj", "k_proj", "v_proj", "o_proj"]; never lm_head

[data]
train = "assets/demo/prompts.jsonl"   # JSONL: uid, prompt, target_word_count, story, reasoning
# val = "data/val.jsonl"              # held-out prompts (data build writes val.jsonl): validated during training

[reward]
judge = "offline"             # "#,
    crate::reward::judge::judge_specs!(),
    r#"
rubric = "builtin"            # or a rubric TOML; or rubric_prompt + rubric_schema files
# principles = "principles.toml"  # rules the judge scores with besides the rubric (any judge but offline)
score = "composite"           # what GRPO ranks rows by; "release": the released trainer's last-token score
think_cap_tokens = 3072       # release score: each thinking token past this gets -think_penalty
think_penalty = 0.05
reference_best = false        # true: the reference is not judged; its reward is +clip (the fork's gt_override_best)

[reward.weights]              # composite = clip(sq·SQ - rep·self_rep - len·length - blank·blank + overlong, ±clip)
story_quality = 1.0
repetition = 1.5
length = 0.8
blank = 1.0
overlong = 1.0
clip = 2.0
max_response_tokens = 8192    # DAPO overlong penalty over the last overlong_window tokens
overlong_window = 512

[reward.disqualify]           # the fork's DQ gates (off in the released run): Story Quality floored to the rubric's minimum
enabled = false
coherence_dimension = ""      # "" = the rubric's own (POLARIS's N2 coherence, the built-in's broken logic)
coherence_at_least = 7.0
nonsense_dimension = ""       # "" = the rubric's own (N10 overwrought / nonsensical language)
nonsense_at_least = 8.0
words_under_fraction = 0.4    # whitespace-separated words under this share of the requested words; 0 = off
exempt_reference = true

[judge]
temperature = 0.2
top_p = 0.9
max_tokens = 8192
concurrency = 4
retries = 3
backoff_secs = 5.0
max_backoff_secs = 60.0
timeout_secs = 180.0
totals = "parts"              # overall from the validated dimension scores; "reported": the judge's own totals, as the POLARIS release reads them
max_failure_rate = 0.25       # a step with more failed judgements than this share of its rows stops the run (1: never)
# base_url = "http://localhost:8000/v1"     # else OPENAI_BASE_URL / the provider's URL
# api_key_env = "OPENAI_API_KEY"
# [judge.prices."gemini-3-flash"]
# input_per_million = 0.3
# output_per_million = 2.5

[sft]                         # supervised warm start on the data's stories, before GRPO
epochs = 0                    # 0: none (the recipe starts GRPO from the instruct model)
batch_size = 4
lr = 1e-5
max_grad_norm = 1.0
max_response_tokens = 0       # 0: whole stories
thinking = true
seed = 0
checkpoint_layers = false

[step]
group_size = 6                # 5 policy rollouts + 1 human reference
hri = true                    # human-reference injection
scale_by_std = true           # false: Dr. GRPO advantages
score_clip = 0.0              # scores clipped to ±this before the group statistics (the fork's grpo_score_clip); 0 = off
reference_advantage = "capped"   # the reference row's advantage bounded to ±reference_advantage_cap; "release": unbounded, as the release (1e5 when the policy rows tie)
reference_advantage_cap = 5.0
thinking = true
max_grad_norm = 1.0
logprob_chunk = 256           # positions per log-prob chunk (memory: chunk x vocab)
ppo_epochs = 1                # updates per step on the same rollouts (old log-probs stored)
micro_batch_rows = 0          # rows per forward/backward at most; 0 = no row limit
micro_batch_tokens = 16384    # tokens per packed forward/backward (rows concatenated, never padded)
checkpoint_layers = "auto"    # activation checkpointing (recompute each layer in backward): true, false, or auto = on when the memory plan says activations would be large

[step.hri_schedule]           # reference row weight: 0 -> peak over warmup_steps
peak = 0.4
warmup_steps = 15
decay = { kind = "none" }     # or { kind = "linear" | "cosine", steps = 100, final_value = 0.1 }

[step.bc]                     # behaviour cloning on the human reference (the fork's bc_*; off in the released run)
enabled = false
peak = 0.1                    # coefficient of the references' mean negative log-likelihood per token
warmup_steps = 0
decay = { kind = "none" }     # or { kind = "linear" | "cosine", steps = 100, final_value = 0.0 }

[step.loss]
clip_low = 0.2
clip_high = 0.28              # clip-higher
aggregation = { kind = "token_mean" }   # or sequence_mean, or { kind = "constant", tokens = 8192 } (Dr. GRPO)
kl_coef = 0.0
# reference_clip_low = 0.2    # the reference row's own clip pair (the fork's gt_clip_ratio_low / high);
# reference_clip_high = 0.2   # unset: clip_low / clip_high

[step.sampling]               # rollouts
temperature = 1.0
top_p = 0.95
top_k = 20
min_p = 0.0
repetition_penalty = 1.1
presence_penalty = 0.0
max_new_tokens = 8192
thinking_budget = 3072        # past it </think> is forced; 0 = none (the release only penalises, see reward.score)
seed = 0

[step.lr]
kind = "constant"             # or { kind = "warmup_cosine", lr, warmup_steps, total_steps, min_lr }
lr = 1e-6

[step.adamw]
beta1 = 0.9
beta2 = 0.999
eps = 1e-8
weight_decay = 0.01

[validation]                  # with data.val: one sample per prompt, before training and every run.val_every steps
before_training = true
judge_concurrency = 8

[validation.sampling]         # the release's validation sampling (top_k 0: none); budgets are step.sampling's
temperature = 0.8
top_p = 0.95
top_k = 0
min_p = 0.0
repetition_penalty = 1.1
presence_penalty = 0.0

[validation.weights]          # the validation composite: no overlong penalty
story_quality = 1.0
repetition = 0.8
length = 0.2
blank = 1.0
overlong = 0.0
clip = 2.0
max_response_tokens = 8192
overlong_window = 512

[alerts]                      # raised as events in the run's log; shown by the TUI and `runs` (0 turns a rule off)
bell = false                  # viewers ring the terminal bell when an alert is raised
zero_variance_share = 0.5     # share of a step's groups whose rows all scored the same
clip_fraction = 0.2           # share of tokens clipped (low + high)
judge_failure_rate = 0.05     # share of a step's rows without a judgement
window = 5                    # steps a collapse is judged over
reward_drop = 0.5             # window mean policy reward this far below its best window mean
length_ratio_min = 0.5        # window mean written / requested words below this
stalled_minutes = 30.0        # a running run with no event this long (judged by viewers)
device_memory = 0.95          # share of a device's memory in use after a step
"#
);
