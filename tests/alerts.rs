//! Alert rules on synthetic step logs: each rule fires at exactly the step its condition
//! first holds (never before), fires once while it holds, and clears at the step it stops
//! holding; the alerts go to the run's log, where `runs` (RunStatus) and a fold of the log
//! (OpenAlerts) find the open ones. The viewer's stall rule is judged on the clock it is given.

mod common;

use polaris::run::alerts::{stalled, Alert, AlertsConfig, DeviceMemory, OpenAlerts, Rule, Watch};
use polaris::run::stats::StepStats;
use polaris::run::{EventKind, EventLog};

/// 8 groups of 6 rows a step (48 rows), as the recipe's defaults.
const GROUPS: usize = 8;
const ROWS: usize = 48;

/// A healthy step: reward 0.6, length ratio 1.0, nothing clipped or failed, finite loss.
fn healthy(step: usize) -> StepStats {
    StepStats {
        step,
        policy_reward_mean: 0.6,
        length_ratio_mean: Some(1.0),
        loss: 0.01,
        grad_norm: 0.5,
        ..Default::default()
    }
}

/// Runs `steps` through a Watch with `cfg`; (step, rule, raised) of every alert in order.
fn judge(cfg: AlertsConfig, steps: &[StepStats]) -> Vec<(usize, Rule, bool)> {
    let mut w = Watch::new(cfg, GROUPS, ROWS);
    steps.iter().flat_map(|s| w.step_with(s, &[])).map(|a| (a.step.unwrap(), a.rule, a.raised)).collect()
}

/// 10 healthy steps with `f` applied to steps in `bad`.
fn with(bad: std::ops::RangeInclusive<usize>, f: impl Fn(&mut StepStats)) -> Vec<StepStats> {
    (1..=10)
        .map(|k| {
            let mut s = healthy(k);
            if bad.contains(&k) {
                f(&mut s);
            }
            s
        })
        .collect()
}

#[test]
fn healthy_steps_raise_nothing() {
    let steps: Vec<StepStats> = (1..=10).map(healthy).collect();
    assert_eq!(judge(AlertsConfig::default(), &steps), vec![]);
}

#[test]
fn a_nan_or_infinite_loss_or_grad_norm_fires_at_its_step_and_clears_after() {
    let steps = with(4..=4, |s| s.loss = f64::NAN);
    assert_eq!(
        judge(AlertsConfig::default(), &steps),
        vec![(4, Rule::NonFinite, true), (5, Rule::NonFinite, false)]
    );
    let steps = with(6..=7, |s| s.grad_norm = f64::INFINITY);
    assert_eq!(
        judge(AlertsConfig::default(), &steps),
        vec![(6, Rule::NonFinite, true), (8, Rule::NonFinite, false)]
    );
    // on even with every threshold off: it has none
    assert_eq!(
        judge(AlertsConfig::off(), &with(3..=3, |s| s.loss = f64::NAN))[0],
        (3, Rule::NonFinite, true)
    );
}

#[test]
fn zero_variance_fires_above_its_share_not_at_it() {
    // 4 of 8 groups = 50% is the threshold itself: not above it
    let at = with(2..=2, |s| s.zero_variance_groups = 4);
    assert_eq!(judge(AlertsConfig::default(), &at), vec![]);
    let above = with(3..=5, |s| s.zero_variance_groups = 5);
    assert_eq!(
        judge(AlertsConfig::default(), &above),
        vec![(3, Rule::ZeroVariance, true), (6, Rule::ZeroVariance, false)]
    );
    let off = AlertsConfig { zero_variance_share: 0.0, ..AlertsConfig::default() };
    assert_eq!(judge(off, &with(1..=10, |s| s.zero_variance_groups = 8)), vec![]);
}

#[test]
fn clip_fraction_counts_low_and_high_together() {
    // 0.12 + 0.12 = 0.24 > 0.2, though each alone is under it
    let steps = with(7..=7, |s| {
        s.clip_frac_low = 0.12;
        s.clip_frac_high = 0.12;
    });
    assert_eq!(
        judge(AlertsConfig::default(), &steps),
        vec![(7, Rule::ClipFraction, true), (8, Rule::ClipFraction, false)]
    );
    assert_eq!(judge(AlertsConfig::default(), &with(7..=7, |s| s.clip_frac_high = 0.2)), vec![]);
}

