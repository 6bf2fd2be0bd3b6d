//! The followed run's shared data, borrowed for one frame by the tabs that read it besides
//! their own state (the Dashboard and its curves pages). Only the registry's `TAB` consts
//! build one, from `State`: a tab never sees the whole `State`.

use super::groups::state::GroupsState;
use super::history::{History, Window};
use super::state::State;

/// What the Dashboard reads of the run: its steps and validation passes, the window its
/// charts show, its checkpoints and its judge's failures and cost, and the step the Groups
/// tab shows (the Length page draws that step's rows).
#[derive(Clone, Copy)]
pub struct RunView<'a> {
    /// The run directory's name (the first of the runs overlaid).
    pub name: &'a str,
    pub history: &'a History,
    pub window: Window,
    /// (step, path) of each checkpoint written.
    pub checkpoints: &'a [(usize, String)],
    pub judge_failures: usize,
    /// US dollars over the run.
    pub judge_cost: f64,
    pub groups: &'a GroupsState,
}

impl<'a> RunView<'a> {
    pub fn of(s: &'a State) -> Self {
        Self {
            name: &s.run_name,
            history: &s.history,
            window: s.window,
            checkpoints: &s.checkpoints,
            judge_failures: s.judge_failures,
            judge_cost: s.judge_cost,
            groups: &s.groups,
        }
    }
}
