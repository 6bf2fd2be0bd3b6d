//! Finds a run's evaluations (`RUN_DIR/eval/*/` holding the file of one of the summary
//! kinds, `kinds.rs`: a `length.json`, an `elo.json`, a benchmark's `bench.json`) and reads
//! their summaries, off the draw path. A refresh costs one directory listing and a `stat` per
//! kind and evaluation; a summary is parsed again only when its size or modification time
//! changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::kinds::KINDS;
use super::state::{Evaluation, Report, Summary};

/// Shortest time between two unasked-for refreshes.
pub const EVERY: Duration = Duration::from_secs(1);

/// What a file looked like when it was read: (size, modified).
type Stamp = (u64, Option<SystemTime>);

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
                .filter(|p| KINDS.iter().any(|k| p.join(k.file).is_file()))
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
            let mut before = before.map_or_else(Vec::new, |e| e.summaries);
            let mut summaries = vec![];
            for (i, kind) in KINDS.iter().enumerate() {
                let had = before.iter().position(|(k, _)| *k == i).map(|at| before.swap_remove(at).1);
                let (summary, c) = self.read(&dir.join(kind.file), had, kind.read);
                changed |= c;
                summaries.extend(summary.map(|s| (i, s)));
            }
            fresh.push(Evaluation { name, dir, summaries });
        }
        *evals = fresh;
        changed
    }

    /// The summary at `path`: `before` if the file is unchanged, else read again; and
    /// whether it changed.
    fn read(
        &mut self,
        path: &Path,
        before: Option<Summary<Report>>,
        parse: fn(&Path) -> Summary<Report>,
    ) -> (Option<Summary<Report>>, bool) {
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
