//! The checkpoint's chat template, rendered by a Jinja engine (minijinja with Python
//! string methods), and the split of a completion into thinking and story.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;
use serde_json::Value;

pub const THINK_OPEN: &str = "<think>";
pub const THINK_CLOSE: &str = "</think>";

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.to_string(), content: content.to_string() }
    }
    pub fn user(content: &str) -> Self {
        Self::new("user", content)
    }
    pub fn system(content: &str) -> Self {
        Self::new("system", content)
    }
    pub fn assistant(content: &str) -> Self {
        Self::new("assistant", content)
    }
}

pub struct ChatTemplate {
    /// Jinja source; None means the plain fallback.
    source: Option<String>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// `chat_template.jinja` if present, else tokenizer_config.json's `chat_template`
    /// (a string, or a list of named templates of which "default" is used).
    pub fn from_dir(dir: &Path, tokenizer_config: Option<&Value>) -> Result<Self> {
        let token = |key: &str| -> String {
            match tokenizer_config.and_then(|c| c.get(key)) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(o)) => {
                    o.get("content").and_then(Value::as_str).unwrap_or_default().to_string()
                }
                _ => String::new(),
            }
        };
        let jinja = dir.join("chat_template.jinja");
        let source = if jinja.exists() {
            Some(
                std::fs::read_to_string(&jinja)
                    .with_context(|| format!("cannot read {}", jinja.display()))?,
            )
        } else {
            match tokenizer_config.and_then(|c| c.get("chat_template")) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(items)) => items
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                    .and_then(|t| t.get("template"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                _ => None,
            }
        };
        let t = Self { source, bos_token: token("bos_token"), eos_token: token("eos_token") };
        t.check().with_context(|| format!("the chat template of {}", dir.display()))?;
        Ok(t)
    }

    pub fn new(source: Option<String>, bos_token: &str, eos_token: &str) -> Result<Self> {
        let t = Self { source, bos_token: bos_token.to_string(), eos_token: eos_token.to_string() };
        t.check()?;
        Ok(t)
    }

    pub fn is_plain(&self) -> bool {
        self.source.is_none()
    }

    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// Whether the template writes `text` (e.g. an end token) anywhere.
    pub fn mentions(&self, text: &str) -> bool {
        self.source.as_deref().is_some_and(|s| s.contains(text))
    }

    fn check(&self) -> Result<()> {
        if let Some(src) = &self.source {
            let mut env = environment();
            env.add_template("chat", src).map_err(|e| anyhow!("does not parse: {e}"))?;
        }
        Ok(())
    }

    /// Renders the conversation. `enable_thinking` is passed to the template as a variable
    /// (Qwen templates branch on it); the plain fallback ignores it.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        enable_thinking: bool,
    ) -> Result<String> {
        let Some(src) = &self.source else {
            return Ok(plain(messages, &self.eos_token));
        };
        let mut env = environment();
        env.add_template("chat", src).map_err(|e| anyhow!("chat template does not parse: {e}"))?;
        let tmpl = env.get_template("chat")?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            enable_thinking => enable_thinking,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| anyhow!("rendering the chat template failed: {e:#}"))
    }
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_function("strftime_now", |_fmt: String| -> String { String::new() });
    env
}

/// No template: each message's content followed by a blank line; assistant turns end
/// with the eos token so a teacher-forced response knows where to stop.
fn plain(messages: &[Message], eos: &str) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str(&m.content);
        if m.role == "assistant" {
            out.push_str(eos);
        }
        out.push_str("\n\n");
    }
    out
}

/// Whether a rendered prompt leaves a `<think>` block open (the model continues inside it).
pub fn opens_thinking(prompt: &str) -> bool {
    match (prompt.rfind(THINK_OPEN), prompt.rfind(THINK_CLOSE)) {
        (Some(o), Some(c)) => o > c,
        (Some(_), None) => true,
        _ => false,
    }
}

/// A completion split into its reasoning and the story proper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Split {
    pub thinking: Option<String>,
    pub story: String,
    /// false when a thinking block was opened but never closed (the story is then empty)
    pub thinking_closed: bool,
}

/// Splits at `</think>`. The opening tag may be in the completion or, when
/// `opened_in_prompt`, at the end of the prompt.
pub fn split_thinking(completion: &str, opened_in_prompt: bool) -> Split {
    let body = completion.trim_start();
    let opened_here = body.starts_with(THINK_OPEN);
    if let Some(pos) = completion.find(THINK_CLOSE) {
        let before = &completion[..pos];
        let before = before.trim_start().strip_prefix(THINK_OPEN).unwrap_or(before);
        let after = &completion[pos + THINK_CLOSE.len()..];
        return Split {
            thinking: Some(before.trim().to_string()),
            story: after.trim().to_string(),
            thinking_closed: true,
        };
    }
    if opened_in_prompt || opened_here {
        let inner = body.strip_prefix(THINK_OPEN).unwrap_or(body);
        return Split {
            thinking: Some(inner.trim().to_string()),
            story: String::new(),
            thinking_closed: false,
        };
    }
    Split { thinking: None, story: completion.trim().to_string(), thinking_closed: true }
}
