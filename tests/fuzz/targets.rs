//! One target per parser that reads what a person or a server wrote: its seed inputs and
//! what must hold for any input. A panic is always a finding; `Err(why)` is a broken
//! invariant (an error that names no file, an accepted value its own writer cannot write
//! back, a Retry-After past the cap, ...). `Ok(true)` means the input was accepted.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use polaris::reward::answer::parse_answer;
use polaris::reward::extract::{candidates, extract_json, MAX_CANDIDATES};
use polaris::reward::judge::retry::{backoff_with, parse_retry_after, MAX_RETRY_AFTER};
use polaris::reward::judge::JudgeSettings;
use polaris::reward::Rubric;
use polaris::run::event::{Event, EventKind, Level};
use polaris::train::config::{TrainConfig, INIT_TEMPLATE};

pub type Verdict = Result<bool, String>;

pub struct Target {
    pub name: &'static str,
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// The input, and a scratch folder for parsers that read files.
    pub run: fn(&[u8], &Path) -> Verdict,
}

pub const TARGETS: &[Target] = &[
    Target { name: "dataset_records", seeds: dataset_seeds, run: dataset },
    Target { name: "judge_answers", seeds: answer_seeds, run: answers },
    Target { name: "events", seeds: event_seeds, run: events },
    Target { name: "config", seeds: config_seeds, run: config },
    Target { name: "annotate_inputs", seeds: annotate_seeds, run: annotate },
    Target { name: "retry_after", seeds: retry_after_seeds, run: retry_after },
    Target { name: "principles", seeds: principles_seeds, run: principles },
    Target { name: "preference_pairs", seeds: pairs_seeds, run: pairs },
];

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lines(text: &str, n: usize) -> Vec<Vec<u8>> {
    text.lines().take(n).map(|l| format!("{l}\n").into_bytes()).collect()
}

/// The input written to `dir/name`, the path returned.
fn file(dir: &Path, name: &str, input: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, input).expect("scratch file");
    path
}

/// An error must say which file it is about.
fn names_file(e: &anyhow::Error, path: &Path) -> Verdict {
    let text = format!("{e:#}");
    let name = path.file_name().unwrap().to_string_lossy();
    if text.contains(&*name) {
        Ok(false)
    } else {
        Err(format!("the error names no file: {text}"))
    }
}

// --- dataset records (train/data.rs) -------------------------------------------------

fn dataset_seeds() -> Vec<Vec<u8>> {
    let demo = std::fs::read_to_string(manifest().join("assets/demo/prompts.jsonl")).unwrap();
    let mut seeds = lines(&demo, 3);
    seeds.push(demo.lines().take(2).collect::<Vec<_>>().join("\n").into_bytes());
    seeds.push(
        br#"{"uid": "a", "prompt": "A tale. The story should be 300 words long.", "target_word_count": 300}"#
            .to_vec(),
    );
    seeds.push(
        br#"{"uid": 1, "prompt": null, "target_word_count": -0, "story": 12.0, "reasoning": []}"#.to_vec(),
    );
    seeds
}

fn dataset(input: &[u8], dir: &Path) -> Verdict {
    let path = file(dir, "data.jsonl", input);
    match polaris::train::data::load(&path) {
        Ok(examples) => {
            for e in &examples {
                if e.uid.trim().is_empty() || e.target_word_count == 0 {
                    return Err(format!("accepted a record with an empty uid or no target: {e:?}"));
                }
            }
            Ok(true)
        }
        Err(e) => names_file(&e, &path),
    }
}

// --- judge answers (reward/extract.rs, reward/answer.rs) -------------------------------

fn rubrics() -> &'static [Rubric] {
    static R: OnceLock<Vec<Rubric>> = OnceLock::new();
    R.get_or_init(|| {
        let pol = manifest().join("../shared/data/polaris");
        let polaris = Rubric::from_prompt_and_schema(
            &pol.join("story_quality_seq.txt"),
            &pol.join("story_quality_seq.schema.json"),
        );
        std::iter::once(Rubric::builtin().unwrap()).chain(polaris.ok()).collect()
    })
}

fn answer_seeds() -> Vec<Vec<u8>> {
    let story = "The keeper climbed the stairs and found the letter. ".repeat(40);
    let mut seeds = Vec::new();
    for r in rubrics() {
        let a = polaris::reward::judge::offline::answer(r, "A keeper finds a letter.", &story).to_string();
        seeds.push(a.clone().into_bytes());
        seeds.push(format!("Here is my evaluation:\n```json\n{a}\n```\nThanks.").into_bytes());
        seeds.push(a.as_bytes()[..a.len() / 2].to_vec()); // cut at max_tokens
    }
    seeds.push(b"{\"a\": {\"b\": [1, 2.0, -0]}} trailing {".to_vec());
    seeds
}

