//! Annotate: a person judges the run's own samples blinded, in the same screen and durable
//! study folder as `polaris-tui annotate` (`src/annotate/`). The tab first lists the
//! comparisons (`src/annotate/rollouts.rs`); Enter opens one as a study in `RUN_DIR/annotate/<comparison>/`,
//! made from rollouts.jsonl the first time and resumed as it is afterwards (a live run's later
//! steps do not change a study already begun).

pub mod keys;

use std::path::PathBuf;

use anyhow::{bail, Result};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::state::State;
use super::widgets::pane;
use crate::annotate::rollouts::{self, Comparison};
use crate::annotate::screen::{self, AnnotateScreen};
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
            let source = self.run_dir.join("rollouts.jsonl").display().to_string();
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

pub fn draw(frame: &mut Frame, area: Rect, s: &State) {
    if let Some(screen) = &s.annotate.screen {
        screen::draw(frame, area, screen);
        return;
    }
    let t = s.theme();
    let a = &s.annotate;
    let mut text = vec![
        Line::styled("Judge this run's samples, blinded: which story reads better?", t.accent()),
        Line::default(),
    ];
    for (i, c) in Comparison::ALL.iter().enumerate() {
        let marker = if i == a.selected { "▶ " } else { "  " };
        let started = if a.begun[i] { "  (study begun)" } else { "" };
        let style = if i == a.selected { t.selected() } else { t.base() };
        text.push(Line::from(vec![
            Span::styled(format!("{marker}{}", c.question()), style),
            Span::styled(started, t.dim()),
        ]));
    }
    text.push(Line::default());
    let who = a.annotator.as_deref().unwrap_or("nobody ($USER unset; open --annotator NAME)");
    text.push(Line::styled(
        format!("↑↓ choose · Enter annotate as {who} · judgments saved under annotate/ in the run"),
        t.dim(),
    ));
    text.push(Line::styled(
        "Other systems' generation files: `polaris-tui annotate` and `polaris-tui report human`.",
        t.dim(),
    ));
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(pane(" Annotate ", t)), area);
}
