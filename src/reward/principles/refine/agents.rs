//! The three agents of a refinement round, each one request through the judge client's
//! plumbing (cache, retries, concurrency limit, repair retry) with a JSON schema of its own:
//! the generator spoils a human story by a strategy, the detector judges a story with the
//! principles, the reflector revises principles and strategies from the round's outcome.

use serde::Deserialize;
use serde_json::{json, Value};

use super::super::strategies::{Strategies, Strategy};
use super::super::{Principle, Principles};
use crate::generate::length::strip_length_sentence;
use crate::reward::answer::extract_json;
use crate::reward::judge::http::{Request, Usage};
use crate::reward::JudgeClient;

/// What one agent call came to.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub outcome: Result<T, String>,
    pub usage: Usage,
    /// Whether the repair retry was needed (the first reply was unusable).
    pub repaired: bool,
}

/// Sends `req` to the client's model (a judge model: the offline judge writes nothing).
pub async fn ask<T>(
    client: &JudgeClient,
    req: Request,
    parse: impl Fn(&str) -> Result<(T, Value), String>,
) -> Answer<T> {
    let Some(remote) = client.remote() else {
        return Answer {
            outcome: Err("the offline judge cannot play an agent".into()),
            usage: Usage::default(),
            repaired: false,
        };
    };
    let (outcome, _answer, usage, _cached, _attempts, repaired) = client.ask(remote, req, parse).await;
    Answer { outcome, usage, repaired }
}

/// Reads the reply's JSON object into `T`, naming what is wrong.
fn read<T: for<'de> Deserialize<'de>>(reply: &str) -> Result<(T, Value), String> {
    let v = extract_json(reply).ok_or("the reply holds no JSON object")?;
    let t =
        serde_json::from_value(v.clone()).map_err(|e| format!("the JSON does not fit the schema: {e}"))?;
    Ok((t, v))
}

fn schema(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

// ---- generator ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flawed {
    pub story: String,
    /// What the generator did, and where.
    pub flaw: String,
}

const GENERATOR: &str = "You write deliberately flawed stories to test a story judge. You get a story prompt, \
a human story written for it, and a bad-sample strategy. Rewrite the human story so that it keeps its premise and \
about its length but shows the flaw the strategy describes, clearly yet naturally, the way a weak writer or a weak \
model would. Do not announce the flaw in the story.\n\nReply with one JSON object and nothing else: `story` (the \
flawed story) and `flaw` (one sentence: what you changed and where).";

pub fn generator_request(prompt: &str, human: &str, strategy: &Strategy) -> Request {
    Request {
        system: Some(GENERATOR.into()),
        user: format!(
            "STORY PROMPT:\n{}\n\nSTRATEGY: {}\nHOW: {}\n\nHUMAN STORY:\n{human}\n",
            strip_length_sentence(prompt),
            strategy.name,
            strategy.how
        ),
        schema_name: "flawed_story".into(),
        schema: schema(json!({"story": {"type": "string"}, "flaw": {"type": "string"}}), &["story", "flaw"]),
        repair: None,
    }
}

pub fn parse_flawed(reply: &str) -> Result<(Flawed, Value), String> {
    let (f, v): (Flawed, Value) = read(reply)?;
    if f.story.trim().is_empty() {
        return Err("field story is blank: write the flawed story".into());
    }
    Ok((f, v))
}

// ---- detector -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Detection {
    /// The names of the principles the story breaks (empty: none).
    pub violated: Vec<String>,
    pub flawed: bool,
    pub reason: String,
}

const DETECTOR: &str = "You are a strict but fair story judge. Decide whether the story below clearly breaks \
any of the principles listed. Flag it only for a violation you can point to on the page: a good story passes.";

pub fn detector_request(principles: &Principles, prompt: &str, story: &str) -> Request {
    Request {
        system: Some(format!(
            "{DETECTOR}\n\n{}\nReply with one JSON object and nothing else: `violated` (the names of the principles \
             the story breaks; empty when none), `flawed` (true when it breaks any) and `reason` (one or two \
             sentences quoting the passage).",
            principles.prompt_section()
        )),
        user: format!("STORY PROMPT:\n{}\n\nSTORY:\n{story}\n", strip_length_sentence(prompt)),
        schema_name: "principles_verdict".into(),
        schema: schema(
            json!({"violated": {"type": "array", "items": {"type": "string"}}, "flawed": {"type": "boolean"},
                   "reason": {"type": "string"}}),
            &["violated", "flawed", "reason"],
        ),
        repair: None,
    }
}

pub fn parse_detection(reply: &str) -> Result<(Detection, Value), String> {
    let (mut d, v): (Detection, Value) = read(reply)?;
    // a named violation is a flag, whatever `flawed` says
    d.flawed |= !d.violated.is_empty();
    Ok((d, v))
}

// ---- reflector ------------------------------------------------------------------------------

/// The reflector's revision, checked: both lists within the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub principles: Principles,
    pub strategies: Strategies,
    pub notes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevisionAnswer {
    principles: Vec<PrincipleAnswer>,
    strategies: Vec<Strategy>,
    #[serde(default)]
    notes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipleAnswer {
    name: String,
    rule: String,
    violation: String,
    #[serde(default)]
    example: String,
}

/// One flawed story's outcome, as the reflector reads it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub strategy: String,
    pub flaw: String,
    pub caught: bool,
    pub detector_reason: String,
}

/// A human story the detector flagged.
#[derive(Debug, Clone)]
pub struct FalseAlarm {
    pub uid: String,
    pub violated: Vec<String>,
    pub reason: String,
}

