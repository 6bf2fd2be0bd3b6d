//! Every view of the TUI drawn from fixed data into ratatui's TestBackend and compared with an
//! insta snapshot (tests/snapshots/). The fixture's run directory has a fixed name and the
//! views draw no clock time, so the only volatile text is host/device numbers, which these
//! tests feed as fixed samples; `mask` blanks anything else volatile should it appear.
//! Update snapshots deliberately: `INSTA_UPDATE=always cargo test --release --test tui_views`,
//! then read the diff.

mod common;

use std::sync::mpsc;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use polaris::gpu::{DeviceStats, GpuProcess, HostStats, Sample};
use polaris::reward::score::ScoreMode;
use polaris::run::Control;
use polaris::tui::rollouts::StepKey;
use polaris::tui::theme::Theme;
use polaris::tui::{annotate, eval, groups, inspector};
use polaris::tui::{ui, Action, App, DirLink};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Modifier;
use ratatui::Terminal;

struct Fixture {
    _tmp: tempfile::TempDir,
    app: App,
    controls: Option<mpsc::Receiver<Control>>,
}

fn fixture(themes: Vec<Theme>, controllable: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run(tmp.path());
    let (tx, rx) = mpsc::channel();
    let link = DirLink::new(&dir, controllable.then_some(tx));
    let mut app = App::new(&dir, Box::new(link), themes, 0);
    app.update(Action::Tick);
    Fixture { _tmp: tmp, app, controls: controllable.then_some(rx) }
}

fn dark() -> Vec<Theme> {
    vec![Theme::built_in("dark").unwrap()]
}

fn key(app: &mut App, code: KeyCode) {
    app.update(Action::Input(TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))));
}

fn draw(app: &App, width: u16, height: u16) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(width, height)).unwrap();
    term.draw(|f| ui::draw(f, &app.state)).unwrap();
    term.backend().buffer().clone()
}

/// The buffer's text, one line per row, trailing spaces kept off.
fn text(buf: &Buffer) -> String {
    mask(&unmasked(buf))
}

/// `text` with the temporary paths left in.
fn unmasked(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let line: String = (0..area.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Blanks text that changes between runs: temp paths.
fn mask(s: &str) -> String {
    let re = regex::Regex::new(r"/tmp/[A-Za-z0-9._/-]+").unwrap();
    re.replace_all(s, "<TMP>").into_owned()
}

fn snap(name: &str, app: &App) {
    for (w, h) in [(80, 24), (200, 50)] {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text(&draw(app, w, h)));
    }
}

#[test]
fn dashboard() {
    let f = fixture(dark(), false);
    snap("dashboard", &f.app);
}

#[test]
fn dashboard_zoomed_and_panned() {
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('+'));
    key(&mut f.app, KeyCode::Left);
    snap("dashboard_zoomed", &f.app);
}

#[test]
fn groups_follow_the_latest_step_and_navigate() {
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('2'));
    snap("groups_latest", &f.app);
    key(&mut f.app, KeyCode::Left);
    key(&mut f.app, KeyCode::Char(']'));
    key(&mut f.app, KeyCode::Down);
    snap("groups_step39_group1_row2", &f.app);
}

