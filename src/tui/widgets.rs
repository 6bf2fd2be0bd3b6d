//! Pieces the views share: bordered blocks, number formats, centred popups.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Borders};

use super::theme::Theme;

/// A bordered pane with a title.
pub fn pane<'a>(title: impl Into<Line<'a>>, t: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(t.border())
        .title(title.into().style(t.title()))
        .style(t.base())
}

/// A number in about five characters: 0.123, 12.35, 1234, 1.2e-6.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !v.is_finite() {
        format!("{v}")
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

pub fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), num)
}

/// Bytes as GiB with one decimal.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// A `width` x `height` rectangle centred in `area` (clipped to it).
pub fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let [r] = Layout::horizontal([Constraint::Length(width.min(area.width))]).flex(Flex::Center).areas(area);
    let [r] = Layout::vertical([Constraint::Length(height.min(area.height))]).flex(Flex::Center).areas(r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_fit_about_five_characters() {
        let cases = [
            (0.0, "0"),
            (0.12345, "0.123"),
            (12.345, "12.3"),
            (1234.4, "1234"),
            (1.2e-6, "1.2e-6"),
            (-0.5, "-0.500"),
        ];
        for (v, want) in cases {
            assert_eq!(num(v), want, "{v}");
        }
    }
}