fn answers(input: &[u8], _: &Path) -> Verdict {
    let text = String::from_utf8_lossy(input);
    if candidates(&text).len() > MAX_CANDIDATES {
        return Err("more candidates than the bound".into());
    }
    if extract_json(&text).is_some_and(|v| !v.is_object()) {
        return Err("extracted something other than an object".into());
    }
    let mut accepted = false;
    for r in rubrics() {
        if let Ok((j, _)) = parse_answer(r, &text) {
            let bonus = j.bonus_applied - j.penalty_applied;
            if j.overall != j.positive_total - j.negative_total + bonus || !j.story_quality.is_finite() {
                return Err(format!("overall {} does not add up: {j:?}", j.overall));
            }
            if let Some(d) = j.dimensions.iter().find(|d| !(0..=d.max).contains(&d.score)) {
                return Err(format!("accepted {} = {} outside 0..={}", d.key, d.score, d.max));
            }
            accepted = true;
        }
    }
    Ok(accepted)
}

// --- events (run/log.rs) ------------------------------------------------------------------

fn event_seeds() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut log = polaris::run::log::EventLog::open(&path).unwrap();
    let config = serde_json::to_value(TrainConfig::default()).unwrap();
    log.append(EventKind::Started { config, resumed_from_step: None }).unwrap();
    log.append(EventKind::Step(Box::default())).unwrap();
    log.append(EventKind::Message { level: Level::Warn, text: "judge trouble".into() }).unwrap();
    log.append(EventKind::Checkpoint { step: 1, path: "checkpoints/step-000001".into() }).unwrap();
    log.append(EventKind::Finished { step: 1, reason: "finished".into() }).unwrap();
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut seeds = vec![text.clone().into_bytes()];
    seeds.extend(text.lines().skip(1).map(|l| format!("{l}\n").into_bytes()));
    seeds
}

fn events(input: &[u8], dir: &Path) -> Verdict {
    let path = file(dir, "events.jsonl", input);
    match polaris::run::log::read(&path) {
        Ok(log) => {
            for pair in log.events.windows(2) {
                if pair[1].seq <= pair[0].seq {
                    return Err(format!("seq {} after {}", pair[1].seq, pair[0].seq));
                }
            }
            // what was read, written again, is read again: the writer never writes a line
            // its reader rejects
            for e in &log.events {
                let line = serde_json::to_string(e).map_err(|x| format!("cannot write {e:?}: {x}"))?;
                serde_json::from_str::<Event>(&line).map_err(|x| format!("re-read fails ({x}): {line}"))?;
            }
            Ok(!log.events.is_empty())
        }
        Err(e) => names_file(&e, &path),
    }
}

// --- config (train/config.rs) -------------------------------------------------------------

fn config_seeds() -> Vec<Vec<u8>> {
    vec![
        INIT_TEMPLATE.as_bytes().to_vec(),
        b"[run]\nsteps = 3\n[step.sampling]\nmax_new_tokens = 64\n".to_vec(),
        b"[judge]\ntimeout_secs = 30\nbackoff_secs = 0.5\nmax_failure_rate = 0.5\n".to_vec(),
        b"[step.lr]\nkind = \"warmup_cosine\"\nlr = 1e-6\nwarmup_steps = 2\ntotal_steps = 10\nmin_lr = 0.0\n"
            .to_vec(),
        b"--set step.lr.lr=1e-5".to_vec(),
        b"--set judge.timeout_secs=60".to_vec(),
        b"--set step.hri_schedule.decay.kind=linear".to_vec(),
    ]
}

/// The config text, or (starting `--set `) one override of the commented defaults.
fn config(input: &[u8], _: &Path) -> Verdict {
    let text = String::from_utf8_lossy(input);
    let parsed = match text.strip_prefix("--set ") {
        Some(set) => {
            TrainConfig::parse(INIT_TEMPLATE, "init", &[set.lines().next().unwrap_or("").to_string()])
        }
        None => TrainConfig::parse(&text, "fuzz.toml", &[]),
    };
    let Ok(cfg) = parsed else { return Ok(false) };
    // an accepted configuration is written into the run as config.toml and read back on resume
    let written = cfg.to_toml().map_err(|e| format!("accepted but cannot be written: {e}"))?;
    TrainConfig::parse(&written, "config.toml", &[])
        .map_err(|e| format!("accepted, written, then refused on reading back: {e:#}\n{written}"))?;
    Ok(true)
}

// --- annotate inputs (annotate/input.rs, annotate/store.rs) ------------------------------

fn annotate_seeds() -> Vec<Vec<u8>> {
    let rec = |uid: serde_json::Value, system: &str| {
        serde_json::json!({"prompt_uid": uid, "prompt": "A tale. The story should be 300 words long.", "system": system, "story": "Once upon a time.", "thinking": null})
            .to_string()
    };
    let judged = polaris::annotate::Record::skip("p1");
    vec![
        format!("{}\n{}\n", rec("p1".into(), "base"), rec(2.into(), "base")).into_bytes(),
        format!("{}\n", rec("p1".into(), "tuned")).into_bytes(),
        format!("{}\n", serde_json::to_string(&judged).unwrap()).into_bytes(),
        br#"{"prompt_uid": 1.5, "prompt": "", "system": "", "story": "", "requested_words": -0}"#.to_vec(),
    ]
}

