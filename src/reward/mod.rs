//! The reward stack: rubrics, judges (offline, OpenAI-compatible, Gemini), rule components,
//! the composite reward and its per-story breakdown, and pairwise judging.

pub mod answer;
pub mod breakdown;
pub mod extract;
pub mod judge;
pub mod offline;
pub mod pairwise;
pub mod rubric;
pub mod rules;

pub use answer::{DimensionScore, Judgement};
pub use breakdown::{score_batch, Breakdown, Weights};
pub use judge::{JudgeClient, JudgeSettings, JudgeSpec};
pub use rubric::Rubric;
