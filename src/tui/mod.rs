//! The workbench TUI: follows a run directory as its files grow, and steers the trainer when
//! it has a way to reach it. An input thread and a device poller send actions on a channel;
//! `App::update` alone changes the state; `ui::draw` draws it, only when it changed and at
//! most ~30 times a second. The TUI never trains: it reads events and sends controls.

pub mod action;
pub mod alerts;
pub mod annotate;
pub mod app;
pub mod curves;
pub mod dashboard;
pub mod eval;
pub mod gpus;
pub mod groups;
pub mod history;
pub mod inspector;
pub mod journal;
pub mod keys;
pub mod link;
pub mod playground;
pub mod rollouts;
pub mod run_view;
pub mod socket_link;
pub mod state;
pub mod tab;
pub mod tabs;
pub mod tail;
pub mod terminal;
pub mod theme;
pub mod ui;
pub mod widgets;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use ratatui::backend::Backend;
use ratatui::Terminal;

pub use action::Action;
pub use app::App;
pub use link::{DirLink, Link, Steering};
pub use socket_link::SocketLink;

use crate::run::Control;

/// Shortest time between two frames (~30 frames/s).
pub const FRAME: Duration = Duration::from_millis(33);
/// How often the run's files are read for what was appended.
pub const POLL: Duration = Duration::from_millis(250);

/// Opens a run from its files, read only: a finished run as it is, a live one followed as
/// its files grow.
/// Judgments in the Annotate tab are `annotator`'s (default `$USER`).
pub fn open(dir: &Path, theme: Option<&str>, annotator: Option<&str>) -> Result<()> {
    open_compared(dir, &[], theme, annotator)
}

/// `open` with the runs `others` overlaid on the dashboard's curves (each read from its files).
pub fn open_compared(
    dir: &Path,
    others: &[PathBuf],
    theme: Option<&str>,
    annotator: Option<&str>,
) -> Result<()> {
    check_run_dirs(std::iter::once(dir).chain(others.iter().map(PathBuf::as_path)))?;
    run_compared(dir, Box::new(DirLink::new(dir, None)), others, theme, annotator).map(|_| ())
}

/// Each of `dirs` is a run directory, or the error names the first that is not.
pub fn check_run_dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    for dir in dirs {
        if !crate::run::RunDir::at(dir).events().is_file() {
            bail!(
                "{}: not a run directory (no events.jsonl); give a directory written by `polaris-tui train --out DIR`",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Follows a run whose trainer shares this process: events from its files, controls to
/// its driver (`Driver::run`'s receiver).
pub fn run_live(dir: &Path, controls: Sender<Control>, theme: Option<&str>) -> Result<Leave> {
    run(dir, Box::new(DirLink::new(dir, Some(controls))), theme, None)
}

/// How the user left the TUI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    Quit,
    /// With `d`, on a run that goes on without this viewer.
    Detach,
}

/// The TUI on the terminal until the user quits.
pub fn run(dir: &Path, link: Box<dyn Link>, theme: Option<&str>, annotator: Option<&str>) -> Result<Leave> {
    run_compared(dir, link, &[], theme, annotator)
}

/// `run` with the runs `others` overlaid on the dashboard's curves.
pub fn run_compared(
    dir: &Path,
    link: Box<dyn Link>,
    others: &[PathBuf],
    theme: Option<&str>,
    annotator: Option<&str>,
) -> Result<Leave> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("the TUI needs a terminal (stdin and stdout are not both one); use `polaris-tui train` for a headless run");
    }
    let mut app = new_app(dir, link, theme)?;
    if !others.is_empty() {
        curves::compare::add_runs(&mut app.compared, &mut app.state, dir, others);
    }
    if let Some(name) = annotator {
        app.state.annotate.annotator = Some(name.to_string());
    }
    let (tx, rx) = mpsc::channel();
    app.connect(tx.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let input = spawn_input(tx.clone(), stop.clone());
    let gpu_tx = tx;
    let poller = crate::gpu::spawn_poller(Duration::from_secs(1), stop.clone(), move |s| {
        gpu_tx.send(Action::Gpu(s)).is_ok()
    });
    let result = {
        let mut session = terminal::enter()?;
        run_loop(&mut session.terminal, &mut app, &rx)
    };
    stop.store(true, Ordering::Relaxed);
    let _ = input.join();
    let _ = poller.join();
    result?;
    Ok(if app.state.detached { Leave::Detach } else { Leave::Quit })
}

/// The app for a run directory, with the theme asked for (or the first) and any theme
/// problems noted.
pub fn new_app(dir: &Path, link: Box<dyn Link>, theme: Option<&str>) -> Result<App> {
    let (themes, problems) = theme::available(theme::user_dir().as_deref());
    let index = match theme {
        // NO_COLOR wins over a theme asked for
        Some(name) if !themes[0].mono => theme::find(&themes, name)?,
        _ => 0,
    };
    let mut app = App::new(dir, link, themes, index);
    for p in problems {
        app.journal.note(&p);
        app.state.note = Some(p);
    }
    Ok(app)
}

/// BEL on the terminal (an alert was raised and `alerts.bell` is on).
fn ring_bell() {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = out.write_all(b"\x07").and_then(|()| out.flush());
}

/// Terminal events become `Action::Input`s until `stop`.
fn spawn_input(tx: Sender<Action>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            // a short poll so a stop is seen quickly
            match crossterm::event::poll(Duration::from_millis(100)) {
                Ok(true) => match crossterm::event::read() {
                    Ok(ev) => {
                        if tx.send(Action::Input(ev)).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    })
}

/// Applies actions, reads the run every `POLL`, and draws when the state changed, at most
/// once per `FRAME`, until the app quits or every sender is gone.
pub fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    actions: &Receiver<Action>,
) -> Result<()> {
    let mut last_draw: Option<Instant> = None;
    let mut last_poll: Option<Instant> = None;
    loop {
        if last_poll.is_none_or(|t| t.elapsed() >= POLL) {
            app.update(Action::Tick);
            last_poll = Some(Instant::now());
        }
        if app.state.quit {
            return Ok(());
        }
        let frame_due = last_draw.is_none_or(|t| t.elapsed() >= FRAME);
        if app.state.dirty && frame_due {
            let frame =
                terminal.draw(|f| ui::draw(f, &app.state)).map_err(|e| anyhow!("cannot draw: {e}"))?;
            app.update(Action::Drawn(frame.area));
            app.state.dirty = false;
            if std::mem::take(&mut app.state.alerts.ring) {
                ring_bell();
            }
            last_draw = Some(Instant::now());
        }
        // sleep until the next action, the next poll, or the next frame if one is owed
        let until_poll = POLL.saturating_sub(last_poll.map_or(Duration::ZERO, |t| t.elapsed()));
        let wait = if app.state.dirty {
            until_poll.min(FRAME.saturating_sub(last_draw.map_or(FRAME, |t| t.elapsed())))
        } else {
            until_poll
        };
        match actions.recv_timeout(wait) {
            Ok(a) => {
                app.update(a);
                while let Ok(a) = actions.try_recv() {
                    app.update(a);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
