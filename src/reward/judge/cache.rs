//! Content-addressed disk cache of judge replies: the key hashes everything that decides
//! the answer (rubric, judge, settings, prompt, story). Entries are written to a temporary
//! file and renamed, so concurrent writers and crashes never leave a torn entry.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::http::Usage;
use crate::reward::rubric::hex;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub reply: String,
    pub usage: Usage,
}

#[derive(Debug, Clone)]
pub struct JudgeCache {
    dir: PathBuf,
}

impl JudgeCache {
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// The key of a request: sha256 over its parts, each length-prefixed.
    pub fn key(parts: &[&str]) -> String {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        hex(&h.finalize())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    /// None when absent or unreadable (an unreadable entry is a miss, never an error).
    pub fn get(&self, key: &str) -> Option<Entry> {
        let text = std::fs::read_to_string(self.path(key)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn put(&self, key: &str, entry: &Entry) -> std::io::Result<()> {
        let path = self.path(key);
        let dir = path.parent().expect("entry has a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{key}.{}.{:x}.tmp", std::process::id(), rand::random::<u64>()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(serde_json::to_string(entry)?.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)
    }
}
