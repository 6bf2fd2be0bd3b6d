//! What the playground's keys ask for and what its workers report: the messages its update
//! applies (`Action::Playground`).

use std::sync::Arc;

use crossterm::event::KeyEvent;

use crate::generate::GenerationRecord;
use crate::reward::Breakdown;

/// A worker's result carried in an action; equal when it is the same result.
#[derive(Debug, Clone)]
pub struct Shared<T>(pub Arc<T>);

impl<T> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What the playground's keys ask for and what its workers report. Worker messages carry
/// the pane's generation number so a stale one (from before a new Generate) is dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    StartEditing,
    StopEditing,
    /// A key for the prompt editor.
    Edit(KeyEvent),
    /// Select the previous / next setting.
    Field {
        down: bool,
    },
    /// Change the selected setting.
    Adjust {
        up: bool,
    },
    TogglePanes,
    SwitchPane,
    CycleModel,
    /// Scroll the focused pane's story by `lines` (PgUp/PgDn: a page of 10; the wheel: 3).
    Scroll {
        down: bool,
        lines: u16,
    },
    Generate,
    Stop,
    Judge,
    Save,
    /// The model is open and the prompt rendered (`prompt`: as the model sees it).
    Loaded {
        pane: usize,
        generation: u64,
        label: String,
        prompt: String,
    },
    /// One token's text (may be empty while a multi-byte character is incomplete).
    Piece {
        pane: usize,
        generation: u64,
        text: String,
    },
    Finished {
        pane: usize,
        generation: u64,
        record: Shared<GenerationRecord>,
    },
    Judged {
        pane: usize,
        generation: u64,
        breakdown: Shared<Breakdown>,
    },
    Failed {
        pane: usize,
        generation: u64,
        error: String,
    },
}
