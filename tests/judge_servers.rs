//! The judge client against loopback servers that behave like the real OpenAI-compatible
//! servers it meets: llama-cpp-python's (HTTP 500 to `json_schema`, takes `json_object` with a
//! schema), llama.cpp's llama-server (cuts a reply at max_tokens with finish_reason
//! `length`), servers that take no response_format at all, and hostile replies (Retry-After
//! `inf`, 80,000 `{`, integers written `12.0` and `-0`).

#[path = "common/judge_server.rs"]
mod judge_server;

use judge_server::*;
use polaris::reward::judge::{JudgeSettings, JudgeSpec};
use polaris::reward::Rubric;
use serde_json::{json, Value};

fn format_type(body: &Value) -> Option<&str> {
    body.pointer("/response_format/type").and_then(Value::as_str)
}

/// Like llama-cpp-python's server: 500 to `json_schema`, the answer to anything else.
fn llama_cpp_python(answer: String) -> impl Fn(usize, &Value) -> Reply + Send + Sync + 'static {
    move |_, body| match format_type(body) {
        Some("json_schema") => Reply::status(
            500,
            "{\"error\": {\"message\": \"'json_schema'\", \"type\": \"internal_server_error\"}}",
        ),
        _ => Reply::ok(openai_body(&answer)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_object_with_the_schema_is_negotiated_once_and_said_once() {
    let r = Rubric::builtin().unwrap();
    let (base, server) = serve(llama_cpp_python(valid_answer(&r))).await;
    let c = client(settings(&base, "POLARIS_TEST_KEY_LCPP"));
    let first = c.judge("p", &story()).await;
    assert!(first.outcome.is_ok(), "{:?}", first.outcome);
    assert_eq!((server.hits(), first.attempts), (2, 2));
    let asked = server.body(1);
    assert_eq!(asked["response_format"], json!({"type": "json_object", "schema": c.rubric.schema}));
    let said = c.take_notices();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("json_object") && said[0].contains("HTTP 500") && said[0].contains(&base),
        "{said:?}"
    );
    // remembered: later judgements ask in json_object at once, and nothing more is said
    for i in 0..3 {
        let out = c.judge("p", &format!("{} {i}", story())).await;
        assert!(out.outcome.is_ok() && out.attempts == 1, "{:?}", out.outcome);
    }
    assert_eq!(server.hits(), 5);
    assert!((2..5).all(|i| format_type(&server.body(i)) == Some("json_object")));
    assert!(c.take_notices().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_ask_in_a_refused_mode_at_most_concurrency_times() {
    let r = Rubric::builtin().unwrap();
    let lcpp = llama_cpp_python(valid_answer(&r));
    let (base, server) = serve(move |n, body| Reply { delay_ms: 20, ..lcpp(n, body) }).await;
    let mut s = settings(&base, "POLARIS_TEST_KEY_LCPP_MANY");
    s.concurrency = 3;
    let c = std::sync::Arc::new(client(s));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.judge("p", &format!("{} {i}", story())).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().outcome.is_ok());
    }
    let refused = (0..server.hits()).filter(|&i| format_type(&server.body(i)) == Some("json_schema")).count();
    // the requests in flight when the endpoint was unknown; everyone after asks in json_object
    assert!((1..=3).contains(&refused), "{refused} json_schema requests");
    assert_eq!(server.hits(), 12 + refused);
    assert_eq!(c.take_notices().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_taking_no_response_format_gets_the_prompt_alone_and_validation() {
    let r = Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    let (base, server) = serve(move |_, body| {
        if body.get("response_format").is_some() {
            Reply::status(400, "response_format is not supported")
        } else {
            Reply::ok(openai_body(&format!("Here is my evaluation:\n{answer}")))
        }
    })
    .await;
    let c = client(settings(&base, "POLARIS_TEST_KEY_PLAIN"));
    let out = c.judge("p", &story()).await;
    assert!(out.outcome.is_ok(), "{:?}", out.outcome);
    assert_eq!(server.hits(), 3);
    assert!(server.body(2).get("response_format").is_none());
    let said = c.take_notices();
    assert!(said.len() == 1 && said[0].contains("no response_format"), "{said:?}");
    let _ = c.judge("p", "another story").await;
    assert_eq!(server.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_is_not_a_format_verdict() {
    // 500 to everything: the ladder is walked once, then retries ask once each; nothing is
    // settled or said
    let (base, server) = serve(|_, _| Reply::status(500, "down")).await;
    let mut s = settings(&base, "POLARIS_TEST_KEY_DOWN");
    s.retries = 2;
    let c = client(s);
    let out = c.judge("p", &story()).await;
    let e = out.outcome.unwrap_err();
    assert!(e.contains("500") && e.contains("gave up after 5 attempts"), "{e}");
    assert_eq!(server.hits(), 5);
    assert!((3..5).all(|i| format_type(&server.body(i)) == Some("json_schema")));
    assert!(c.take_notices().is_empty());
    // a transient failure while negotiating settles nothing either
    let r = Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    let (base, server) = serve(move |n, body| match (n, format_type(body)) {
        (_, Some("json_schema")) => Reply::status(500, "no"),
        (1, _) => Reply::status(503, "busy"),
        _ => Reply::ok(openai_body(&answer)),
    })
    .await;
    let c = client(settings(&base, "POLARIS_TEST_KEY_BUSY"));
    let out = c.judge("p", &story()).await;
    assert!(out.outcome.is_ok(), "{:?}", out.outcome);
    // json_schema 500, json_object 503 (retry), json_schema 500, json_object 200
    assert_eq!(server.hits(), 4);
    assert_eq!(c.take_notices().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_at_max_tokens_is_named_and_repaired_with_a_bounded_excerpt() {
    // like llama-server: a long reply stopped by max_tokens, its JSON unfinished
    let cut =
        format!("{{\"positive_justification\": \"{}", "The keeper's lamp shows the pacing. ".repeat(3000));
    let cut_len = cut.chars().count();
    let (base, server) = serve(move |_, _| {
        let mut body: Value = serde_json::from_str(&openai_body(&cut)).unwrap();
        body["choices"][0]["finish_reason"] = json!("length");
        Reply::ok(body.to_string())
    })
    .await;
    let c = client(settings(&base, "POLARIS_TEST_KEY_CUT"));
    let out = c.judge("p", &story()).await;
    let e = out.outcome.unwrap_err();
    assert!(
        e.contains("cut at the token limit (judge.max_tokens = 8192)") && e.contains("no JSON object"),
        "{e}"
    );
    assert!(e.contains("after the repair retry: the reply was cut"), "{e}");
    assert_eq!(server.hits(), 2);
    // the repair carries an excerpt of ~2,000 characters, not the 100k-character reply
    let repair = server.body(1);
    let msgs = repair["messages"].as_array().unwrap();
    let sent = msgs[msgs.len() - 2]["content"].as_str().unwrap();
    assert!(cut_len > 100_000 && sent.chars().count() < 2_100, "{} of {cut_len}", sent.chars().count());
    assert!(sent.contains("characters left out"));
    assert!(msgs[msgs.len() - 1]["content"].as_str().unwrap().contains("cut off at the length limit"));

    // a reply that is whole despite finish_reason length is used
    let answer = valid_answer(&Rubric::builtin().unwrap());
    let (base, _server) = serve(move |_, _| {
        let mut body: Value = serde_json::from_str(&openai_body(&answer)).unwrap();
        body["choices"][0]["finish_reason"] = json!("length");
        Reply::ok(body.to_string())
    })
    .await;
    let out = client(settings(&base, "POLARIS_TEST_KEY_CUT_OK")).judge("p", &story()).await;
    assert!(out.outcome.is_ok() && !out.repaired, "{:?}", out.outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_names_max_tokens_too() {
    let (base, _server) = serve(|_, _| {
        Reply::ok(json!({"candidates": [{"content": {"parts": [{"text": "{\"a\": \"half"}]}, "finishReason": "MAX_TOKENS"}]}).to_string())
    })
    .await;
    std::env::set_var("POLARIS_TEST_GEMINI_CUT", KEY);
    let s = JudgeSettings {
        base_url: Some(base.trim_end_matches("/v1").to_string()),
        api_key_env: Some("POLARIS_TEST_GEMINI_CUT".into()),
        max_tokens: 512,
        ..JudgeSettings::default()
    };
    let c = polaris::reward::JudgeClient::new(JudgeSpec::Gemini("g".into()), Rubric::builtin().unwrap(), s)
        .unwrap();
    let e = c.judge("p", &story()).await.outcome.unwrap_err();
    assert!(e.contains("judge.max_tokens = 512"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_retry_after_values_wait_at_most_the_maximum() {
    let r = Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    for value in ["inf", "1e20", "99999999999999999999", "-3", "nan"] {
        let answer = answer.clone();
        let (base, server) = serve(move |n, _| {
            if n == 0 {
                Reply {
                    status: 429,
                    headers: vec![("retry-after", value.into())],
                    body: "slow".into(),
                    delay_ms: 0,
                }
            } else {
                Reply::ok(openai_body(&answer))
            }
        })
        .await;
        let mut s = settings(&base, "POLARIS_TEST_KEY_RETRY_AFTER");
        s.max_backoff_secs = 0.05;
        let out = client(s).judge("p", &story()).await;
        assert!(out.outcome.is_ok(), "{value}: {:?}", out.outcome);
        assert_eq!(server.hits(), 2, "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eighty_thousand_braces_are_no_json_object() {
    let braces = "{".repeat(80_000);
    let (base, server) = serve(move |_, _| Reply::ok(openai_body(&braces))).await;
    let out = client(settings(&base, "POLARIS_TEST_KEY_BRACES")).judge("p", &story()).await;
    let e = out.outcome.unwrap_err();
    assert!(e.contains("no JSON object") && e.contains("after the repair retry"), "{e}");
    let msgs = server.body(1)["messages"].as_array().unwrap().clone();
    assert!(msgs[msgs.len() - 2]["content"].as_str().unwrap().len() < 2_100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_written_as_floats_or_minus_zero_are_read() {
    let r = Rubric::builtin().unwrap();
    let mut a: Value = serde_json::from_str(&valid_answer(&r)).unwrap();
    let fields: Vec<String> = r.dimensions.iter().map(|d| d.score_field()).collect();
    let first = a[&fields[0]].as_i64().unwrap();
    a[&fields[0]] = json!(first as f64); // written 12.0
    a["overall_score"] = json!(-0.0); // written -0
                                      // serde_json writes -0.0 as "-0.0"; a judge writes "-0" and "12.0"
    let text = a.to_string().replace("-0.0", "-0");
    assert!(text.contains(&format!("\"{}\":{first}.0", fields[0])), "{text}");
    let (base, _server) = serve(move |_, _| Reply::ok(openai_body(&text))).await;
    let out = client(settings(&base, "POLARIS_TEST_KEY_NUMBERS")).judge("p", &story()).await;
    let j = out.outcome.unwrap();
    assert_eq!(j.dimensions[0].score, first);
    assert_eq!(j.reported_overall, Some(0));
    assert!(out.answer.unwrap()[&fields[0]].is_i64());

    // the pairwise margin, written 2.0
    use polaris::reward::pairwise::{judge_pair, PairwisePrompt};
    let prompt = PairwisePrompt::builtin().unwrap();
    let keys: Vec<String> = prompt.criteria.iter().map(|c| c.key.clone()).collect();
    let (base, _server) = serve(move |_, _| {
        let mut a = serde_json::Map::new();
        for k in &keys {
            a.insert(format!("{k}_winner"), json!("1"));
            a.insert(format!("{k}_reason"), json!("because"));
        }
        a.insert("overall_winner".into(), json!("1"));
        a.insert("overall_reason".into(), json!("because"));
        let text = Value::Object(a).to_string().replacen('{', "{\"margin\": 2.0, ", 1);
        Reply::ok(openai_body(&text))
    })
    .await;
    let c = client(settings(&base, "POLARIS_TEST_KEY_MARGIN"));
    let res = judge_pair(&c, &prompt, "p", "a story", "b story").await;
    assert_eq!(res.a_first.unwrap().margin, 2);
}
