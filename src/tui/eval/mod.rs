//! Eval: the run's automatic evaluations (`RUN_DIR/eval/<name>/`, written by `polaris-tui
//! eval length`, `eval elo` and `eval bench`). A strip chooses one; each summary it holds is
//! drawn by its kind (`kinds.rs`): a length summary as the table of the Markdown report and a
//! chart of Story Quality by bucket, an Elo summary as the ladder with intervals and the
//! position statistics, a benchmark summary as the paper-style table of every benchmark of
//! the run (`bench.rs`). The files are read by `load.rs` (in `App::update`), never while
//! drawing.

mod bench;
mod elo;
pub mod kinds;
pub(crate) mod length;
pub mod load;
pub mod state;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::action::Action;
use super::state::{State, TabId};
use super::tab::{step_index, wheel_moves, Ctx, HelpSection, Tab};
use super::theme::Theme;
use super::widgets::pane;
use kinds::{Kind, Share, KINDS};
use load::EvalIndex;
use state::{EvalTab, Evaluation, Report, Summary};

pub const ID: TabId = TabId("Eval");

/// Its help section sits beside the Dashboard's so the two help columns stay within 22 rows
/// at 80x24.
pub const TAB: Tab = Tab {
    id: ID,
    help: Some((2, HELP)),
    keys: |_, key| keys(key),
    update,
    wheel: wheel_moves,
    draw: |frame, area, s| draw(frame, area, &s.eval, s.theme()),
};

const HELP: HelpSection = ("Eval", &[("↑↓  r", "evaluation / read again")]);

/// r reads eval/ again now.
fn keys(key: KeyEvent) -> Option<Action> {
    (key.code == KeyCode::Char('r')).then_some(Action::Key(key))
}

fn update(c: &mut Ctx, action: Action) -> Option<Action> {
    match action {
        Action::Move { down, by } => {
            let e = &mut c.state.eval;
            e.selected = step_index(e.selected, down, by as usize, e.evals.len());
        }
        Action::Key(k) if k.code == KeyCode::Char('r') => {
            refresh(c.state, c.evals, true);
            let n = c.state.eval.evals.len();
            c.say(format!("read eval/ again: {n} evaluation{}", if n == 1 { "" } else { "s" }));
        }
        other => return Some(other),
    }
    None
}

/// Reads `RUN_DIR/eval/` for new or changed summaries (at most once a second unless
/// `now`), keeping the chosen evaluation chosen.
pub fn refresh(s: &mut State, index: &mut EvalIndex, now: bool) {
    let e = &mut s.eval;
    let chosen = e.current().map(|x| x.name.clone());
    if index.refresh(&mut e.evals, now) {
        e.selected = chosen.and_then(|c| e.evals.iter().position(|x| x.name == c)).unwrap_or(0);
        s.dirty = true;
    }
}

pub fn draw(frame: &mut Frame, area: Rect, tab: &EvalTab, t: &Theme) {
    let Some(e) = tab.current() else {
        draw_none(frame, area, tab, t);
        return;
    };
    let [strip, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    draw_strip(frame, strip, tab, t);
    let shown: Vec<(&Kind, &Summary<Report>)> = e.summaries.iter().map(|(k, s)| (&KINDS[*k], s)).collect();
    if let Some(&(kind, summary)) = shown.iter().find(|(k, _)| matches!(k.share, Share::Alone)) {
        draw_summary(frame, body, tab, e, kind, summary, t);
        return;
    }
    // listed only with at least one summary; a file gone since is seen on the next read
    if let [(kind, summary)] = shown[..] {
        draw_summary(frame, body, tab, e, kind, summary, t);
        return;
    }
    let heights = shown.iter().map(|(k, s)| match k.share {
        Share::Rows(want) => Constraint::Length(want(s).min(body.height / 2)),
        Share::Fill | Share::Alone => Constraint::Min(0),
    });
    let areas = Layout::vertical(heights).split(body);
    for ((kind, summary), area) in shown.iter().zip(areas.iter()) {
        draw_summary(frame, *area, tab, e, kind, summary, t);
    }
}

fn draw_summary(
    frame: &mut Frame,
    area: Rect,
    tab: &EvalTab,
    e: &Evaluation,
    kind: &Kind,
    summary: &Summary<Report>,
    t: &Theme,
) {
    match summary {
        Ok(r) => (kind.draw)(frame, area, tab, r, t),
        Err(why) => draw_bad(frame, area, &format!(" {} · {} ", e.name, kind.title), why, t),
    }
}

/// The evaluations by name, the chosen one highlighted, and the keys.
fn draw_strip(frame: &mut Frame, area: Rect, tab: &EvalTab, t: &Theme) {
    let mut spans = vec![Span::styled(" eval/ ", t.dim())];
    for e in &tab.evals {
        let kinds: Vec<&str> = e
            .summaries
            .iter()
            .map(|(k, s)| {
                let kind = &KINDS[*k];
                s.as_ref().map_or(kind.name, kind.label)
            })
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