/// Which score the run ranks by (`reward.score`) is named on the dashboard and in Groups; a
/// release-scored run's Groups show the composite beside the score.
#[test]
fn the_score_mode_is_named_on_the_dashboard_and_in_groups() {
    for (mode, dashboard, groups) in [
        (ScoreMode::Composite, "(all, live) · composite", "Composite score"),
        (ScoreMode::Release, "(all, live) · release", "Release score"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = common::run_fixture::write_run_scored(tmp.path(), mode);
        let mut app = App::new(&dir, Box::new(DirLink::new(&dir, None)), dark(), 0);
        app.update(Action::Tick);
        let screen = text(&draw(&app, 120, 40));
        assert!(screen.contains(dashboard), "{mode:?}: {screen}");
        key(&mut app, KeyCode::Char('2'));
        let screen = text(&draw(&app, 120, 40));
        assert!(screen.contains(groups), "{mode:?}: {screen}");
        assert_eq!(screen.contains("compos."), mode == ScoreMode::Release, "{screen}");
    }
}

/// The human reference's row: the theme's reference colour, bold, and marked `HUMAN`.
#[test]
fn the_reference_row_is_highlighted_and_marked() {
    for theme in [Theme::built_in("dark").unwrap(), Theme::mono()] {
        let mut f = fixture(vec![theme.clone()], false);
        key(&mut f.app, KeyCode::Char('2'));
        let buf = draw(&f.app, 200, 50);
        let screen = text(&buf);
        let y = screen.lines().position(|l| l.contains("HUMAN")).expect("a HUMAN row") as u16;
        let x = screen.lines().nth(y as usize).unwrap().find("HUMAN").unwrap();
        // the byte offset equals the column here: the row is ASCII up to the marker's glyph
        let x = screen.lines().nth(y as usize).unwrap()[..x].chars().count() as u16;
        let cell = &buf[(x, y)];
        assert!(cell.modifier.contains(Modifier::BOLD), "{}: reference row not bold", theme.name);
        if !theme.mono {
            assert_eq!(cell.fg, theme.reference, "{}: reference row not in the reference colour", theme.name);
        }
        assert!(screen.lines().nth(y as usize).unwrap().contains('▶'), "the row carries a marker");
    }
}

#[test]
fn inspector_with_and_without_thinking() {
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('2'));
    key(&mut f.app, KeyCode::Enter);
    assert_eq!(f.app.state.tab, inspector::ID);
    snap("inspector", &f.app);
    key(&mut f.app, KeyCode::Char('t'));
    snap("inspector_thinking", &f.app);
}

/// Quoted evidence is marked where it occurs in the story.
#[test]
fn the_inspector_marks_quoted_evidence_in_the_story() {
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('3'));
    // rank 1 of group 0 is the reference, story 3: "...count the stars..."
    let buf = draw(&f.app, 200, 50);
    let screen = text(&buf);
    let y = screen.lines().position(|l| l.contains("count the stars")).unwrap() as u16;
    let line = screen.lines().nth(y as usize).unwrap();
    let x = line[..line.find("count the stars").unwrap()].chars().count() as u16;
    let evidence = Theme::built_in("dark").unwrap().evidence();
    assert_eq!(buf[(x, y)].bg, evidence.bg.unwrap());
    assert!(buf[(x, y)].modifier.contains(Modifier::UNDERLINED));
    let before = &buf[(x.saturating_sub(2), y)];
    assert!(!before.modifier.contains(Modifier::UNDERLINED), "only the quote is marked");
}

fn host_sample(cpu: f64) -> Sample {
    Sample::Host {
        why: "NVML is not available (libnvidia-ml.so.1: cannot open shared object file): no NVIDIA driver?"
            .into(),
        host: HostStats {
            cpu_percent: cpu,
            cores: 2,
            mem_used_bytes: 6 << 30,
            mem_total_bytes: 16 << 30,
            processes: vec![],
        },
    }
}

#[test]
fn gpus_without_nvml_show_the_host() {
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('4'));
    for cpu in [10.0, 50.0, 90.0, 30.0] {
        f.app.update(Action::Gpu(host_sample(cpu)));
    }
    snap("gpus_host", &f.app);
}

#[test]
fn gpus_with_devices() {
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('4'));
    for util in [20, 80, 95] {
        let d = |index: u32| DeviceStats {
            index,
            name: "NVIDIA H100 80GB HBM3".into(),
            util_percent: util,
            mem_used_bytes: 40 << 30,
            mem_total_bytes: 80 << 30,
            temperature_c: Some(54),
            power_watts: Some(312.0),
            sm_clock_mhz: Some(1980),
            mem_clock_mhz: Some(2619),
            processes: vec![GpuProcess {
                pid: 4242,
                gpu_mem_bytes: Some(39 << 30),
                sm_percent: None,
                host: None,
            }],
            ..Default::default()
        };
        f.app.update(Action::Gpu(Sample::Devices(vec![d(0), d(1)])));
    }
    snap("gpus_devices", &f.app);
}

