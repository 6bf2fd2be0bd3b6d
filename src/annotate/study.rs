//! A study folder: `study.json` (the items every annotator sees, written once, then
//! renamed into place) and one `judgments-<annotator>.jsonl` per annotator.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::input::Item;

const FORMAT: &str = "polaris-human-study/1";
const MANIFEST: &str = "study.json";
const JUDGMENTS_PREFIX: &str = "judgments-";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    pub format: String,
    /// System A then system B.
    pub systems: [String; 2],
    /// Where the stories came from, as given on the command line.
    pub sources: Vec<String>,
    pub items: Vec<Item>,
}

impl Study {
    pub fn new(items: Vec<Item>, sources: Vec<String>) -> Result<Self> {
        let Some(first) = items.first() else {
            bail!("a study needs at least one prompt that both systems answered");
        };
        let systems = [first.stories[0].system.clone(), first.stories[1].system.clone()];
        Ok(Self { format: FORMAT.into(), systems, sources, items })
    }

    pub fn manifest_path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST)
    }

    pub fn exists(dir: &Path) -> bool {
        Self::manifest_path(dir).exists()
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::manifest_path(dir);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is {} a study folder made by `polaris-tui annotate`?)",
                path.display(),
                dir.display()
            )
        })?;
        let study: Study = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a study manifest", path.display()))?;
        if study.format != FORMAT {
            bail!("{}: field `format` is `{}`, this build reads `{FORMAT}`", path.display(), study.format);
        }
        Ok(study)
    }

    /// Writes `study.json` into `dir` (created if needed): a temporary file, fsynced, then
    /// renamed, so a reader never sees half a manifest.
    pub fn save_new(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = Self::manifest_path(dir);
        // Per process: two annotators creating the same study at once each rename a whole file.
        let tmp = dir.join(format!("{MANIFEST}.{}.tmp", std::process::id()));
        let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        sync_dir(dir)
    }

    /// Opens the study in `dir`, creating it from `fresh` if there is none; an existing
    /// study must hold exactly the same items.
    pub fn open_or_create(dir: &Path, fresh: Study) -> Result<Self> {
        if !Self::exists(dir) {
            fresh.save_new(dir)?;
            return Ok(fresh);
        }
        let existing = Self::load(dir)?;
        if existing.items != fresh.items || existing.systems != fresh.systems {
            let what = first_difference(&existing, &fresh);
            bail!(
                "{} already holds a study made from {} and it differs from these inputs ({what}); \
                 give the same --a/--b files, leave them out to annotate the existing study, or use a new --out folder",
                dir.display(),
                existing.sources.join(" and ")
            );
        }
        Ok(existing)
    }

    pub fn item(&self, prompt_uid: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.prompt_uid == prompt_uid)
    }

    /// The judgment file of one annotator.
    pub fn judgments_path(dir: &Path, annotator: &str) -> PathBuf {
        dir.join(format!("{JUDGMENTS_PREFIX}{annotator}.jsonl"))
    }

    /// Every annotator's judgment file in `dir`, sorted by annotator name.
    pub fn judgment_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if let Some(annotator) =
                name.strip_prefix(JUDGMENTS_PREFIX).and_then(|n| n.strip_suffix(".jsonl"))
            {
                files.push((annotator.to_string(), path.clone()));
            }
        }
        files.sort();
        Ok(files)
    }
}

/// An annotator name becomes part of a file name: letters, digits, `-`, `_`, `.`.
pub fn check_annotator(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("--annotator `{name}`: use letters, digits, `-`, `_` or `.` (it names the judgments file)");
    }
    Ok(())
}

fn first_difference(old: &Study, new: &Study) -> String {
    if old.systems != new.systems {
        return format!("systems {:?} there, {:?} here", old.systems, new.systems);
    }
    if old.items.len() != new.items.len() {
        return format!("{} items there, {} here", old.items.len(), new.items.len());
    }
    match old.items.iter().zip(&new.items).find(|(a, b)| a != b) {
        Some((a, _)) => format!("prompt_uid `{}` differs", a.prompt_uid),
        None => "same items".into(),
    }
}

/// Makes a rename or a new file in `dir` durable (the directory entry itself).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))
}
