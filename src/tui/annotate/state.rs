//! The Annotate tab's state: the comparison chosen, which studies are begun, and the study
//! open in the tab (opening one makes it from the run's rollouts the first time).

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::annotate::rollouts::{self, Comparison};
use crate::annotate::screen::AnnotateScreen;
use crate::annotate::study::{check_annotator, Study};
use crate::annotate::Session;

/// The tab's state: the chooser, and the study being annotated if one is open.
#[derive(Default)]
pub struct AnnotateTab {
    pub run_dir: PathBuf,
    /// Whose judgments file; `$USER` unless `open --annotator` names someone.
    pub annotator: Option<String>,
    /// Index into `Comparison::ALL`.
    pub selected: usize,
    /// Per comparison, whether its study folder exists (read here, so drawing reads no files).
    pub begun: [bool; Comparison::ALL.len()],
    pub screen: Option<AnnotateScreen>,
}

impl AnnotateTab {
    pub fn new(run_dir: PathBuf) -> Self {
        let begun = Comparison::ALL.map(|c| Study::exists(&c.study_dir(&run_dir)));
        let annotator = std::env::var("USER").ok().filter(|u| !u.is_empty());
        Self { run_dir, annotator, begun, ..Self::default() }
    }

    pub fn comparison(&self) -> Comparison {
        Comparison::ALL[self.selected.min(Comparison::ALL.len() - 1)]
    }

    /// Opens the selected comparison's study for the annotator, creating it from the run's
    /// rollouts if it does not exist yet; returns what to say in the status line.
    pub fn open(&mut self) -> Result<String> {
        let Some(annotator) = self.annotator.clone() else {
            bail!("no annotator: $USER is not set; reopen with `polaris-tui open RUN_DIR --annotator NAME`");
        };
        check_annotator(&annotator)?;
        let comparison = self.comparison();
        let dir = comparison.study_dir(&self.run_dir);
        if !Study::exists(&dir) {
            let items = rollouts::items(&self.run_dir, comparison)?;
            let source = crate::run::RunDir::at(&self.run_dir).rollouts().display().to_string();
            Study::new(items, vec![source])?.save_new(&dir)?;
        }
        self.begun[self.selected.min(Comparison::ALL.len() - 1)] = true;
        let session = Session::open(&dir, &annotator, None)?;
        let said = format!(
            "annotating as {annotator}: {} of {} judged, saved in {}",
            session.ledger.done(),
            session.ledger.total(),
            session.judgments_path().display()
        );
        let mut screen = AnnotateScreen::new(session);
        screen.embedded = true;
        self.screen = Some(screen);
        Ok(said)
    }
}
