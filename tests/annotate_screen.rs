//! The annotation screen: snapshots of the drawn buffer (no system name anywhere), the
//! keys, and NO_COLOR.

mod common;

use common::study::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use polaris::annotate::screen::{draw, handle_key, AnnotateScreen, Outcome, Pane, Status};
use polaris::annotate::store::read_lines;
use polaris::annotate::{Record, Session, Verdict};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

fn screen(dir: &std::path::Path, n: usize) -> AnnotateScreen {
    let study = make_study(dir, n);
    let mut s = AnnotateScreen::new(Session::open(&study, "alice", Some(1)).unwrap());
    s.color = true;
    s
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(s: &mut AnnotateScreen, keys: &str) {
    for c in keys.chars() {
        assert_eq!(handle_key(s, key(KeyCode::Char(c))), Outcome::Continue);
    }
}

fn render(s: &AnnotateScreen, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, frame.area(), s)).unwrap();
    terminal
}

fn text(terminal: &Terminal<TestBackend>) -> String {
    let buffer = terminal.backend().buffer();
    let width = buffer.area.width as usize;
    let symbols: Vec<&str> = buffer.content.iter().map(|c| c.symbol()).collect();
    symbols.chunks(width).map(|row| row.concat().trim_end().to_string()).collect::<Vec<_>>().join("\n")
}

fn assert_blind(screen_text: &str) {
    for name in [SYSTEM_A, SYSTEM_B, "ALPHA", "BETA"] {
        assert!(!screen_text.contains(name), "`{name}` on screen:\n{screen_text}");
    }
}

#[test]
fn the_screen_shows_prompt_stories_lengths_and_progress_but_no_system() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = screen(tmp.path(), 3);
    let shown = text(&render(&s, 100, 24));
    assert_blind(&shown);
    assert!(shown.contains("0 / 3 judged"), "{shown}");
    insta::assert_snapshot!("annotate_first_item", shown);

    press(&mut s, "1c");
    press(&mut s, "tighter ending");
    let shown = text(&render(&s, 100, 24));
    assert_blind(&shown);
    assert!(shown.contains("1 / 3 judged") && shown.contains("tighter ending"), "{shown}");
    insta::assert_snapshot!("annotate_comment_open", shown);

    handle_key(&mut s, key(KeyCode::Esc));
    press(&mut s, "==");
    let shown = text(&render(&s, 60, 12));
    assert_blind(&shown);
    insta::assert_snapshot!("annotate_done", shown);
}

#[test]
fn verdict_keys_save_before_moving_on_and_comments_go_with_the_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = screen(tmp.path(), 4);
    let path = s.session.judgments_path().to_path_buf();
    let shown: Vec<_> = (0..4).map(|i| s.session.ledger.order[i].clone()).collect();
    handle_key(&mut s, key(KeyCode::Left));
    press(&mut s, "c");
    press(&mut s, "why not");
    handle_key(&mut s, key(KeyCode::Esc));
    assert_eq!(s.comment, "why not");
    handle_key(&mut s, key(KeyCode::Right));
    press(&mut s, "s=");
    assert_eq!(s.session.ledger.done(), 3, "after the key returns, the judgment is in the ledger");
    let records: Vec<Record> = read_lines(&path).unwrap().into_iter().map(|l| l.record).collect();
    let verdicts: Vec<(String, Verdict, Option<String>)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Judgment { prompt_uid, verdict, comment, .. } => {
                Some((prompt_uid.clone(), *verdict, comment.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (shown[0].prompt_uid.clone(), Verdict::Left, None),
            (shown[1].prompt_uid.clone(), Verdict::Right, Some("why not".into())),
            (shown[3].prompt_uid.clone(), Verdict::Tie, None),
        ],
        "on disk, in order; the skipped item is still to come"
    );
    assert_eq!(s.session.current().unwrap().0, &shown[2]);
    press(&mut s, "u");
    assert_eq!(s.session.current().unwrap().0, &shown[3], "undo brings the last judged item back");
    assert_eq!(s.status, Status::Info("Undone: the item is back on screen.".into()));
    assert_eq!(handle_key(&mut s, key(KeyCode::Char('q'))), Outcome::Quit);
    assert_eq!(handle_key(&mut s, KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Outcome::Quit);
}

#[test]
fn the_stories_scroll_independently() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = screen(tmp.path(), 12);
    // Item order is shuffled; find one with a long story on both sides.
    while s.session.current().unwrap().1.stories[0].words < 60 {
        press(&mut s, "s");
    }
    assert_eq!(s.focus, Pane::Left);
    handle_key(&mut s, key(KeyCode::Down));
    handle_key(&mut s, key(KeyCode::Down));
    assert_eq!(s.scroll, [2, 0]);
    handle_key(&mut s, key(KeyCode::Tab));
    handle_key(&mut s, key(KeyCode::PageDown));
    handle_key(&mut s, key(KeyCode::Up));
    assert_eq!(s.scroll, [2, 9]);
    // 40 columns: 18-character story lines, 6 of them visible, so the offset shows.
    let shown = text(&render(&s, 40, 14));
    assert!(shown.contains("lines 3-"), "left pane starts at its line 3:\n{shown}");
    handle_key(&mut s, key(KeyCode::Home));
    assert_eq!(s.scroll, [2, 0]);
    // Drawn once, the screen knows its area: scrolling stops with the last line at the
    // bottom, and the first key back moves the view.
    s.area = ratatui::layout::Rect::new(0, 0, 60, 14);
    for _ in 0..50 {
        handle_key(&mut s, key(KeyCode::PageDown));
    }
    let bottom = text(&render(&s, 60, 14));
    let last = s.scroll[1];
    let of =
        bottom.split("lines ").nth(2).expect("the right pane's line range").split(' ').collect::<Vec<_>>();
    let (range, total) = (of[0], of[2]);
    assert_eq!(range, format!("{}-{total}", last + 1), "the last line is shown:\n{bottom}");
    handle_key(&mut s, key(KeyCode::Up));
    assert_eq!(s.scroll[1], last - 1);
    press(&mut s, "1");
    assert_eq!(s.scroll, [0, 0], "a new item starts at the top");
}

#[test]
fn no_color_draws_with_modifiers_only() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = screen(tmp.path(), 2);
    s.status = Status::Error("NOT saved: disk full".into());
    let colored = |t: &Terminal<TestBackend>| {
        t.backend().buffer().content.iter().any(|c| c.fg != Color::Reset || c.bg != Color::Reset)
    };
    assert!(colored(&render(&s, 80, 20)), "with colour, the focused border and errors are coloured");
    s.color = false;
    assert!(!colored(&render(&s, 80, 20)), "NO_COLOR: no colour at all");
}
