//! Everything the screen shows, and nothing else: views draw from a `&State` alone. It
//! changes only in `App::update`.

use std::collections::VecDeque;

use super::groups::state::GroupsState;
use super::history::{History, Window};
use super::inspector::state::InspectorState;
use super::theme::Theme;
use crate::run::event::Level;

/// Which tab: its title, as the tab bar writes it (each tab's `ID`; `tabs.rs` lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TabId(pub &'static str);

impl TabId {
    pub fn title(self) -> &'static str {
        self.0
    }
}

/// What the trainer is doing, as the event log tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// No `started` event yet.
    Waiting,
    Running,
    Paused,
    Finished {
        step: usize,
        reason: String,
    },
    /// The trainer's process is gone without a clean ending, or ended with an error
    /// (`run::status`): `crashed (killed by signal 9) at step 12`.
    Died {
        what: String,
    },
}

pub use super::gpus::state::{GpuState, GPU_HISTORY};

pub struct State {
    /// The run directory's name, for the title.
    pub run_name: String,
    pub tab: TabId,
    pub help: bool,
    pub confirm_stop: bool,
    pub themes: Vec<Theme>,
    pub theme: usize,
    pub can_control: bool,
    /// Who steers the run when viewers share it over its socket.
    pub steering: super::link::Steering,
    /// Taking control from this holder waits for a yes.
    pub confirm_takeover: Option<String>,
    pub run: RunState,
    pub history: History,
    pub window: Window,
    /// (step, path) of each checkpoint written.
    pub checkpoints: Vec<(usize, String)>,
    /// The trainer's messages, newest last (at most `MESSAGES`).
    pub messages: VecDeque<(Level, String)>,
    /// One line for the status bar: the last thing the TUI itself has to say.
    pub note: Option<String>,
    pub judge_failures: usize,
    /// US dollars over the run.
    pub judge_cost: f64,
    pub groups: GroupsState,
    pub inspector: InspectorState,
    pub gpu: GpuState,
    pub alerts: super::alerts::state::AlertsState,
    pub playground: super::playground::state::PlaygroundState,
    pub annotate: super::annotate::state::AnnotateTab,
    pub eval: super::eval::state::EvalTab,
    /// The dashboard's pages, smoothing and the runs overlaid on this one.
    pub curves: super::curves::state::CurvesState,
    /// Something changed since the last frame.
    pub dirty: bool,
    pub quit: bool,
    /// The user left with `d`: the run goes on without this viewer.
    pub detached: bool,
}

pub const MESSAGES: usize = 50;

impl State {
    /// Showing `tab` first.
    pub fn new(run_name: String, tab: TabId, themes: Vec<Theme>, theme: usize, can_control: bool) -> Self {
        Self {
            run_name,
            tab,
            help: false,
            confirm_stop: false,
            themes,
            theme,
            can_control,
            steering: super::link::Steering::Local,
            confirm_takeover: None,
            run: RunState::Waiting,
            history: History::default(),
            window: Window::default(),
            checkpoints: vec![],
            messages: VecDeque::new(),
            note: None,
            judge_failures: 0,
            judge_cost: 0.0,
            groups: GroupsState::default(),
            inspector: InspectorState::default(),
            gpu: GpuState::default(),
            alerts: Default::default(),
            playground: Default::default(),
            annotate: Default::default(),
            eval: Default::default(),
            curves: Default::default(),
            dirty: true,
            quit: false,
            detached: false,
        }
    }

    pub fn theme(&self) -> &Theme {
        &self.themes[self.theme]
    }
}
