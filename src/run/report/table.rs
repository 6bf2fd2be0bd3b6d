//! A run's steps as one table: every step event that still stands (a resume from step k
//! supersedes the steps after k logged earlier), each flattened into named columns. Columns
//! are every field of the step event, so a field added to it is a column without a change
//! here; a nested list (per-device throughput) becomes `devices.0.mfu` and so on.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::run::event::{Event, EventKind};
use crate::run::stats::StepStats;

/// One cell: a number, a word, or nothing (a field the step did not have).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Number(f64),
    Text(String),
    Empty,
}

impl Cell {
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Number(v) => Some(*v),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StepTable {
    /// `step`, `time` (Unix seconds of the event), then the step event's fields.
    pub columns: Vec<String>,
    /// One row per standing step, by step; a cell per column.
    pub rows: Vec<Vec<Cell>>,
    /// The standing steps themselves, by step.
    pub steps: Vec<StepStats>,
}

impl StepTable {
    pub fn of(events: &[Event]) -> Self {
        let mut standing: BTreeMap<usize, (f64, StepStats)> = BTreeMap::new();
        for ev in events {
            match &ev.kind {
                EventKind::Started { resumed_from_step: Some(k), .. } => drop(standing.split_off(&(k + 1))),
                EventKind::Step(s) => drop(standing.insert(s.step, (ev.time, (**s).clone()))),
                _ => {}
            }
        }
        let mut columns: Vec<String> = vec!["step".into(), "time".into()];
        let mut flat_rows = Vec::new();
        for (time, s) in standing.values() {
            let mut flat = Vec::new();
            flatten("", &serde_json::to_value(s).unwrap_or(Value::Null), &mut flat);
            for (name, _) in &flat {
                if !columns.contains(name) {
                    columns.push(name.clone());
                }
            }
            flat_rows.push((*time, flat));
        }
        let rows = standing
            .values()
            .zip(&flat_rows)
            .map(|((_, s), (time, flat))| {
                columns
                    .iter()
                    .map(|c| match c.as_str() {
                        "step" => Cell::Number(s.step as f64),
                        "time" => Cell::Number(*time),
                        _ => flat.iter().find(|(n, _)| n == c).map_or(Cell::Empty, |(_, v)| v.clone()),
                    })
                    .collect()
            })
            .collect();
        Self { columns, rows, steps: standing.into_values().map(|(_, s)| s).collect() }
    }

    /// The column called `name`, one value per row (None where empty or not a number).
    pub fn column(&self, name: &str) -> Option<Vec<Option<f64>>> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(|r| r[i].number()).collect())
    }

    pub fn step_numbers(&self) -> Vec<f64> {
        self.steps.iter().map(|s| s.step as f64).collect()
    }

    /// The table as CSV (RFC 4180: a comma in a word quotes it); numbers as Rust prints them
    /// (shortest round-trip form), an empty cell for a missing value.
    pub fn csv(&self) -> String {
        let mut out = self.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| match c {
                    Cell::Number(v) => format!("{v}"),
                    Cell::Text(t) => quote(t),
                    Cell::Empty => String::new(),
                })
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// (column name, cell) of every leaf under `v`, keys joined by dots, list items by index.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Cell)>) {
    let name = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&name(k), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&name(&i.to_string()), v, out);
            }
        }
        Value::Number(n) => out.push((prefix.to_string(), n.as_f64().map_or(Cell::Empty, Cell::Number))),
        Value::Bool(b) => out.push((prefix.to_string(), Cell::Number(if *b { 1.0 } else { 0.0 }))),
        Value::String(s) => out.push((prefix.to_string(), Cell::Text(s.clone()))),
        Value::Null => out.push((prefix.to_string(), Cell::Empty)),
    }
}
