//! The terminal while the TUI owns it: raw mode, the alternate screen, mouse capture and a
//! hidden cursor, all undone on quit, on error (the guard's drop) and on panic (a hook that
//! restores before the panic message prints, so it lands on a usable screen).

use std::io::{stdout, Stdout, Write};
use std::sync::Once;

use anyhow::{Context, Result};
use crossterm::cursor::{Hide, Show};
use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

pub struct Session {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

/// Takes the terminal over; the returned session gives it back when dropped.
pub fn enter() -> Result<Session> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| install_panic_hook(stdout));
    enable_raw_mode().context("cannot put the terminal in raw mode")?;
    let mut out = stdout();
    if let Err(e) = execute!(out, EnterAlternateScreen, EnableMouseCapture, Hide) {
        restore();
        return Err(e).context("cannot take over the terminal");
    }
    match Terminal::new(CrosstermBackend::new(out)) {
        Ok(terminal) => Ok(Session { terminal }),
        Err(e) => {
            restore();
            Err(e).context("cannot size the terminal")
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        restore();
    }
}

/// Writes what gives the terminal back: mouse capture off, main screen, cursor shown.
pub fn restore_to(w: &mut impl Write) -> std::io::Result<()> {
    execute!(w, DisableMouseCapture, LeaveAlternateScreen, Show)
}

/// Gives the terminal back; safe to call twice, and without a terminal.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = restore_to(&mut stdout());
}

/// Chains a panic hook that restores the terminal (through the writer `make` gives) before
/// the previous hook reports the panic.
pub fn install_panic_hook<W: Write>(make: impl Fn() -> W + Send + Sync + 'static) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = disable_raw_mode();
        let _ = restore_to(&mut make());
        previous(info);
    }));
}
