//! `prefs curate` against a loopback server that plays the positive, negative, judge and
//! reflect agents with scripted answers (agreeing, disagreeing, position-biased, failing
//! with HTTP 500, malformed JSON, citing a principle that does not exist): only pairs every
//! agent agrees on are kept, every agent's output is recorded, failures are asked again on a
//! re-run and nothing else is, and a killed run resumes to the same pairs.

#[path = "common/judge_server.rs"]
mod judge_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use judge_server::*;
use polaris::prefs::curate::agents::Standard;
use polaris::prefs::curate::store::{AgentRecord, Decision, Role, Step};
use polaris::prefs::curate::summary::summarise;
use polaris::prefs::curate::{self, Agents, Curation, Outcome};
use polaris::prefs::read_pairs;
use polaris::reward::judge::{JudgeClient, JudgeSettings, JudgeSpec, Price};
use polaris::reward::pairwise::PairwisePrompt;
use polaris::reward::principles::Principles;
use polaris::reward::Rubric;
use polaris::train::data::Example;
use serde_json::{json, Value};

const PRINCIPLES: &str = r#"
[[principle]]
name = "local consistency"
rule = "Names, facts and places stay true from one paragraph to the next."
violation = "A character's name or the place changes without cause."

[[principle]]
name = "no stylistic overloading"
rule = "One image at a time."
violation = "Stacked metaphors in one sentence."
"#;

fn prompt(i: usize) -> String {
    format!("Write a story titled \"Lighthouse number {i}\". Premise: a keeper. The story should be 300 words long.")
}

fn human(i: usize) -> String {
    format!("Human story {i}: the keeper of lighthouse {i} climbs the stairs at dusk. ").repeat(4)
}

fn written(i: usize) -> String {
    format!("Written story {i}: a keeper of lighthouse {i} writes a letter to the sea. ").repeat(4)
}

fn flawed(i: usize) -> String {
    format!("FLAWED story {i}: the keeper, a lantern of grief, a coin of sorrow, was called Anna, then Bob. ")
        .repeat(4)
}

fn examples(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| Example {
            uid: format!("p{i}"),
            prompt: prompt(i),
            target_word_count: 300,
            story: Some(human(i)),
            reasoning: None,
        })
        .collect()
}

