//! The standalone terminal loop behind `polaris-tui annotate`. The terminal is restored
//! on quit, on error (the guard's drop) and on panic (ratatui's hook).

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use crossterm::event::{self, Event};
use ratatui::layout::Rect;

use super::screen::{draw, handle_key, AnnotateScreen, Outcome};

struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub fn run(screen: &mut AnnotateScreen) -> Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        bail!("annotate needs an interactive terminal (stdin and stdout must be a terminal)");
    }
    let mut terminal = ratatui::try_init().context("setting up the terminal")?;
    let _restore = Restore;
    loop {
        let mut area = Rect::default();
        terminal.draw(|frame| {
            area = frame.area();
            draw(frame, area, screen)
        })?;
        screen.area = area;
        if let Event::Key(key) = event::read()? {
            if handle_key(screen, key) == Outcome::Quit {
                return Ok(());
            }
        }
    }
}
