//! Principles are data: a short list of rules (TOML) that a judge scores with, written by a
//! user or refined adversarially (`principles refine`), versioned by the hash of their
//! content so every judgement says which principles it was made with.
//!
//! ```toml
//! [[principle]]
//! name = "no stylistic overloading"
//! rule = "Figurative language serves the scene; one image at a time."
//! violation = "Three or more metaphors or adjective stacks in one sentence, repeatedly."
//! example = "The moon, a pale coin of grief, a lantern of longing, wept silver sorrow."
//! ```

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::judge::JudgeSpec;
use super::rubric::Rubric;

/// The most rules a principles file holds (the study keeps at most 10 per set: a judge
/// follows a short list; a long one dilutes every rule).
pub const MAX_RULES: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principle {
    /// A few words, unique in the file: how verdicts and reflections cite the rule.
    pub name: String,
    /// What a good story does.
    pub rule: String,
    /// What breaking it looks like on the page.
    pub violation: String,
    /// A short passage that breaks it (optional: a rule is usable without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrinciplesToml {
    #[serde(default, rename = "principle")]
    principles: Vec<Principle>,
}

/// A checked set of principles, in the file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Principles {
    pub rules: Vec<Principle>,
}

impl Principles {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read principles file {}", path.display()))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// `origin` names the text in errors (a path, or where it came from).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let t: PrinciplesToml =
            toml::from_str(text).map_err(|e| anyhow!("principles {origin} do not parse: {e}"))?;
        Self::new(t.principles).map_err(|e| anyhow!("principles {origin}: {e}"))
    }

    /// Checks the rules: 1..=MAX_RULES of them, each with a unique name and a non-blank
    /// rule and violation.
    pub fn new(rules: Vec<Principle>) -> Result<Self> {
        if rules.is_empty() {
            bail!("no [[principle]] tables; write at least one (name, rule, violation)");
        }
        if rules.len() > MAX_RULES {
            bail!("{} rules; a principles file holds at most {MAX_RULES}: merge or drop some", rules.len());
        }
        for (i, p) in rules.iter().enumerate() {
            for (field, v) in [("name", &p.name), ("rule", &p.rule), ("violation", &p.violation)] {
                if v.trim().is_empty() {
                    bail!("principle {} ({:?}): `{field}` is blank", i + 1, p.name);
                }
            }
            if let Some(j) = rules[..i].iter().position(|q| q.name.trim() == p.name.trim()) {
                bail!("principles {} and {} are both named {:?}; names must be unique", j + 1, i + 1, p.name);
            }
        }
        Ok(Self { rules })
    }

    /// The file's TOML, as `principles refine` writes it (`from_toml_str` reads it back
    /// equal).
    pub fn to_toml(&self) -> String {
        let t = PrinciplesToml { principles: self.rules.clone() };
        toml::to_string(&t).expect("principles serialize")
    }

    /// The version of these principles: the first 16 hex digits of the SHA-256 of their
    /// canonical TOML (so reformatting or commenting the file keeps the version; changing
    /// a word of a rule makes a new one).
    pub fn hash(&self) -> String {
        Sha256::digest(self.to_toml().as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The principles as the judge reads them, appended to its instructions.
    pub fn prompt_section(&self) -> String {
        let mut out = String::from(
            "PRINCIPLES\nJudge the story against these principles as well. A story that breaks one \
             is penalised in the dimension it touches, and the justification names the principle.\n",
        );
        for (i, p) in self.rules.iter().enumerate() {
            out.push_str(&format!(
                "\n{}. {}: {}\n   Violated when: {}\n",
                i + 1,
                p.name,
                p.rule,
                p.violation
            ));
            if let Some(e) = &p.example {
                out.push_str(&format!("   Example of a violation: {e}\n"));
            }
        }
        out
    }
}

/// What a command says once when the offline judge is given principles.
pub const OFFLINE_IGNORES: &str = "the offline judge ignores the principles: it measures the text, it does not read \
     instructions; its judgements carry no principles hash. Give a judge model (--judge openai:MODEL or gemini:MODEL) \
     to score with them";

/// The rubric `judge` scores with: `rubric` with the principles for any judge but offline,
/// which measures rather than reads and so scores without them (the second value is then
/// `OFFLINE_IGNORES`, for the caller to say once).
pub fn for_judge(
    judge: &JudgeSpec,
    rubric: Rubric,
    principles: Option<&Principles>,
) -> (Rubric, Option<&'static str>) {
    match (principles, judge) {
        (None, _) => (rubric, None),
        (Some(_), JudgeSpec::Offline) => (rubric, Some(OFFLINE_IGNORES)),
        (Some(p), _) => (rubric.with_principles(p), None),
    }
}

/// `--principles FILE`, read and checked when given.
pub fn load_optional(path: Option<&Path>) -> Result<Option<Principles>> {
    path.map(Principles::load).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
[[principle]]
name = "no stylistic overloading"
rule = "One image at a time."
violation = "Stacked metaphors in one sentence."
example = "The moon, a coin of grief, a lantern of longing."

[[principle]]
name = "local consistency"
rule = "Facts stay true from one paragraph to the next."
violation = "A character's name, age or place changes without cause."
"#;

    #[test]
    fn reads_writes_and_versions_by_content() {
        let p = Principles::from_toml_str(TWO, "t.toml").unwrap();
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[1].example, None);
        let again = Principles::from_toml_str(&p.to_toml(), "again").unwrap();
        assert_eq!(again, p);
        // Comments and layout do not change the version; a word of a rule does.
        let commented = format!("# mine\n{TWO}\n\n");
        assert_eq!(Principles::from_toml_str(&commented, "c").unwrap().hash(), p.hash());
        let edited = TWO.replace("One image", "One picture");
        assert_ne!(Principles::from_toml_str(&edited, "e").unwrap().hash(), p.hash());
        assert_eq!(p.hash().len(), 16);
        let section = p.prompt_section();
        assert!(section.contains("1. no stylistic overloading: One image at a time."));
        assert!(section.contains("2. local consistency"));
    }

    #[test]
    fn bad_files_are_named_and_explained() {
        let err = |t: &str| Principles::from_toml_str(t, "p.toml").unwrap_err().to_string();
        assert!(err("").contains("p.toml: no [[principle]]"), "{}", err(""));
        let dup =
            format!("{TWO}\n[[principle]]\nname = \"local consistency\"\nrule = \"r\"\nviolation = \"v\"\n");
        assert!(err(&dup).contains("both named \"local consistency\""), "{}", err(&dup));
        let blank = TWO.replace("Stacked metaphors in one sentence.", " ");
        assert!(err(&blank).contains("principle 1 (\"no stylistic overloading\"): `violation` is blank"));
        let unknown = TWO.replace("example =", "exmaple =");
        assert!(err(&unknown).contains("do not parse") && err(&unknown).contains("exmaple"));
        let many: String = (0..=MAX_RULES)
            .map(|i| format!("[[principle]]\nname = \"r{i}\"\nrule = \"x\"\nviolation = \"y\"\n"))
            .collect();
        assert!(err(&many).contains("at most 10"), "{}", err(&many));
    }

    #[test]
    fn a_judge_model_reads_them_and_offline_does_not() {
        let p = Principles::from_toml_str(TWO, "t.toml").unwrap();
        let plain = Rubric::builtin().unwrap();
        let (with, notice) = for_judge(&JudgeSpec::OpenAi("m".into()), plain.clone(), Some(&p));
        assert_eq!(notice, None);
        assert_eq!(with.principles.as_deref(), Some(p.hash().as_str()));
        assert!(with.delivery.system.starts_with(plain.delivery.system.trim_end()));
        assert!(with.delivery.system.ends_with(&p.prompt_section()));
        // the id (part of every cache key) moves with the principles' version
        assert_ne!(with.id, plain.id);
        let edited = Principles::from_toml_str(&TWO.replace("One image", "One picture"), "e").unwrap();
        assert_ne!(plain.clone().with_principles(&edited).id, with.id);
        let (offline, notice) = for_judge(&JudgeSpec::Offline, plain.clone(), Some(&p));
        assert_eq!((offline.id, offline.principles), (plain.id.clone(), None));
        assert_eq!(notice, Some(OFFLINE_IGNORES));
        let (none, notice) = for_judge(&JudgeSpec::OpenAi("m".into()), plain.clone(), None);
        assert_eq!((none.id, notice), (plain.id, None));
    }
}
