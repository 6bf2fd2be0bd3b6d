//! A stop that lands while a step is sampling discards that step whole: nothing of its cut
//! rows is judged, trained, logged or checkpointed, the run checkpoints the state before it,
//! and the resumed run equals one that was never stopped. A clean stop of a foreground run
//! exits 0 (SIGTERM) or 130 (Ctrl-C), never 1.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::tiny_cli::{same_weights, text, train};
use common::WordsReward;
use polaris::model::tiny;
use polaris::reward::breakdown::Candidate;
use polaris::reward::Breakdown;
use polaris::run::exit::{self, ExitKind};
use polaris::run::work::TEST_SIGNAL_ENV;
use polaris::run::EventKind;
use polaris::train::checkpoint;
use polaris::train::step::{Rewarder, StepCancelled, TrainPrompt, Trainer};
use polaris::train::workers::Workers;

/// WordsReward, counting the rows it is asked to score.
struct Counting(WordsReward, AtomicUsize);

impl Rewarder for Counting {
    fn score(&self, candidates: &[Candidate]) -> anyhow::Result<Vec<Breakdown>> {
        self.1.fetch_add(candidates.len(), Ordering::Relaxed);
        self.0.score(candidates)
    }
}

fn weights(w: &Workers) -> Vec<Vec<f32>> {
    w.primary()
        .model
        .trainable()
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

#[test]
fn a_step_stopped_while_sampling_changes_nothing_and_the_next_equals_an_unstopped_one() {
    let model_dir = tempfile::tempdir().unwrap();
    tiny::write(model_dir.path()).unwrap();
    let open = || common::tiny_workers(model_dir.path());
    let cfg = common::step_config(4, 16, 5e-3);
    let batch = [TrainPrompt {
        prompt: "Write a story about a fox. The story should be 100 words long.",
        story: Some("The fox ran home over the hill and slept."),
        reasoning: None,
    }];
    let go = AtomicBool::new(false);
    let stop = AtomicBool::new(true);

    // never stopped: two steps
    let straight_lm = open();
    let mut straight = Trainer::new(cfg.clone(), 7);
    let reward = Counting(WordsReward(16.0), AtomicUsize::new(0));
    straight.step(&straight_lm, &batch, &reward, &go).unwrap();
    let second = straight.step(&straight_lm, &batch, &reward, &go).unwrap().0;

    // one step, then a step whose sampling is cancelled at its first token
    let lm = open();
    let mut t = Trainer::new(cfg, 7);
    let reward = Counting(WordsReward(16.0), AtomicUsize::new(0));
    t.step(&lm, &batch, &reward, &go).unwrap();
    let (before, judged) = (weights(&lm), reward.1.load(Ordering::Relaxed));
    let e = t.step(&lm, &batch, &reward, &stop).unwrap_err();
    assert_eq!(e.downcast_ref::<StepCancelled>(), Some(&StepCancelled { step: 2 }), "{e:#}");
    assert_eq!(t.step, 1, "the step count is the one before the stopped step");
    assert_eq!(t.opt.step, 1, "the optimizer took no update");
    assert!(weights(&lm) == before, "no weight changed");
    assert_eq!(reward.1.load(Ordering::Relaxed), judged, "no cut row was judged");

    // taken again, the step is the never-stopped run's step 2, bit for bit
    let again = t.step(&lm, &batch, &reward, &go).unwrap().0;
    assert_eq!(
        (again.step, again.loss, again.grad_norm, again.policy_reward_mean),
        (second.step, second.loss, second.grad_norm, second.policy_reward_mean)
    );
    assert!(weights(&lm) == weights(&straight_lm));
}

#[test]
fn a_signal_mid_generation_discards_the_step_and_the_resumed_run_equals_an_unstopped_one() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let common = ["--steps", "3", "--set", "run.checkpoint_every=1"];
    let straight = runs.path().join("straight");
    let o =
        train(home.path(), &[&["--out", straight.to_str().unwrap()][..], &common].concat()).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let want = common::logged_steps(&straight);
    assert_eq!(want.len(), 3);

    // SIGTERM (what `polaris-tui stop` sends), then SIGINT (Ctrl-C), each after step 2's
    // sampling has produced 4 tokens (a test hook in the trainer: the signal lands there)
    for (signal, code) in [(libc::SIGTERM, 0), (libc::SIGINT, 130)] {
        let run = runs.path().join(format!("stopped-{signal}"));
        let o = train(home.path(), &[&["--out", run.to_str().unwrap()][..], &common].concat())
            .env(TEST_SIGNAL_ENV, format!("2:{signal}"))
            .output()
            .unwrap();
        let said = text(&o);
        assert_eq!(o.status.code(), Some(code), "signal {signal}: a clean stop's exit code: {said}");
        assert!(said.contains("step 2 was stopped while sampling; it is discarded"), "{said}");
        assert!(said.contains("continue it with --resume auto"), "{said}");
        // step 1 is all there is: no event, row or checkpoint of the cut step 2
        let logged: Vec<usize> = common::logged_steps(&run).iter().map(|s| s.step).collect();
        assert_eq!(logged, vec![1], "signal {signal}");
        let rows = std::fs::read_to_string(run.join("rollouts.jsonl")).unwrap();
        assert!(rows.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"] == 1));
        assert_eq!(checkpoint::latest(&run), Some(checkpoint::step_dir(&run, 1)));
        let ended = exit::read(&run).unwrap().unwrap();
        assert_eq!((ended.status, ended.last_step), (ExitKind::Stopped, Some(1)));
        let events = polaris::run::log::read(&run.join("events.jsonl")).unwrap().events;
        assert!(matches!(&events.last().unwrap().kind, EventKind::Finished { step: 1, .. }));

        // resumed, steps 2 and 3 are the unstopped run's, and so are its final weights
        let o = train(
            home.path(),
            &[&["--out", run.to_str().unwrap(), "--resume", "auto"][..], &common].concat(),
        )
        .output()
        .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let got = common::logged_steps(&run);
        assert_eq!(got.iter().map(|s| s.step).collect::<Vec<_>>(), vec![1, 2, 3]);
        for (g, w) in got.iter().zip(&want) {
            // exact: the same seed and the same operations on one machine
            assert_eq!(
                (g.loss, g.grad_norm, g.policy_reward_mean, g.tokens),
                (w.loss, w.grad_norm, w.policy_reward_mean, w.tokens),
                "step {} after the stop and resume differs from the unstopped run",
                g.step
            );
        }
        assert!(same_weights(&checkpoint::step_dir(&run, 3), &checkpoint::step_dir(&straight, 3)));
    }
}

#[test]
fn a_warm_start_cut_by_a_stop_is_not_kept_and_the_next_start_runs_it_whole() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let run = runs.path().join("warm");
    let args = ["--steps", "1", "--out", run.to_str().unwrap(), "--set", "sft.epochs=1"];
    let args = [&args[..], &["--set", "sft.max_response_tokens=32", "--set", "sft.thinking=false"]].concat();
    let sft_steps = |run: &std::path::Path| -> Vec<(usize, usize)> {
        polaris::run::log::read(&run.join("events.jsonl")).map_or(Vec::new(), |l| {
            l.events
                .into_iter()
                .filter_map(|e| match e.kind {
                    EventKind::Sft(s) => Some((s.step, s.steps)),
                    _ => None,
                })
                .collect()
        })
    };
    let mut child = train(home.path(), &args).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while sft_steps(&run).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no warm-start step logged");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its warm start was stopped");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let cut = sft_steps(&run);
    let (done, total) = *cut.last().unwrap();
    assert!(done < total, "the stop landed inside the warm start ({done} of {total})");
    assert_eq!(checkpoint::latest(&run), None, "a cut warm start is not checkpointed");
    assert_eq!(exit::read(&run).unwrap().unwrap().status, ExitKind::Stopped);

    // the next start has no checkpoint to resume, so it runs the warm start whole, then trains
    let o = train(home.path(), &[&args[..], &["--resume", "auto"]].concat()).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let all = sft_steps(&run);
    assert_eq!(all[cut.len()..].iter().map(|s| s.0).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
    assert_eq!(common::logged_steps(&run).len(), 1);
}
