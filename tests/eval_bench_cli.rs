//! `eval bench` end to end: the binary against a loopback judge (online: judgements appended as
//! they arrive, a re-run asking nothing, resume after kill -9 with a torn last line) and a
//! loopback OpenAI Batch API (upload, create, poll, download; a batch failing half its
//! requests; the batch picked up again by its recorded id after kill -9; batch prices), and
//! `report bench` on the result.

#[path = "common/judge_server.rs"]
mod judge_server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use judge_server::{openai_body, serve_blocking, Reply, KEY};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_polaris-tui");
const KEY_ENV: &str = "POLARIS_BENCH_TEST_KEY";

/// An EQ-Bench Creative answer whose every criterion is `v` after inversion (score 5v).
fn creative_answer(v: u32) -> String {
    let mut a = String::from("[Analysis]\nA fair piece.\n\n[Scores]\n");
    for c in polaris::eval::bench::eq_creative::POSITIVE {
        a.push_str(&format!("{c}: {v}\n"));
    }
    for c in polaris::eval::bench::eq_creative::NEGATIVE {
        a.push_str(&format!("{c}: {}\n", 20 - v));
    }
    a
}

/// The answer for a request body: system A's stories earn 15 (75), B's 10 (50).
fn answer_for(body: &Value) -> String {
    let user = body.pointer("/messages/0/content").and_then(Value::as_str).unwrap_or("");
    creative_answer(if user.contains("Story by A") { 15 } else { 10 })
}

fn gens(dir: &Path) -> PathBuf {
    let mut lines = vec![];
    for sys in ["A", "B"] {
        for p in 0..3 {
            lines.push(
                json!({"prompt_uid": format!("p{p}"), "prompt": format!("Write about thing {p}."), "system": sys,
                       "story": format!("Story by {sys} about thing {p}. It rained.")})
                .to_string(),
            );
        }
    }
    let path = dir.join("gens.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn judge_toml(dir: &Path) -> PathBuf {
    let p = dir.join("judge.toml");
    std::fs::write(&p, "[judge]\nbackoff_secs = 0.01\ntimeout_secs = 10.0\n\n[judge.prices.judge-model]\ninput_per_million = 2.0\noutput_per_million = 8.0\n").unwrap();
    p
}

fn bench_cmd(base: &str, gens: &Path, out: &Path, toml: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "eval",
        "bench",
        "--task",
        "eq_bench_creative",
        "--judge",
        "openai:judge-model",
        "--no-cache",
        "--base-url",
        base,
    ])
    .args(["--api-key-env", KEY_ENV, "--resamples", "1000"])
    .arg("--gens")
    .arg(gens)
    .arg("--out")
    .arg(out)
    .arg("--judge-config")
    .arg(toml)
    .args(extra)
    .env(KEY_ENV, KEY);
    c
}

fn ok(o: Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "failed: {err}\n{}", String::from_utf8_lossy(&o.stdout));
    err
}

fn report(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("bench.json")).unwrap()).unwrap()
}

fn system<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["systems"].as_array().unwrap().iter().find(|s| s["system"] == name).unwrap()
}

fn mean(r: &Value, sys: &str) -> f64 {
    system(r, sys)["values"][0]["mean"].as_f64().unwrap()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
fn online_judging_is_appended_resumed_and_tabled() {
    let dir = tempfile::tempdir().unwrap();
    let (gens, toml, out) = (gens(dir.path()), judge_toml(dir.path()), dir.path().join("out"));
    let (base, server) = serve_blocking(|_, body| Reply::ok(openai_body(&answer_for(body))));
    let err = ok(bench_cmd(&base, &gens, &out, &toml, &[]).output().unwrap());
    assert_eq!(server.hits(), 6, "{err}");
    // a plain-text task asks for no response format
    assert!(server.body(0).get("response_format").is_none());
    let r = report(&out);
    assert_eq!((mean(&r, "A"), mean(&r, "B")), (75.0, 50.0));
    assert_eq!(system(&r, "A")["scored"], json!(3));
    // each judgement holds the answer and the release's record (scores, analysis)
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("judgements.jsonl")).unwrap().lines().next().unwrap(),
    )
    .unwrap();
    assert_eq!(first["scores"]["analysis"], json!("A fair piece."));
    assert!(first["scores"]["eqbench_creative_score"].is_number());
    // online prices: 1000 in, 200 out at $2 / $8 per million = $0.0036 a request (tolerance: float sums)
    let cost = system(&r, "A")["usage"]["cost"].as_f64().unwrap();
    assert!((cost - 3.0 * 0.0036).abs() < 1e-12, "{cost}");
    // a re-run asks nothing
    ok(bench_cmd(&base, &gens, &out, &toml, &[]).output().unwrap());
    assert_eq!(server.hits(), 6);

    // the paper table, with every file
    let table = dir.path().join("table");
    let o = Command::new(BIN).args(["report", "bench"]).arg(&out).arg("--out").arg(&table).output().unwrap();
    let md = String::from_utf8_lossy(&o.stdout).into_owned();
    ok(o);
    assert!(md.contains("| system | EQ-Bench Creative |"), "{md}");
    assert!(md.contains("| A | 75.00 ["), "{md}");
    for ext in ["md", "json", "png", "svg"] {
        assert!(table.join(format!("bench_table.{ext}")).is_file(), "bench_table.{ext}");
    }
    let t: Value =
        serde_json::from_str(&std::fs::read_to_string(table.join("bench_table.json")).unwrap()).unwrap();
    assert_eq!(t["rows"][1]["cells"][0]["mean"], json!(50.0));
}

