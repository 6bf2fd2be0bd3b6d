//! One annotator working through a study: the study, their ledger and their open
//! judgment file. Every change is appended and fsynced before the ledger moves on.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use super::blinding::{self, Presentation};
use super::input::Item;
use super::ledger::Ledger;
use super::record::{Record, Verdict};
use super::store::JudgmentFile;
use super::study::{check_annotator, Study};

pub struct Session {
    pub dir: PathBuf,
    pub study: Study,
    pub ledger: Ledger,
    file: JudgmentFile,
}

impl Session {
    /// Opens `annotator`'s session in the study folder `dir`, resuming their file if it
    /// exists, else drawing and recording their blinding (from `seed`, or one derived
    /// from the name).
    pub fn open(dir: &Path, annotator: &str, seed: Option<u64>) -> Result<Self> {
        check_annotator(annotator)?;
        let study = Study::load(dir)?;
        let path = Study::judgments_path(dir, annotator);
        let (mut file, lines) = JudgmentFile::open(&path)?;
        let ledger = match Ledger::replay(&path, &lines, &study)? {
            Some(ledger) => {
                if ledger.annotator != annotator {
                    bail!(
                        "{}: written by annotator `{}`, not `{annotator}`",
                        path.display(),
                        ledger.annotator
                    );
                }
                if let Some(seed) = seed.filter(|&s| s != ledger.seed) {
                    bail!(
                        "{}: `{annotator}`'s blinding was drawn with seed {}, not {seed}; drop --seed to resume",
                        path.display(),
                        ledger.seed
                    );
                }
                ledger
            }
            None => {
                let seed = seed.unwrap_or_else(|| blinding::seed_for(annotator));
                let order = blinding::draw(&study.items, seed);
                let ledger = Ledger::new(annotator, seed, order.clone(), &study).map_err(|e| anyhow!(e))?;
                file.append(&Record::Blinding { annotator: annotator.into(), seed, order })?;
                ledger
            }
        };
        Ok(Self { dir: dir.to_path_buf(), study, ledger, file })
    }

    /// The item on screen and how it is shown; None when every item is judged.
    pub fn current(&self) -> Option<(&Presentation, &Item)> {
        let p = self.ledger.current()?;
        Some((p, self.study.item(&p.prompt_uid)?))
    }

    pub fn judgments_path(&self) -> &Path {
        self.file.path()
    }

    /// Records a verdict on the current item. Returns only after it is on disk.
    pub fn judge(&mut self, verdict: Verdict, comment: Option<String>) -> Result<()> {
        let p = self.ledger.current().ok_or_else(|| anyhow!("every item is already judged"))?;
        self.commit(Record::judgment(p, verdict, comment))
    }

    /// Puts the current item off until the items skipped fewer times are done.
    pub fn skip(&mut self) -> Result<()> {
        let p = self.ledger.current().ok_or_else(|| anyhow!("every item is already judged"))?;
        self.commit(Record::skip(&p.prompt_uid))
    }

    /// Withdraws the last standing judgment and brings its item back; false if none.
    pub fn undo(&mut self) -> Result<bool> {
        let Some(last) = self.ledger.judged().last() else {
            return Ok(false);
        };
        self.commit(Record::undo(&last.prompt_uid.clone()))?;
        Ok(true)
    }

    fn commit(&mut self, record: Record) -> Result<()> {
        self.file.append(&record)?;
        self.ledger.apply(&record).map_err(|e| anyhow!("{}: {e}", self.file.path().display()))
    }
}
