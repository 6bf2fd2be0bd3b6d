//! Evaluation statistics and reports.

pub mod agreement;
pub mod cells;
pub mod human;
pub mod human_render;
pub mod plot;
pub mod report;
pub mod summary;
pub mod winrate;
