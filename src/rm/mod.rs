//! A reward model: a language model with a scalar head on the hidden state of a story's last
//! token, trained on preference pairs (`prefs`) with the Bradley-Terry loss, full or LoRA.
//! `rm train` writes `RM/` (`manifest`: base model, how it was trained, held-out accuracy;
//! `checkpoints/step-N/`: the head, the adapter or weights, the optimizer state); `rm eval`
//! reports held-out pair accuracy; `--judge rm:RM/` scores stories with it (`score`).
//!
//! Files: `loss` (the pair loss), `model` (opening, encoding, scoring), `manifest`,
//! `train` (the loop, checkpoints and resume), `eval` (pair accuracy with its bootstrap CI),
//! `score` (an RM score as the reward stack reads it).

pub mod eval;
pub mod loss;
pub mod manifest;
pub mod model;
pub mod score;
pub mod train;

pub use manifest::Manifest;
pub use model::RewardModel;
