//! The dashboard's curves (issue 20): other runs overlaid by step, the config diff, EMA
//! smoothing, the Signals page and the Length page, drawn into ratatui's TestBackend and
//! compared with insta snapshots at 80x24 and 200x50 (tests/snapshots/tui_curves__*).
//! Update deliberately: `INSTA_UPDATE=always cargo test --release --test tui_curves`.

mod common;

use common::tui::{draw, key, lines};

use std::io::Write;
use std::path::{Path, PathBuf};

use crossterm::event::KeyCode;
use polaris::run::stats::{ComponentMeans, DimensionMean, StepStats};
use polaris::run::{Event, EventKind, PROTOCOL_VERSION};
use polaris::tui::curves::chart::overlay;
use polaris::tui::curves::chart::Signal;
use polaris::tui::curves::ema::ema;
use polaris::tui::curves::state::Page;
use polaris::tui::curves::{self, compare, CurvesView};
use polaris::tui::history::{CurveKey, Series};
use polaris::tui::run_view::RunView;
use polaris::tui::theme::Theme;
use polaris::tui::{Action, App, DirLink};
use ratatui::symbols::Marker;

const DIMENSIONS: [(&str, i64); 3] =
    [("positive_distinct_voice", 4), ("negative_flat_dialogue", 3), ("negative_predictable_beats", 3)];

/// Step `step` of a run whose reward sits `lift` above the fixture's, with every signal.
fn rich_stats(step: usize, lift: f64) -> StepStats {
    let x = step as f64;
    let mut s = common::run_fixture::step_stats(step);
    s.policy_reward_mean += lift;
    s.groups = 3;
    s.entropy = 2.0 - 0.01 * x;
    s.judge_latency_p50 = Some(3.0 + 0.1 * (x * 0.5).sin());
    s.judge_latency_p95 = Some(6.0 + 0.2 * (x * 0.3).cos());
    s.length_in_band = Some((0.3 + x / 100.0 + lift).min(1.0));
    s.components = Some(ComponentMeans {
        story_quality: 0.3 + 0.005 * x + lift,
        repetition: 0.05,
        length: 0.4 - x / 200.0,
        blank: 0.0,
        overlong: -0.01,
    });
    s.dimensions = DIMENSIONS
        .iter()
        .enumerate()
        .map(|(i, (key, max))| DimensionMean {
            key: key.to_string(),
            mean: *max as f64 * (0.3 + 0.01 * x * (i + 1) as f64 / 3.0 + lift).min(1.0),
            max: *max,
        })
        .collect();
    s
}

/// A run of `steps` steps named `name` under `parent`, with a config.toml of `config`.
fn write_compared(parent: &Path, name: &str, steps: usize, lift: f64, config: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join("events.jsonl")).unwrap();
    let kinds =
        std::iter::once(EventKind::Started { config: serde_json::json!({}), resumed_from_step: None })
            .chain((1..=steps).map(|s| EventKind::Step(Box::new(rich_stats(s, lift)))));
    for (i, kind) in kinds.enumerate() {
        let ev = Event { v: PROTOCOL_VERSION, seq: i as u64 + 1, time: 1_750_000_000.0 + i as f64, kind };
        writeln!(f, "{}", serde_json::to_string(&ev).unwrap()).unwrap();
    }
    std::fs::write(dir.join("config.toml"), config).unwrap();
    dir
}

const CONFIG: &str = "seed = 1\n[step]\ngroup_size = 6\nhri = true\n[step.loss]\nkl_coef = 0.0\n";

/// The fixture run (40 steps, rollouts of steps 39 and 40) with `run-b` (60 steps) and
/// `run-c` (25 steps) overlaid.
fn three_runs(tmp: &Path) -> App {
    let first = common::run_fixture::write_run(tmp);
    std::fs::write(first.join("config.toml"), CONFIG).unwrap();
    let b = write_compared(tmp, "run-b", 60, 0.3, &CONFIG.replace("group_size = 6", "group_size = 8"));
    let c = write_compared(tmp, "run-c", 25, -0.2, &CONFIG.replace("seed = 1", "seed = 2\nextra = \"x\""));
    let mut app = App::new(&first, Box::new(DirLink::new(&first, None)), dark(), 0);
    compare::add_runs(&mut app.compared, &mut app.state, &first, &[b, c]);
    app.update(Action::Tick);
    app
}

fn dark() -> Vec<Theme> {
    vec![Theme::built_in("dark").unwrap()]
}

fn snap(name: &str, app: &App) {
    for (w, h) in [(80, 24), (200, 50)] {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), lines(&draw(app, w, h)));
    }
}

/// Runs of 40, 60 and 25 steps: the window spans the longest, each run's curve ends at its
/// own last step, and zooming and panning reach the end of the longest run.
#[test]
fn overlaid_runs_of_different_lengths_align_by_step() {
    let tmp = tempfile::tempdir().unwrap();
    let mut app = three_runs(tmp.path());
    let s = &app.state;
    assert_eq!(s.curves.runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["run-b", "run-c"]);
    assert_eq!(curves::range(&s.history, s.window, &s.curves), Some((1, 60)));
    let t = s.theme().clone();
    let v = CurvesView { curves: &s.curves, run: RunView::of(s), theme: &t };
    let lines = overlay(
        &v,
        &Signal::Series(Series::PolicyMean),
        ("", t.policy, Marker::Braille),
        (1, 60),
        200,
        true,
        true,
    );
    let last_x: Vec<f64> = lines.iter().map(|c| c.points.last().unwrap().0).collect();
    assert_eq!(last_x, [40.0, 60.0, 25.0], "one curve per run, each to its own last step");
    let names: Vec<&str> = lines.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["run-fixture", "run-b", "run-c"]);
    // aligned by step: run-b's value at step 10 is drawn at x = 10, as the fixture's is
    let b10 = lines[1].points.iter().find(|p| p.0 == 10.0).unwrap().1;
    assert!((b10 - (common::run_fixture::step_stats(10).policy_reward_mean + 0.3)).abs() < 1e-12);
    snap("three_runs", &app);
    key(&mut app, KeyCode::Char('+'));
    let s = &app.state;
    assert_eq!(
        curves::range(&s.history, s.window, &s.curves),
        Some((31, 60)),
        "zoomed to the last half of all steps"
    );
    key(&mut app, KeyCode::Left);
    key(&mut app, KeyCode::Right);
    assert_eq!(app.state.window.end, None, "panning back to step 60 follows again");
}

