//! Evaluation statistics and reports.

pub mod agreement;
pub mod human;
pub mod human_render;
pub mod length;
pub mod length_render;
pub mod length_run;
pub mod report;
pub mod winrate;