#[test]
fn playground_and_annotate_say_plainly_what_they_are() {
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('5'));
    snap("playground", &f.app);
    // $USER differs between machines
    f.app.state.annotate.annotator = Some("tester".into());
    key(&mut f.app, KeyCode::Char('6'));
    snap("annotate", &f.app);
}

#[test]
fn help_overlay() {
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('?'));
    snap("help", &f.app);
    key(&mut f.app, KeyCode::Esc);
    assert!(!f.app.state.help);
}

#[test]
fn stop_asks_first_and_controls_reach_the_trainer() {
    let mut f = fixture(dark(), true);
    let rx = f.controls.take().unwrap();
    key(&mut f.app, KeyCode::Char('s'));
    snap("confirm_stop", &f.app);
    key(&mut f.app, KeyCode::Char('n'));
    assert!(rx.try_recv().is_err(), "a cancelled stop sends nothing");
    // the fixture ends paused: p resumes
    key(&mut f.app, KeyCode::Char('p'));
    key(&mut f.app, KeyCode::Char('c'));
    key(&mut f.app, KeyCode::Char('s'));
    key(&mut f.app, KeyCode::Char('y'));
    let sent: Vec<Control> = rx.try_iter().collect();
    assert_eq!(sent, vec![Control::Resume, Control::CheckpointNow, Control::Stop]);
}

#[test]
fn a_read_only_run_refuses_controls_in_the_status_line() {
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('p'));
    let screen = text(&draw(&f.app, 120, 30));
    assert!(screen.contains("read only: no trainer to send Resume to"), "{screen}");
    // and the TUI's own log in the run directory says so too (never the screen's stderr)
    let log = std::fs::read_to_string(f._tmp.path().join("run-fixture/tui.log")).unwrap();
    assert!(log.contains("no trainer to send Resume to"), "{log}");
}

/// Inspecting a row pins its step: new steps do not move the row under the reader.
#[test]
fn inspecting_pins_the_step_until_follow() {
    use std::io::Write;
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('2'));
    key(&mut f.app, KeyCode::Enter);
    let dir = f._tmp.path().join("run-fixture");
    let mut rollouts = std::fs::OpenOptions::new().append(true).open(dir.join("rollouts.jsonl")).unwrap();
    for row in common::run_fixture::rollouts(41, 2) {
        writeln!(rollouts, "{}", serde_json::to_string(&row).unwrap()).unwrap();
    }
    f.app.update(Action::Tick);
    assert_eq!(f.app.state.groups.loaded.as_ref().unwrap().0, StepKey::train(40), "still the inspected step");
    key(&mut f.app, KeyCode::Char('f'));
    assert_eq!(
        f.app.state.groups.loaded.as_ref().unwrap().0,
        StepKey::train(41),
        "f follows the latest again"
    );
}

#[test]
fn themes_cycle_live_and_no_color_draws_the_same_text() {
    let themes = ["dark", "light", "high-contrast"].map(|n| Theme::built_in(n).unwrap()).to_vec();
    let mut f = fixture(themes, false);
    key(&mut f.app, KeyCode::Char('T'));
    assert_eq!(f.app.state.theme().name, "light");
    // Groups: no charts (NO_COLOR draws the reward band with its own marker)
    key(&mut f.app, KeyCode::Char('2'));
    let light = draw(&f.app, 120, 30);
    let mut mono = fixture(vec![Theme::mono()], false);
    key(&mut mono.app, KeyCode::Char('2'));
    let plain = draw(&mono.app, 120, 30);
    assert_ne!(light, plain, "colours differ");
    // the status line's note names the theme; the rest of the screen is the same text
    let strip = |b: &Buffer| text(b).lines().take(29).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&light), strip(&plain));
    let reset = ratatui::style::Color::Reset;
    assert!(plain.content.iter().all(|c| c.fg == reset && c.bg == reset), "NO_COLOR draws no colour");
}

