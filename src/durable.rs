//! Files a reader must never see half-written (summaries, settings, pid and exit records,
//! registry entries, plots): written whole to a temporary file beside the target, fsynced,
//! then renamed over it.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Result};

/// Writes `bytes` to `path` all at once. On failure the temporary file is removed and the
/// old `path`, if any, is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| anyhow!("{}: not a file path", path.display()))?;
    // the pid keeps two processes writing the same file from sharing a temporary
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let written = (|| -> Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", path.display())));
    }
    // the rename is durable once the directory is synced (best effort)
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
