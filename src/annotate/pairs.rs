//! Studies of more than two systems: one ordinary two-system study per pair of systems, each
//! in its own sub-folder of the study folder (`OUT/<A>-vs-<B>/`), so blinding, durability and
//! the report work per pair exactly as for two systems.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::study::Study;

/// The sub-folder of the pair (a, b): the system names with anything but letters, digits,
/// `-`, `_`, `.` replaced by `_`.
pub fn pair_folder(a: &str, b: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
    };
    format!("{}-vs-{}", clean(a), clean(b))
}

/// The pair studies under `dir`, sorted by folder name; empty when `dir` holds none.
pub fn pair_studies(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(out) };
    for entry in entries {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
        if path.is_dir() && Study::exists(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Every two of `n` systems, in order: (0,1), (0,2), ... (n-2,n-1).
pub fn all_pairs(n: usize) -> Vec<(usize, usize)> {
    (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect()
}
