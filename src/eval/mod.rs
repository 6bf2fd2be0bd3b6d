//! Evaluation statistics and reports.

pub mod agreement;
pub mod bradley_terry;
pub mod elo;
pub mod elo_judge;
pub mod elo_pairs;
pub mod elo_render;
pub mod elo_store;
pub mod human;
pub mod human_render;
pub mod report;
pub mod winrate;