#[test]
fn judge_failures_fire_above_their_rate_of_rows() {
    // 2 of 48 = 4.2% < 5%; 3 of 48 = 6.25% > 5%
    assert_eq!(judge(AlertsConfig::default(), &with(2..=2, |s| s.judge_failures = 2)), vec![]);
    assert_eq!(
        judge(AlertsConfig::default(), &with(2..=3, |s| s.judge_failures = 3)),
        vec![(2, Rule::JudgeFailures, true), (4, Rule::JudgeFailures, false)]
    );
}

#[test]
fn reward_collapse_waits_for_a_window_and_fires_when_the_window_mean_falls_far_enough() {
    // window 5, drop 0.5: rewards 0.6 for steps 1-5 (best window mean 0.6), then 0.0 from
    // step 6. Window means: step 6 0.48, 7 0.36, 8 0.24, 9 0.12 (drop 0.48, not > 0.5),
    // step 10 0.0 (drop 0.6): fires at step 10, not before.
    let steps = with(6..=10, |s| s.policy_reward_mean = 0.0);
    assert_eq!(judge(AlertsConfig::default(), &steps), vec![(10, Rule::RewardCollapse, true)]);
    // a bad first step alone is not a collapse: no window yet, and the window mean never
    // falls 0.5 below its best
    let early = with(1..=1, |s| s.policy_reward_mean = -2.0);
    assert_eq!(judge(AlertsConfig::default(), &early), vec![]);
    // recovery clears it: back to 0.6 from step 11, whose window (steps 7-11) has mean 0.12,
    // a drop of 0.48: no longer more than 0.5
    let mut steps = with(6..=10, |s| s.policy_reward_mean = 0.0);
    steps.extend((11..=12).map(healthy));
    assert_eq!(
        judge(AlertsConfig::default(), &steps),
        vec![(10, Rule::RewardCollapse, true), (11, Rule::RewardCollapse, false)]
    );
}

#[test]
fn length_collapse_fires_when_the_window_mean_ratio_is_under_its_floor() {
    // ratio 0.2 from step 4: window means (window 5) step 4 0.84, 5 0.68, 6 0.52, 7 0.36 < 0.5
    let steps = with(4..=10, |s| s.length_ratio_mean = Some(0.2));
    assert_eq!(judge(AlertsConfig::default(), &steps), vec![(7, Rule::LengthCollapse, true)]);
    // steps without a ratio (no length targets) neither fire nor clear it
    assert_eq!(judge(AlertsConfig::default(), &with(1..=10, |s| s.length_ratio_mean = None)), vec![]);
}

#[test]
fn device_memory_fires_per_device_above_its_share() {
    let mut w = Watch::new(AlertsConfig::default(), GROUPS, ROWS);
    let gib = 1u64 << 30;
    let m = |used0: u64, used1: u64| {
        vec![
            DeviceMemory { device: "cuda:0".into(), used_bytes: used0, total_bytes: 80 * gib },
            DeviceMemory { device: "cuda:1".into(), used_bytes: used1, total_bytes: 80 * gib },
        ]
    };
    // 76 of 80 = 95%: at the threshold, not above it
    assert!(w.step_with(&healthy(1), &m(76 * gib, 10 * gib)).is_empty());
    let a = w.step_with(&healthy(2), &m(79 * gib, 10 * gib));
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].rule, a[0].device.as_deref(), a[0].raised), (Rule::DeviceMemory, Some("cuda:0"), true));
    let a = w.step_with(&healthy(3), &m(79 * gib, 79 * gib));
    assert_eq!((a.len(), a[0].device.as_deref()), (1, Some("cuda:1")), "cuda:0 is already open");
    let a = w.step_with(&healthy(4), &m(10 * gib, 79 * gib));
    assert_eq!((a.len(), a[0].device.as_deref(), a[0].raised), (1, Some("cuda:0"), false));
}

#[test]
fn a_stall_is_judged_on_the_viewers_clock() {
    let last = 1_000_000.0;
    assert_eq!(stalled(Some(last), last + 30.0 * 60.0, 30.0), None, "exactly 30 minutes is not more");
    let a = stalled(Some(last), last + 31.0 * 60.0, 30.0).unwrap();
    assert_eq!((a.rule, a.raised, a.step), (Rule::Stalled, true, None));
    assert!(a.text.contains("no event for 31 min"), "{}", a.text);
    assert_eq!(stalled(Some(last), last + 1e6, 0.0), None, "0 turns it off");
    assert_eq!(stalled(None, last, 30.0), None, "no event yet: nothing to judge");
}

