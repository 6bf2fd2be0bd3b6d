//! Evaluation statistics and reports.

pub mod agreement;
pub mod bench;
pub mod bradley_terry;
pub mod cells;
pub mod elo;
pub mod elo_judge;
pub mod elo_pairs;
pub mod elo_render;
pub mod elo_store;
pub mod human;
pub mod human_render;
pub mod length;
pub mod length_render;
pub mod length_run;
pub mod plot;
pub mod report;
pub mod summary;
pub mod winrate;
