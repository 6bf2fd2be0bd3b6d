//! The kinds of summary an evaluation folder can hold, each with its file, its reader and its
//! drawing. The loader (`load.rs`) reads every kind's file it finds; the tab draws what it
//! read in this order. A new evaluation is a `Report` variant and one entry of `KINDS`.

use std::path::Path;

use ratatui::layout::Rect;
use ratatui::Frame;
use serde::de::DeserializeOwned;

use super::state::{EvalTab, Report, Summary};
use super::{bench, elo, length};
use crate::eval::bench::{table::read_bench, BENCH_JSON};
use crate::eval::report::{ELO_JSON, LENGTH_JSON};
use crate::tui::theme::Theme;

/// How a summary shares the body with the evaluation's other summaries (one alone takes all).
#[derive(Debug, Clone, Copy)]
pub enum Share {
    /// It takes the body and the others are not drawn (a benchmark's table holds the run's
    /// Elo ladder too).
    Alone,
    /// What the others leave.
    Fill,
    /// The rows it asks for, at most half the body.
    Rows(fn(&Summary<Report>) -> u16),
}

pub struct Kind {
    /// Its file in `RUN_DIR/eval/<name>/`.
    pub file: &'static str,
    /// As the strip names it when it has no better name (`label`).
    pub name: &'static str,
    /// As the pane of an unreadable file names it.
    pub title: &'static str,
    pub read: fn(&Path) -> Summary<Report>,
    /// As the strip names a summary read.
    pub label: fn(&Report) -> &'static str,
    pub share: Share,
    pub draw: fn(&mut Frame, Rect, &EvalTab, &Report, &Theme),
}

pub const KINDS: [Kind; 3] = [
    Kind {
        file: LENGTH_JSON,
        name: "length",
        title: "length",
        read: |p| summary(p).map(Report::Length),
        label: |_| "length",
        share: Share::Fill,
        draw: |frame, area, _, r, t| {
            if let Report::Length(r) = r {
                length::draw(frame, area, r, t)
            }
        },
    },
    Kind {
        file: ELO_JSON,
        name: "Elo",
        title: "Elo",
        read: |p| summary(p).map(Report::Elo),
        label: |_| "Elo",
        // the ladder takes what it needs: borders, header, a row a system, a gap and the two
        // position lines; then a gap, the head-to-head's title and header, a row a system
        share: Share::Rows(|s| match s {
            Ok(Report::Elo(r)) => 2 * r.ratings.len() as u16 + 9,
            _ => 6,
        }),
        draw: |frame, area, _, r, t| {
            if let Report::Elo(r) = r {
                elo::draw(frame, area, r, t)
            }
        },
    },
    Kind {
        file: BENCH_JSON,
        name: "bench",
        title: "benchmark",
        read: |p| read_bench(p).map(Report::Bench).map_err(|e| format!("{e:#}")),
        label: |r| match r {
            Report::Bench(b) => b.task.name(),
            _ => "bench",
        },
        share: Share::Alone,
        draw: |frame, area, tab, r, t| {
            if let Report::Bench(r) = r {
                bench::draw(frame, area, tab, r, t)
            }
        },
    },
];

/// A `length.json` or `elo.json`, or what is wrong with it.
fn summary<T: DeserializeOwned>(path: &Path) -> Summary<T> {
    crate::eval::summary::read(path).map_err(|e| format!("{e:#}"))
}