#[test]
fn alerts_go_to_the_log_where_runs_and_viewers_find_the_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(&dir.path().join("events.jsonl")).unwrap();
    log.append(EventKind::Started { config: serde_json::json!({}), resumed_from_step: None }).unwrap();
    let mut w = Watch::new(AlertsConfig::default(), GROUPS, ROWS);
    let steps = with(3..=10, |s| s.zero_variance_groups = 6);
    let steps: Vec<StepStats> = steps
        .into_iter()
        .map(|mut s| {
            if s.step >= 5 {
                s.judge_failures = 0;
                s.zero_variance_groups = 0;
            }
            if s.step == 4 {
                s.judge_failures = 10;
            }
            s
        })
        .collect();
    for s in &steps {
        let alerts = w.step_with(s, &[]);
        log.append(EventKind::Step(Box::new(s.clone()))).unwrap();
        for a in alerts {
            log.append(EventKind::Alert(a)).unwrap();
        }
    }
    // zero variance: raised 3, cleared 5; judge failures: raised 4, cleared 5
    let events = polaris::run::log::read(log.path()).unwrap().events;
    let open = OpenAlerts::of(&events);
    assert!(open.is_empty(), "{:?}", open.open().collect::<Vec<_>>());
    let history: Vec<(Option<usize>, Rule, bool)> =
        open.history.iter().map(|a| (a.step, a.rule, a.raised)).collect();
    assert_eq!(
        history,
        vec![
            (Some(3), Rule::ZeroVariance, true),
            (Some(4), Rule::JudgeFailures, true),
            (Some(5), Rule::ZeroVariance, false),
            (Some(5), Rule::JudgeFailures, false),
        ]
    );
    // one still open at the end: `runs` (RunStatus) lists it
    let nan = w.non_finite(11, "the loss is NaN");
    log.append(EventKind::Alert(nan)).unwrap();
    let status = polaris::run::status::status(dir.path()).unwrap();
    let open: Vec<&Alert> = status.alerts.iter().collect();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].rule, open[0].step), (Rule::NonFinite, Some(11)));
    assert_eq!(open[0].line(), "step 11: non-finite: the loss is NaN");
    // a resume starts the judging afresh: its `started` closes what was open
    log.append(EventKind::Started { config: serde_json::json!({}), resumed_from_step: Some(10) }).unwrap();
    assert!(polaris::run::status::status(dir.path()).unwrap().alerts.is_empty());
}

#[test]
fn an_alerts_table_is_checked_and_read_from_the_run_config() {
    use polaris::train::config::TrainConfig;
    let cfg = TrainConfig::parse("[alerts]\nclip_fraction = 0.3\nbell = true\n", "run.toml", &[]).unwrap();
    assert_eq!(cfg.alerts.clip_fraction, 0.3);
    assert!(cfg.alerts.bell);
    assert_eq!(cfg.alerts.window, AlertsConfig::default().window);
    let e = TrainConfig::parse("[alerts]\nzero_variance_share = 1.5\n", "run.toml", &[]).unwrap_err();
    assert!(
        format!("{e:#}").contains("alerts.zero_variance_share = 1.5: must be a share in [0, 1]"),
        "{e:#}"
    );
    let e = TrainConfig::parse("", "run.toml", &["alerts.window=0".into()]).unwrap_err();
    assert!(
        format!("{e:#}").contains("--set alerts.window=0") && format!("{e:#}").contains("at least 1"),
        "{e:#}"
    );
    let e = TrainConfig::parse("[alerts]\nnan = true\n", "run.toml", &[]).unwrap_err();
    assert!(format!("{e:#}").contains("nan"), "{e:#}");
    // a run directory's config.toml: its [alerts], else the defaults
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(AlertsConfig::of_run_dir(dir.path()).unwrap(), AlertsConfig::default());
    std::fs::write(dir.path().join("config.toml"), cfg.to_toml().unwrap()).unwrap();
    assert_eq!(AlertsConfig::of_run_dir(dir.path()).unwrap(), cfg.alerts);
}
