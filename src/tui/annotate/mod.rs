//! Annotate: human evaluation has its own screen (`src/annotate/`, its own command); this tab
//! only points to it.

use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::state::State;
use super::widgets::pane;

pub fn draw(frame: &mut Frame, area: Rect, s: &State) {
    let t = s.theme();
    let text = vec![
        Line::styled("Human evaluation opens with `polaris-tui annotate`.", t.accent()),
        Line::default(),
        Line::styled(
            "Blinded side-by-side annotation sessions run in their own screen and store their \
             judgements durably; nothing is annotated from this tab.",
            t.base(),
        ),
    ];
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(pane(" Annotate ", t)), area);
}