#[test]
fn tabs_cycle_and_clicks_select_them() {
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Tab);
    assert_eq!(f.app.state.tab, groups::ID);
    f.app.update(Action::Input(TermEvent::Key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT))));
    f.app.update(Action::Input(TermEvent::Key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT))));
    assert_eq!(f.app.state.tab, eval::ID);
    // the third label on the tab bar is the Inspector's
    let screen = text(&draw(&f.app, 120, 30));
    let x = screen.lines().next().unwrap().find("3 Inspector").unwrap() as u16;
    let x = screen.lines().next().unwrap()[..x as usize].chars().count() as u16;
    let click = crossterm::event::MouseEvent {
        kind: crossterm::event::MouseEventKind::Down(crossterm::event::MouseButton::Left),
        column: x + 2,
        row: 0,
        modifiers: KeyModifiers::NONE,
    };
    f.app.update(Action::Input(TermEvent::Mouse(click)));
    assert_eq!(f.app.state.tab, inspector::ID);
    key(&mut f.app, KeyCode::Char('q'));
    assert!(f.app.state.quit);
}

/// Appends one event to the fixture run's log, as the trainer would.
fn append_event(f: &Fixture, kind: polaris::run::EventKind) {
    use std::io::Write;
    let ev = polaris::run::Event { v: polaris::run::PROTOCOL_VERSION, seq: 1000, time: 0.0, kind };
    let dir = f._tmp.path().join("run-fixture");
    let mut events = std::fs::OpenOptions::new().append(true).open(dir.join("events.jsonl")).unwrap();
    writeln!(events, "{}", serde_json::to_string(&ev).unwrap()).unwrap();
}

/// A run directory that grows is followed: new steps and rollouts appear on the next tick.
#[test]
fn a_growing_run_is_followed() {
    use std::io::Write;
    let mut f = fixture(dark(), false);
    key(&mut f.app, KeyCode::Char('2'));
    assert_eq!(f.app.state.groups.loaded.as_ref().unwrap().0, StepKey::train(40));
    let dir = f._tmp.path().join("run-fixture");
    let stats = common::run_fixture::step_stats(41);
    let ev = polaris::run::Event {
        v: polaris::run::PROTOCOL_VERSION,
        seq: 1000,
        time: 0.0,
        kind: polaris::run::EventKind::Step(Box::new(stats)),
    };
    let mut events = std::fs::OpenOptions::new().append(true).open(dir.join("events.jsonl")).unwrap();
    // half a line first: not read until its newline arrives
    let line = serde_json::to_string(&ev).unwrap();
    let (a, b) = line.split_at(20);
    write!(events, "{a}").unwrap();
    f.app.update(Action::Tick);
    assert_eq!(f.app.state.history.latest().unwrap().step, 40);
    writeln!(events, "{b}").unwrap();
    let mut rollouts = std::fs::OpenOptions::new().append(true).open(dir.join("rollouts.jsonl")).unwrap();
    for row in common::run_fixture::rollouts(41, 2) {
        writeln!(rollouts, "{}", serde_json::to_string(&row).unwrap()).unwrap();
    }
    f.app.update(Action::Tick);
    assert_eq!(f.app.state.history.latest().unwrap().step, 41);
    let (step, groups) = f.app.state.groups.loaded.as_ref().unwrap();
    assert_eq!((*step, groups.len()), (StepKey::train(41), 2), "live follow moved to the new step");
}

/// How a run ended is the status badge's first word: one stopped early does not read as
/// finished.
#[test]
fn the_status_badge_says_whether_a_run_finished_or_was_stopped() {
    for (reason, badge) in [
        ("finished", "■ FINISHED step 40 "),
        ("stopped", "■ STOPPED step 40 "),
        ("interrupted", "■ STOPPED step 40: interrupted "),
    ] {
        let mut f = fixture(dark(), false);
        append_event(&f, polaris::run::EventKind::Finished { step: 40, reason: reason.into() });
        f.app.update(Action::Tick);
        let screen = text(&draw(&f.app, 80, 24));
        let status = screen.lines().last().unwrap();
        assert!(status.starts_with(&format!(" {badge}")), "{reason}: {status}");
    }
}

