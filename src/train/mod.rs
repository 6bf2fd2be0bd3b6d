//! The GRPO + HRI trainer.

pub mod advantage;
pub mod loss;
pub mod optim;
pub mod schedule;
