//! Evaluation statistics and reports.

pub mod agreement;
pub mod human;
pub mod human_render;
pub mod report;
pub mod winrate;
