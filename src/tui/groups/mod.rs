//! Groups: one step's groups (the latest, live, unless a step is chosen), each group's rows
//! ranked by score (what GRPO used; the title names the run's `reward.score` mode, and the
//! release mode adds the composite beside it) with the human reference highlighted and
//! marked `HUMAN`, so it is unmistakable without colour too. A reference cut to the response
//! budget is marked `cut`, with the tokens it lost. A validation pass is a step of its own
//! kind: one sample (`val`) per held-out prompt, with no advantage (nothing is trained on it).

pub mod state;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::action::Action;
use super::rollouts::{Group, RolloutIndex, StepKey};
use super::state::{State, TabId};
use super::tab::{step_index, wheel_moves, Ctx, HelpSection, Tab};
use super::theme::Theme;
use super::widgets::{num, opt_num, pane};
use crate::reward::score::ScoreMode;
use state::GroupsState;

pub const ID: TabId = TabId("Groups");

pub const TAB: Tab = Tab {
    id: ID,
    help: Some((3, HELP)),
    keys: |_, key| keys(key),
    update,
    wheel: wheel_moves,
    draw: |frame, area, s| draw(frame, area, &s.groups, s.theme()),
};

const HELP: HelpSection = (
    "Groups",
    &[
        ("← / →", "previous / next step"),
        ("↑ / ↓", "row in the group"),
        ("[ ] PgUp/Dn", "previous / next group"),
        ("f", "follow the latest step"),
        ("Enter", "inspect the row"),
    ],
);

/// PgUp / PgDn change group here (elsewhere they scroll); Enter inspects the row.
fn keys(key: KeyEvent) -> Option<Action> {
    match key.code {
        KeyCode::PageUp => Some(Action::Group { forward: false }),
        KeyCode::PageDown => Some(Action::Group { forward: true }),
        KeyCode::Enter => Some(Action::Key(key)),
        _ => None,
    }
}

fn update(c: &mut Ctx, action: Action) -> Option<Action> {
    let s = &mut *c.state;
    match action {
        Action::Move { down, by } => {
            let n = s.groups.current().map_or(0, |g| g.rows.len());
            s.groups.row = step_index(s.groups.row, down, by as usize, n);
        }
        Action::Side { forward } => {
            let from = s.groups.loaded.as_ref().map(|(step, _)| *step);
            if let Some(step) = from.and_then(|f| c.rollouts.neighbour(f, forward)) {
                // reaching the latest step follows it again
                let pinned = (Some(step) != c.rollouts.latest()).then_some(step);
                c.state.groups.pinned = pinned;
                if let Some(problem) = load(c.state, c.rollouts, step) {
                    c.say(problem);
                }
            }
        }
        Action::Key(k) if k.code == KeyCode::Enter => {
            if s.groups.current().is_some() {
                // the row stays put while new steps arrive; `f` follows again
                s.groups.pinned = s.groups.loaded.as_ref().map(|(step, _)| *step);
                s.tab = super::inspector::ID;
                s.inspector.scroll = 0;
                s.inspector.judge_scroll = 0;
            }
        }
        other => return Some(other),
    }
    None
}

/// Shows `step`'s groups, keeping the chosen group and row where they still exist; what went
/// wrong reading them, to be said.
pub fn load(s: &mut State, rollouts: &RolloutIndex, step: StepKey) -> Option<String> {
    s.dirty = true;
    match rollouts.load(step) {
        Ok(groups) => {
            let g = &mut s.groups;
            g.group = g.group.min(groups.len().saturating_sub(1));
            let rows = groups.get(g.group).map_or(0, |x| x.rows.len());
            g.row = g.row.min(rows.saturating_sub(1));
            g.loaded = Some((step, groups));
            None
        }
        Err(e) => Some(format!("{e:#}")),
    }
}

pub fn draw(frame: &mut Frame, area: Rect, g: &GroupsState, t: &Theme) {
    let Some((step, groups)) = &g.loaded else {
        let p = Paragraph::new("No rollouts yet: rollouts.jsonl gains a step's groups when the step ends.")
            .style(t.dim())
            .block(pane(" Groups ", t));
        frame.render_widget(p, area);
        return;
    };
    let follow = if g.pinned.is_none() { "live" } else { "chosen" };
    let (cut_rows, cut_tokens) =
        groups.iter().filter_map(Group::reference_cut).fold((0, 0), |(n, t), c| (n + 1, t + c));
    let cut = match cut_rows {
        0 => String::new(),
        n => format!("; {n} reference{} cut, {cut_tokens} tokens", if n == 1 { "" } else { "s" }),
    };
    let title = format!(" {} ({follow}; {} steps with rollouts{cut}) ", step.title(), g.steps_with_rollouts);
    // side by side where there is room, else the list above the group
    let (list_area, group_area) = if area.width >= 110 {
        let [a, b] = Layout::horizontal([Constraint::Length(44), Constraint::Min(0)]).areas(area);
        (a, b)
    } else {
        let list_h = (groups.len() as u16 + 3).min(area.height / 3).max(4);
        let [a, b] = Layout::vertical([Constraint::Length(list_h), Constraint::Min(0)]).areas(area);
        (a, b)
    };
    draw_list(frame, list_area, groups, g.group, &title, t);
    if let Some(group) = groups.get(g.group) {
        draw_group(frame, group_area, group, g.row, step.is_val(), t);
    }
}