/// The Annotate tab opens the run's own samples as a blinded study in RUN_DIR/annotate/: no
/// system name on screen, a verdict is appended to the annotator's file, the global Tab still
/// switches tabs, and `q` leaves the study instead of quitting.
#[test]
fn the_annotate_tab_judges_the_runs_samples_blinded() {
    let mut f = fixture(dark(), false);
    f.app.state.annotate.annotator = Some("tester".into());
    key(&mut f.app, KeyCode::Char('6'));
    key(&mut f.app, KeyCode::Enter);
    assert!(f.app.state.annotate.screen.is_some(), "{:?}", f.app.state.note);
    snap("annotate_study", &f.app);
    for (w, h) in [(80, 24), (200, 50)] {
        let screen = text(&draw(&f.app, w, h));
        for name in ["human-reference", "policy@", "step-40", "reference"] {
            assert!(!screen.contains(name), "{name} on screen:\n{screen}");
        }
    }
    let study = f.app.state.annotate.run_dir.join("annotate/policy-vs-human");
    let file = study.join("judgments-tester.jsonl");
    let judgments = || {
        std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"kind\":\"judgment\""))
            .count()
    };
    assert_eq!(judgments(), 0);
    key(&mut f.app, KeyCode::Char('2'));
    assert_eq!(judgments(), 1, "a verdict in the tab is appended to the study file");
    assert_eq!(f.app.state.tab, annotate::ID, "`2` judged rather than switching tabs");
    // the screen's pane switch is `o`; Tab stays the workbench's
    key(&mut f.app, KeyCode::Char('o'));
    assert_eq!(f.app.state.annotate.screen.as_ref().unwrap().focus, polaris::annotate::screen::Pane::Right);
    key(&mut f.app, KeyCode::Tab);
    assert_eq!(f.app.state.tab, eval::ID);
    key(&mut f.app, KeyCode::Char('6'));
    key(&mut f.app, KeyCode::Char('='));
    assert_eq!(judgments(), 2);
    key(&mut f.app, KeyCode::Char('q'));
    assert!(!f.app.state.quit, "q leaves the study, not the workbench");
    assert!(f.app.state.annotate.screen.is_none());
    assert!(text(&draw(&f.app, 120, 30)).contains("(study begun)"), "the chooser marks the study");
    // reopening resumes: two of three judged
    key(&mut f.app, KeyCode::Enter);
    let ledger = &f.app.state.annotate.screen.as_ref().unwrap().session.ledger;
    assert_eq!((ledger.done(), ledger.total()), (2, 3));
    let study = polaris::annotate::Study::load(&study).unwrap();
    assert_eq!(study.systems, ["policy@step-40".to_string(), "human-reference".to_string()]);
}

/// The second comparison: the same prompts at the earliest and the latest step.
#[test]
fn the_annotate_tab_compares_the_earliest_and_latest_steps() {
    let mut f = fixture(dark(), false);
    f.app.state.annotate.annotator = Some("tester".into());
    key(&mut f.app, KeyCode::Char('6'));
    key(&mut f.app, KeyCode::Down);
    key(&mut f.app, KeyCode::Enter);
    let screen = f.app.state.annotate.screen.as_ref().expect("the study opens");
    assert_eq!(screen.session.study.systems, ["policy@step-39".to_string(), "policy@step-40".to_string()]);
    assert_eq!(screen.session.ledger.total(), common::run_fixture::GROUPS);
}

/// The loop reports each frame's size; the open study's screen takes the view's area (the
/// tab bar and status line excluded), which bounds its scrolling.
#[test]
fn the_drawn_frame_sets_the_annotation_screens_area() {
    let mut f = fixture(dark(), false);
    f.app.state.annotate.annotator = Some("tester".into());
    key(&mut f.app, KeyCode::Char('6'));
    key(&mut f.app, KeyCode::Enter);
    f.app.update(Action::Drawn(ratatui::layout::Rect::new(0, 0, 80, 24)));
    let area = f.app.state.annotate.screen.as_ref().unwrap().area;
    assert_eq!(area, ratatui::layout::Rect::new(0, 1, 80, 22));
}

