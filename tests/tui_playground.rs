//! The Playground tab: its views as insta snapshots (TestBackend, fixed data), and its
//! workers end to end on the built-in tiny model: streaming into the state, stop, judging
//! with the offline judge, saving. Generations are bounded (<= 48 tokens) to stay fast.
//! Update snapshots deliberately: `INSTA_UPDATE=always cargo test --release --test tui_playground`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use polaris::generate::{Finish, GenerationRecord};
use polaris::tui::playground::msg::{Msg, Shared};
use polaris::tui::playground::save::SavedStory;
use polaris::tui::playground::state::{Choice, Status};
use polaris::tui::theme::Theme;
use polaris::tui::{dashboard, playground};
use polaris::tui::{ui, Action, App, DirLink};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    app: App,
    rx: Receiver<Action>,
}

/// A run directory whose config.toml names a tiny model written into the temp dir, the app
/// on its Playground tab, and the channel its workers report on.
fn fixture() -> Fixture {
    fixture_with(|_| {})
}

/// `fixture`, with the run's config changed by `edit` before the app opens it.
fn fixture_with(edit: impl FnOnce(&mut polaris::train::config::TrainConfig)) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run(tmp.path());
    let model = tmp.path().join("tiny-model");
    std::fs::create_dir_all(&model).unwrap();
    polaris::model::tiny::write(&model).unwrap();
    let mut cfg = polaris::train::config::TrainConfig::default();
    cfg.model.path = model.display().to_string();
    edit(&mut cfg);
    std::fs::write(dir.join("config.toml"), cfg.to_toml().unwrap()).unwrap();
    let themes = vec![Theme::built_in("dark").unwrap()];
    let mut app = App::new(&dir, Box::new(DirLink::new(&dir, None)), themes, 0);
    app.update(Action::Tick);
    let (tx, rx) = mpsc::channel();
    app.connect(tx);
    key(&mut app, KeyCode::Char('5'));
    assert_eq!(app.state.tab, playground::ID);
    Fixture { _tmp: tmp, dir, app, rx }
}

fn key(app: &mut App, code: KeyCode) {
    app.update(Action::Input(TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))));
}

fn type_prompt(app: &mut App, text: &str) {
    key(app, KeyCode::Char('e'));
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
    key(app, KeyCode::Esc);
}

fn msg(app: &mut App, m: Msg) {
    app.update(Action::Playground(m));
}

/// Applies the workers' reports until `done` holds. The wait bounds a hung worker; it is
/// not a speed check.
fn until(f: &mut Fixture, done: impl Fn(&App) -> bool) {
    while !done(&f.app) {
        let a = f.rx.recv_timeout(Duration::from_secs(300)).expect("the playground's worker went quiet");
        f.app.update(a);
    }
}

