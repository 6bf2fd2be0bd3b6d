//! `eval length`: stories per (model, requested length) judged for Story Quality, summarised
//! per length bucket with bootstrap intervals.

pub mod cells;
pub mod render;
pub mod run;
pub mod stats;
