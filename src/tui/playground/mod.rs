//! Playground (issue 6 item 6): not built yet. The tab says so plainly instead of showing
//! anything that looks like generation.

use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::state::State;
use super::widgets::pane;

pub fn draw(frame: &mut Frame, area: Rect, s: &State) {
    let t = s.theme();
    let text = vec![
        Line::styled("The playground is not built yet.", t.accent()),
        Line::default(),
        Line::styled(
            "Until it is, generate a story from any model or checkpoint with `polaris-tui generate` \
             and score it with `polaris-tui judge`.",
            t.base(),
        ),
    ];
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(pane(" Playground ", t)), area);
}