fn text(app: &App, width: u16, height: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(width, height)).unwrap();
    term.draw(|f| ui::draw(f, &app.state)).unwrap();
    let buf = term.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..height {
        let line: String = (0..width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    regex::Regex::new(r"/tmp/[A-Za-z0-9._/-]+").unwrap().replace_all(&out, "<TMP>").into_owned()
}

fn snap(name: &str, app: &App) {
    for (w, h) in [(80, 24), (200, 50)] {
        insta::assert_snapshot!(format!("playground_{name}_{w}x{h}"), text(app, w, h));
    }
}

const STORY: &str =
    "The lighthouse keeper counted the ships.\n\nNone came that winter, and she wrote it down.";

/// A finished generation's record, as the worker would send it.
fn record(story: &str, target: usize) -> Shared<GenerationRecord> {
    let words = polaris::generate::count_words(story);
    Shared(Arc::new(GenerationRecord {
        prompt_token_ids: vec![1, 2, 3],
        token_ids: (0..31).collect(),
        thinking: Some("A quiet tale.".into()),
        story: story.into(),
        words,
        length_ratio: polaris::generate::length_ratio(words, target),
        tokens_per_second: 10.0,
        prompt: "<|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n".into(),
        requested_words: Some(target),
        finish: Finish::Stop,
        thinking_tokens: 6,
        forced_think_close: false,
    }))
}

/// The left pane streamed to its end from fixed messages (no model).
fn finished(f: &mut Fixture, pane: usize) {
    let g = f.app.state.playground.panes[pane].generation;
    msg(&mut f.app, Msg::Loaded { pane, generation: g, label: "base tiny".into(), prompt: String::new() });
    for piece in ["<think>\nA quiet tale.\n</think>\n\n", STORY] {
        msg(&mut f.app, Msg::Piece { pane, generation: g, text: piece.into() });
    }
    msg(&mut f.app, Msg::Finished { pane, generation: g, record: record(STORY, 100) });
}

#[test]
fn typing_goes_to_the_editor_not_the_global_keys() {
    let mut f = fixture();
    // q, 1, Tab and s would quit, switch tabs and ask to stop the trainer outside the editor
    type_prompt(&mut f.app, "quiet 1 stormy night");
    key(&mut f.app, KeyCode::Char('e'));
    key(&mut f.app, KeyCode::Tab);
    key(&mut f.app, KeyCode::Esc);
    let s = &f.app.state;
    assert!(!s.quit && !s.confirm_stop);
    assert_eq!(s.tab, playground::ID);
    assert_eq!(s.playground.instruction(), "quiet 1 stormy night");
    // outside the editor the global keys work again
    key(&mut f.app, KeyCode::Char('1'));
    assert_eq!(f.app.state.tab, dashboard::ID);
}

#[test]
fn thinking_starts_as_the_run_trains() {
    // the default run thinks (the model card's default), so the Playground starts with it on
    assert!(fixture().app.state.playground.thinking);
    // a run that trains without thinking (the demo) samples without it in the Playground too
    let f = fixture_with(|cfg| cfg.step.thinking = false);
    assert!(!f.app.state.playground.thinking);
    let screen = text(&f.app, 200, 50);
    assert!(screen.contains(&format!("{:<13}{:>9}", "thinking", "off")), "{screen}");
}

#[test]
fn the_mouse_wheel_scrolls_the_focused_pane_by_three_lines_and_pages_by_ten() {
    use crossterm::event::{MouseEvent, MouseEventKind};
    let mut f = fixture();
    let wheel = |app: &mut App, kind| {
        let m = MouseEvent { kind, column: 40, row: 12, modifiers: KeyModifiers::NONE };
        app.update(Action::Input(TermEvent::Mouse(m)));
    };
    wheel(&mut f.app, MouseEventKind::ScrollDown);
    wheel(&mut f.app, MouseEventKind::ScrollDown);
    assert_eq!(f.app.state.playground.panes[0].scroll, 6);
    wheel(&mut f.app, MouseEventKind::ScrollUp);
    assert_eq!(f.app.state.playground.panes[0].scroll, 3);
    key(&mut f.app, KeyCode::PageDown);
    assert_eq!(f.app.state.playground.panes[0].scroll, 13);
    // the settings selection is not what the wheel moves here
    assert_eq!(f.app.state.playground.field, 0);
    for _ in 0..10 {
        wheel(&mut f.app, MouseEventKind::ScrollUp);
    }
    assert_eq!(f.app.state.playground.panes[0].scroll, 0, "scrolling up stops at the top");
}

#[test]
fn settings_change_from_the_model_card_defaults() {
    let mut f = fixture();
    let p = &f.app.state.playground;
    assert_eq!(p.params, polaris::generate::SamplingParams::default());
    key(&mut f.app, KeyCode::Char('+')); // target words
    key(&mut f.app, KeyCode::Down);
    key(&mut f.app, KeyCode::Char('-')); // thinking off
    key(&mut f.app, KeyCode::Down);
    key(&mut f.app, KeyCode::Char('+')); // temperature
    let p = &f.app.state.playground;
    assert_eq!(p.target_words, 1100);
    assert!(!p.thinking);
    // 0.6 + 0.1, kept on the tenths: exact to f32 rounding
    assert!((p.params.temperature - 0.7).abs() < 1e-6, "{}", p.params.temperature);
}

#[test]
fn views() {
    let mut f = fixture();
    snap("empty", &f.app);
    type_prompt(&mut f.app, "A lighthouse keeper's last winter.");
    key(&mut f.app, KeyCode::Char('-')); // 900 words... then back to 100-word steps below
    for _ in 0..8 {
        key(&mut f.app, KeyCode::Char('-'));
    }
    assert_eq!(f.app.state.playground.target_words, 100);
    msg(&mut f.app, Msg::Loaded { pane: 0, generation: 0, label: "base tiny".into(), prompt: String::new() });
    msg(
        &mut f.app,
        Msg::Piece { pane: 0, generation: 0, text: "<think>\nA quiet tale.\n</think>\n\n".into() },
    );
    msg(&mut f.app, Msg::Piece { pane: 0, generation: 0, text: "The lighthouse keeper counted".into() });
    assert_eq!(f.app.state.playground.panes[0].words, 4);
    snap("generating", &f.app);
    msg(
        &mut f.app,
        Msg::Piece { pane: 0, generation: 0, text: STORY["The lighthouse keeper counted".len()..].into() },
    );
    msg(&mut f.app, Msg::Finished { pane: 0, generation: 0, record: record(STORY, 100) });
    snap("finished", &f.app);
    // judged by the offline judge through the worker
    key(&mut f.app, KeyCode::Char('J'));
    assert_eq!(f.app.state.playground.panes[0].status, Status::Judging);
    until(&mut f, |a| a.state.playground.panes[0].status != Status::Judging);
    assert_eq!(f.app.state.playground.panes[0].status, Status::Judged);
    snap("judged", &f.app);
    // two panes, the right one on another model, focus moved to it
    key(&mut f.app, KeyCode::Char('v'));
    key(&mut f.app, KeyCode::Right);
    key(&mut f.app, KeyCode::Char('m'));
    finished(&mut f, 1);
    snap("two_panes", &f.app);
}

#[test]
fn a_tiny_model_streams_into_the_pane_then_is_judged_and_saved() {
    let mut f = fixture();
    type_prompt(&mut f.app, "A fox at dawn.");
    f.app.state.playground.params.max_new_tokens = 48;
    // the run has no checkpoint: the latest-checkpoint choice says so plainly
    key(&mut f.app, KeyCode::Char('g'));
    until(&mut f, |a| !a.state.playground.panes[0].status.busy());
    match &f.app.state.playground.panes[0].status {
        Status::Failed(why) => assert!(why.contains("no checkpoint yet"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    key(&mut f.app, KeyCode::Char('m'));
    assert_eq!(f.app.state.playground.choices[f.app.state.playground.panes[0].choice], Choice::Base);
    key(&mut f.app, KeyCode::Char('g'));
    until(&mut f, |a| a.state.playground.panes[0].status == Status::Generating);
    until(&mut f, |a| !a.state.playground.panes[0].status.busy());
    let pane = &f.app.state.playground.panes[0];
    assert!(matches!(pane.status, Status::Finished), "{:?}", pane.status);
    let rec = pane.record.clone().unwrap();
    assert!(pane.loaded.as_deref().unwrap().starts_with("base "), "{:?}", pane.loaded);
    assert!(!rec.token_ids.is_empty() && rec.token_ids.len() <= 48);
    assert_eq!(pane.tokens, rec.token_ids.len());
    // the streamed text is the record's decoding: the same story and word count
    assert_eq!(pane.words, rec.words);
    assert!(pane.text.contains(rec.story.trim()), "streamed {:?}\nrecord {:?}", pane.text, rec.story);
    assert_eq!(rec.requested_words, Some(1000));

    key(&mut f.app, KeyCode::Char('J'));
    until(&mut f, |a| a.state.playground.panes[0].status != Status::Judging);
    let pane = &f.app.state.playground.panes[0];
    assert_eq!(pane.status, Status::Judged);
    let b = pane.breakdown.clone().unwrap();
    assert_eq!(b.words, rec.words);
    assert_eq!(b.requested_words, Some(1000));

    key(&mut f.app, KeyCode::Char('w'));
    let saved = saved_files(&f.dir);
    assert_eq!(saved.len(), 1, "{saved:?}");
    let s: SavedStory = serde_json::from_str(&std::fs::read_to_string(&saved[0]).unwrap()).unwrap();
    assert_eq!(s.instruction, "A fox at dawn.");
    assert_eq!(s.target_words, 1000);
    assert_eq!(s.sampling.max_new_tokens, 48);
    assert_eq!(s.story, rec.story);
    assert_eq!(s.reasoning, rec.thinking);
    assert_eq!(s.words, rec.words);
    assert_eq!(s.length_ratio, rec.length_ratio);
    assert_eq!(s.generation.token_ids, rec.token_ids);
    assert!(s.model.starts_with("base "));
    assert_eq!(s.judgement.unwrap().reward, b.reward);
    assert!(f.app.state.note.as_deref().unwrap().starts_with("saved "));
}

/// Files under RUN_DIR/playground; a leftover temporary file fails the test.
fn saved_files(dir: &Path) -> Vec<PathBuf> {
    let all: Vec<PathBuf> =
        std::fs::read_dir(dir.join("playground")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(all.iter().all(|p| p.extension().unwrap() == "json"), "{all:?}");
    all
}

#[test]
fn saving_before_generating_says_what_to_do() {
    let mut f = fixture();
    key(&mut f.app, KeyCode::Char('w'));
    assert!(f.app.state.note.as_deref().unwrap().contains("generate a story first"));
    assert!(!f.dir.join("playground").exists());
}

#[test]
fn stop_cancels_the_generation_and_keeps_what_was_written() {
    let mut f = fixture();
    type_prompt(&mut f.app, "A long road.");
    key(&mut f.app, KeyCode::Char('m')); // base model
    f.app.state.playground.params.max_new_tokens = 4096;
    key(&mut f.app, KeyCode::Char('g'));
    // the cancel flag is set before the worker reaches its first step; the engine stops
    // after the step it is in
    key(&mut f.app, KeyCode::Char('x'));
    until(&mut f, |a| !a.state.playground.panes[0].status.busy());
    let pane = &f.app.state.playground.panes[0];
    assert_eq!(pane.status, Status::Stopped);
    let rec = pane.record.clone().unwrap();
    assert_eq!(rec.finish, Finish::Cancelled);
    assert!(rec.token_ids.len() <= 1, "{} tokens after stop", rec.token_ids.len());
}

#[test]
fn the_latest_checkpoint_of_a_full_fine_tune_loads() {
    let mut f = fixture();
    let cfg = polaris::train::config::TrainConfig::parse(
        &std::fs::read_to_string(f.dir.join("config.toml")).unwrap(),
        "config.toml",
        &[],
    )
    .unwrap();
    let opts = common::cpu(candle_core::DType::F32).trainable(polaris::model::params::all_trainable());
    let lm = polaris::lm::LanguageModel::open(&cfg.model.path, &opts).unwrap();
    let mut trainer = polaris::train::step::Trainer::new(cfg.step.clone(), 0);
    trainer.step = 7;
    polaris::train::checkpoint::save(&f.dir, &lm.model, &trainer, 0).unwrap();
    type_prompt(&mut f.app, "A fox at dawn.");
    f.app.state.playground.params.max_new_tokens = 8;
    key(&mut f.app, KeyCode::Char('g'));
    until(&mut f, |a| !a.state.playground.panes[0].status.busy());
    let pane = &f.app.state.playground.panes[0];
    assert!(matches!(pane.status, Status::Finished), "{:?}", pane.status);
    assert_eq!(pane.loaded.as_deref(), Some("checkpoints/step-000007"));
    // the new checkpoint is also offered by name
    key(&mut f.app, KeyCode::Char('m'));
    key(&mut f.app, KeyCode::Char('m'));
    let p = &f.app.state.playground;
    assert!(matches!(&p.choices[p.panes[0].choice], Choice::Checkpoint(d) if d.ends_with("step-000007")));
}
