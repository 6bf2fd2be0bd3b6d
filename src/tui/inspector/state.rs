//! The Inspector's state: how far its panes are scrolled, and whether the thinking shows.

#[derive(Debug, Default)]
pub struct InspectorState {
    /// Lines scrolled off the top of the story.
    pub scroll: u16,
    /// Lines scrolled off the top of the judgement pane.
    pub judge_scroll: u16,
    pub thinking: bool,
}