#[test]
fn a_run_killed_mid_judging_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (gens, toml, out) = (gens(dir.path()), judge_toml(dir.path()), dir.path().join("out"));
    // the first two answers come at once, the rest never (until the kill)
    let (slow, _) = serve_blocking(|n, body| {
        let mut r = Reply::ok(openai_body(&answer_for(body)));
        if n >= 2 {
            r.delay_ms = 120_000;
        }
        r
    });
    let mut child = bench_cmd(&slow, &gens, &out, &toml, &["--concurrency", "1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while lines(&out.join("judgements.jsonl")) < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "no judgements written");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // a record torn by a kill mid-write
    let path = out.join("judgements.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"task\":\"eq_bench_creative\",\"sys");
    std::fs::write(&path, text).unwrap();

    let (fast, server) = serve_blocking(|_, body| Reply::ok(openai_body(&answer_for(body))));
    let err = ok(bench_cmd(&fast, &gens, &out, &toml, &[]).output().unwrap());
    assert!(err.contains("cut short"), "{err}");
    assert_eq!(server.hits(), 4, "only what was not acknowledged is asked again: {err}");
    assert_eq!(lines(&path), 6);
    let r = report(&out);
    assert_eq!((mean(&r, "A"), mean(&r, "B")), (75.0, 50.0));
}

/// A loopback OpenAI Batch API.
#[derive(Default)]
struct Batches {
    files: Mutex<HashMap<String, String>>,
    /// batch id -> (input file id, polls)
    batches: Mutex<HashMap<String, (String, usize)>>,
    uploads: AtomicUsize,
    creates: AtomicUsize,
    /// Fail every second request of a batch (half as an error object, half as HTTP 500).
    fail_half: AtomicBool,
    /// Keep every batch in progress.
    hold: AtomicBool,
}

async fn upload(State(s): State<Arc<Batches>>, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
    let ct = headers.get("content-type").unwrap().to_str().unwrap().to_string();
    let boundary = ct.split("boundary=").nth(1).unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("name=\"purpose\"\r\n\r\nbatch\r\n"), "purpose batch");
    let start = text.find("filename=\"requests.jsonl\"").unwrap();
    let content_start = start + text[start..].find("\r\n\r\n").unwrap() + 4;
    let end = text.find(&format!("\r\n--{boundary}--")).unwrap();
    let n = s.uploads.fetch_add(1, Ordering::SeqCst);
    let id = format!("file-in-{n}");
    s.files.lock().unwrap().insert(id.clone(), text[content_start..end].to_string());
    axum::Json(json!({"id": id, "object": "file", "purpose": "batch"}))
}

fn status_of(s: &Batches, id: &str) -> Value {
    let mut batches = s.batches.lock().unwrap();
    let (input, polls) = batches.get_mut(id).unwrap();
    *polls += 1;
    let lines: Vec<Value> =
        s.files.lock().unwrap()[input.as_str()].lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    if s.hold.load(Ordering::SeqCst) || *polls < 2 {
        return json!({"id": id, "status": "in_progress", "request_counts": {"total": lines.len(), "completed": 0, "failed": 0}});
    }
    let (mut output, mut errors) = (vec![], vec![]);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!((l["method"].as_str(), l["url"].as_str()), (Some("POST"), Some("/v1/chat/completions")));
        assert_eq!(l["body"]["model"], json!("judge-model"));
        let cid = l["custom_id"].clone();
        if s.fail_half.load(Ordering::SeqCst) && i % 2 == 1 {
            if i % 4 == 1 {
                errors.push(json!({"id": format!("r{i}"), "custom_id": cid, "response": null, "error": {"code": "server_error", "message": "the model is overloaded"}}));
            } else {
                errors.push(json!({"id": format!("r{i}"), "custom_id": cid, "response": {"status_code": 500, "body": {"error": {"message": "internal"}}}, "error": null}));
            }
        } else {
            let body: Value = serde_json::from_str(&openai_body(&answer_for(&l["body"]))).unwrap();
            output.push(json!({"id": format!("r{i}"), "custom_id": cid, "response": {"status_code": 200, "body": body}, "error": null}));
        }
    }
    let mut files = s.files.lock().unwrap();
    let join = |v: &[Value]| v.iter().map(Value::to_string).collect::<Vec<_>>().join("\n") + "\n";
    files.insert(format!("{id}-out"), join(&output));
    files.insert(format!("{id}-err"), join(&errors));
    json!({"id": id, "status": "completed", "output_file_id": format!("{id}-out"),
           "error_file_id": if errors.is_empty() { Value::Null } else { json!(format!("{id}-err")) },
           "request_counts": {"total": lines.len(), "completed": output.len(), "failed": errors.len()}})
}

