//! What the annotation screen shows besides the session itself.

use ratatui::layout::Rect;
use ratatui_textarea::TextArea;

use crate::annotate::session::Session;

/// Which story the scrolling keys move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Left,
    Right,
}

/// The one-line message under the stories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Idle,
    Info(String),
    /// Something was not saved; the screen stays on the item.
    Error(String),
}

/// What the caller should do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    Quit,
}

pub struct AnnotateScreen {
    pub session: Session,
    /// First shown line of each story (wrapped lines), left then right.
    pub scroll: [u16; 2],
    pub focus: Pane,
    /// The comment editor while it is open.
    pub editor: Option<TextArea<'static>>,
    /// The comment that goes with the next verdict on this item.
    pub comment: String,
    pub status: Status,
    /// False under NO_COLOR: modifiers only.
    pub color: bool,
    /// Where the screen was last drawn; whoever draws it sets this, so scrolling stops
    /// at a story's last line. Empty until then (scrolling is bounded by an estimate).
    pub area: Rect,
    /// Shown in the workbench's Annotate tab, which remaps `q` (leave) and Tab (`o`).
    pub embedded: bool,
}

impl AnnotateScreen {
    pub fn new(session: Session) -> Self {
        Self {
            session,
            scroll: [0, 0],
            focus: Pane::Left,
            editor: None,
            comment: String::new(),
            status: Status::Idle,
            color: color_enabled(),
            area: Rect::default(),
            embedded: false,
        }
    }

    /// Back to the top of both stories, no comment: a new item is on screen.
    pub(super) fn next_item(&mut self) {
        self.scroll = [0, 0];
        self.comment.clear();
    }
}

/// Colour unless NO_COLOR is set to something non-empty (no-color.org).
pub fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