/// A run without rollouts: opening a study says why in the status line, and nothing is made.
#[test]
fn annotating_a_run_without_rollouts_says_why() {
    let mut f = fixture(dark(), false);
    f.app.state.annotate.annotator = Some("tester".into());
    let run_dir = f.app.state.annotate.run_dir.clone();
    std::fs::remove_file(run_dir.join("rollouts.jsonl")).unwrap();
    key(&mut f.app, KeyCode::Char('6'));
    key(&mut f.app, KeyCode::Enter);
    assert!(f.app.state.annotate.screen.is_none());
    let note = f.app.state.note.clone().unwrap_or_default();
    assert!(note.contains("rollouts.jsonl") && note.contains("no rollouts yet"), "{note}");
    assert!(!run_dir.join("annotate").exists());
}

/// The run's `eval/` folder, and the Eval tab read again.
fn eval_dir(f: &Fixture) -> std::path::PathBuf {
    f._tmp.path().join("run-fixture/eval")
}

fn open_eval(f: &mut Fixture) {
    key(&mut f.app, KeyCode::Char('7'));
    key(&mut f.app, KeyCode::Char('r'));
    assert_eq!(f.app.state.tab, eval::ID);
}

#[test]
fn the_eval_tab_shows_a_runs_evaluations() {
    use common::eval_fixture::{length_report, write_both, write_json};
    let mut f = fixture(dark(), false);
    write_both(&eval_dir(&f).join("paper"));
    // a second evaluation with a length summary only, and a folder without summaries (not listed)
    let mut sweep = length_report();
    sweep.models.truncate(1);
    sweep.rows.truncate(3);
    sweep.prompts_outside_buckets = 2;
    write_json(&eval_dir(&f).join("sweep/length.json"), &sweep);
    std::fs::create_dir_all(eval_dir(&f).join("scratch")).unwrap();
    open_eval(&mut f);
    let names: Vec<&str> = f.app.state.eval.evals.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["paper", "sweep"]);
    snap("eval", &f.app);
    let screen = text(&draw(&f.app, 200, 50));
    // the tables: a missing SQ is a dash next to its ratio; the ladder with W/L/T and the anchor
    assert!(screen.lines().any(|l| l.contains("base") && l.contains("8000-12000") && l.contains("0/16")));
    assert!(screen.contains("base (anchor)") && screen.contains("1041–1139"), "{screen}");
    assert!(screen.contains("first position wins 0.53"), "{screen}");
    key(&mut f.app, KeyCode::Down);
    snap("eval_length_only", &f.app);
    assert!(text(&draw(&f.app, 200, 50)).contains("2 prompts asked for a length outside every bucket"));

    // a new evaluation sorting first keeps the chosen one chosen; a changed summary is read again
    let mut elo = common::eval_fixture::elo_report();
    elo.ratings[0].rating = 1111.0;
    write_json(&eval_dir(&f).join("paper/elo.json"), &elo);
    write_json(&eval_dir(&f).join("another/elo.json"), &elo);
    key(&mut f.app, KeyCode::Char('r'));
    assert_eq!(f.app.state.eval.current().unwrap().name, "sweep");
    key(&mut f.app, KeyCode::Up);
    key(&mut f.app, KeyCode::Up);
    assert_eq!(f.app.state.eval.current().unwrap().name, "another");
    key(&mut f.app, KeyCode::Down);
    assert!(text(&draw(&f.app, 200, 50)).contains("1111"), "paper's elo.json read again");
}

#[test]
fn the_eval_tab_says_how_to_make_an_evaluation() {
    let mut f = fixture(dark(), false);
    open_eval(&mut f);
    snap("eval_none", &f.app);
    assert!(text(&draw(&f.app, 200, 50)).contains("--out RUN_DIR/eval/length"));
}

