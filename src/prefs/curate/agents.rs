//! The writing and checking agents of `prefs curate`: what each is asked (system text, user
//! message, JSON schema) and how its answer is read. Each is sent through the judge client
//! (`JudgeClient::ask`: cache, retries, concurrency limit, repair retry, usage); an answer
//! that breaks the schema or the agent's contract (a pick out of range, a blank story, a
//! principle that does not exist) is unusable, and the client asks once more with the error.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::reward::extract::extract_json;
use crate::reward::judge::http::{Request, Usage};
use crate::reward::judge::JudgeClient;
use crate::reward::pairwise::{PairwisePrompt, PairwiseResult};
use crate::reward::principles::Principles;

/// What the good story is measured against: the principles file, or without one the
/// pairwise prompt's criteria. `names` are what the reflector may cite.
#[derive(Debug, Clone)]
pub struct Standard {
    pub text: String,
    pub names: Vec<String>,
}

impl Standard {
    pub fn new(principles: Option<&Principles>, pairwise: &PairwisePrompt) -> Self {
        match principles {
            Some(p) => {
                Self { text: p.prompt_section(), names: p.rules.iter().map(|r| r.name.clone()).collect() }
            }
            None => {
                let mut text = String::from("CRITERIA\nA good story does well on each of these.\n");
                for c in &pairwise.criteria {
                    text.push_str(&format!("\n- {} (`{}`): {}\n", c.title, c.key, c.description.trim()));
                }
                Self { text, names: pairwise.criteria.iter().map(|c| c.key.clone()).collect() }
            }
        }
    }
}

/// A human story offered to the positive agent.
#[derive(Debug, Clone)]
pub struct Offered {
    pub uid: String,
    pub prompt: String,
    pub story: String,
}

/// The positive agent's candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The retrieved story's uid when it picked one; None when it wrote its own.
    pub picked: Option<String>,
    pub story: String,
    pub reason: String,
}

/// The negative agent's flawed story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flawed {
    /// The flaws it says it built in.
    pub flaws: Vec<String>,
    pub story: String,
}

/// The reflect agent's check of the judge's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reflection {
    /// The verdict (the positive story is the better one) holds against the standard.
    pub confirm: bool,
    /// Principles (or criteria) the preferred story breaks.
    pub broken_by_preferred: Vec<String>,
    /// Principles (or criteria) the other story breaks.
    pub broken_by_other: Vec<String>,
    pub reason: String,
}

/// What one agent call came to: its outcome (or why there is none), usage, whether the
/// reply came from the cache, HTTP attempts, whether the repair retry was needed.
pub struct Asked<T> {
    pub outcome: Result<T, String>,
    pub usage: Usage,
    pub cached: bool,
    pub attempts: u32,
    pub repaired: bool,
}

async fn ask<T>(
    client: &JudgeClient,
    request: Request,
    parse: impl Fn(&Value) -> Result<T, String>,
) -> Asked<T> {
    let Some(remote) = client.remote() else {
        // refused when the agents are set up (`check_writer`); kept as an outcome, not a panic
        return Asked {
            outcome: Err(format!("{} cannot play this agent: it writes nothing", client.spec.label())),
            usage: Usage::default(),
            cached: false,
            attempts: 0,
            repaired: false,
        };
    };
    let schema = request.schema.clone();
    let read = |reply: &str| -> Result<(T, Value), String> {
        let v = extract_json(reply).ok_or("the reply holds no JSON object")?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        if let Some(e) = validator.iter_errors(&v).next() {
            return Err(format!("the JSON does not match the schema: {e} at {}", e.instance_path));
        }
        Ok((parse(&v)?, v))
    };
    let (outcome, _answer, usage, cached, attempts, repaired) = client.ask(remote, request, read).await;
    Asked { outcome, usage, cached, attempts, repaired }
}

fn text(v: &Value, field: &str) -> String {
    v.get(field).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

pub const POSITIVE_SYSTEM: &str = "You are the positive agent of a pipeline that curates preference pairs for \
training a reward model for long-form fiction. You are given a STORY PROMPT and human-written stories that were \
retrieved for prompts like it (the first is often the human story written for this very prompt). Provide the best \
story for the prompt: either pick one of the retrieved stories, when it answers this prompt well (action \"pick\", \
`pick` its number, `story` empty), or write a new story for the prompt that matches the best of them in craft and \
keeps the requested length (action \"write\", `pick` 0, the whole story in `story`). A good story follows the \
standard below. Reply with one JSON object and nothing else: action, pick, story, reason.";

/// Asks the positive agent for a good candidate among (or beside) the `offered` stories.
pub async fn positive(
    client: &JudgeClient,
    standard: &Standard,
    prompt: &str,
    offered: &[Offered],
) -> Asked<Candidate> {
    let mut user = format!("STORY PROMPT:\n{prompt}\n\nRETRIEVED HUMAN STORIES\n");
    for (i, o) in offered.iter().enumerate() {
        user.push_str(&format!("\n[{}] written for: {}\n{}\n", i + 1, o.prompt, o.story));
    }
    let request = Request {
        system: Some(format!("{POSITIVE_SYSTEM}\n\n{}", standard.text)),
        user,
        schema_name: "curate_positive".into(),
        schema: json!({
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["pick", "write"]},
                "pick": {"type": "integer", "minimum": 0},
                "story": {"type": "string"},
                "reason": {"type": "string"}
            },
            "required": ["action", "pick", "story", "reason"],
            "additionalProperties": false
        }),
        repair: None,
    };
    let parse = |v: &Value| -> Result<Candidate, String> {
        let reason = text(v, "reason");
        if text(v, "action") == "pick" {
            let n = v.get("pick").and_then(Value::as_u64).unwrap_or(0) as usize;
            let o = offered.get(n.wrapping_sub(1)).ok_or(format!(
                "`pick` is {n}, but the stories offered are numbered 1 to {}",
                offered.len()
            ))?;
            return Ok(Candidate { picked: Some(o.uid.clone()), story: o.story.clone(), reason });
        }
        let story = text(v, "story");
        if story.trim().is_empty() {
            return Err("action is \"write\" but `story` is blank; write the whole story there".into());
        }
        Ok(Candidate { picked: None, story, reason })
    };
    ask(client, request, parse).await
}

