//! polaris: GRPO with human-reference injection for long-story generation.
//!
//! The binary `polaris-tui` is a thin command line over this library.

pub mod annotate;
pub mod chat;
pub mod cli;
pub mod device;
pub mod durable;
pub mod eval;
pub mod generate;
pub mod gpu;
pub mod lm;
pub mod model;
pub mod pid;
pub mod plan;
pub mod prefs;
pub mod reward;
pub mod rm;
pub mod run;
pub mod text;
pub mod tokenize;
pub mod train;
pub mod tui;