#[test]
fn the_eval_tab_names_a_damaged_summary() {
    let mut f = fixture(dark(), false);
    std::fs::create_dir_all(eval_dir(&f).join("broken")).unwrap();
    std::fs::write(eval_dir(&f).join("broken/length.json"), "{ \"v\": 1, \"judge\": ").unwrap();
    common::eval_fixture::write_json(&eval_dir(&f).join("broken/elo.json"), &serde_json::json!({"v": 1}));
    open_eval(&mut f);
    snap("eval_damaged", &f.app);
    let screen = unmasked(&draw(&f.app, 200, 50));
    assert!(screen.contains("eval/broken/length.json: not JSON (EOF while parsing"), "{screen}");
    assert!(screen.contains("eval/broken/elo.json: not an evaluation summary"), "{screen}");
}

/// Summaries that parse but hold little (no rows, no ratings, no buckets) draw a view, not a
/// panic, at the smallest and the largest size.
#[test]
fn the_eval_tab_draws_summaries_with_nothing_in_them() {
    use common::eval_fixture::{elo_report, length_report, write_json};
    let mut f = fixture(dark(), false);
    let mut l = length_report();
    l.rows.clear();
    l.buckets.clear();
    let mut o = elo_report();
    o.ratings.clear();
    write_json(&eval_dir(&f).join("hollow/length.json"), &l);
    write_json(&eval_dir(&f).join("hollow/elo.json"), &o);
    open_eval(&mut f);
    for (w, h) in [(80, 24), (200, 50), (30, 10)] {
        let screen = text(&draw(&f.app, w, h));
        assert!(screen.contains("hollow"), "{screen}");
    }
    let screen = text(&draw(&f.app, 200, 50));
    assert!(screen.contains("No Story Quality yet") && screen.contains("Position:"), "{screen}");
}

fn validated_fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run_validated(tmp.path());
    let link = DirLink::new(&dir, None);
    let mut app = App::new(&dir, Box::new(link), dark(), 0);
    app.update(Action::Tick);
    Fixture { _tmp: tmp, app, controls: None }
}

/// The validation reward is a curve of its own beside the training rewards (passes at steps
/// 0, 20 and 40, the first before training), and the latest pass is summed up below.
#[test]
fn the_dashboard_draws_the_validation_curve() {
    let f = validated_fixture();
    snap("dashboard_validated", &f.app);
    let screen = text(&draw(&f.app, 200, 50));
    assert!(screen.contains("validation"), "a legend entry:\n{screen}");
    assert!(screen.contains("steps 0–40"), "the pass before training widens the x range:\n{screen}");
    // -0.3 + 0.015 * 40 = 0.3 over the 3 prompts
    assert!(screen.contains("validation at step 40: reward 0.300"), "{screen}");
    // the curve's points: a run without validation draws none of them
    let plain = text(&draw(&fixture(dark(), false).app, 200, 50));
    assert!(!plain.contains("validation"));
}

/// A validation pass is a step of its own kind in Groups (after the training step of the
/// same number) and in the Inspector: one sample per prompt, no advantage.
#[test]
fn validation_passes_are_browsed_as_their_own_steps() {
    let mut f = validated_fixture();
    key(&mut f.app, KeyCode::Char('2'));
    assert_eq!(f.app.state.groups.loaded.as_ref().unwrap().0, StepKey::val(40), "live: the latest pass");
    snap("groups_validation", &f.app);
    let screen = text(&draw(&f.app, 200, 50));
    assert!(screen.contains("Validation at step 40 (live;"), "{screen}");
    assert!(screen.contains("scored, not trained on"), "{screen}");
    // back: the training step 40, then 39; forward twice: the pass again, followed live
    key(&mut f.app, KeyCode::Left);
    assert_eq!(f.app.state.groups.loaded.as_ref().unwrap().0, StepKey::train(40));
    key(&mut f.app, KeyCode::Left);
    key(&mut f.app, KeyCode::Right);
    key(&mut f.app, KeyCode::Right);
    assert_eq!(f.app.state.groups.loaded.as_ref().unwrap().0, StepKey::val(40));
    assert_eq!(f.app.state.groups.pinned, None);
    key(&mut f.app, KeyCode::Char(']'));
    key(&mut f.app, KeyCode::Enter);
    assert_eq!(f.app.state.tab, inspector::ID);
    snap("inspector_validation", &f.app);
    let screen = text(&draw(&f.app, 200, 50));
    assert!(screen.contains("validation at step 40 · prompt 1 · validation sample"), "{screen}");
    assert!(!screen.contains("advantage"), "{screen}");
}

