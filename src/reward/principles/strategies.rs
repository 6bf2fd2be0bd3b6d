//! Bad-sample strategies: how the refinement's generator spoils a story on purpose, so the
//! detector has flaws to find. A second short list beside the principles (at most
//! MAX_RULES, each a name and how to apply it), revised by the reflector when the detector
//! catches its flaws every time.
//!
//! ```toml
//! [[strategy]]
//! name = "local contradiction"
//! how = "Change a fact (a name, an age, the weather) between two nearby paragraphs."
//! ```

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::MAX_RULES;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    /// A few words, unique in the list.
    pub name: String,
    /// What the generator does to the story.
    pub how: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategiesToml {
    #[serde(default, rename = "strategy")]
    strategies: Vec<Strategy>,
}

/// A checked list of strategies, in the file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategies {
    pub list: Vec<Strategy>,
}

/// The starting set when none is given: the long-story failure modes the POLARIS model
/// card lists (stylistic overloading, local contradictions) and the usual ways a long story
/// goes wrong.
pub const BUILTIN: &str = r#"
[[strategy]]
name = "stylistic overloading"
how = "Stack metaphors and adjectives: three or more images in many sentences, ornate words where plain ones serve."

[[strategy]]
name = "local contradiction"
how = "Change a fact between two nearby paragraphs (a name, an age, who holds an object, the time of day) without cause."

[[strategy]]
name = "repetition loop"
how = "Repeat a sentence, a phrase or a whole beat several times with small changes, as a model stuck in a loop does."

[[strategy]]
name = "telling not showing"
how = "Replace scenes with summary: state the characters' feelings and the story's meaning outright instead of dramatising them."

[[strategy]]
name = "abrupt ending"
how = "Stop the story before its conflict resolves, or resolve it in one sentence by coincidence."

[[strategy]]
name = "prompt drift"
how = "Let the story wander from what the prompt asked for: drop its premise or its required elements halfway."
"#;

impl Strategies {
    pub fn builtin() -> Self {
        Self::from_toml_str(BUILTIN, "the built-in strategies").expect("the built-in strategies are valid")
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read strategies file {}", path.display()))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let t: StrategiesToml =
            toml::from_str(text).map_err(|e| anyhow!("strategies {origin} do not parse: {e}"))?;
        Self::new(t.strategies).map_err(|e| anyhow!("strategies {origin}: {e}"))
    }

    /// 1..=MAX_RULES strategies, each with a unique name and a non-blank `how`.
    pub fn new(list: Vec<Strategy>) -> Result<Self> {
        if list.is_empty() {
            bail!("no [[strategy]] tables; write at least one (name, how)");
        }
        if list.len() > MAX_RULES {
            bail!(
                "{} strategies; a strategies list holds at most {MAX_RULES}: merge or drop some",
                list.len()
            );
        }
        for (i, s) in list.iter().enumerate() {
            for (field, v) in [("name", &s.name), ("how", &s.how)] {
                if v.trim().is_empty() {
                    bail!("strategy {} ({:?}): `{field}` is blank", i + 1, s.name);
                }
            }
            if let Some(j) = list[..i].iter().position(|t| t.name.trim() == s.name.trim()) {
                bail!("strategies {} and {} are both named {:?}; names must be unique", j + 1, i + 1, s.name);
            }
        }
        Ok(Self { list })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(&StrategiesToml { strategies: self.list.clone() }).expect("strategies serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_set_reads_back_and_bad_lists_are_explained() {
        let b = Strategies::builtin();
        assert!(b.list.len() >= 4 && b.list.len() <= MAX_RULES);
        assert_eq!(Strategies::from_toml_str(&b.to_toml(), "again").unwrap(), b);
        let err = |t: &str| Strategies::from_toml_str(t, "s.toml").unwrap_err().to_string();
        assert!(err("").contains("s.toml: no [[strategy]]"));
        let many: String =
            (0..=MAX_RULES).map(|i| format!("[[strategy]]\nname = \"s{i}\"\nhow = \"x\"\n")).collect();
        assert!(err(&many).contains("at most 10"), "{}", err(&many));
        let dup = "[[strategy]]\nname = \"a\"\nhow = \"x\"\n[[strategy]]\nname = \"a\"\nhow = \"y\"\n";
        assert!(err(dup).contains("both named \"a\""));
        assert!(err("[[strategy]]\nname = \"a\"\nhow = \" \"\n").contains("`how` is blank"));
    }
}
