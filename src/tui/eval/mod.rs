//! Eval: the run's automatic evaluations (`RUN_DIR/eval/<name>/`, written by `polaris-tui
//! eval length` and `eval elo`). A strip chooses one; its length summary shows as the table
//! of the Markdown report and a chart of Story Quality by bucket, its Elo summary as the
//! ladder with intervals and the position statistics, its benchmark summary as the paper-style
//! table of every benchmark of the run (`bench.rs`). The files are read by `load.rs` (in
//! `App::update`), never while drawing.

mod bench;
mod elo;
pub(crate) mod length;
pub mod load;

use std::path::PathBuf;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::state::State;
use super::theme::Theme;
use super::widgets::pane;
use crate::eval::bench::aggregate::BenchReport;
use crate::eval::report::{EloReport, LengthReport};

/// A summary as read: the report, or what is wrong with its file.
pub type Summary<T> = Result<T, String>;

/// One `RUN_DIR/eval/<name>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub name: String,
    pub dir: PathBuf,
    pub length: Option<Summary<LengthReport>>,
    pub elo: Option<Summary<EloReport>>,
    pub bench: Option<Summary<BenchReport>>,
}

#[derive(Debug, Default)]
pub struct EvalTab {
    pub run_dir: PathBuf,
    /// By name.
    pub evals: Vec<Evaluation>,
    pub selected: usize,
}

impl EvalTab {
    pub fn new(run_dir: PathBuf) -> Self {
        Self { run_dir, ..Self::default() }
    }

    pub fn current(&self) -> Option<&Evaluation> {
        self.evals.get(self.selected.min(self.evals.len().saturating_sub(1)))
    }
}

pub fn draw(frame: &mut Frame, area: Rect, s: &State) {
    let t = s.theme();
    let tab = &s.eval;
    let Some(e) = tab.current() else {
        draw_none(frame, area, tab, t);
        return;
    };
    let [strip, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    draw_strip(frame, strip, tab, t);
    if let Some(b) = &e.bench {
        match b {
            Ok(r) => bench::draw(frame, body, tab, r, t),
            Err(why) => draw_bad(frame, body, &format!(" {} · benchmark ", e.name), why, t),
        }
        return;
    }
    match (&e.length, &e.elo) {
        (Some(l), Some(o)) => {
            // the ladder takes what it needs: borders, header, a row a system, a gap and the
            // two position lines; then a gap, the head-to-head's title and header, a row a system
            let want = match o {
                Ok(r) => 2 * r.ratings.len() as u16 + 9,
                Err(_) => 6,
            };
            let [top, bottom] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(want.min(body.height / 2))])
                    .areas(body);
            draw_length(frame, top, e, l, t);
            draw_elo(frame, bottom, e, o, t);
        }
        (Some(l), None) => draw_length(frame, body, e, l, t),
        (None, Some(o)) => draw_elo(frame, body, e, o, t),
        // listed only with at least one summary; a file gone since is seen on the next read
        (None, None) => {}
    }
}

fn draw_length(frame: &mut Frame, area: Rect, e: &Evaluation, l: &Summary<LengthReport>, t: &Theme) {
    match l {
        Ok(r) => length::draw(frame, area, r, t),
        Err(why) => draw_bad(frame, area, &format!(" {} · length ", e.name), why, t),
    }
}

fn draw_elo(frame: &mut Frame, area: Rect, e: &Evaluation, o: &Summary<EloReport>, t: &Theme) {
    match o {
        Ok(r) => elo::draw(frame, area, r, t),
        Err(why) => draw_bad(frame, area, &format!(" {} · Elo ", e.name), why, t),
    }
}

/// The evaluations by name, the chosen one highlighted, and the keys.
fn draw_strip(frame: &mut Frame, area: Rect, tab: &EvalTab, t: &Theme) {
    let mut spans = vec![Span::styled(" eval/ ", t.dim())];
    for e in &tab.evals {
        let bench = match &e.bench {
            Some(Ok(r)) => Some(r.task.name()),
            Some(Err(_)) => Some("bench"),
            None => None,
        };
        let kinds: Vec<&str> = [e.length.as_ref().map(|_| "length"), e.elo.as_ref().map(|_| "Elo"), bench]
            .into_iter()
            .flatten()
            .collect();
        let chosen = Some(e) == tab.current();
        let style = if chosen { t.selected().patch(t.accent()) } else { t.base() };
        let marker = if chosen { "▶" } else { " " };
        spans.push(Span::styled(format!("{marker}{} ", e.name), style));
        spans.push(Span::styled(format!("({}) ", kinds.join("+")), t.dim()));
    }
    spans.push(Span::styled(" ↑↓ choose · r reload", t.dim()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_bad(frame: &mut Frame, area: Rect, title: &str, why: &str, t: &Theme) {
    let text = vec![Line::styled(why.to_string(), t.fg(t.bad)), Line::default()];
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(pane(title.to_string(), t)),
        area,
    );
}

fn draw_none(frame: &mut Frame, area: Rect, tab: &EvalTab, t: &Theme) {
    let cmd = |c: &str| Line::styled(format!("  {c}"), t.accent());
    let text = vec![
        Line::styled("No evaluations of this run yet.", t.base()),
        Line::default(),
        Line::styled("Story Quality and length ratio by requested length:", t.base()),
        cmd("polaris-tui eval length --model RUN_DIR/checkpoints/step-N ... \\"),
        cmd("    --out RUN_DIR/eval/length"),
        Line::styled("An Elo ladder from generation files, judged in both orders:", t.base()),
        cmd("polaris-tui eval elo --gens A.jsonl B.jsonl ... --out RUN_DIR/eval/elo"),
        Line::default(),
        Line::styled(format!("RUN_DIR is {}", tab.run_dir.display()), t.dim()),
        Line::styled(
            "This tab lists every eval/*/ holding a length.json or elo.json, and reads them again when they change (r: now).",
            t.dim(),
        ),
    ];
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }).block(pane(" Eval ", t)), area);
}