/// Rows logged again after a resume replace the first attempt's: the step's groups hold the
/// new rows only, the validation pass's too.
#[test]
fn rows_logged_again_after_a_resume_replace_the_first_attempts() {
    use std::io::Write;
    let mut f = validated_fixture();
    let dir = f._tmp.path().join("run-fixture");
    let mut rollouts = std::fs::OpenOptions::new().append(true).open(dir.join("rollouts.jsonl")).unwrap();
    // resumed from step 38: step 39 again (one group of it), then the pass at 40 redone at once
    for row in common::run_fixture::rollouts(39, 1) {
        writeln!(rollouts, "{}", serde_json::to_string(&row).unwrap()).unwrap();
    }
    for row in
        common::run_fixture::val_rollouts(40, 2).into_iter().chain(common::run_fixture::val_rollouts(40, 2))
    {
        writeln!(rollouts, "{}", serde_json::to_string(&row).unwrap()).unwrap();
    }
    f.app.update(Action::Tick);
    key(&mut f.app, KeyCode::Char('2'));
    let g = &f.app.state.groups;
    assert_eq!(g.steps_with_rollouts, 2, "step 40 of the first attempt is gone: 39 and the pass at 40");
    let (key_, groups) = g.loaded.as_ref().unwrap();
    assert_eq!((*key_, groups.len()), (StepKey::val(40), 2), "the second attempt's two samples, once");
    assert!(groups.iter().all(|g| g.rows.len() == 1));
    key(&mut f.app, KeyCode::Left);
    let (key_, groups) = f.app.state.groups.loaded.as_ref().unwrap();
    assert_eq!((*key_, groups.len()), (StepKey::train(39), 1));
}

/// A run's benchmarks: the paper-style table of every `bench.json` of the run, side by side
/// with the Elo ratings, and the chosen benchmark's counts.
#[test]
fn the_eval_tab_shows_the_benchmarks_as_the_papers_table() {
    use common::eval_fixture::{bench_report, elo_report, write_json};
    use polaris::eval::bench::Task;
    let mut f = fixture(dark(), false);
    write_json(
        &eval_dir(&f).join("creative/bench.json"),
        &bench_report(Task::EqBenchCreative, &[("base", 61.25), ("grpo-hri", 66.5)]),
    );
    write_json(
        &eval_dir(&f).join("lbw/bench.json"),
        &bench_report(Task::LongbenchWrite, &[("grpo-hri", 72.0)]),
    );
    write_json(&eval_dir(&f).join("ladder/elo.json"), &elo_report());
    open_eval(&mut f);
    let names: Vec<&str> = f.app.state.eval.evals.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["creative", "ladder", "lbw"]);
    snap("eval_bench", &f.app);
    let screen = text(&draw(&f.app, 200, 50));
    // one row per value, one column per system: base has no LongBench-Write result (a dash, not 0)
    assert!(
        screen.lines().any(|l| l.contains("EQ Creative") && l.contains("61.25 [59.75–62.75]")),
        "{screen}"
    );
    assert!(
        screen.lines().any(|l| l.contains("LBW S_l") && l.contains("–") && l.contains("90.00 [88.00–92.00]")),
        "{screen}"
    );
    assert!(screen.lines().any(|l| l.contains("Elo") && l.contains("1087 [1041–1139]")), "{screen}");
    assert!(screen.contains("base: 24 stories, 23 scored, 1 failed"), "{screen}");
}
