//! `eval length`: buckets, the statistics against hand-computed values, the records a
//! re-run resumes from (tiny model, offline judge: no network), `--gens`, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use polaris::eval::length::run::records::{JudgementRecord, StoryRecord};
use polaris::eval::length::run::settings::ModelSpec;
use polaris::eval::length::run::stories::GenerationSettings;
use polaris::eval::length::run::{self, LengthEval, Outcome, Quiet, Source, JUDGEMENTS};
use polaris::eval::length::stats::{
    bootstrap_mean_ci, bucket_of, length_fit, parse_buckets, summarise, LengthFit, ScoredStory,
    SummaryOptions,
};
use polaris::eval::report::{LengthReport, LENGTH_JSON};
use polaris::generate::file::read_generations;
use polaris::generate::SamplingParams;
use polaris::reward::{JudgeClient, JudgeSettings, JudgeSpec, Rubric};

fn offline() -> Arc<JudgeClient> {
    Arc::new(
        JudgeClient::new(JudgeSpec::Offline, Rubric::builtin().unwrap(), JudgeSettings::default()).unwrap(),
    )
}

#[test]
fn buckets_parse_and_bad_ones_are_named() {
    let b = parse_buckets("100-200, 200-400").unwrap();
    assert_eq!((b[0].label.as_str(), b[0].lo, b[0].hi), ("100-200", 100, 200));
    assert_eq!((b[1].label.as_str(), b[1].lo, b[1].hi), ("200-400", 200, 400));
    for (spec, says) in [
        ("100", "bucket 1 (\"100\") is not LO-HI"),
        ("100-200,300-", "bucket 2 (\"300-\") is not LO-HI"),
        ("a-b", "is not LO-HI"),
        ("200-100", "bucket 1 (200-100) has LO >= HI"),
        ("100-100", "has LO >= HI"),
        ("100-300,200-400", "bucket 2 (200-400) overlaps bucket 1 (100-300)"),
        ("200-400,100-200", "bucket 2 (100-200) comes before bucket 1 (200-400)"),
    ] {
        let e = parse_buckets(spec).unwrap_err().to_string();
        assert!(e.contains(says), "{spec}: {e}");
    }
}

#[test]
fn a_request_falls_in_the_bucket_its_edges_say() {
    let b = parse_buckets("100-200,200-400").unwrap();
    assert_eq!(bucket_of(&b, 99), None);
    assert_eq!(bucket_of(&b, 100), Some(0), "lo is inclusive");
    assert_eq!(bucket_of(&b, 199), Some(0));
    assert_eq!(bucket_of(&b, 200), Some(1), "hi is exclusive, so 200 is the next bucket's lo");
    assert_eq!(bucket_of(&b, 400), Some(1), "the last bucket holds its hi");
    assert_eq!(bucket_of(&b, 401), None);
    // with a gap, a bucket that is not last keeps its hi out
    let gap = parse_buckets("100-200,300-400").unwrap();
    assert_eq!(bucket_of(&gap, 200), None);
    assert_eq!(bucket_of(&gap, 250), None);
    assert_eq!(bucket_of(&gap, 400), Some(1));
    assert_eq!(bucket_of(&[], 100), None);
}

#[test]
fn under_and_over_follow_the_recipes_length_band() {
    // T = 1000: lower tolerance clamp(150, 350, 1000) = 350, upper clamp(250, 600, 1500) = 600
    assert_eq!(length_fit(649, 1000), LengthFit::Under);
    assert_eq!(length_fit(650, 1000), LengthFit::Within);
    assert_eq!(length_fit(1600, 1000), LengthFit::Within);
    assert_eq!(length_fit(1601, 1000), LengthFit::Over);
    // a short target's band reaches below zero words: an empty story is not "under"
    assert_eq!(length_fit(0, 150), LengthFit::Within);
}

