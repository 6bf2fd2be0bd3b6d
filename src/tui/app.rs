//! The update step: the one place the state changes. Inputs become actions (keys.rs); the
//! shown tab applies the actions it gives a meaning (`Tab::update`), this file the rest; a
//! control reaches the trainer through the link.

use std::path::Path;

use crossterm::event::{Event as TermEvent, MouseButton, MouseEventKind};

use super::action::Action;
use super::journal::Journal;
use super::keys::action_for;
use super::link::{Link, Steering};
use super::rollouts::RolloutIndex;
use super::state::{RunState, State, MESSAGES};
use super::tab::{step_index, Ctx};
use super::theme::Theme;
use super::{eval, gpus, groups, tabs, ui};
use crate::run::status::{derive, describe, Phase, Process, Summary};
use crate::run::{Control, Event, EventKind};

pub struct App {
    pub state: State,
    link: Box<dyn Link>,
    /// The run directory, for its process's liveness and exit status.
    dir: std::path::PathBuf,
    /// The events so far, folded as `run::status` reads them.
    summary: Summary,
    /// The last problem reading daemon.pid / exit.json (said once, not every poll).
    process_problem: Option<String>,
    rollouts: RolloutIndex,
    evals: eval::load::EvalIndex,
    pub journal: Journal,
    /// The playground's worker threads and opened models.
    pub playground: super::playground::Workers,
    /// The event logs of the runs overlaid on this one.
    pub compared: super::curves::compare::Followers,
}

impl App {
    pub fn new(dir: &Path, link: Box<dyn Link>, themes: Vec<Theme>, theme: usize) -> Self {
        let name =
            dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
        let mut state = State::new(name, tabs::first(), themes, theme, link.can_control());
        state.annotate = super::annotate::state::AnnotateTab::new(dir.to_path_buf());
        state.eval = super::eval::state::EvalTab::new(dir.to_path_buf());
        state.gpu.own_devices = super::gpus::state::own_devices(dir);
        state.alerts.opened_at = crate::run::exit::now();
        let alerts_config = crate::run::alerts::AlertsConfig::of_run_dir(dir);
        let playground = super::playground::Workers::new(dir);
        // the Playground samples as the run trains: with thinking on or off as its step does
        // (a config that does not read is said when the Playground generates, not here)
        if let Ok(cfg) = playground.config() {
            state.playground.thinking = cfg.step.thinking;
        }
        match alerts_config {
            Ok(c) => state.alerts.config = c,
            Err(e) => state.note = Some(format!("{e:#}; the alerts use their defaults")),
        }
        Self {
            state,
            link,
            dir: dir.to_path_buf(),
            summary: Summary::default(),
            process_problem: None,
            rollouts: RolloutIndex::new(dir),
            evals: eval::load::EvalIndex::new(dir),
            journal: Journal::new(dir),
            playground,
            compared: Default::default(),
        }
    }

    /// The channel the playground's workers report on (the one `run_loop` reads).
    pub fn connect(&mut self, tx: std::sync::mpsc::Sender<Action>) {
        self.playground.connect(tx);
    }

    /// Says something in the status line and in tui.log.
    fn note(&mut self, text: String) {
        self.journal.note(&text);
        self.state.note = Some(text);
    }

