//! Pairwise judging: two stories for one prompt, judged on criteria in both orders (dual
//! position) so that a judge's preference for a position cancels; each order's verdict is
//! kept, and a combined preference with a margin.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::answer::extract_json;
use super::judge::http::{Request, Usage};
use super::judge::offline;
use super::judge::JudgeClient;
use super::principles::Principles;
use crate::generate::length::strip_length_sentence;

pub const BUILTIN: &str = include_str!("../../rubrics/pairwise.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Criterion {
    pub key: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairwiseToml {
    name: String,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    description: String,
    instructions: String,
    user_template: String,
    #[serde(rename = "criterion")]
    criteria: Vec<Criterion>,
}

#[derive(Debug, Clone)]
pub struct PairwisePrompt {
    pub name: String,
    pub system: String,
    pub user_template: String,
    pub criteria: Vec<Criterion>,
    pub schema: Value,
    /// The hash of the principles the judge reads with this prompt (`with_principles`).
    pub principles: Option<String>,
}

impl PairwisePrompt {
    pub fn builtin() -> Result<Self> {
        Self::from_toml_str(BUILTIN, "rubrics/pairwise.toml")
    }

    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let t: PairwiseToml =
            toml::from_str(text).map_err(|e| anyhow!("pairwise prompt {origin} does not parse: {e}"))?;
        let _ = (t.version, &t.description);
        for key in ["{prompt}", "{story_1}", "{story_2}"] {
            if !t.user_template.contains(key) {
                bail!("pairwise prompt {origin}: user_template must contain {key}");
            }
        }
        if t.criteria.is_empty() {
            bail!("pairwise prompt {origin}: no [[criterion]] tables");
        }
        let mut system = t.instructions.trim().to_string();
        system.push_str("\n\n## CRITERIA\n");
        for c in &t.criteria {
            system.push_str(&format!("\n### {} (`{}`)\n{}\n", c.title, c.key, c.description.trim()));
        }
        system.push_str(
            "\n## ANSWER\nReply with one JSON object and nothing else: for each criterion `<key>_winner` (\"1\", \"2\" or \
             \"tie\") and `<key>_reason`; then `overall_winner` (\"1\", \"2\" or \"tie\"), `margin` (0 tie, 1 slight, \
             2 clear, 3 decisive) and `overall_reason`.\n",
        );
        let mut props = Map::new();
        let mut required = Vec::new();
        for c in &t.criteria {
            for (field, spec) in [
                (format!("{}_winner", c.key), json!({"type": "string", "enum": ["1", "2", "tie"]})),
                (format!("{}_reason", c.key), json!({"type": "string"})),
            ] {
                required.push(json!(field));
                props.insert(field, spec);
            }
        }
        props.insert("overall_winner".into(), json!({"type": "string", "enum": ["1", "2", "tie"]}));
        props.insert("margin".into(), json!({"type": "integer", "minimum": 0, "maximum": 3}));
        props.insert("overall_reason".into(), json!({"type": "string"}));
        required.extend([json!("overall_winner"), json!("margin"), json!("overall_reason")]);
        let schema = json!({"type": "object", "properties": props, "required": required, "additionalProperties": false});
        Ok(Self {
            name: t.name,
            system,
            user_template: t.user_template,
            criteria: t.criteria,
            schema,
            principles: None,
        })
    }

    /// This prompt with `principles` appended to the judge's instructions (which changes its
    /// id, `eval::elo::store::pairwise_prompt_id`, and every cache key), their hash recorded.
    pub fn with_principles(mut self, principles: &Principles) -> Self {
        self.system = format!("{}\n\n{}", self.system.trim_end(), principles.prompt_section());
        self.principles = Some(principles.hash());
        self
    }
}

/// Which story won, as shown to the judge ("1" is the one shown first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    First,
    Second,
    Tie,
}

impl Shown {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "1" => Some(Self::First),
            "2" => Some(Self::Second),
            "tie" => Some(Self::Tie),
            _ => None,
        }
    }
}

/// One order's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub winner: Shown,
    /// 0 tie .. 3 decisive
    pub margin: i64,
    pub criteria: Vec<(String, Shown)>,
    pub answer: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairwiseResult {
    /// A shown first, then B shown first.
    pub a_first: Result<Verdict, String>,
    pub b_first: Result<Verdict, String>,
    /// +1: A wins decisively in both orders; -1: B does; 0: no preference.
    pub preference: f64,
    /// Mean margin towards the preferred story, 0..3.
    pub margin: f64,
    /// Both orders agree on the winner.
    pub consistent: bool,
    pub usage: Usage,
}

