//! What can happen to the state: raw inputs (terminal events, a poll tick, a device sample)
//! and the commands keys and clicks turn into.

use crate::gpu::Sample;

use super::state::TabId;

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A key, click, scroll or resize from the terminal.
    Input(crossterm::event::Event),
    /// Time to read what the run's files and link have appended.
    Tick,
    Gpu(Sample),

    Quit,
    SelectTab(TabId),
    CycleTab {
        forward: bool,
    },
    ToggleHelp,
    CycleTheme,
    /// Up / down a row or a line.
    Move {
        down: bool,
        by: u16,
    },
    /// Left / right: pan the dashboard, change step in Groups, change row in Inspector (each
    /// tab's `update` says).
    Side {
        forward: bool,
    },
    /// Previous / next group.
    Group {
        forward: bool,
    },
    Zoom {
        zoom_in: bool,
    },
    /// Back to the latest step (and the whole history on the dashboard).
    Follow,
    /// A key the shown tab took for itself (its `keys`); its `update` says what it does.
    Key(crossterm::event::KeyEvent),
    PauseResume,
    CheckpointNow,
    /// Stop asks first.
    AskStop,
    ConfirmStop(bool),
    /// Leave an attached run going on (the viewer goes, the trainer stays).
    Detach,
    /// Ask for the controller lease; taking it from someone asks first.
    AskTakeControl,
    ConfirmTakeControl(bool),
    /// The playground's keys and its workers' reports.
    Playground(super::playground::msg::Msg),
    /// Show or hide the alerts list.
    ToggleAlerts,
    /// Write the run's report (curves, summary, CSV) into its directory.
    ExportReport,
    /// The dashboard's pages, smoothing and config diff.
    Curves(super::curves::Msg),
    /// The frame just drawn had this size (the annotation screen bounds its scrolling by it).
    Drawn(ratatui::layout::Rect),
}
