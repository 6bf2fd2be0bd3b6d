//! The Groups tab's state: the step shown (followed or chosen) and the row chosen in it.

use crate::tui::rollouts::{Group, StepKey};

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
