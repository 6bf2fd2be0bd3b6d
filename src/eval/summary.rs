//! Reading a summary back (`length.json`, `elo.json`): the version checked first, then the
//! fields, with an error that names the file, says what is wrong (with serde's line and
//! column) and what to do.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde::de::DeserializeOwned;

use super::report::REPORT_VERSION;

const AGAIN: &str = "write it again with `polaris-tui eval length` / `eval elo --out DIR`";

pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: not JSON ({e}); {AGAIN}", path.display()))?;
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == REPORT_VERSION as u64 => {}
        v => bail!(
            "{}: field `v` is {}, this build reads version {REPORT_VERSION}; {AGAIN} of this build",
            path.display(),
            v.map_or_else(|| "missing".into(), |v| v.to_string())
        ),
    }
    // parsed from the text again (not the value) so an error carries its line and column
    serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not an evaluation summary ({e}); {AGAIN}", path.display()))
}
