//! The judge client against a real HTTP server on loopback: success, Retry-After, give-up,
//! timeout, repair, range errors, the concurrency limit, the cache, missing keys, Gemini.

#[path = "common/judge_server.rs"]
mod judge_server;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use judge_server::*;
use polaris::reward::judge::{JudgeClient, JudgeSettings, JudgeSpec, Price};
use polaris::reward::Rubric;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_counts_tokens_and_cost() {
    let r = Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    let (base, server) = serve(move |_, _| Reply::ok(openai_body(&answer))).await;
    let mut s = settings(&base, "POLARIS_TEST_KEY_OK");
    s.prices.insert("judge-model".into(), Price { input_per_million: 1.0, output_per_million: 10.0 });
    let c = client(s);
    let out =
        c.judge("A lighthouse keeper finds a letter. The story should be 500 words long.", &story()).await;
    let j = out.outcome.unwrap();
    assert_eq!(j.dimensions.len(), 16);
    assert_eq!((out.attempts, out.usage.prompt_tokens, out.usage.completion_tokens), (1, 1000, 200));
    assert!((out.usage.cost - (1000.0 * 1.0 + 200.0 * 10.0) / 1e6).abs() < 1e-12);
    // the request: bearer key, structured output, sampling settings, no length sentence
    let (headers, body) = server.requests.lock().unwrap()[0].clone();
    assert_eq!(headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(body["model"], "judge-model");
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["schema"], c.rubric.schema);
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("A lighthouse keeper finds a letter.") && !user.contains("words long"), "{user}");
    assert_eq!(c.totals().calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_then_success() {
    let r = Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    let (base, server) = serve(move |n, _| {
        if n == 0 {
            Reply {
                status: 429,
                headers: vec![("retry-after", "1".into())],
                body: "slow down".into(),
                delay_ms: 0,
            }
        } else {
            Reply::ok(openai_body(&answer))
        }
    })
    .await;
    // the exponential backoff alone would wait 0.01 s; Retry-After says 1 s
    let c = client(settings(&base, "POLARIS_TEST_KEY_429"));
    let started = Instant::now();
    let out = c.judge("p", &story()).await;
    let waited = started.elapsed();
    assert!(out.outcome.is_ok(), "{:?}", out.outcome);
    assert_eq!(out.attempts, 2);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    assert!(waited >= Duration::from_millis(950), "waited {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_5xx_gives_up_and_is_recorded() {
    let (base, server) =
        serve(|_, _| Reply { status: 503, headers: vec![], body: "overloaded".into(), delay_ms: 0 }).await;
    let mut s = settings(&base, "POLARIS_TEST_KEY_5XX");
    s.retries = 2;
    let c = client(s);
    let out = c.judge("p", &story()).await;
    let e = out.outcome.unwrap_err();
    assert!(e.contains("gave up after 3 attempts") && e.contains("503"), "{e}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
    assert!(!e.contains(KEY));
    assert_eq!(c.totals().failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_times_out() {
    let (base, server) =
        serve(|_, _| Reply { status: 200, headers: vec![], body: "{}".into(), delay_ms: 2000 }).await;
    let mut s = settings(&base, "POLARIS_TEST_KEY_TIMEOUT");
    s.timeout_secs = 0.2;
    s.retries = 1;
    let out = client(s).judge("p", &story()).await;
    let e = out.outcome.unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answer_is_repaired_once() {
    let r = Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    let (base, server) = serve(move |n, _| {
        if n == 0 {
            Reply::ok(openai_body("Sure! The story is lovely, 9/10."))
        } else {
            Reply::ok(openai_body(&format!("```json\n{answer}\n```")))
        }
    })
    .await;
    let out = client(settings(&base, "POLARIS_TEST_KEY_REPAIR")).judge("p", &story()).await;
    assert!(out.outcome.is_ok(), "{:?}", out.outcome);
    assert!(out.repaired);
    // the repair request carries the bad reply and what was wrong with it
    let (_, body) = server.requests.lock().unwrap()[1].clone();
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs[msgs.len() - 2]["content"], "Sure! The story is lovely, 9/10.");
    assert!(msgs[msgs.len() - 1]["content"].as_str().unwrap().contains("no JSON object"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_twice_is_a_recorded_failure() {
    let r = Rubric::builtin().unwrap();
    let mut bad: Value = serde_json::from_str(&valid_answer(&r)).unwrap();
    let field = r.dimensions[0].score_field();
    bad[&field] = json!(99);
    let bad = bad.to_string();
    let (base, server) = serve(move |_, _| Reply::ok(openai_body(&bad))).await;
    let out = client(settings(&base, "POLARIS_TEST_KEY_RANGE")).judge("p", &story()).await;
    let e = out.outcome.unwrap_err();
    assert!(e.contains(&field) && e.contains("99") && e.contains("after the repair retry"), "{e}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_never_exceed_the_limit() {
    let r = Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    let (base, server) = serve(move |_, _| Reply { delay_ms: 100, ..Reply::ok(openai_body(&answer)) }).await;
    let mut s = settings(&base, "POLARIS_TEST_KEY_LIMIT");
    s.concurrency = 3;
    let c = Arc::new(client(s));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.judge("p", &format!("{} {i}", story())).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().outcome.is_ok());
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 20);
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_sends_no_request() {
    let r = Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    let (base, server) = serve(move |_, _| Reply::ok(openai_body(&answer))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&base, "POLARIS_TEST_KEY_CACHE");
    s.cache_dir = Some(dir.path().to_path_buf());
    let first = client(s.clone()).judge("p", &story()).await;
    // a fresh client (a new process, say) reads the same cache
    let second = client(s.clone()).judge("p", &story()).await;
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    assert!(!first.cached && second.cached);
    assert_eq!(first.outcome.unwrap(), second.outcome.unwrap());
    // a different story or setting is a different key
    let _ = client(s.clone()).judge("p", &format!("{} more", story())).await;
    let mut warmer = s.clone();
    warmer.temperature = 0.7;
    let _ = client(warmer).judge("p", &story()).await;
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_fails_before_any_request() {
    let (base, server) = serve(|_, _| Reply::ok("{}".into())).await;
    std::env::remove_var("POLARIS_TEST_KEY_ABSENT");
    let s = JudgeSettings {
        base_url: Some(base),
        api_key_env: Some("POLARIS_TEST_KEY_ABSENT".into()),
        ..JudgeSettings::default()
    };
    let e = JudgeClient::new(JudgeSpec::OpenAi("m".into()), Rubric::builtin().unwrap(), s)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("POLARIS_TEST_KEY_ABSENT"), "{e}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_appears_in_errors_or_dry_runs() {
    let (base, _server) =
        serve(|_, _| Reply { status: 401, headers: vec![], body: "bad key".into(), delay_ms: 0 }).await;
    let c = client(settings(&base, "POLARIS_TEST_KEY_401"));
    let e = c.judge("p", &story()).await.outcome.unwrap_err();
    assert!(e.contains("401") && !e.contains(KEY), "{e}");
    let dry = c.dry_run("p", "s").to_string();
    assert!(!dry.contains(KEY) && dry.contains("sk-t"), "{dry}");
    assert_eq!(format!("{:?}", polaris::reward::judge::JudgeSpec::OpenAi("m".into())), "OpenAi(\"m\")");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_requests_and_responses() {
    let r = Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    let (base, server) = serve(move |_, _| {
        Reply::ok(json!({
            "candidates": [{"content": {"parts": [{"text": "thinking...", "thought": true}, {"text": answer}]}}],
            "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 150, "thoughtsTokenCount": 50}
        }).to_string())
    })
    .await;
    std::env::set_var("POLARIS_TEST_GEMINI", KEY);
    let s = JudgeSettings {
        base_url: Some(base.trim_end_matches("/v1").to_string()),
        api_key_env: Some("POLARIS_TEST_GEMINI".into()),
        thinking_budget: Some(1024),
        ..JudgeSettings::default()
    };
    let c =
        JudgeClient::new(JudgeSpec::Gemini("gemini-flash".into()), Rubric::builtin().unwrap(), s).unwrap();
    let out = c.judge("p", &story()).await;
    assert!(out.outcome.is_ok(), "{:?}", out.outcome);
    assert_eq!((out.usage.prompt_tokens, out.usage.completion_tokens), (900, 200));
    let (headers, body) = server.requests.lock().unwrap()[0].clone();
    assert_eq!(headers["x-goog-api-key"], KEY);
    assert_eq!(body["generationConfig"]["responseMimeType"], "application/json");
    assert_eq!(body["generationConfig"]["thinkingConfig"]["thinkingBudget"], 1024);
    assert!(body["systemInstruction"]["parts"][0]["text"].as_str().unwrap().contains("ANSWER"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairwise_asks_in_both_orders() {
    use polaris::reward::pairwise::{judge_pair, PairwisePrompt};
    let prompt = PairwisePrompt::builtin().unwrap();
    let keys: Vec<String> = prompt.criteria.iter().map(|c| c.key.clone()).collect();
    // a judge that prefers the story about the owl wherever it is shown
    let (base, server) = serve(move |_, body| {
        let user = body["messages"][1]["content"].as_str().unwrap().to_string();
        let owl_first = user.find("owl").unwrap() < user.find("toad").unwrap();
        let w = if owl_first { "1" } else { "2" };
        let mut a = serde_json::Map::new();
        for k in &keys {
            a.insert(format!("{k}_winner"), json!(w));
            a.insert(format!("{k}_reason"), json!("because"));
        }
        a.insert("overall_winner".into(), json!(w));
        a.insert("margin".into(), json!(2));
        a.insert("overall_reason".into(), json!("because"));
        Reply::ok(openai_body(&serde_json::Value::Object(a).to_string()))
    })
    .await;
    let c = client(settings(&base, "POLARIS_TEST_KEY_PAIR"));
    let r = judge_pair(
        &c,
        &prompt,
        "Two animals. The story should be 200 words long.",
        "An owl story.",
        "A toad story.",
    )
    .await;
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    assert!(r.consistent);
    assert!((r.preference - 2.0 / 3.0).abs() < 1e-12, "{r:?}");
    let first = r.a_first.unwrap();
    assert_eq!(first.criteria.len(), prompt.criteria.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_batch_gives_a_failed_judgement_the_batch_mean() {
    use polaris::reward::breakdown::{score_batch, Candidate, SqSource, Weights};
    let r = Rubric::builtin().unwrap();
    let answer = valid_answer(&r);
    // the story that mentions "doomed" always gets a 503
    let (base, _server) = serve(move |_, body| {
        if body.to_string().contains("doomed") {
            Reply { status: 503, headers: vec![], body: "down".into(), delay_ms: 0 }
        } else {
            Reply::ok(openai_body(&answer))
        }
    })
    .await;
    let mut s = settings(&base, "POLARIS_TEST_KEY_BATCH");
    s.retries = 1;
    let c = Arc::new(client(s));
    let cand = |story: String| Candidate { prompt: "p".into(), story, response: None, reference: None };
    let out =
        score_batch(&c, &[cand(story()), cand(format!("{} doomed", story()))], Weights::training()).await;
    assert_eq!(out[0].story_quality_source, SqSource::Judge);
    assert_eq!(out[1].story_quality_source, SqSource::BatchMean);
    assert_eq!(out[1].story_quality, out[0].story_quality);
    assert!(out[1].judge_failure.as_deref().unwrap().contains("503"));
    // the composite was computed for both
    assert!(out.iter().all(|b| b.reward != 0.0 || b.composite == 0.0));
    assert!((out[0].reward - out[0].composite.clamp(-2.0, 2.0)).abs() < 1e-12);
}
