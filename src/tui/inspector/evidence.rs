//! The judge quotes the story in its justifications ("..." or “...”) and lists bonus and
//! penalty evidence; those passages are highlighted where they occur in the story.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::reward::answer::Judgement;

/// Quotes shorter than this (in chars) match too much by chance to be worth marking.
const MIN_QUOTE_CHARS: usize = 4;

/// The passages the judge quoted, longest first (so a long quote wins over one inside it).
pub fn quotes(j: &Judgement) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in &j.dimensions {
        out.extend(quoted(&d.justification));
    }
    for e in j.bonus_evidence.iter().chain(&j.penalty_evidence) {
        let q: Vec<String> = quoted(e);
        if q.is_empty() {
            out.push(e.trim().to_string());
        } else {
            out.extend(q);
        }
    }
    out.retain(|q| q.chars().count() >= MIN_QUOTE_CHARS);
    out.sort_by_key(|q| std::cmp::Reverse(q.len()));
    out.dedup();
    out
}

/// The text between straight or curly double quotes.
fn quoted(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut open: Option<(usize, char)> = None;
    for (i, c) in text.char_indices() {
        match (open, c) {
            (None, '"') => open = Some((i + 1, '"')),
            (None, '“') => open = Some((i + c.len_utf8(), '”')),
            (Some((start, close)), c) if c == close => {
                out.push(text[start..i].trim().to_string());
                open = None;
            }
            _ => {}
        }
    }
    out
}

/// The story as lines, each occurrence of a quote styled `mark` (quotes do not span lines).
pub fn highlight<'a>(story: &str, quotes: &[String], base: Style, mark: Style) -> Vec<Line<'a>> {
    story
        .lines()
        .map(|line| {
            // (start, end) byte ranges to mark, earliest first, not overlapping
            let mut marks: Vec<(usize, usize)> = Vec::new();
            for q in quotes {
                let mut from = 0;
                while let Some(i) = line[from..].find(q.as_str()) {
                    let (a, b) = (from + i, from + i + q.len());
                    if !marks.iter().any(|&(x, y)| a < y && x < b) {
                        marks.push((a, b));
                    }
                    from = b;
                }
            }
            marks.sort();
            let mut spans = Vec::new();
            let mut at = 0;
            for (a, b) in marks {
                if a > at {
                    spans.push(Span::styled(line[at..a].to_string(), base));
                }
                spans.push(Span::styled(line[a..b].to_string(), mark));
                at = b;
            }
            if at < line.len() || spans.is_empty() {
                spans.push(Span::styled(line[at..].to_string(), base));
            }
            Line::from(spans)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Modifier;

    #[test]
    fn quoted_passages_are_found_in_straight_and_curly_quotes() {
        let q = quoted(r#"It opens with "the cold air" and ends “a little further”; "no""#);
        assert_eq!(q, vec!["the cold air", "a little further", "no"]);
    }

    #[test]
    fn each_occurrence_is_marked_and_the_rest_kept() {
        let mark = Style::default().add_modifier(Modifier::UNDERLINED);
        let lines =
            highlight("the fox and the fox\nno fox here? fox!", &["the fox".into()], Style::default(), mark);
        let marked: Vec<Vec<(String, bool)>> = lines
            .iter()
            .map(|l| l.spans.iter().map(|s| (s.content.to_string(), s.style == mark)).collect())
            .collect();
        assert_eq!(
            marked,
            vec![
                vec![("the fox".into(), true), (" and ".into(), false), ("the fox".into(), true)],
                vec![("no fox here? fox!".into(), false)],
            ]
        );
    }
}
