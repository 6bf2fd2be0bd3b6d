//! The reward stack: rubrics, judges (offline, OpenAI-compatible, Gemini), rule components,
//! the composite reward and its per-story breakdown, and pairwise judging.

pub mod answer;
pub mod breakdown;
pub mod disqualify;
pub mod extract;
pub mod judge;
pub mod pairwise;
pub mod principles;
pub mod rows;
pub mod rubric;
pub mod rules;
pub mod score;
pub mod totals;

pub use answer::{DimensionScore, Judgement};
pub use breakdown::{score_batch, Breakdown, Weights};
pub use judge::{JudgeClient, JudgeSettings, JudgeSpec};
pub use rubric::Rubric;