/// The step's `groups`, the `chosen` one highlighted, under `title`.
fn draw_list(frame: &mut Frame, area: Rect, groups: &[Group], chosen: usize, title: &str, t: &Theme) {
    let header = Row::new(["group", "ref rank", "best", "prompt"]).style(t.dim());
    let rows: Vec<Row> = groups
        .iter()
        .map(|g| {
            let rank = g.reference_rank().map_or("–".into(), |r| format!("{r}/{}", g.rows.len()));
            let rank = if g.reference_cut().is_some() { format!("{rank} cut") } else { rank };
            Row::new([
                Cell::from(format!("{:>5}", g.index)),
                Cell::from(format!("{rank:>8}")),
                Cell::from(format!("{:>6}", opt_num(g.best_policy_reward()))),
                Cell::from(g.prompt.clone()),
            ])
            .style(t.base())
        })
        .collect();
    let table = Table::new(
        rows,
        [Constraint::Length(5), Constraint::Length(8), Constraint::Length(6), Constraint::Min(10)],
    )
    .header(header)
    .block(pane(title.to_string(), t))
    .row_highlight_style(t.selected());
    let mut state = TableState::default().with_selected(Some(chosen));
    frame.render_stateful_widget(table, area, &mut state);
}

/// One group's rows, `row` highlighted; `val`: a validation pass's (no advantage).
fn draw_group(frame: &mut Frame, area: Rect, group: &Group, row: usize, val: bool, t: &Theme) {
    let prompt_h = 4.min(area.height / 3).max(3);
    let [prompt, rows_area] =
        Layout::vertical([Constraint::Length(prompt_h), Constraint::Min(0)]).areas(area);
    frame.render_widget(
        Paragraph::new(group.prompt.as_str())
            .style(t.base())
            .wrap(Wrap { trim: true })
            .block(pane(format!(" Group {} prompt ", group.index), t)),
        prompt,
    );
    let mode = group.rows.first().map_or(ScoreMode::Composite, |r| r.breakdown.score_mode);
    let release = mode == ScoreMode::Release;
    let mut names = vec!["rank", "who", "score"];
    if release {
        names.push("compos.");
    }
    names.extend(["SQ", "rep", "len pen", "words", "ratio", "adv"]);
    let header = Row::new(names).style(t.dim());
    let mut policy_n = 0;
    let rows: Vec<Row> = group
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let b = &r.breakdown;
            let who = if r.rollout.is_reference {
                if r.rollout.cut_tokens > 0 { "HUMAN cut" } else { "HUMAN" }.to_string()
            } else if val {
                "val".to_string()
            } else {
                policy_n += 1;
                format!("p{policy_n}")
            };
            let advantage = if val { "–".to_string() } else { num(r.advantage) };
            let style = if r.rollout.is_reference { t.reference_row() } else { t.base() };
            let marker = if r.rollout.is_reference { "▶" } else { " " };
            let mut cells = vec![format!("{marker}{:>3}", i + 1), who, format!("{:>7}", num(r.reward))];
            if release {
                cells.push(format!("{:>7}", num(b.reward)));
            }
            cells.extend([
                format!("{:>6}", num(b.story_quality)),
                format!("{:>6}", num(b.self_repetition)),
                format!("{:>7}", num(b.length_penalty)),
                format!("{:>6}", b.words),
                format!("{:>6}", opt_num(b.length_ratio)),
                format!("{advantage:>7}"),
            ]);
            Row::new(cells).style(style)
        })
        .collect();
    let mut widths = vec![Constraint::Length(4), Constraint::Length(9), Constraint::Length(7)];
    if release {
        widths.push(Constraint::Length(7));
    }
    widths.extend([
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
    ]);
    let refs = match (group.reference_rank(), group.reference_cut()) {
        (Some(r), None) => format!(" · human reference ranked {r}"),
        (Some(r), Some(n)) => format!(" · human ref. ranked {r}, cut {n} tokens"),
        (None, _) => String::new(),
    };
    // "Composite score" / "Release score": the rows are ranked by it
    let (first, rest) = mode.name().split_at(1);
    let title = if val {
        " Validation sample: scored, not trained on · Enter inspects ".to_string()
    } else {
        format!(" {}{rest} score{refs} · Enter inspects ", first.to_uppercase())
    };
    let title = Line::from(vec![Span::raw(title)]);
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(pane(title, t))
        .row_highlight_style(t.selected());
    let mut state = TableState::default().with_selected(Some(row));
    frame.render_stateful_widget(table, rows_area, &mut state);
}
