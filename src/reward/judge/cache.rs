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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_never_leave_a_torn_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = JudgeCache::new(dir.path()).unwrap();
        let key = JudgeCache::key(&["rubric", "judge", "prompt", "story"]);
        std::thread::scope(|s| {
            for w in 0..4 {
                let cache = cache.clone();
                let key = key.clone();
                s.spawn(move || {
                    for i in 0..50 {
                        let reply =
                            format!("{{\"writer\": {w}, \"i\": {i}, \"pad\": \"{}\"}}", "x".repeat(4096));
                        cache.put(&key, &Entry { reply, usage: Usage::default() }).unwrap();
                    }
                });
            }
            for _ in 0..200 {
                // every read is a complete entry from some writer, or a miss before the first
                if let Some(e) = cache.get(&key) {
                    assert!(e.reply.ends_with("\"}"), "torn entry");
                }
            }
        });
        assert!(cache.get(&key).is_some());
        // no temporary files left behind
        let leftovers = std::fs::read_dir(dir.path().join(&key[..2]))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
        // a different part changes the key
        assert_ne!(key, JudgeCache::key(&["rubric", "judge", "prompt", "story!"]));
        assert_ne!(JudgeCache::key(&["ab", "c"]), JudgeCache::key(&["a", "bc"]));
    }
}