fn reflector_system() -> String {
    format!(
        "You refine the principles a story judge uses. Each round a generator spoils human stories by bad-sample \
         strategies and a detector judges them with the principles. Revise the principles so that the detector \
         catches the flaws that slipped through without flagging the human stories (a false alarm means a principle \
         is too broad). Revise the strategies where the detector caught all their flaws: make them subtler, or \
         replace them with failure modes the principles do not cover yet. Keep what works. At most {max} principles \
         and at most {max} strategies: when a list is full, merge or sharpen rules instead of adding.\n\nReply with \
         one JSON object and nothing else: `principles` (each with `name`, `rule`, `violation`, `example`: a short \
         passage that breaks it, or \"\"), `strategies` (each with `name`, `how`) and `notes` (what you changed \
         and why, briefly).",
        max = super::super::MAX_RULES
    )
}

pub fn reflector_request(
    principles: &Principles,
    strategies: &Strategies,
    outcomes: &[Outcome],
    false_alarms: &[FalseAlarm],
    humans_judged: usize,
) -> Request {
    let mut user = format!(
        "CURRENT PRINCIPLES (TOML):\n{}\nCURRENT STRATEGIES (TOML):\n{}\n",
        principles.to_toml(),
        strategies.to_toml()
    );
    let caught = outcomes.iter().filter(|o| o.caught).count();
    user.push_str(&format!(
        "DETECTION: {caught} of {} flawed stories caught; {} of {humans_judged} human stories flagged.\n",
        outcomes.len(),
        false_alarms.len()
    ));
    for (title, want) in [("MISSED (the detector passed these flawed stories)", false), ("CAUGHT", true)] {
        user.push_str(&format!("\n{title}:\n"));
        for o in outcomes.iter().filter(|o| o.caught == want) {
            user.push_str(&format!(
                "- strategy: {}\n  flaw: {}\n  detector: {}\n",
                o.strategy,
                one_line(&o.flaw),
                one_line(&o.detector_reason)
            ));
        }
    }
    user.push_str("\nFALSE ALARMS (human stories the detector flagged):\n");
    for f in false_alarms {
        user.push_str(&format!(
            "- {}: violated {:?}; detector: {}\n",
            f.uid,
            f.violated,
            one_line(&f.reason)
        ));
    }
    let max = super::super::MAX_RULES;
    let principle = json!({"type": "object", "properties": {"name": {"type": "string"}, "rule": {"type": "string"},
        "violation": {"type": "string"}, "example": {"type": "string"}},
        "required": ["name", "rule", "violation", "example"], "additionalProperties": false});
    let strategy = json!({"type": "object", "properties": {"name": {"type": "string"}, "how": {"type": "string"}},
        "required": ["name", "how"], "additionalProperties": false});
    Request {
        system: Some(reflector_system()),
        user,
        schema_name: "principles_revision".into(),
        schema: schema(
            json!({"principles": {"type": "array", "items": principle, "minItems": 1, "maxItems": max},
                   "strategies": {"type": "array", "items": strategy, "minItems": 1, "maxItems": max},
                   "notes": {"type": "string"}}),
            &["principles", "strategies", "notes"],
        ),
        repair: None,
    }
}

/// The revision, refused (with what to do) when a list breaks the cap or a rule is unusable:
/// the client's repair retry sends this message back to the reflector once.
pub fn parse_revision(reply: &str) -> Result<(Revision, Value), String> {
    let (r, v): (RevisionAnswer, Value) = read(reply)?;
    let rules = r
        .principles
        .into_iter()
        .map(|p| Principle {
            name: p.name,
            rule: p.rule,
            violation: p.violation,
            example: Some(p.example).filter(|e| !e.trim().is_empty()),
        })
        .collect();
    let principles =
        Principles::new(rules).map_err(|e| format!("the revised principles are refused: {e}"))?;
    let strategies =
        Strategies::new(r.strategies).map_err(|e| format!("the revised strategies are refused: {e}"))?;
    Ok((Revision { principles, strategies, notes: r.notes }, v))
}

fn one_line(s: &str) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_over_the_cap_is_refused_with_what_to_do() {
        let p = |i: usize| json!({"name": format!("r{i}"), "rule": "x", "violation": "y", "example": ""});
        let s = json!([{"name": "s", "how": "h"}]);
        let reply = json!({"principles": (0..11).map(p).collect::<Vec<_>>(), "strategies": s, "notes": ""});
        let e = parse_revision(&reply.to_string()).unwrap_err();
        assert!(
            e.contains("the revised principles are refused: 11 rules") && e.contains("at most 10"),
            "{e}"
        );
        let ok = json!({"principles": (0..10).map(p).collect::<Vec<_>>(), "strategies": s, "notes": "n"});
        let (r, _) = parse_revision(&ok.to_string()).unwrap();
        assert_eq!(r.principles.rules.len(), 10);
        assert_eq!(r.principles.rules[0].example, None);
        assert!(parse_revision("no json here").unwrap_err().contains("no JSON object"));
        let e = parse_revision(&json!({"principles": [], "strategies": s}).to_string()).unwrap_err();
        assert!(e.contains("no [[principle]]"), "{e}");
    }

    #[test]
    fn a_named_violation_is_a_flag() {
        let (d, _) = parse_detection(r#"{"violated": ["x"], "flawed": false, "reason": "r"}"#).unwrap();
        assert!(d.flawed);
        assert!(parse_detection(r#"{"flawed": "yes"}"#).unwrap_err().contains("does not fit the schema"));
        assert!(parse_flawed(r#"{"story": " ", "flaw": "f"}"#).unwrap_err().contains("blank"));
    }
}
