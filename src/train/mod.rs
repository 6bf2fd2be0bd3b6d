//! The GRPO + HRI trainer.

pub mod data;
