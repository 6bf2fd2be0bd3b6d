//! The TUI attached over the control socket (a `SocketLink` to a server over the fixture's
//! run log, no model): the history arrives through the socket, the status bar shows the
//! lease, controls without it are refused naming the holder, `C` takes control (asking
//! first when someone holds it), `d` detaches. Waits poll the app (up to a minute: a loaded
//! machine); nothing asserts on time.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::attach::until;
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use polaris::run::remote::{serve, Client, ServerMsg, Who};
use polaris::run::{Control, EventLog};
use polaris::tui::state::RunState;
use polaris::tui::theme::Theme;
use polaris::tui::{ui, Action, App, DirLink, SocketLink, Steering};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn key(app: &mut App, c: char) {
    app.update(Action::Input(TermEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))));
}

fn screen(app: &App) -> String {
    let mut term = Terminal::new(TestBackend::new(320, 30)).unwrap();
    term.draw(|f| ui::draw(f, &app.state)).unwrap();
    let buf = term.backend().buffer().clone();
    (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
        .collect()
}

/// Ticks the app until its screen shows `text`.
fn shows(app: &mut App, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        app.update(Action::Tick);
        let s = screen(app);
        if s.contains(text) {
            return s;
        }
        assert!(Instant::now() < deadline, "the screen never showed {text:?}:\n{s}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_attached_tui_follows_the_lease_takes_control_and_detaches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run(tmp.path());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = EventLog::open(&dir.join("events.jsonl")).unwrap();
    let (tx, controls) = mpsc::channel();
    let _serving = serve(&dir, log.live(), tx, false).unwrap();

    let link = SocketLink::connect(&dir).unwrap();
    let mut app = App::new(&dir, Box::new(link), vec![Theme::built_in("dark").unwrap()], 0);
    // the fixture's history came over the socket: 40 steps, ending paused
    shows(&mut app, "PAUSED step 40");
    assert_eq!(app.state.run, RunState::Paused);
    shows(&mut app, "read only · C takes control");

    // without the lease a control is refused in the status line and never sent
    key(&mut app, 'p');
    shows(&mut app, "Resume not sent: you do not control this run; C takes control");
    key(&mut app, 'C');
    shows(&mut app, "you control");
    assert_eq!(app.state.steering, Steering::You);
    key(&mut app, 'p');
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        if let Ok(c) = controls.try_recv() {
            break c;
        }
        assert!(Instant::now() < deadline, "the Resume never reached the trainer");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(got, Control::Resume);

    // another viewer takes over: this one is told, and becomes read only
    let mut other = Client::connect(&dir, 0).unwrap();
    other.request_lease(true).unwrap();
    until(&other, 60, |m| matches!(m, ServerMsg::Lease { yours: true, .. }));
    let holder = Who::me().to_string();
    shows(&mut app, "took control; you are read only now");
    shows(&mut app, &format!("read only · {holder}"));
    key(&mut app, 'c');
    shows(&mut app, &format!("CheckpointNow not sent: {holder}"));

    // taking it back asks first; n keeps it where it is, y takes it
    key(&mut app, 'C');
    let s = shows(&mut app, "Take control from them?");
    assert!(s.contains(&holder), "{s}");
    key(&mut app, 'n');
    shows(&mut app, "take-over cancelled");
    assert!(matches!(app.state.steering, Steering::Other(_)));
    key(&mut app, 'C');
    key(&mut app, 'y');
    shows(&mut app, "you control");
    until(&other, 60, |m| matches!(m, ServerMsg::LeaseLost { .. }));

    // d leaves: the app quits (the run is untouched)
    key(&mut app, 'd');
    assert!(app.state.quit);
    drop(log);
}

#[test]
fn detaching_a_run_that_is_not_attached_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run(tmp.path());
    let mut app =
        App::new(&dir, Box::new(DirLink::new(&dir, None)), vec![Theme::built_in("dark").unwrap()], 0);
    key(&mut app, 'd');
    assert!(!app.state.quit);
    assert!(screen(&app).contains("nothing to detach from"));
    key(&mut app, 'C');
    assert!(screen(&app).contains("only a run attached over its control socket"));
}
