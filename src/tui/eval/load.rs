//! Finds a run's evaluations (`RUN_DIR/eval/*/` holding a `length.json`, an `elo.json`
//! and/or a benchmark's `bench.json`) and reads their summaries, off the draw path. A refresh costs one directory
//! listing and two `stat`s per evaluation; a summary is parsed again only when its size or
//! modification time changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::de::DeserializeOwned;

use super::{Evaluation, Summary};
use crate::eval::bench::{table::read_bench, BENCH_JSON};
use crate::eval::report::{ELO_JSON, LENGTH_JSON};

/// Shortest time between two unasked-for refreshes.
pub const EVERY: Duration = Duration::from_secs(1);

/// What a file looked like when it was read: (size, modified).
type Stamp = (u64, Option<SystemTime>);

/// A `length.json` or `elo.json`, or what is wrong with it.
fn summary<T: DeserializeOwned>(path: &Path) -> Summary<T> {
    crate::eval::summary::read(path).map_err(|e| format!("{e:#}"))
}

pub struct EvalIndex {
    eval_dir: PathBuf,
    last: Option<Instant>,
    /// Per summary file read: its stamp then.
    seen: HashMap<PathBuf, Stamp>,
}

impl EvalIndex {
    pub fn new(run_dir: &Path) -> Self {
        Self { eval_dir: crate::run::RunDir::at(run_dir).eval(), last: None, seen: HashMap::new() }
    }

    /// Re-reads what changed, at most once per `EVERY` unless `now`; true when `evals`
    /// changed.
    pub fn refresh(&mut self, evals: &mut Vec<Evaluation>, now: bool) -> bool {
        if !now && self.last.is_some_and(|t| t.elapsed() < EVERY) {
            return false;
        }
        self.last = Some(Instant::now());
        let mut found: Vec<(String, PathBuf)> = match std::fs::read_dir(&self.eval_dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.join(LENGTH_JSON).is_file()
                        || p.join(ELO_JSON).is_file()
                        || p.join(BENCH_JSON).is_file()
                })
                .map(|p| (p.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()), p))
                .collect(),
            Err(_) => vec![],
        };
        found.sort();
        let mut changed = found.len() != evals.len();
        let mut fresh = Vec::with_capacity(found.len());
        let mut old: HashMap<String, Evaluation> = evals.drain(..).map(|e| (e.name.clone(), e)).collect();
        for (name, dir) in found {
            let before = old.remove(&name);
            changed |= before.is_none();
            let (length_before, elo_before, bench_before) =
                before.map_or((None, None, None), |e| (e.length, e.elo, e.bench));
            let (length, c1) = self.read(&dir.join(LENGTH_JSON), length_before, summary);
            let (elo, c2) = self.read(&dir.join(ELO_JSON), elo_before, summary);
            let (bench, c3) = self.read(&dir.join(BENCH_JSON), bench_before, |p: &Path| {
                read_bench(p).map_err(|e| format!("{e:#}"))
            });
            changed |= c1 || c2 || c3;
            fresh.push(Evaluation { name, dir, length, elo, bench });
        }
        *evals = fresh;
        changed
    }

    /// The summary at `path`: `before` if the file is unchanged, else read again; and
    /// whether it changed.
    fn read<T: DeserializeOwned>(
        &mut self,
        path: &Path,
        before: Option<Summary<T>>,
        parse: impl Fn(&Path) -> Summary<T>,
    ) -> (Option<Summary<T>>, bool) {
        let Ok(meta) = std::fs::metadata(path) else {
            let had = self.seen.remove(path).is_some();
            return (None, had || before.is_some());
        };
        let stamp = (meta.len(), meta.modified().ok());
        if before.is_some() && self.seen.get(path) == Some(&stamp) {
            return (before, false);
        }
        self.seen.insert(path.to_path_buf(), stamp);
        (Some(parse(path)), true)
    }
}
