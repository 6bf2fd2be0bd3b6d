//! Generation: the sampler, the batched engine with streaming and cancellation,
//! length-controlled prompts, and the generation files (JSONL) the rest of the project reads.

pub mod engine;
pub mod file;
pub mod length;
pub mod record;
pub mod sampler;

pub use engine::{generate, generate_streams, Finish, Output, Request, ThinkTokens, TokenEvent};
pub use length::{count_words, length_ratio, requested_words, story_prompt, strip_length_sentence};
pub use record::GenerationRecord;
pub use sampler::SamplingParams;
