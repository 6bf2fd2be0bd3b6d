//! Every run started on this machine, whatever its `--out`, so `polaris-tui runs` and
//! `attach` find them: one small file per run in `<state dir>/polaris-tui/runs/` (named by a
//! hash of the run directory's canonical path, so registering twice is harmless), each
//! written then renamed. `$POLARIS_STATE_DIR` replaces the state directory (tests use it).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::exit::now;
use super::status::{status, RunStatus};
use crate::durable::write_atomic;

/// One registered run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The run directory, canonical.
    pub path: PathBuf,
    /// Unix seconds of the latest registration (each start or resume).
    pub registered: f64,
}

/// `$POLARIS_STATE_DIR/runs`, else `<state dir>/polaris-tui/runs` (`~/.local/state` where
/// the platform has no state directory).
pub fn dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("POLARIS_STATE_DIR") {
        return Ok(PathBuf::from(d).join("runs"));
    }
    let state = dirs::state_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".local/state")))
        .ok_or_else(|| anyhow!("no state directory on this system: set POLARIS_STATE_DIR"))?;
    Ok(state.join("polaris-tui/runs"))
}

fn entry_file(registry: &Path, run_dir: &Path) -> PathBuf {
    let digest = Sha256::digest(run_dir.as_os_str().as_encoded_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    registry.join(format!("{name}.json"))
}

/// Records `run_dir` (which must exist) as a run.
pub fn register(run_dir: &Path) -> Result<()> {
    let path = run_dir.canonicalize().with_context(|| format!("cannot resolve {}", run_dir.display()))?;
    let registry = dir()?;
    std::fs::create_dir_all(&registry).with_context(|| format!("cannot create {}", registry.display()))?;
    let entry = Entry { path: path.clone(), registered: now() };
    write_atomic(&entry_file(&registry, &path), serde_json::to_string(&entry)?.as_bytes())
}

/// Every registered run whose directory still exists, with its status, most recent first
/// (by newest event, else registration). Entries of deleted directories are removed;
/// unreadable entries are skipped and reported in the second list.
pub fn list() -> Result<(Vec<RunStatus>, Vec<String>)> {
    let registry = dir()?;
    let read = match std::fs::read_dir(&registry) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], vec![])),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", registry.display())),
    };
    let (mut runs, mut problems) = (Vec::new(), Vec::new());
    for item in read {
        let file = item?.path();
        if file.extension().is_none_or(|x| x != "json") {
            continue; // a temporary file being written
        }
        let entry: Entry = match std::fs::read_to_string(&file)
            .map_err(anyhow::Error::from)
            .and_then(|t| Ok(serde_json::from_str(&t)?))
        {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("{}: skipped ({e})", file.display()));
                continue;
            }
        };
        if !entry.path.is_dir() {
            let _ = std::fs::remove_file(&file);
            continue;
        }
        match status(&entry.path) {
            Ok(s) => runs.push((s.last_event.unwrap_or(entry.registered), s)),
            Err(e) => problems.push(format!("{}: {e:#}", entry.path.display())),
        }
    }
    runs.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok((runs.into_iter().map(|(_, s)| s).collect(), problems))
}

/// The newest run that is running or paused.
pub fn most_recent_live() -> Option<PathBuf> {
    let (runs, _) = list().ok()?;
    runs.into_iter().find(|r| r.status.is_live()).map(|r| r.path)
}
