//! Drawing the workbench TUI in tests: keys in, a test backend's text out.

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use polaris::tui::{ui, Action, App};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

/// One key press, no modifiers.
pub fn key(app: &mut App, code: KeyCode) {
    app.update(Action::Input(TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))));
}

/// The app's state drawn at width x height.
pub fn draw(app: &App, width: u16, height: u16) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(width, height)).unwrap();
    term.draw(|f| ui::draw(f, &app.state)).unwrap();
    term.backend().buffer().clone()
}

/// The buffer's text, one line per row, trailing spaces cut, temp paths as <TMP>.
pub fn lines(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    regex::Regex::new(r"/tmp/[A-Za-z0-9._/-]+").unwrap().replace_all(&out, "<TMP>").into_owned()
}