/// A's signed margin in one order: positive when A won.
fn signed_for_a(v: &Verdict, a_shown_first: bool) -> f64 {
    let m = v.margin as f64;
    match (v.winner, a_shown_first) {
        (Shown::Tie, _) => 0.0,
        (Shown::First, true) | (Shown::Second, false) => m,
        _ => -m,
    }
}

pub fn combine(
    a_first: Result<Verdict, String>,
    b_first: Result<Verdict, String>,
    usage: Usage,
) -> PairwiseResult {
    let signed: Vec<f64> = [(a_first.as_ref(), true), (b_first.as_ref(), false)]
        .into_iter()
        .filter_map(|(v, first)| v.ok().map(|v| signed_for_a(v, first)))
        .collect();
    let mean = if signed.is_empty() { 0.0 } else { signed.iter().sum::<f64>() / signed.len() as f64 };
    let consistent = signed.len() == 2 && signed[0].signum() == signed[1].signum();
    PairwiseResult { a_first, b_first, preference: mean / 3.0, margin: mean.abs(), consistent, usage }
}

fn parse_verdict(prompt: &PairwisePrompt, reply: &str) -> Result<(Verdict, Value), String> {
    let v = extract_json(reply).ok_or("the reply holds no JSON object")?;
    let validator = jsonschema::validator_for(&prompt.schema).map_err(|e| e.to_string())?;
    if let Some(e) = validator.iter_errors(&v).next() {
        return Err(format!("the JSON does not match the schema: {e} at {}", e.instance_path));
    }
    let pick = |f: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .and_then(Shown::parse)
            .ok_or(format!("field {f} is missing or not \"1\", \"2\" or \"tie\""))
    };
    let winner = pick("overall_winner")?;
    let margin = v.get("margin").and_then(Value::as_i64).ok_or("field margin is missing")?;
    let criteria = prompt
        .criteria
        .iter()
        .map(|c| Ok((c.key.clone(), pick(&format!("{}_winner", c.key))?)))
        .collect::<Result<Vec<_>, String>>()?;
    // a tie has margin 0 and margin 0 is a tie, whatever the judge wrote
    let (winner, margin) =
        if winner == Shown::Tie || margin == 0 { (Shown::Tie, 0) } else { (winner, margin) };
    Ok((Verdict { winner, margin, criteria, answer: v.clone() }, v))
}

/// Judges stories `a` and `b` for `prompt` in both orders.
pub async fn judge_pair(
    client: &JudgeClient,
    prompt_spec: &PairwisePrompt,
    prompt: &str,
    a: &str,
    b: &str,
) -> PairwiseResult {
    let prompt = strip_length_sentence(prompt);
    let Some(remote) = client.remote() else {
        // offline: each story's measured overall under the client's rubric decides
        let score = |s: &str| -> i64 {
            let answer = offline::answer(&client.rubric, &prompt, s);
            super::answer::judge_from_json(&client.rubric, &answer).map(|j| j.overall).unwrap_or(0)
        };
        let (sa, sb) = (score(a), score(b));
        let verdict = |first: i64, second: i64| -> Verdict {
            let d = first - second;
            let margin = match d.abs() {
                0..=2 => 0,
                3..=9 => 1,
                10..=19 => 2,
                _ => 3,
            };
            let winner = if margin == 0 {
                Shown::Tie
            } else if d > 0 {
                Shown::First
            } else {
                Shown::Second
            };
            let answer = json!({"overall_winner": match winner { Shown::First => "1", Shown::Second => "2", Shown::Tie => "tie" }, "margin": margin,
                "overall_reason": format!("Measured, not read: offline overall {first} for story 1, {second} for story 2.")});
            Verdict { winner, margin, criteria: vec![], answer }
        };
        return combine(Ok(verdict(sa, sb)), Ok(verdict(sb, sa)), Usage::default());
    };
    let request = |first: &str, second: &str| Request {
        system: Some(prompt_spec.system.clone()),
        user: prompt_spec
            .user_template
            .replace("{prompt}", &prompt)
            .replacen("{story_1}", first, 1)
            .replacen("{story_2}", second, 1),
        schema_name: prompt_spec.name.clone(),
        schema: prompt_spec.schema.clone(),
        repair: None,
    };
    let parse = |reply: &str| parse_verdict(prompt_spec, reply);
    let (ab, ba) =
        tokio::join!(client.ask(remote, request(a, b), parse), client.ask(remote, request(b, a), parse));
    let mut usage = ab.2;
    usage.add(&ba.2);
    combine(ab.0, ba.0, usage)
}