fn story(model: &str, uid: &str, requested: usize, words: usize, sq: Option<f64>) -> ScoredStory {
    ScoredStory { model: model.into(), prompt_uid: uid.into(), requested_words: requested, words, sq }
}

fn opts(seed: u64) -> SummaryOptions {
    SummaryOptions { judge: "offline".into(), samples: 2, resamples: 2000, seed }
}

#[test]
fn statistics_match_hand_computed_values() {
    let buckets = parse_buckets("1000-2000,2000-3000").unwrap();
    let stories = vec![
        story("m", "p1", 1000, 500, Some(0.5)),   // under (band 650..=1600)
        story("m", "p1", 1000, 1000, Some(0.25)), // within
        story("m", "p2", 1000, 2000, None),       // over, judgement failed
        story("m", "p2", 1000, 1000, Some(0.75)), // within
        story("m", "p3", 2000, 2000, Some(0.5)),  // 2000 is the second bucket's lo
    ];
    let models = vec!["m".to_string(), "n".to_string()];
    let r = summarise(&stories, &models, &buckets, 3, &opts(7)).unwrap();
    assert_eq!(r.models, models);
    assert_eq!(r.prompts_outside_buckets, 3);
    assert_eq!((r.confidence, r.resamples, r.samples), (0.95, 2000, 2));
    assert_eq!(r.rows.len(), 4, "a row per (model, bucket)");
    let first = &r.rows[0];
    assert_eq!((first.model.as_str(), first.bucket.as_str()), ("m", "1000-2000"));
    assert_eq!((first.prompts, first.stories, first.judged), (2, 4, 3));
    // exact in binary floating point: (0.5 + 0.25 + 0.75) / 3, (0.5 + 1 + 2 + 1) / 4, 1/4
    assert_eq!(first.sq_mean, Some(0.5));
    assert_eq!(first.length_ratio_mean, Some(1.125));
    assert_eq!((first.under_share, first.over_share), (Some(0.25), Some(0.25)));
    // every resample pools whole prompts, so its mean lies between the prompts' own means
    // (SQ: p1 0.375, p2 0.75; ratio: p1 0.75, p2 1.5); the interval holds the mean
    let sq = first.sq_ci.unwrap();
    assert!(0.375 <= sq.low && sq.low <= 0.5 && 0.5 <= sq.high && sq.high <= 0.75, "{sq:?}");
    let ratio = first.length_ratio_ci.unwrap();
    assert!(0.75 <= ratio.low && ratio.low <= 1.125 && 1.125 <= ratio.high && ratio.high <= 1.5, "{ratio:?}");
    // one prompt: every resample is that prompt, a zero-width interval at the mean
    let second = &r.rows[1];
    assert_eq!((second.prompts, second.stories, second.judged), (1, 1, 1));
    assert_eq!(second.sq_mean, Some(0.5));
    let one = second.sq_ci.unwrap();
    assert_eq!((one.low, one.high), (0.5, 0.5));
    assert_eq!((second.under_share, second.over_share), (Some(0.0), Some(0.0)));
    // a model with no stories: counts 0, nothing to average
    let empty = &r.rows[2];
    assert_eq!((empty.model.as_str(), empty.prompts, empty.stories, empty.judged), ("n", 0, 0, 0));
    assert_eq!((empty.sq_mean, empty.sq_ci, empty.under_share), (None, None, None));
    // the same seed gives the same report
    assert_eq!(summarise(&stories, &models, &buckets, 3, &opts(7)).unwrap(), r);
}

#[test]
fn the_bootstrap_interval_is_degenerate_for_equal_values_and_needs_enough_resamples() {
    // sums of 0.25s divide back to 0.25 exactly
    let equal = vec![vec![0.25, 0.25], vec![0.25], vec![0.25, 0.25, 0.25]];
    let ci = bootstrap_mean_ci(&equal, 1000, 1).unwrap().unwrap();
    assert_eq!((ci.low, ci.high), (0.25, 0.25));
    assert_eq!(bootstrap_mean_ci(&[vec![], vec![]], 1000, 1).unwrap(), None, "no values, no interval");
    let e = bootstrap_mean_ci(&equal, 999, 1).unwrap_err().to_string();
    assert!(e.contains("at least 1000"), "{e}");
}