/// `D` shows the keys whose values differ (a key one run lacks among them) and Esc hides it.
#[test]
fn the_config_diff_lists_only_the_keys_that_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let mut app = three_runs(tmp.path());
    key(&mut app, KeyCode::Char('D'));
    let d = app.state.curves.diff.clone().expect("the diff is shown");
    let keys: Vec<&str> = d.rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["extra", "seed", "step.group_size"]);
    assert_eq!(d.rows[0].1, ["–", "–", "\"x\""]);
    assert_eq!(d.same, 2, "step.hri and step.loss.kl_coef agree");
    snap("config_diff", &app);
    key(&mut app, KeyCode::Esc);
    assert!(app.state.curves.diff.is_none());
}

/// `>` smooths every curve (the history keeps the EMA of each series) and draws the raw
/// values faint behind; `<` back to none.
#[test]
fn smoothing_is_changed_live_and_draws_the_raw_curve_faint() {
    let tmp = tempfile::tempdir().unwrap();
    let first = common::run_fixture::write_run(tmp.path());
    let mut app = App::new(&first, Box::new(DirLink::new(&first, None)), dark(), 0);
    app.update(Action::Tick);
    for _ in 0..3 {
        key(&mut app, KeyCode::Char('>'));
    }
    let s = &app.state;
    assert_eq!(s.curves.weight(), 0.9);
    let view = s.history.curve(CurveKey::Series(Series::Loss), (1, 40)).unwrap();
    let want = ema(view.xs, view.raw.values(), 0.9);
    assert_eq!(view.smoothed.unwrap().values(), want.as_slice());
    let t = s.theme().clone();
    let v = CurvesView { curves: &s.curves, run: RunView::of(s), theme: &t };
    let lines = overlay(
        &v,
        &Signal::Series(Series::Loss),
        ("loss", t.loss, Marker::Braille),
        (1, 40),
        80,
        true,
        true,
    );
    assert_eq!(lines.len(), 2, "raw behind, smoothed on top");
    assert_eq!((lines[0].colour, lines[1].colour), (polaris::tui::curves::chart::faint(t.loss, &t), t.loss));
    snap("smoothed", &app);
    for _ in 0..5 {
        key(&mut app, KeyCode::Char('<'));
    }
    assert_eq!(app.state.curves.weight(), 0.0);
    assert!(app.state.history.curve(CurveKey::Series(Series::Loss), (1, 40)).unwrap().smoothed.is_none());
}

/// `v` once: the Signals page; down to the first rubric dimension, whose family (every
/// dimension) is drawn beneath it at 200x50.
#[test]
fn the_signals_page_draws_a_chosen_signal_over_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut app = three_runs(tmp.path());
    key(&mut app, KeyCode::Char('v'));
    assert_eq!(app.state.curves.page, Page::Signals);
    let s = &app.state;
    let all = curves::signals::catalogue(curves::histories(&s.history, &s.curves));
    let first_dim = all.iter().position(|e| e.family == "Rubric").unwrap();
    assert_eq!(all.iter().filter(|e| e.family == "Rubric").count(), 3);
    for _ in 0..first_dim {
        key(&mut app, KeyCode::Down);
    }
    assert_eq!(all[app.state.curves.signal].name, "positive_distinct_voice");
    snap("signals_dimension", &app);
}

/// `v` twice: the Length page, on the step the Groups view shows (the latest, 40).
#[test]
fn the_length_page_shows_requested_against_written_words() {
    let tmp = tempfile::tempdir().unwrap();
    let mut app = three_runs(tmp.path());
    key(&mut app, KeyCode::Char('v'));
    key(&mut app, KeyCode::Char('v'));
    assert_eq!(app.state.curves.page, Page::Length);
    let screen = lines(&draw(&app, 200, 50));
    assert!(screen.contains("step 40"), "{screen}");
    snap("length", &app);
}

/// A step event written before these signals existed loads, with them absent.
#[test]
fn old_step_events_load_without_the_new_signals() {
    let old = r#"{"step":3,"policy_reward_mean":0.5,"policy_reward_std":0.1,"best_of_group_mean":0.7,"loss":0.2,"kl":0.0,"zero_variance_groups":1}"#;
    let s: StepStats = serde_json::from_str(old).unwrap();
    assert_eq!((s.step, s.groups, s.components, s.dimensions.len()), (3, 0, None, 0));
    assert_eq!(Series::ZeroVarianceShare.value(&s), None, "no group count: no share");
    assert_eq!(Series::JudgeLatencyP50.value(&s), None);
    // and one written now reads back the same
    let now = rich_stats(7, 0.0);
    let back: StepStats = serde_json::from_str(&serde_json::to_string(&now).unwrap()).unwrap();
    assert_eq!(back, now);
    assert_eq!(Series::ZeroVarianceShare.value(&now), Some(1.0 / 3.0));
}
