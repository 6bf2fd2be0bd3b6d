//! The playground's part of the state: the prompt editor, the settings, and each pane's
//! model choice and what it has generated so far. Changed only in `App::update`.

use std::sync::Arc;

use ratatui_textarea::TextArea;

use crate::chat::{opens_thinking, split_thinking};
use crate::generate::length::{count_words, length_ratio};
use crate::generate::{GenerationRecord, SamplingParams};
use crate::reward::Breakdown;

/// Which weights a pane generates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The run's newest checkpoint, found when generation starts (the live policy).
    Latest,
    /// The run's base model (`model.path` in its config.toml).
    Base,
    /// One checkpoint folder of the run.
    Checkpoint(std::path::PathBuf),
}

impl Choice {
    pub fn label(&self) -> String {
        match self {
            Choice::Latest => "latest checkpoint".into(),
            Choice::Base => "base model".into(),
            Choice::Checkpoint(dir) => {
                dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Idle,
    Loading,
    Generating,
    Finished,
    Stopped,
    Judging,
    Judged,
    Failed(String),
}

impl Status {
    pub fn busy(&self) -> bool {
        matches!(self, Status::Loading | Status::Generating | Status::Judging)
    }
}

/// One side of the comparison.
#[derive(Debug, Clone)]
pub struct Pane {
    /// Index into `PlaygroundState::choices`.
    pub choice: usize,
    /// What the model chose the weights to be, once loaded (e.g. `checkpoints/step-000040`).
    pub loaded: Option<String>,
    /// The user message sent (instruction and length sentence); the judge reads its target.
    pub request: String,
    /// The prompt as the model saw it (chat template applied), for splitting thinking.
    pub prompt: String,
    /// The decoded completion so far, thinking included.
    pub text: String,
    pub tokens: usize,
    /// Words of the story part (thinking excluded), as the reward counts them.
    pub words: usize,
    pub status: Status,
    pub record: Option<Arc<GenerationRecord>>,
    pub breakdown: Option<Arc<Breakdown>>,
    /// Lines scrolled off the top of the text.
    pub scroll: u16,
    /// The generation this pane shows; messages from an older one are dropped.
    pub generation: u64,
}

impl Pane {
    pub fn new(choice: usize) -> Self {
        Self {
            choice,
            loaded: None,
            request: String::new(),
            prompt: String::new(),
            text: String::new(),
            tokens: 0,
            words: 0,
            status: Status::Idle,
            record: None,
            breakdown: None,
            scroll: 0,
            generation: 0,
        }
    }

    /// Appends a streamed piece and recounts the story's words.
    pub fn push(&mut self, piece: &str) {
        self.text.push_str(piece);
        self.tokens += 1;
        self.words = count_words(&split_thinking(&self.text, opens_thinking(&self.prompt)).story);
    }

    pub fn ratio(&self, target: usize) -> Option<f64> {
        length_ratio(self.words, target)
    }
}

/// The settings list the arrows walk and `+`/`-` change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Words,
    Thinking,
    Temperature,
    TopP,
    TopK,
    MaxTokens,
    Seed,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::Words,
        Field::Thinking,
        Field::Temperature,
        Field::TopP,
        Field::TopK,
        Field::MaxTokens,
        Field::Seed,
    ];
}

pub struct PlaygroundState {
    pub editor: TextArea<'static>,
    /// The editor has the keys (Esc gives them back).
    pub editing: bool,
    pub target_words: usize,
    pub thinking: bool,
    /// Defaults: the model card's (RECIPE.md), `SamplingParams::default()`.
    pub params: SamplingParams,
    /// The selected setting.
    pub field: usize,
    /// What a pane can generate with: latest checkpoint, base model, then each checkpoint.
    pub choices: Vec<Choice>,
    pub panes: [Pane; 2],
    /// Compare two panes side by side (otherwise only the left one).
    pub two: bool,
    /// The pane the model, judge, save and scroll keys act on.
    pub focus: usize,
}

impl Default for PlaygroundState {
    fn default() -> Self {
        let mut editor = TextArea::default();
        editor.set_placeholder_text("Write a story prompt (e to edit, Esc to finish)");
        Self {
            editor,
            editing: false,
            target_words: 1000,
            thinking: true,
            params: SamplingParams::default(),
            field: 0,
            choices: vec![Choice::Latest, Choice::Base],
            panes: [Pane::new(0), Pane::new(1)],
            two: false,
            focus: 0,
        }
    }
}

impl PlaygroundState {
    /// The instruction as typed, lines joined.
    pub fn instruction(&self) -> String {
        self.editor.lines().join("\n").trim().to_string()
    }

    pub fn shown(&self) -> usize {
        if self.two {
            2
        } else {
            1
        }
    }
}