pub const NEGATIVE_SYSTEM: &str = "You are the negative agent of a pipeline that curates preference pairs for \
training a reward model for long-form fiction. You are given a STORY PROMPT and a GOOD STORY for it. Rewrite the \
good story into a flawed one for the same prompt: keep its subject, characters and roughly its length, and build in \
flaws a careful reader would catch but a careless judge might miss: break the standard below (for example \
stylistic overloading, a local contradiction of names, facts or places, repetition, summary where a scene belongs, \
a rushed or missing ending). The flaws must be real, not a parody. Reply with one JSON object and nothing else: \
`flaws` (each flaw you built in, in a sentence) and `story` (the whole flawed story).";

/// Asks the negative agent for a flawed rewrite of `good`.
pub async fn negative(client: &JudgeClient, standard: &Standard, prompt: &str, good: &str) -> Asked<Flawed> {
    let request = Request {
        system: Some(format!("{NEGATIVE_SYSTEM}\n\n{}", standard.text)),
        user: format!("STORY PROMPT:\n{prompt}\n\nGOOD STORY:\n{good}"),
        schema_name: "curate_negative".into(),
        schema: json!({
            "type": "object",
            "properties": {
                "flaws": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "story": {"type": "string"}
            },
            "required": ["flaws", "story"],
            "additionalProperties": false
        }),
        repair: None,
    };
    let parse = |v: &Value| -> Result<Flawed, String> {
        let story = text(v, "story");
        if story.trim().is_empty() {
            return Err("`story` is blank; write the whole flawed story there".into());
        }
        if story.trim() == good.trim() {
            return Err("`story` is the good story unchanged; rewrite it with the flaws".into());
        }
        Ok(Flawed { flaws: strings(v, "flaws"), story })
    };
    ask(client, request, parse).await
}

pub const REFLECT_SYSTEM: &str = "You are the reflect agent of a pipeline that curates preference pairs for \
training a reward model for long-form fiction. A judge compared two stories for a STORY PROMPT, in both orders, and \
preferred the PREFERRED STORY both times. Check that verdict against the standard below: read both stories, list \
which principles (by name) each one breaks, and confirm the verdict only when the preferred story is the better one \
by the standard, for reasons you can point to in the text. Do not confirm out of deference to the judge. Reply with \
one JSON object and nothing else: confirm, broken_by_preferred, broken_by_other, reason.";

/// The judge's stated reasons in each order, for the reflector to weigh.
fn judge_reasons(result: &PairwiseResult) -> String {
    let reason = |v: &Result<crate::reward::pairwise::Verdict, String>| {
        v.as_ref()
            .ok()
            .and_then(|v| v.answer.get("overall_reason").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default()
    };
    format!(
        "Preferred story shown first: {}\nPreferred story shown second: {}",
        reason(&result.a_first),
        reason(&result.b_first)
    )
}

/// Asks the reflect agent whether `preferred` beating `other` holds against the standard.
pub async fn reflect(
    client: &JudgeClient,
    standard: &Standard,
    prompt: &str,
    preferred: &str,
    other: &str,
    verdict: &PairwiseResult,
) -> Asked<Reflection> {
    let names = json!({"type": "array", "items": {"type": "string", "enum": standard.names}});
    let request = Request {
        system: Some(format!("{REFLECT_SYSTEM}\n\n{}", standard.text)),
        user: format!(
            "STORY PROMPT:\n{prompt}\n\nPREFERRED STORY:\n{preferred}\n\nOTHER STORY:\n{other}\n\nTHE JUDGE'S REASONS\n{}",
            judge_reasons(verdict)
        ),
        schema_name: "curate_reflect".into(),
        schema: json!({
            "type": "object",
            "properties": {
                "confirm": {"type": "boolean"},
                "broken_by_preferred": names,
                "broken_by_other": names,
                "reason": {"type": "string"}
            },
            "required": ["confirm", "broken_by_preferred", "broken_by_other", "reason"],
            "additionalProperties": false
        }),
        repair: None,
    };
    let parse = |v: &Value| -> Result<Reflection, String> {
        Ok(Reflection {
            confirm: v.get("confirm").and_then(Value::as_bool).ok_or("`confirm` is not true or false")?,
            broken_by_preferred: strings(v, "broken_by_preferred"),
            broken_by_other: strings(v, "broken_by_other"),
            reason: text(v, "reason"),
        })
    };
    ask(client, request, parse).await
}