    pub fn update(&mut self, action: Action) {
        // anything but a tick or a sample is something the user did: redraw
        if !matches!(action, Action::Tick | Action::Gpu(_) | Action::Drawn(_)) {
            self.state.dirty = true;
        }
        let tab = tabs::get(self.state.tab);
        let mut ctx = Ctx {
            state: &mut self.state,
            rollouts: &mut self.rollouts,
            evals: &mut self.evals,
            said: vec![],
        };
        let rest = (tab.update)(&mut ctx, action);
        for text in std::mem::take(&mut ctx.said) {
            self.note(text);
        }
        let Some(action) = rest else { return };
        let s = &mut self.state;
        match action {
            Action::Input(ev) => {
                if let Some(a) = self.interpret(ev) {
                    self.update(a);
                }
            }
            Action::Tick => self.poll(),
            Action::Gpu(sample) => {
                s.gpu.record(sample);
                s.dirty |= s.tab == gpus::ID;
            }
            Action::Quit => s.quit = true,
            Action::SelectTab(t) => s.tab = t,
            Action::CycleTab { forward } => s.tab = tabs::cycled(s.tab, forward),
            Action::ToggleHelp => s.help = !s.help,
            Action::CycleTheme => {
                s.theme = (s.theme + 1) % s.themes.len();
                let name = s.theme().name.clone();
                self.note(format!("theme: {name}"));
            }
            Action::Group { forward } => {
                let n = s.groups.groups().len();
                s.groups.group = step_index(s.groups.group, forward, 1, n);
                s.groups.row = 0;
                s.inspector.scroll = 0;
                s.inspector.judge_scroll = 0;
            }
            // on a tab that gives them no meaning of their own (the Dashboard zooms; a tab's
            // ↑↓ ←→ are its `update`'s)
            Action::Move { .. } | Action::Side { .. } | Action::Zoom { .. } | Action::Key(_) => {}
            // f elsewhere than the Dashboard: Groups and the Inspector follow the latest step
            Action::Follow => {
                s.groups.pinned = None;
                if let Some(latest) = self.rollouts.latest() {
                    self.load_groups(latest);
                }
            }
            Action::PauseResume => {
                let c = if s.run == RunState::Paused { Control::Resume } else { Control::Pause };
                self.control(c);
            }
            Action::CheckpointNow => self.control(Control::CheckpointNow),
            Action::AskStop => {
                if s.can_control {
                    s.confirm_stop = true;
                } else {
                    self.control(Control::Stop);
                }
            }
            Action::Playground(msg) => {
                if let Some(text) =
                    super::playground::update(&mut self.state.playground, &self.playground, msg)
                {
                    self.note(text);
                }
            }
            Action::ToggleAlerts => s.alerts.shown = !s.alerts.shown,
            Action::ExportReport => {
                let said = match crate::run::report::write(&self.dir) {
                    Ok(r) => format!("report written to {}", r.dir.display()),
                    Err(e) => format!("no report: {e:#}"),
                };
                self.note(said);
            }
            // the Dashboard's, sent while another tab is shown: nothing to change there
            Action::Curves(_) => {}
            Action::Drawn(area) => {
                if let Some(screen) = s.annotate.screen.as_mut() {
                    screen.area = ui::regions(area)[1];
                }
            }
            Action::Detach => {
                if self.link.detachable() {
                    s.detached = true;
                    s.quit = true;
                } else {
                    self.note(
                        "nothing to detach from: d leaves a run attached with `polaris-tui attach`; q quits"
                            .into(),
                    );
                }
            }
            Action::AskTakeControl => match s.steering.clone() {
                Steering::You => self.note("you control this run already".into()),
                Steering::Other(holder) => s.confirm_takeover = Some(holder),
                _ => self.take_control(false),
            },
            Action::ConfirmTakeControl(yes) => {
                s.confirm_takeover = None;
                if yes {
                    self.take_control(true);
                } else {
                    s.note = Some("take-over cancelled".into());
                }
            }
            Action::ConfirmStop(yes) => {
                s.confirm_stop = false;
                if yes {
                    self.control(Control::Stop);
                } else {
                    s.note = Some("stop cancelled".into());
                }
            }
        }
    }

    fn take_control(&mut self, take_over: bool) {
        match self.link.take_control(take_over) {
            Ok(()) => self.note("asked for control of the run".into()),
            Err(e) => self.note(format!("{e:#}")),
        }
    }

    fn control(&mut self, c: Control) {
        match self.link.send(c) {
            Ok(()) => self.note(format!("sent {c:?}; the trainer acts on it between steps")),
            Err(e) => self.note(format!("{e:#}")),
        }
    }