async fn create(State(s): State<Arc<Batches>>, body: Bytes) -> axum::Json<Value> {
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["endpoint"].as_str(), v["completion_window"].as_str()),
        (Some("/v1/chat/completions"), Some("24h"))
    );
    let n = s.creates.fetch_add(1, Ordering::SeqCst);
    let id = format!("batch-{n}");
    s.batches.lock().unwrap().insert(id.clone(), (v["input_file_id"].as_str().unwrap().to_string(), 0));
    axum::Json(
        json!({"id": id, "status": "validating", "request_counts": {"total": 0, "completed": 0, "failed": 0}}),
    )
}

async fn batch(State(s): State<Arc<Batches>>, UrlPath(id): UrlPath<String>) -> axum::Json<Value> {
    axum::Json(status_of(&s, &id))
}

async fn content(State(s): State<Arc<Batches>>, UrlPath(id): UrlPath<String>) -> String {
    s.files.lock().unwrap()[&id].clone()
}

fn serve_batches() -> (String, Arc<Batches>) {
    let state = Arc::new(Batches::default());
    let app = axum::Router::new()
        .route("/v1/files", post(upload))
        .route("/v1/batches", post(create))
        .route("/v1/batches/{id}", get(batch))
        .route("/v1/files/{id}/content", get(content))
        .with_state(state.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap()
        })
    });
    (format!("http://{}/v1", rx.recv().unwrap()), state)
}

fn costs(r: &Value) -> f64 {
    r["systems"].as_array().unwrap().iter().map(|s| s["usage"]["cost"].as_f64().unwrap()).sum()
}

#[test]
fn a_batch_failing_half_its_requests_is_completed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let (gens, toml, out) = (gens(dir.path()), judge_toml(dir.path()), dir.path().join("out"));
    let (base, server) = serve_batches();
    server.fail_half.store(true, Ordering::SeqCst);
    let batch = ["--batch", "--poll-secs", "0.01"];
    let err = ok(bench_cmd(&base, &gens, &out, &toml, &batch).output().unwrap());
    assert_eq!((server.uploads.load(Ordering::SeqCst), server.creates.load(Ordering::SeqCst)), (1, 1));
    let r = report(&out);
    let failed: u64 = r["systems"].as_array().unwrap().iter().map(|s| s["failed"].as_u64().unwrap()).sum();
    let scored: u64 = r["systems"].as_array().unwrap().iter().map(|s| s["scored"].as_u64().unwrap()).sum();
    assert_eq!((scored, failed), (3, 3), "{err}");
    assert_eq!(r["batch"], json!(true));
    let text = std::fs::read_to_string(out.join("judgements.jsonl")).unwrap();
    assert!(text.contains("the model is overloaded") && text.contains("HTTP 500"), "{text}");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("batch.json")).unwrap()).unwrap();
    assert_eq!((state["batch_id"].as_str(), state["collected"].as_bool()), (Some("batch-0"), Some(true)));
    // batch prices: half of $0.0036 per answered request (tolerance: float sums)
    assert!((costs(&r) - 3.0 * 0.0018).abs() < 1e-12, "{}", costs(&r));

    // the next run sends only the three that failed, in a new batch
    server.fail_half.store(false, Ordering::SeqCst);
    ok(bench_cmd(&base, &gens, &out, &toml, &batch).output().unwrap());
    assert_eq!(server.creates.load(Ordering::SeqCst), 2);
    assert_eq!(server.files.lock().unwrap()["file-in-1"].lines().count(), 3);
    let r = report(&out);
    assert_eq!((mean(&r, "A"), mean(&r, "B")), (75.0, 50.0));
    assert!((costs(&r) - 6.0 * 0.0018).abs() < 1e-12, "{}", costs(&r));
}

#[test]
fn a_run_killed_while_its_batch_runs_picks_the_batch_up_again() {
    let dir = tempfile::tempdir().unwrap();
    let (gens, toml, out) = (gens(dir.path()), judge_toml(dir.path()), dir.path().join("out"));
    let (base, server) = serve_batches();
    server.hold.store(true, Ordering::SeqCst);
    let batch = ["--batch", "--poll-secs", "0.02"];
    let mut child =
        bench_cmd(&base, &gens, &out, &toml, &batch).stderr(std::process::Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while !out.join("batch.json").is_file() {
        assert!(start.elapsed() < Duration::from_secs(60), "no batch recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap(); // SIGKILL while polling
    child.wait().unwrap();
    server.hold.store(false, Ordering::SeqCst);
    let err = ok(bench_cmd(&base, &gens, &out, &toml, &batch).output().unwrap());
    assert!(err.contains("resuming batch batch-0"), "{err}");
    // nothing uploaded or created again
    assert_eq!((server.uploads.load(Ordering::SeqCst), server.creates.load(Ordering::SeqCst)), (1, 1));
    let r = report(&out);
    assert_eq!((mean(&r, "A"), mean(&r, "B")), (75.0, 50.0));
    assert_eq!(lines(&out.join("judgements.jsonl")), 6);
}
