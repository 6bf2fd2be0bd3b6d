//! Other runs overlaid on the dashboard: each followed from its files like a run opened read
//! only (its steps, validation passes and resumes), and the keys in which their configs
//! differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Clear, Paragraph, Row, Table};
use ratatui::Frame;

use super::chart::run_colour;
use super::state::{ComparedRun, ConfigDiff, CurvesState};
use crate::run::RunDir;
use crate::run::{Event, EventKind};
use crate::tui::history::History;
use crate::tui::link::{DirLink, Link};
use crate::tui::state::State;
use crate::tui::theme::Theme;
use crate::tui::widgets::{centred, pane};

/// The compared runs' event logs, read as they grow (the App polls them with its own).
#[derive(Default)]
pub struct Followers {
    links: Vec<DirLink>,
}

/// Names for runs `dirs` (the followed run first): each directory's name, or the path as given
/// where two runs share a name.
pub fn names(dirs: &[PathBuf]) -> Vec<String> {
    let base = |d: &Path| {
        d.file_name().map_or_else(|| d.display().to_string(), |n| n.to_string_lossy().into_owned())
    };
    let bases: Vec<String> = dirs.iter().map(|d| base(d)).collect();
    dirs.iter()
        .zip(&bases)
        .map(
            |(d, b)| {
                if bases.iter().filter(|x| *x == b).count() > 1 {
                    d.display().to_string()
                } else {
                    b.clone()
                }
            },
        )
        .collect()
}

/// Overlays `others` on the run in `s` (opened from `first`).
pub fn add_runs(followers: &mut Followers, s: &mut State, first: &Path, others: &[PathBuf]) {
    let all: Vec<PathBuf> = std::iter::once(first.to_path_buf()).chain(others.iter().cloned()).collect();
    let names = names(&all);
    s.run_name.clone_from(&names[0]);
    s.curves.dir = first.to_path_buf();
    for (dir, name) in others.iter().zip(&names[1..]) {
        let mut history = History::default();
        history.set_smoothing(s.curves.weight());
        s.curves.runs.push(ComparedRun { name: name.clone(), dir: dir.clone(), history });
        followers.links.push(DirLink::new(dir, None));
    }
}

/// Reads what the compared runs appended; returns the problems met, for the status line.
/// True in the first of the pair when anything arrived.
pub fn poll(followers: &mut Followers, runs: &mut [ComparedRun]) -> (bool, Vec<String>) {
    let (mut grew, mut problems) = (false, Vec::new());
    for (link, run) in followers.links.iter_mut().zip(runs) {
        let (events, said) = link.poll();
        problems.extend(said.into_iter().map(|p| format!("{}: {p}", run.name)));
        grew |= !events.is_empty();
        for ev in events {
            apply(&mut run.history, ev);
        }
    }
    (grew, problems)
}

fn apply(h: &mut History, ev: Event) {
    match ev.kind {
        EventKind::Started { resumed_from_step: Some(step), .. } => h.truncate_after(step),
        EventKind::Step(stats) => h.push(*stats),
        EventKind::Val(v) => h.push_val(*v),
        _ => {}
    }
}

/// The configs of the followed run (`name`, in `c.dir`) and those overlaid on it, compared.
pub fn config_diff(name: &str, c: &CurvesState) -> ConfigDiff {
    let mut runs = vec![name.to_string()];
    let mut dirs = vec![c.dir.clone()];
    for r in &c.runs {
        runs.push(r.name.clone());
        dirs.push(r.dir.clone());
    }
    let mut problems = Vec::new();
    let configs: Vec<BTreeMap<String, String>> = dirs
        .iter()
        .zip(&runs)
        .map(|(dir, name)| {
            let path = RunDir::at(dir).config();
            let read = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|text| {
                    text.parse::<toml::Table>().map_err(|e| format!("{}: not TOML: {e}", path.display()))
                });
            match read {
                Ok(table) => {
                    let mut flat = BTreeMap::new();
                    flatten("", &toml::Value::Table(table), &mut flat);
                    flat
                }
                Err(why) => {
                    problems.push(format!("{name}: {why}"));
                    BTreeMap::new()
                }
            }
        })
        .collect();
    let keys: std::collections::BTreeSet<&String> = configs.iter().flat_map(|c| c.keys()).collect();
    let (mut rows, mut same) = (Vec::new(), 0);
    for key in keys {
        let values: Vec<String> =
            configs.iter().map(|c| c.get(key).cloned().unwrap_or_else(|| "–".into())).collect();
        if values.iter().all(|v| *v == values[0]) {
            same += 1;
        } else {
            rows.push((key.clone(), values));
        }
    }
    ConfigDiff { runs, rows, same, problems }
}

/// Tables become dotted keys; everything else (arrays included) is one value as TOML writes it.
fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The diff over the dashboard: a key per line, a column per run in its colour.
pub fn draw_diff(frame: &mut Frame, area: Rect, d: &ConfigDiff, t: &Theme) {
    let height = (d.rows.len() + d.problems.len() + 5).min(area.height as usize) as u16;
    let r = centred(area, area.width.saturating_sub(4).min(160), height.max(7));
    frame.render_widget(Clear, r);
    let title = format!(" Config diff: {} keys differ, {} the same (D or Esc closes) ", d.rows.len(), d.same);
    let block = pane(title, t);
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let key_width = d.rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(8).clamp(8, 40) as u16;
    let n = d.runs.len().max(1) as u16;
    let value_width = (inner.width.saturating_sub(key_width + 1) / n).saturating_sub(1).max(4);
    let header = Row::new(
        std::iter::once(Cell::from(Span::styled("key", t.title()))).chain(
            d.runs
                .iter()
                .enumerate()
                .map(|(i, name)| Cell::from(Span::styled(name.clone(), t.fg(run_colour(t, i))))),
        ),
    );
    let mut body: Vec<Row> = d
        .rows
        .iter()
        .map(|(k, values)| {
            Row::new(
                std::iter::once(Cell::from(Span::styled(k.clone(), t.accent())))
                    .chain(values.iter().map(|v| Cell::from(Span::styled(v.clone(), t.base())))),
            )
        })
        .collect();
    for p in &d.problems {
        body.push(Row::new([Cell::from(Line::styled(p.clone(), t.fg(t.warn)))]));
    }
    if d.rows.is_empty() && d.problems.is_empty() {
        frame.render_widget(Paragraph::new("The runs' configs are the same.").style(t.dim()), inner);
        return;
    }
    let widths: Vec<Constraint> = std::iter::once(Constraint::Length(key_width))
        .chain((0..n).map(|_| Constraint::Length(value_width)))
        .collect();
    frame.render_widget(Table::new(body, widths).header(header).column_spacing(1), inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_that_share_a_name_are_named_by_their_paths() {
        let dirs = [PathBuf::from("a/first"), PathBuf::from("b/first"), PathBuf::from("b/second")];
        assert_eq!(names(&dirs), ["a/first", "b/first", "second"]);
    }

    #[test]
    fn flattening_names_nested_keys_as_set_does() {
        let table: toml::Table =
            "seed = 1\n[step]\ngroup_size = 6\n[step.loss]\nkl_coef = 0.0\n".parse().unwrap();
        let mut flat = BTreeMap::new();
        flatten("", &toml::Value::Table(table), &mut flat);
        let keys: Vec<&str> = flat.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["seed", "step.group_size", "step.loss.kl_coef"]);
        assert_eq!(flat["step.loss.kl_coef"], "0.0");
    }
}
