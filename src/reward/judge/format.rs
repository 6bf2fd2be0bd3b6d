//! Structured output, negotiated with each OpenAI-compatible endpoint: `json_schema` first
//! (OpenAI, vLLM, llama.cpp's llama-server); then `json_object` with the schema inside
//! (llama-cpp-python's server answers HTTP 500 to `json_schema` and takes this form); then the
//! prompt alone, the answer validated against the schema as always. The first form an endpoint
//! accepts is kept for the client's life (a client talks to one endpoint) and announced once.

use std::sync::Mutex;

use serde_json::{json, Value};

/// How a request asks for JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// `response_format: {"type": "json_schema", "json_schema": {name, strict, schema}}`
    JsonSchema,
    /// `response_format: {"type": "json_object", "schema": schema}`
    JsonObject,
    /// No response_format: the prompt alone.
    PromptOnly,
}

impl OutputMode {
    /// The order modes are tried in.
    pub const LADDER: [OutputMode; 3] = [Self::JsonSchema, Self::JsonObject, Self::PromptOnly];

    pub fn label(self) -> &'static str {
        match self {
            Self::JsonSchema => "response_format json_schema",
            Self::JsonObject => "response_format json_object with the schema",
            Self::PromptOnly => "no response_format (the prompt alone, the answer validated)",
        }
    }

    /// A chat-completions body (built with `json_schema`) rewritten to ask in this mode.
    pub fn apply(self, body: &Value) -> Value {
        let mut body = body.clone();
        let Some(obj) = body.as_object_mut() else { return body };
        match self {
            Self::JsonSchema => {}
            Self::JsonObject => {
                let schema = obj
                    .get("response_format")
                    .and_then(|f| f.pointer("/json_schema/schema"))
                    .cloned()
                    .unwrap_or(Value::Null);
                obj.insert("response_format".into(), json!({"type": "json_object", "schema": schema}));
            }
            Self::PromptOnly => {
                obj.remove("response_format");
            }
        }
        body
    }
}

/// Whether an HTTP status may be a server refusing the response format: 400/422 (a request
/// it will not take), 415, 500 (llama-cpp-python's answer to `json_schema`) and 501. A 429,
/// 502, 503 or 504 is load or an outage, never a verdict on the format.
pub fn may_refuse_format(status: u16) -> bool {
    matches!(status, 400 | 415 | 422 | 500 | 501)
}

/// What one endpoint accepts, once known, and the notices a person should see.
#[derive(Debug, Default)]
pub struct Negotiation {
    settled: Mutex<Option<OutputMode>>,
    notices: Mutex<Vec<String>>,
}

impl Negotiation {
    pub fn settled(&self) -> Option<OutputMode> {
        *self.settled.lock().expect("negotiation lock")
    }

    /// Records that `endpoint` accepted `mode` after refusing the modes before it (the first
    /// refusal was `refused`). The first settlement wins; a fallback is announced once.
    pub fn settle(&self, mode: OutputMode, endpoint: &str, refused: Option<&str>) {
        let mut settled = self.settled.lock().expect("negotiation lock");
        if settled.is_some() {
            return;
        }
        *settled = Some(mode);
        if mode != OutputMode::JsonSchema {
            let why = refused.map(|r| format!(" ({r})")).unwrap_or_default();
            self.notices.lock().expect("notices lock").push(format!(
                "judge {endpoint}: refuses response_format json_schema{why}; using {} for this endpoint from now on",
                mode.label()
            ));
        }
    }

    /// The notices not yet taken.
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock().expect("notices lock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_rewrites_the_response_format() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let body = json!({"model": "m", "messages": [], "response_format": {"type": "json_schema", "json_schema": {"name": "n", "strict": true, "schema": schema}}});
        assert_eq!(OutputMode::JsonSchema.apply(&body), body);
        let object = OutputMode::JsonObject.apply(&body);
        assert_eq!(object["response_format"], json!({"type": "json_object", "schema": schema}));
        assert_eq!(object["model"], "m");
        let plain = OutputMode::PromptOnly.apply(&body);
        assert!(plain.get("response_format").is_none() && plain["messages"] == json!([]));
    }

    #[test]
    fn the_first_settlement_wins_and_a_fallback_is_said_once() {
        let n = Negotiation::default();
        assert_eq!(n.settled(), None);
        n.settle(OutputMode::JsonObject, "http://h/v1/chat/completions", Some("HTTP 500: boom"));
        n.settle(OutputMode::PromptOnly, "http://h/v1/chat/completions", None);
        assert_eq!(n.settled(), Some(OutputMode::JsonObject));
        let said = n.take_notices();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("json_object") && said[0].contains("HTTP 500"), "{said:?}");
        assert!(n.take_notices().is_empty());
        // an endpoint that takes json_schema is not worth a notice
        let n = Negotiation::default();
        n.settle(OutputMode::JsonSchema, "e", None);
        assert!(n.take_notices().is_empty());
    }

    #[test]
    fn load_and_outages_are_not_refusals() {
        assert!(may_refuse_format(500) && may_refuse_format(400) && may_refuse_format(422));
        assert!(!may_refuse_format(429) && !may_refuse_format(503) && !may_refuse_format(401));
    }
}
