//! Everything the screen shows, and nothing else: views draw from a `&State` alone. It
//! changes only in `App::update`.

use std::collections::VecDeque;

use super::history::{History, Window};
use super::rollouts::{Group, StepKey};
use super::theme::Theme;
use crate::run::event::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Dashboard,
    Groups,
    Inspector,
    Gpus,
    Playground,
    Annotate,
    Eval,
}

impl Tab {
    pub const ALL: [Tab; 7] =
        [Tab::Dashboard, Tab::Groups, Tab::Inspector, Tab::Gpus, Tab::Playground, Tab::Annotate, Tab::Eval];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Dashboard => "Dashboard",
            Tab::Groups => "Groups",
            Tab::Inspector => "Inspector",
            Tab::Gpus => "GPUs",
            Tab::Playground => "Playground",
            Tab::Annotate => "Annotate",
            Tab::Eval => "Eval",
        }
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    pub fn cycled(self, forward: bool) -> Tab {
        let n = Tab::ALL.len();
        Tab::ALL[(self.index() + if forward { 1 } else { n - 1 }) % n]
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

#[derive(Debug, Default)]
pub struct GroupsState {
    /// The step chosen by hand; None follows the latest step with rollouts.
    pub pinned: Option<StepKey>,
    /// The step shown (a training step or a validation pass) and its groups, ranked.
    pub loaded: Option<(StepKey, Vec<Group>)>,
    /// Steps with rollouts (validation passes included): how many, and the latest.
    pub steps_with_rollouts: usize,
    pub latest: Option<StepKey>,
    pub group: usize,
    /// Row within the group, by rank.
    pub row: usize,
}

impl GroupsState {
    pub fn groups(&self) -> &[Group] {
        self.loaded.as_ref().map_or(&[], |(_, g)| g.as_slice())
    }
    pub fn current(&self) -> Option<&Group> {
        self.groups().get(self.group)
    }
}

#[derive(Debug, Default)]
pub struct InspectorState {
    /// Lines scrolled off the top of the story.
    pub scroll: u16,
    /// Lines scrolled off the top of the judgement pane.
    pub judge_scroll: u16,
    pub thinking: bool,
}

pub use super::gpus::state::{GpuState, GPU_HISTORY};

pub struct State {
    /// The run directory's name, for the title.
    pub run_name: String,
    pub tab: Tab,
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
    pub alerts: super::alerts::AlertsState,
    pub playground: super::playground::PlaygroundState,
    pub annotate: super::annotate::AnnotateTab,
    pub eval: super::eval::EvalTab,
    /// The dashboard's pages, smoothing and the runs overlaid on this one.
    pub curves: super::curves::CurvesState,
    /// Something changed since the last frame.
    pub dirty: bool,
    pub quit: bool,
    /// The user left with `d`: the run goes on without this viewer.
    pub detached: bool,
}

pub const MESSAGES: usize = 50;

impl State {
    pub fn new(run_name: String, themes: Vec<Theme>, theme: usize, can_control: bool) -> Self {
        Self {
            run_name,
            tab: Tab::Dashboard,
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