fn annotate(input: &[u8], dir: &Path) -> Verdict {
    let path = file(dir, "generations.jsonl", input);
    let generations = match polaris::generate::file::read_generations(&path) {
        Ok(g) => g,
        Err(e) => {
            names_file(&e, &path)?;
            Vec::new()
        }
    };
    if !generations.is_empty() {
        // paired with itself: either a study or an error, never a panic
        let _ = polaris::annotate::input::pair_generations(&path, &generations, &path, &generations);
    }
    // the same bytes as a judgments store
    let store = file(dir, "judgments.jsonl", input);
    if let Err(e) = polaris::annotate::store::read_lines(&store) {
        names_file(&e, &store)?;
    }
    Ok(!generations.is_empty())
}

// --- Retry-After (reward/judge/retry.rs) --------------------------------------------------

fn retry_after_seeds() -> Vec<Vec<u8>> {
    ["1", "120", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT", "Sun, 06 Nov 2094 08:49:37 GMT", "inf", "0"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
}

fn retry_after(input: &[u8], _: &Path) -> Verdict {
    let text = String::from_utf8_lossy(input);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let after = parse_retry_after(&text, now);
    if after.is_some_and(|d| d > MAX_RETRY_AFTER) {
        return Err(format!("{after:?} is past the cap"));
    }
    let s = JudgeSettings::default();
    let attempt = input.first().map_or(1, |&b| u32::from(b) * 0x0101_0101);
    let wait = backoff_with(attempt, after, &s, 0.5);
    if wait > std::time::Duration::from_secs_f64(s.max_backoff_secs) {
        return Err(format!("waits {wait:?}, past max_backoff_secs"));
    }
    Ok(after.is_some())
}

// --- principles files (reward/principles) -----------------------------------------------

fn principles_seeds() -> Vec<Vec<u8>> {
    let rule = |name: &str| {
        format!("[[principle]]\nname = \"{name}\"\nrule = \"One image at a time.\"\nviolation = \"Stacked metaphors.\"\n")
    };
    vec![
        rule("no stylistic overloading").into_bytes(),
        format!("{}example = \"The moon, a coin of grief.\"\n\n{}", rule("a"), rule("b")).into_bytes(),
        (0..11).map(|i| rule(&format!("r{i}"))).collect::<String>().into_bytes(),
        b"[[principle]]\nname = \"x\"\nrule = \" \"\nviolation = \"v\"\n".to_vec(),
    ]
}

/// An accepted file is written back (`principles refine` writes every round's) and read back
/// equal, with the same version hash; a refusal names the file.
fn principles(input: &[u8], _: &Path) -> Verdict {
    use polaris::reward::principles::{Principles, MAX_RULES};
    let text = String::from_utf8_lossy(input);
    let p = match Principles::from_toml_str(&text, "fuzz.toml") {
        Ok(p) => p,
        Err(e) if e.to_string().contains("fuzz.toml") => return Ok(false),
        Err(e) => return Err(format!("refused without naming the file: {e}")),
    };
    if p.rules.is_empty() || p.rules.len() > MAX_RULES {
        return Err(format!("accepted {} rules", p.rules.len()));
    }
    let again = Principles::from_toml_str(&p.to_toml(), "written")
        .map_err(|e| format!("accepted, written, then refused: {e:#}"))?;
    if again != p || again.hash() != p.hash() {
        return Err("written and read back, it is another set of principles".into());
    }
    Ok(true)
}

// --- preference pairs (prefs/pair.rs) ----------------------------------------------------

fn pairs_seeds() -> Vec<Vec<u8>> {
    let pair = serde_json::json!({"uid": "p1", "prompt": "Write a story.", "chosen": "A good one.",
        "rejected": "A worse one.", "source": "annotate", "weight": 0.5, "split": "heldout"});
    vec![
        format!("{pair}\n").into_bytes(),
        b"{\"prompt_uid\":\"p2\",\"prompt\":\"p\",\"chosen\":\"x\",\"rejected\":\"y\",\"source\":\"me\"}\n".to_vec(),
        b"{\"uid\":\"p3\",\"prompt\":\"p\",\"chosen\":\"x\",\"rejected\":\"x\",\"source\":\"me\",\"weight\":-1}\n".to_vec(),
    ]
}

/// Accepted pairs are written back (`prefs build` and `curate` write them) and read back
/// equal; a refusal names the file.
fn pairs(input: &[u8], dir: &Path) -> Verdict {
    use polaris::prefs::{read_pairs, write_pairs};
    let path = file(dir, "pairs.jsonl", input);
    let read = match read_pairs(&path) {
        Ok(p) => p,
        Err(e) if e.to_string().contains("pairs.jsonl") => return Ok(false),
        Err(e) => return Err(format!("refused without naming the file: {e}")),
    };
    let back = dir.join("written.jsonl");
    write_pairs(&back, &read).map_err(|e| format!("accepted but cannot be written: {e:#}"))?;
    let again = read_pairs(&back).map_err(|e| format!("accepted, written, then refused: {e:#}"))?;
    if again != read {
        return Err("written and read back, the pairs differ".into());
    }
    Ok(!read.is_empty())
}