/// Three prompts in 100-200 / 200-400 and one (900 words) outside.
fn write_prompts(dir: &Path) -> PathBuf {
    let path = dir.join("prompts.jsonl");
    let rows =
        [("p1", "a lighthouse", 150), ("p2", "a fox", 200), ("p3", "a ship", 400), ("p4", "rain", 900)];
    let text: String = rows
        .iter()
        .map(|(uid, what, n)| {
            format!(
                "{{\"uid\":\"{uid}\",\"prompt\":\"Write a story about {what}. The story should be {n} words long.\",\"target_word_count\":{n}}}\n"
            )
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn generation(samples: usize, temperature: f32) -> Box<GenerationSettings> {
    let sampling = SamplingParams { temperature, max_new_tokens: 24, seed: 3, ..SamplingParams::default() };
    Box::new(GenerationSettings {
        samples,
        thinking: false,
        dtype: "f32".into(),
        device: "cpu".into(),
        sampling: sampling.clone(),
        sampling_long: sampling,
    })
}

fn model_eval(out: &Path, prompts: &Path, samples: usize, temperature: f32) -> LengthEval {
    LengthEval {
        out: out.to_path_buf(),
        source: Source::Models {
            models: vec![ModelSpec {
                label: "tiny/base".into(),
                model: "tiny".into(),
                adapter: None,
                checkpoint: None,
            }],
            prompts: prompts.to_path_buf(),
            generation: generation(samples, temperature),
        },
        buckets: parse_buckets("100-200,200-400").unwrap(),
        resamples: 1000,
        bootstrap_seed: 0,
        retry_failed: false,
    }
}

fn run(eval: &LengthEval) -> anyhow::Result<Outcome> {
    run::run(eval, offline(), &Quiet::default())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn a_rerun_only_fills_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = write_prompts(tmp.path());
    let out = tmp.path().join("eval");
    let eval = model_eval(&out, &prompts, 2, 0.8);

    let first = run(&eval).unwrap();
    // 3 prompts in the buckets x 2 samples; p4 (900 words) is outside, named in a note
    assert_eq!((first.generated, first.judged), (6, 6));
    assert_eq!(first.report.prompts_outside_buckets, 1);
    assert!(first.notes.iter().any(|n| n.contains("p4 (900 words)")), "{:?}", first.notes);
    let saved: LengthReport =
        serde_json::from_str(&std::fs::read_to_string(out.join(LENGTH_JSON)).unwrap()).unwrap();
    // the file holds the report (compared through JSON both ways: serde_json's default float
    // parsing may land one ulp off the value it printed)
    let through_json: LengthReport =
        serde_json::from_str(&serde_json::to_string_pretty(&first.report).unwrap()).unwrap();
    assert_eq!(saved, through_json);
    let row = |r: &LengthReport, b: &str| r.rows.iter().find(|x| x.bucket == b).unwrap().clone();
    // 150 words in the first bucket; 200 (the second's lo) and 400 (the last hi) in the second
    assert_eq!((row(&saved, "100-200").prompts, row(&saved, "100-200").stories), (1, 2));
    assert_eq!((row(&saved, "200-400").prompts, row(&saved, "200-400").stories), (2, 4));
    assert!(std::fs::read_to_string(out.join("length.md")).unwrap().contains("| tiny/base |"));

    // the generation file is one in annotate's format, label as `system`
    let gens_path = out.join("generations/tiny_base.jsonl");
    let gens = read_generations(&gens_path).unwrap();
    assert_eq!(gens.len(), 6);
    assert!(gens.iter().all(|g| g.system == "tiny/base" && g.requested_words.is_some()));

    // a second run: nothing generated or judged, the records untouched
    let (gens_before, judged_before) = (lines(&gens_path), lines(&out.join(JUDGEMENTS)));
    let again = run(&eval).unwrap();
    assert_eq!((again.generated, again.judged), (0, 0));
    assert_eq!(again.report, first.report);
    assert_eq!(lines(&gens_path), gens_before);
    assert_eq!(lines(&out.join(JUDGEMENTS)), judged_before);

    // lose one story (p1's second sample) and tear the last judgement mid-record
    let lost: StoryRecord = serde_json::from_str(&gens_before[1]).unwrap();
    assert_eq!((lost.prompt_uid.as_str(), lost.sample), ("p1", 1));
    let sibling: StoryRecord = serde_json::from_str(&gens_before[0]).unwrap();
    assert_eq!(sibling.sample, 0);
    assert_ne!(sibling.story, lost.story, "a prompt's samples differ: each has its own stream");
    let kept: Vec<&String> =
        gens_before.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, l)| l).collect();
    std::fs::write(&gens_path, kept.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let judgements = std::fs::read_to_string(out.join(JUDGEMENTS)).unwrap();
    let torn = judged_before.last().unwrap();
    let torn_record: JudgementRecord = serde_json::from_str(torn).unwrap();
    std::fs::write(out.join(JUDGEMENTS), &judgements[..judgements.len() - torn.len() / 2]).unwrap();

    let third = run(&eval).unwrap();
    assert_eq!(third.generated, 1, "only the lost story is generated again");
    // the story comes back the same (same seed, same stream), so its judgement still
    // stands; only the torn judgement is redone
    let redone: StoryRecord = serde_json::from_str(lines(&gens_path).last().unwrap()).unwrap();
    assert_eq!((redone.story.as_str(), redone.words), (lost.story.as_str(), lost.words));
    assert_eq!(third.judged, 1);
    assert!(third.notes.iter().any(|n| n.contains("cut short")), "{:?}", third.notes);
    let last: JudgementRecord = serde_json::from_str(lines(&out.join(JUDGEMENTS)).last().unwrap()).unwrap();
    assert_eq!(
        (last.model, last.prompt_uid, last.sample),
        (torn_record.model, torn_record.prompt_uid, torn_record.sample)
    );
    assert_eq!(third.report, first.report);
    assert_eq!(lines(&out.join(JUDGEMENTS)).len(), 6, "the torn line was cut off, not kept");

    // other settings for the same directory are refused, each named
    let e = run(&model_eval(&out, &prompts, 3, 0.5)).unwrap_err().to_string();
    assert!(e.contains("samples: 2 before, 3 now") && e.contains("sampling:"), "{e}");
    assert!(!e.contains("models:"), "{e}");
}

#[test]
fn a_full_fine_tune_checkpoint_is_evaluated_over_its_runs_base() {
    use polaris::train::config::TrainConfig;
    let tmp = tempfile::tempdir().unwrap();
    let prompts = write_prompts(tmp.path());
    let run_dir = tmp.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let cfg = TrainConfig::default();
    assert_eq!(cfg.model.path, "tiny");
    std::fs::write(run_dir.join("config.toml"), cfg.to_toml().unwrap()).unwrap();
    let opts = polaris::model::LoadOptions::new(candle_core::DType::F32, candle_core::Device::Cpu)
        .trainable(polaris::model::params::all_trainable());
    let lm = polaris::lm::LanguageModel::open("tiny", &opts).unwrap();
    let mut trainer = polaris::train::step::Trainer::new(cfg.step.clone(), 0);
    trainer.step = 7;
    let ckpt = polaris::train::checkpoint::save(&run_dir, &lm.model, &trainer, 0).unwrap();

    let spec = run::models::resolve("run/step-000007".into(), ckpt.to_str().unwrap(), None).unwrap();
    assert_eq!((spec.model.as_str(), spec.adapter.as_ref()), ("tiny", None));
    assert_eq!(spec.checkpoint.as_deref(), ckpt.to_str());
    let e = run::models::resolve("x".into(), ckpt.to_str().unwrap(), Some("a".into())).unwrap_err();
    assert!(e.to_string().contains("--adapter none"), "{e}");

    let mut eval = model_eval(&tmp.path().join("eval"), &prompts, 1, 0.8);
    if let Source::Models { models, .. } = &mut eval.source {
        *models = vec![spec];
    }
    let done = run(&eval).unwrap();
    assert_eq!((done.generated, done.judged), (3, 3));
    assert_eq!(done.report.models, vec!["run/step-000007".to_string()]);
}

fn gens_line(system: &str, uid: &str, words: usize, requested: usize, story: &str) -> String {
    let text = format!("Write about {uid}. The story should be {requested} words long.");
    let story = if story.is_empty() { vec!["word"; words].join(" ") } else { story.to_string() };
    serde_json::json!({"prompt_uid": uid, "prompt": text, "system": system, "story": story}).to_string()
        + "\n"
}

#[test]
fn gens_files_are_judged_as_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.jsonl");
    let b = tmp.path().join("b.jsonl");
    std::fs::write(
        &a,
        gens_line("A", "u1", 100, 150, "")
            + &gens_line("A", "u1", 150, 150, "")
            + &gens_line("A", "u2", 300, 300, ""),
    )
    .unwrap();
    std::fs::write(&b, gens_line("B", "u1", 120, 150, "") + &gens_line("B", "u3", 50, 1000, "")).unwrap();
    let out = tmp.path().join("eval");
    let eval = LengthEval {
        out: out.clone(),
        source: Source::Gens(vec![a.clone(), b.clone()]),
        buckets: parse_buckets("100-200,200-400").unwrap(),
        resamples: 1000,
        bootstrap_seed: 0,
        retry_failed: false,
    };
    let first = run(&eval).unwrap();
    assert_eq!(first.report.models, vec!["A".to_string(), "B".to_string()]);
    assert_eq!((first.generated, first.judged, first.failed), (0, 4, 0));
    assert_eq!(first.report.samples, 2, "A has two stories for u1");
    assert_eq!(first.report.prompts_outside_buckets, 1, "u3 asks for 1000 words");
    let a1 = &first.report.rows[0];
    assert_eq!(
        (a1.model.as_str(), a1.bucket.as_str(), a1.prompts, a1.stories, a1.judged),
        ("A", "100-200", 1, 2, 2)
    );
    // (100 + 150) / 150 / 2
    assert!((a1.length_ratio_mean.unwrap() - 250.0 / 300.0).abs() < 1e-12, "only rounding differs");
    assert!(a1.sq_mean.is_some());

    // nothing new: nothing judged; an edited story is judged again, and only it
    assert_eq!(run(&eval).unwrap().judged, 0);
    std::fs::write(
        &b,
        gens_line("B", "u1", 0, 150, "A different story, much shorter.")
            + &gens_line("B", "u3", 50, 1000, ""),
    )
    .unwrap();
    assert_eq!(run(&eval).unwrap().judged, 1);

    // a failed judgement stays failed (counted in stories - judged) until asked to retry
    let judgements = out.join(JUDGEMENTS);
    // the last judgement is of the edited story as it now stands
    let mut failed: JudgementRecord = serde_json::from_str(lines(&judgements).last().unwrap()).unwrap();
    failed.sq = None;
    failed.error = Some("judge unreachable".into());
    failed.result.outcome = Err("judge unreachable".into());
    let mut text = std::fs::read_to_string(&judgements).unwrap();
    text += &(serde_json::to_string(&failed).unwrap() + "\n");
    std::fs::write(&judgements, text).unwrap();
    let kept = run(&eval).unwrap();
    assert_eq!((kept.judged, kept.failed), (0, 1));
    let row = kept.report.rows.iter().find(|r| r.model == failed.model && r.judged < r.stories).unwrap();
    assert_eq!(row.stories - row.judged, 1);
    let retried = run(&LengthEval { retry_failed: true, ..eval.clone() }).unwrap();
    assert_eq!((retried.judged, retried.failed), (1, 0));

    // another file list is another evaluation
    let other = LengthEval { source: Source::Gens(vec![a]), ..eval };
    let e = run(&other).unwrap_err().to_string();
    assert!(e.contains("gens:") && e.contains("before"), "{e}");
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .arg("eval")
        .arg("length")
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = write_prompts(tmp.path());
    let p = prompts.to_str().unwrap();
    let out = tmp.path().join("eval");
    let o = out.to_str().unwrap();

    let (ok, err) = cli(&["--model", "tiny", "--prompts", p, "--buckets", "200-100", "--out", o]);
    assert!(!ok && err.contains("bucket 1 (200-100) has LO >= HI"), "{err}");
    let missing = tmp.path().join("nope.jsonl");
    let (ok, err) = cli(&["--model", "tiny", "--prompts", missing.to_str().unwrap(), "--out", o]);
    assert!(!ok && err.contains("nope.jsonl") && err.contains("cannot read"), "{err}");
    let (ok, err) =
        cli(&["--model", "tiny", "--model", "tiny", "--adapter", "none", "--prompts", p, "--out", o]);
    assert!(!ok && err.contains("1 --adapter for 2 --model"), "{err}");
    let (ok, err) = cli(&["--model", "tiny", "--model", "tiny", "--prompts", p, "--out", o]);
    assert!(!ok && err.contains("give each model its own --name"), "{err}");
    // a full fine-tune checkpoint is not a model on its own
    let ckpt = tmp.path().join("run/checkpoints/step-000040");
    std::fs::create_dir_all(&ckpt).unwrap();
    std::fs::write(ckpt.join("weights.safetensors"), b"").unwrap();
    let (ok, err) = cli(&["--model", ckpt.to_str().unwrap(), "--prompts", p, "--out", o]);
    assert!(!ok && err.contains("polaris-tui merge"), "{err}");
    // a generation file with a bad record names its line
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, gens_line("A", "u1", 100, 150, "") + "{\"prompt_uid\": \"u2\"}\n").unwrap();
    let (ok, err) = cli(&["--gens", bad.to_str().unwrap(), "--out", o]);
    assert!(!ok && err.contains("bad.jsonl:2"), "{err}");
    // a --gens file that is not there
    let (ok, err) = cli(&["--gens", tmp.path().join("none.jsonl").to_str().unwrap(), "--out", o]);
    assert!(!ok && err.contains("none.jsonl: no such file"), "{err}");
    assert!(!out.join(LENGTH_JSON).exists(), "nothing was summarised");
}

#[test]
fn the_command_writes_its_reports_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.jsonl");
    let b = tmp.path().join("b.jsonl");
    std::fs::write(&a, gens_line("A", "u1", 140, 150, "") + &gens_line("A", "u2", 260, 300, "")).unwrap();
    std::fs::write(&b, gens_line("B", "u1", 90, 150, "") + &gens_line("B", "u2", 330, 300, "")).unwrap();
    let out = tmp.path().join("eval");
    let (a, b, o) = (a.to_str().unwrap(), b.to_str().unwrap(), out.to_str().unwrap());
    let (ok, err) = cli(&["--gens", a, b, "--buckets", "100-200,200-400", "--judge", "offline", "--out", o]);
    assert!(ok, "{err}");
    for file in [
        "length.json",
        "length.md",
        "quality_by_length.png",
        "quality_by_length.svg",
        "length_ratio.png",
        "length_ratio.svg",
    ] {
        let len = std::fs::metadata(out.join(file)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 200, "{file}: {len} bytes\n{err}");
    }
    assert!(err.contains("quality_by_length.png"), "the plots are named: {err}");
}