/// Which prompt a request is about: the `number N` of its prompt.
fn which(user: &str) -> usize {
    let at = user.find("Lighthouse number ").expect("a prompt in the request") + "Lighthouse number ".len();
    user[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

fn content(body: &Value, i: usize) -> &str {
    body["messages"][i]["content"].as_str().unwrap_or_default()
}

/// The pairwise answer naming `winner` ("1", "2") overall and on every criterion.
fn verdict(winner: &str) -> String {
    let mut v = serde_json::Map::new();
    for c in PairwisePrompt::builtin().unwrap().criteria {
        v.insert(format!("{}_winner", c.key), json!(winner));
        v.insert(format!("{}_reason", c.key), json!("because"));
    }
    v.insert("overall_winner".into(), json!(winner));
    v.insert("margin".into(), json!(2));
    v.insert("overall_reason".into(), json!(format!("story {winner} holds together")));
    Value::Object(v).to_string()
}

/// The scripted agents. Prompt 0: all agree (the positive picks its own human story). 1: the
/// positive writes a story; the reflector disagrees. 2: the judge prefers whatever is shown
/// first (position bias). 3: the positive agent's server fails (HTTP 500). 4: the negative
/// agent answers malformed JSON, then a valid answer to the repair request. 5: the reflector
/// cites a principle that does not exist, twice. With `healed`, every agent answers well.
fn agents(healed: Arc<AtomicBool>) -> impl Fn(usize, &Value) -> Reply + Send + Sync + 'static {
    move |_, body| {
        let (system, user) = (content(body, 0), content(body, 1));
        let repair = body["messages"].as_array().map_or(0, Vec::len) > 2;
        let ok = healed.load(Ordering::SeqCst);
        let i = which(user);
        let answer = if system.starts_with("You are the positive agent") {
            if i == 3 && !ok {
                return Reply::status(500, "{\"error\": \"overloaded\"}");
            }
            if i == 1 {
                json!({"action": "write", "pick": 0, "story": written(i), "reason": "none fits"}).to_string()
            } else {
                // the prompt's own human story is retrieved first
                assert!(user.contains(&format!("[1] written for: {}", prompt(i))), "{user}");
                json!({"action": "pick", "pick": 1, "story": "", "reason": "it answers the prompt"})
                    .to_string()
            }
        } else if system.starts_with("You are the negative agent") {
            if i == 4 && !repair && !ok {
                "{\"flaws\": [\"names\"], \"story\": ".to_string()
            } else {
                json!({"flaws": ["the name changes", "stacked metaphors"], "story": flawed(i)}).to_string()
            }
        } else if system.starts_with("You are the reflect agent") {
            let confirm = i != 1 || ok;
            let cite = if i == 5 && !ok { "a made-up rule" } else { "local consistency" };
            json!({"confirm": confirm, "broken_by_preferred": [], "broken_by_other": [cite], "reason": format!("prompt {i}")})
                .to_string()
        } else {
            // the judge: story 1 wins under position bias, else the unflawed story wins
            let first = &user[user.find("STORY 1:").unwrap()..user.find("STORY 2:").unwrap()];
            let winner = if i == 2 && !ok || !first.contains("FLAWED") { "1" } else { "2" };
            verdict(winner)
        };
        Reply::ok(openai_body(&answer))
    }
}

fn settings(base: &str) -> JudgeSettings {
    let mut s = judge_server::settings(base, "POLARIS_TEST_KEY_CURATE");
    s.retries = 1;
    s.concurrency = 1;
    s.prices.insert("agent-model".into(), Price { input_per_million: 0.4, output_per_million: 1.6 });
    s
}

fn curation(base: &str, cache: Option<PathBuf>) -> Curation {
    let mut s = settings(base);
    s.cache_dir = cache;
    let client = Arc::new(
        JudgeClient::new(JudgeSpec::OpenAi("agent-model".into()), Rubric::builtin().unwrap(), s).unwrap(),
    );
    let pairwise = PairwisePrompt::builtin().unwrap();
    let principles = Principles::from_toml_str(PRINCIPLES, "test").unwrap();
    Curation {
        standard: Standard::new(Some(&principles), &pairwise),
        agents: Agents {
            positive: client.clone(),
            negative: client.clone(),
            judge: client.clone(),
            reflect: client,
        },
        pairwise,
        retrieve: 2,
        heldout: 0.5,
    }
}

fn records(dir: &Path) -> Vec<AgentRecord> {
    std::fs::read_to_string(dir.join("agents.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn decided(recs: &[AgentRecord], uid: &str) -> Option<Decision> {
    recs.iter().rev().find_map(|r| match (&r.step, r.uid == uid) {
        (Step::Decided { decision }, true) => Some(decision.clone()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_pairs_every_agent_agrees_on_are_kept_and_a_rerun_asks_only_what_failed() {
    let healed = Arc::new(AtomicBool::new(false));
    let (base, server) = serve(agents(healed.clone())).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("curated");
    let data = examples(6);
    let mut seen = vec![];
    let first =
        curate::run(curation(&base, None), &data, &out, None, |n| assert_eq!(n, 6), |o| seen.push(o.clone()))
            .await
            .unwrap();
    assert_eq!(first.skipped, 0);
    let recs = records(&out);
    assert_eq!(decided(&recs, "p0"), Some(Decision::Kept));
    assert!(matches!(decided(&recs, "p1"), Some(Decision::Rejected { by: Role::Reflect, .. })));
    match decided(&recs, "p2") {
        Some(Decision::Rejected { by: Role::Judge, why }) => {
            assert_eq!(why, "positive shown first: the positive; positive shown second: the negative")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(decided(&recs, "p3"), None, "the positive agent failed: open");
    assert_eq!(decided(&recs, "p4"), Some(Decision::Kept), "repaired");
    assert_eq!(decided(&recs, "p5"), None, "the reflector cited no principle of the file: open");
    assert_eq!(seen.iter().filter(|o| matches!(o, Outcome::Failed(_))).count(), 2);
    assert!(
        seen.contains(&Outcome::Failed(Role::Positive)) && seen.contains(&Outcome::Failed(Role::Reflect))
    );

    // every agent's output is recorded: retrieval, the stories, the verdicts, the reflection
    let p4_negative = recs.iter().find(|r| r.uid == "p4" && matches!(r.step, Step::Negative { .. })).unwrap();
    assert!(p4_negative.repaired && !p4_negative.failed());
    let retrieved = recs.iter().find_map(|r| match &r.step {
        Step::Retrieve { retrieved } if r.uid == "p0" => Some(retrieved.clone()),
        _ => None,
    });
    let retrieved = retrieved.unwrap();
    assert_eq!(retrieved.len(), 2);
    assert_eq!(retrieved[0].uid, "p0");
    assert!((retrieved[0].similarity - 1.0).abs() < 1e-12 && retrieved[1].similarity < 1.0);
    let p5_reflect = recs.iter().find(|r| r.uid == "p5" && matches!(r.step, Step::Reflect { .. })).unwrap();
    match &p5_reflect.step {
        Step::Reflect { outcome: Err(e) } => {
            assert!(e.contains("a made-up rule") || e.contains("enum"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let p3_positive = recs.iter().find(|r| r.uid == "p3" && matches!(r.step, Step::Positive { .. })).unwrap();
    match &p3_positive.step {
        Step::Positive { outcome: Err(e) } => assert!(e.contains("HTTP 500"), "{e}"),
        other => panic!("{other:?}"),
    }

    // the kept pairs, in the Pair format: the positive's story chosen, the negative's rejected
    let pairs = read_pairs(&first.pairs_path).unwrap();
    assert_eq!(pairs.iter().map(|p| p.uid.as_str()).collect::<Vec<_>>(), vec!["p0", "p4"]);
    assert_eq!(
        (pairs[0].chosen.as_str(), pairs[0].rejected.as_str()),
        (human(0).as_str(), flawed(0).as_str())
    );
    assert!(pairs.iter().all(|p| p.source == "curate" && p.weight == 1.0));
    assert_eq!(pairs[1].split, polaris::prefs::Pair::split_for("p4", 0.5));

    // the summary: each agent's steps, failures, rejections and cost. Every request is
    // answered with 1000 prompt and 200 completion tokens at $0.4 / $1.6 per million:
    // $0.00072 a request (float sums of a few terms: 1e-12).
    let uids: Vec<String> = data.iter().map(|e| e.uid.clone()).collect();
    let label = "openai:agent-model".to_string();
    let specs: Vec<(Role, String)> = Role::ALL.iter().map(|&r| (r, label.clone())).collect();
    let s = summarise(&first.existing.records, &uids, &specs);
    assert_eq!((s.prompts, s.kept, s.rejected, s.open), (6, 2, 2, 2));
    let line = |r: &str| s.agents.iter().find(|a| a.role == r).unwrap().clone();
    assert_eq!((line("positive").steps, line("positive").failed, line("positive").open_failed), (6, 1, 1));
    assert_eq!((line("judge").steps, line("judge").rejected), (5, 1));
    assert_eq!((line("reflect").steps, line("reflect").rejected, line("reflect").open_failed), (4, 1, 1));
    let answered = server.hits() as f64 - 2.0; // the two 500s carry no usage
    assert!((s.usage.cost - answered * 0.00072).abs() < 1e-12, "{} for {answered}", s.usage.cost);

    // a re-run with the agents healed asks only the open prompts' missing steps
    healed.store(true, Ordering::SeqCst);
    let before = server.hits();
    let again =
        curate::run(curation(&base, None), &data, &out, None, |n| assert_eq!(n, 2), |_| {}).await.unwrap();
    assert_eq!(again.skipped, 4);
    // p3: positive, negative, judge (2 orders), reflect; p5: reflect only
    assert_eq!(server.hits() - before, 6);
    let recs = records(&out);
    assert_eq!(decided(&recs, "p3"), Some(Decision::Kept));
    assert_eq!(decided(&recs, "p5"), Some(Decision::Kept));
    let pairs = read_pairs(&again.pairs_path).unwrap();
    assert_eq!(pairs.iter().map(|p| p.uid.as_str()).collect::<Vec<_>>(), vec!["p0", "p4", "p3", "p5"]);
    // a third run has nothing to ask, and rebuilds the same pairs file (dataset order)
    let before = server.hits();
    let third =
        curate::run(curation(&base, None), &data, &out, None, |n| assert_eq!(n, 0), |_| {}).await.unwrap();
    assert_eq!((server.hits(), third.skipped), (before, 6));
    let rebuilt = read_pairs(&third.pairs_path).unwrap();
    assert_eq!(rebuilt.iter().map(|p| p.uid.as_str()).collect::<Vec<_>>(), vec!["p0", "p3", "p4", "p5"]);
    assert!(rebuilt.iter().all(|p| p.split == polaris::prefs::Pair::split_for(&p.uid, 0.5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_prompt_under_a_curated_uid_is_refused() {
    let (base, _server) = serve(agents(Arc::new(AtomicBool::new(true)))).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("curated");
    curate::run(curation(&base, None), &examples(1), &out, None, |_| {}, |_| {}).await.unwrap();
    let mut changed = examples(1);
    changed[0].prompt = prompt(7);
    let err = curate::run(curation(&base, None), &changed, &out, None, |_| {}, |_| {}).await.err().unwrap();
    assert!(err.to_string().contains("uid `p0` was curated for another prompt text"), "{err}");
}

// ---- the command ----

fn polaris<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args(args)
        .env("POLARIS_TEST_KEY_CURATE", KEY)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A dataset file, a [judge] config with fast retries, and the principles, in `dir`.
fn inputs(dir: &Path, n: usize) -> (String, String) {
    std::fs::write(dir.join("principles.toml"), PRINCIPLES).unwrap();
    let data = dir.join("data.jsonl");
    let lines: Vec<String> = examples(n).iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let config = dir.join("judge.toml");
    std::fs::write(
        &config,
        "[judge]\nretries = 1\nbackoff_secs = 0.01\ntimeout_secs = 10\nconcurrency = 1\n",
    )
    .unwrap();
    (data.display().to_string(), config.display().to_string())
}

fn curate_args(data: &str, config: &str, base: &str, out: &str) -> Vec<String> {
    // the principles file lies beside the config
    let principles = config.replace("judge.toml", "principles.toml");
    [
        "prefs",
        "curate",
        "--data",
        data,
        "--out",
        out,
        "--agent",
        "openai:agent-model",
        "--config",
        config,
        "--base-url",
        base,
        "--api-key-env",
        "POLARIS_TEST_KEY_CURATE",
        "--retrieve",
        "2",
        "--principles",
        &principles,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn the_command_prints_the_summary_and_refuses_what_it_cannot_do() {
    let (base, _server) = serve_blocking(agents(Arc::new(AtomicBool::new(false))));
    let tmp = tempfile::tempdir().unwrap();
    let (data, config) = inputs(tmp.path(), 6);
    let out = tmp.path().join("out").display().to_string();
    let run = polaris(&curate_args(&data, &config, &base, &out));
    assert!(run.status.success(), "{}", stderr(&run));
    let table = String::from_utf8_lossy(&run.stdout);
    assert!(table.starts_with("prompts 6: kept 2 (33.3%), rejected 2, open 2"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("positive") && l.contains("openai:agent-model")), "{table}");
    assert!(stderr(&run).contains("worked on 6 now: kept 2, rejected 2, failed 2"), "{}", stderr(&run));
    let summary: Value =
        serde_json::from_slice(&std::fs::read(Path::new(&out).join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["kept"], 2);

    // other agents on the same folder: refused, naming what changed
    let mut other = curate_args(&data, &config, &base, &out);
    other.extend(["--judge", "offline"].map(String::from));
    let refused = polaris(&other);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--judge was openai:agent-model, now offline"), "{}", stderr(&refused));

    // an agent that must write cannot be the offline judge; an agent with no model is named
    let fresh = tmp.path().join("fresh").display().to_string();
    let offline = polaris(&["prefs", "curate", "--data", &data, "--out", &fresh, "--agent", "offline"]);
    assert!(
        stderr(&offline).contains("--positive offline: the offline judge measures stories"),
        "{}",
        stderr(&offline)
    );
    let none = polaris(&["prefs", "curate", "--data", &data, "--out", &fresh, "--positive", "openai:m"]);
    assert!(stderr(&none).contains("no model for the negative agent"), "{}", stderr(&none));
    assert!(!Path::new(&fresh).join("agents.jsonl").exists());
}

#[test]
fn a_killed_curation_resumes_to_the_pairs_of_an_uninterrupted_one() {
    // every agent answers well, slowly enough to be killed mid-run
    let healed = Arc::new(AtomicBool::new(true));
    let script = agents(healed);
    let (base, _server) = serve_blocking(move |n, body| Reply { delay_ms: 40, ..script(n, body) });
    let tmp = tempfile::tempdir().unwrap();
    let (data, config) = inputs(tmp.path(), 6);
    let whole = tmp.path().join("whole").display().to_string();
    let run = polaris(&curate_args(&data, &config, &base, &whole));
    assert!(run.status.success(), "{}", stderr(&run));

    let out = tmp.path().join("killed");
    let out_s = out.display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args(curate_args(&data, &config, &base, &out_s))
        .args(["--no-cache"])
        .env("POLARIS_TEST_KEY_CURATE", KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // kill -9 once a few steps are on disk (the third prompt is under way)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let lines = std::fs::read_to_string(out.join("agents.jsonl")).map(|t| t.lines().count()).unwrap_or(0);
        if lines >= 14 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run never got going");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // and a write torn by the kill: a partial last line
    let agents_path = out.join("agents.jsonl");
    let before = std::fs::read_to_string(&agents_path).unwrap();
    let whole_lines = before.lines().count();
    std::fs::write(&agents_path, format!("{before}{{\"uid\":\"p5\",\"prom")).unwrap();
    let done_before = before.matches("\"step\":\"decided\"").count();
    assert!(done_before < 6, "killed after the end: {done_before} decided");

    let resumed = polaris(&curate_args(&data, &config, &base, &out_s));
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains(&format!("agents.jsonl:{}: a record cut off mid-write", whole_lines + 1))
    );
    assert!(
        stderr(&resumed).contains(&format!("{done_before} prompts decided before (skipped)")),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("pairs.jsonl")).unwrap(),
        std::fs::read_to_string(Path::new(&whole).join("pairs.jsonl")).unwrap()
    );
    // nothing that succeeded was asked twice: one usable record per prompt and step
    let recs = records(&out);
    for uid in (0..6).map(|i| format!("p{i}")) {
        for step in ["positive", "negative", "judge", "reflect", "decided"] {
            let n = recs
                .iter()
                .filter(|r| r.uid == uid && !r.failed())
                .filter(|r| serde_json::to_value(r).unwrap()["step"] == step)
                .count();
            assert_eq!(n, 1, "{uid} {step}");
        }
    }
}