    fn interpret(&mut self, ev: TermEvent) -> Option<Action> {
        match ev {
            TermEvent::Key(k) => action_for(&self.state, k),
            TermEvent::Resize(..) => {
                self.state.dirty = true;
                None
            }
            TermEvent::Mouse(m) => match m.kind {
                MouseEventKind::Down(MouseButton::Left) if m.row == 0 => {
                    ui::tab_at(m.column).map(Action::SelectTab)
                }
                MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                    let down = m.kind == MouseEventKind::ScrollDown;
                    Some((tabs::get(self.state.tab).wheel)(down))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Reads what the link and rollouts.jsonl have appended.
    fn poll(&mut self) {
        let (events, problems) = self.link.poll();
        for p in problems {
            self.note(p);
        }
        let steering = self.link.steering();
        if steering != self.state.steering {
            self.state.steering = steering;
            self.state.can_control = self.link.can_control();
            self.state.dirty = true;
        }
        if !events.is_empty() {
            self.state.dirty = true;
        }
        for ev in events {
            self.summary.add(&ev);
            self.apply(ev);
        }
        let (grew, problems) = super::curves::compare::poll(&mut self.compared, &mut self.state.curves.runs);
        self.state.dirty |= grew;
        for p in problems {
            self.note(p);
        }
        self.check_process();
        self.judge_stall();
        let (grew, problems) = self.rollouts.refresh();
        for p in problems {
            self.note(p);
        }
        if grew {
            let g = &mut self.state.groups;
            g.steps_with_rollouts = self.rollouts.steps().count();
            g.latest = self.rollouts.latest();
            let shown = g.loaded.as_ref().map(|(s, _)| *s);
            let want = g.pinned.or(g.latest);
            if let Some(step) = want {
                // the shown step may have gained rows too, if it is the latest
                if shown != Some(step) || Some(step) == g.latest {
                    self.load_groups(step);
                }
            }
            self.state.dirty = true;
        }
        eval::refresh(&mut self.state, &mut self.evals, false);
    }

    /// Whether the trainer's process has died (or failed) without the log saying so: the
    /// status bar then says how (`crashed (killed by signal 9) at step 12`). A directory
    /// without daemon.pid is left to its log.
    fn check_process(&mut self) {
        let process = match Process::read(&self.dir) {
            Ok(p) => {
                self.process_problem = None;
                p
            }
            Err(e) => {
                let text = format!("{e:#}");
                if self.process_problem.as_ref() != Some(&text) {
                    self.process_problem = Some(text.clone());
                    self.note(text);
                }
                return;
            }
        };
        let own: Vec<u32> = process.pid.filter(|_| process.alive).into_iter().collect();
        if own != self.state.gpu.own_pids {
            self.state.gpu.own_pids = own;
            self.state.dirty |= self.state.tab == gpus::ID;
        }
        let phase = derive(&self.summary, &process);
        if matches!(phase, Phase::Crashed | Phase::Failed) {
            let exit = process.exit.as_ref().filter(|e| process.pid.is_none_or(|p| p == e.pid));
            let what = describe(phase, exit, self.summary.last_step.unwrap_or(0));
            if !matches!(&self.state.run, RunState::Died { what: w } if *w == what) {
                self.state.run = RunState::Died { what };
                self.state.dirty = true;
            }
        }
    }

    /// The viewer's alert rule: a running run whose newest event (or work record) is older
    /// than `alerts.stalled_minutes` is stalled (a paused or ended run is quiet on purpose).
    fn judge_stall(&mut self) {
        let a = &mut self.state.alerts;
        let now = crate::run::exit::now();
        let stalled = match self.state.run {
            RunState::Running => {
                let active = crate::run::alerts::last_activity(&self.dir, self.summary.last_time);
                crate::run::alerts::stalled(active, now, a.config.stalled_minutes)
            }
            _ => None,
        };
        if stalled.is_some() != a.stalled.is_some() {
            a.ring |= stalled.is_some() && a.config.bell;
            self.state.dirty = true;
        }
        a.stalled = stalled;
    }

    fn load_groups(&mut self, step: super::rollouts::StepKey) {
        if let Some(problem) = groups::load(&mut self.state, &self.rollouts, step) {
            self.note(problem);
        }
    }

    fn apply(&mut self, ev: Event) {
        let s = &mut self.state;
        s.alerts.log.add(&ev);
        match ev.kind {
            EventKind::Started { resumed_from_step, .. } => {
                s.run = RunState::Running;
                if let Some(step) = resumed_from_step {
                    // steps logged after that checkpoint (before a crash) were redone
                    s.history.truncate_after(step);
                    s.note = Some(format!("resumed from step {step}"));
                }
            }
            EventKind::Sft(w) => {
                s.note = Some(format!(
                    "warm start: step {}/{} (epoch {}), NLL {:.3}",
                    w.step, w.steps, w.epoch, w.loss
                ));
            }
            EventKind::Step(stats) => {
                if s.note.as_deref().is_some_and(|n| n.starts_with("warm start")) {
                    s.note = None;
                }
                s.judge_failures += stats.judge_failures;
                s.judge_cost += stats.judge_cost;
                s.history.push(*stats);
            }
            EventKind::Val(v) => {
                s.judge_failures += v.judge_failures;
                s.judge_cost += v.judge_cost;
                s.history.push_val(*v);
            }
            EventKind::Checkpoint { step, path } => s.checkpoints.push((step, path)),
            EventKind::Paused { .. } => s.run = RunState::Paused,
            EventKind::Resumed { .. } => s.run = RunState::Running,
            EventKind::Finished { step, reason } => {
                s.run = RunState::Finished { step, reason };
            }
            EventKind::Message { level, text } => {
                s.messages.push_back((level, text));
                while s.messages.len() > MESSAGES {
                    s.messages.pop_front();
                }
            }
            EventKind::Alert(a) => {
                // alerts logged before this viewer opened do not ring
                if a.raised && s.alerts.config.bell && ev.time >= s.alerts.opened_at {
                    s.alerts.ring = true;
                }
            }
        }
    }
}
