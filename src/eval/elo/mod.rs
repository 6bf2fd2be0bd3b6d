//! `eval elo`: dual-position pairwise judgements of systems' stories, fitted into an Elo
//! ladder (Bradley-Terry) with bootstrap intervals and the judge's position bias.

pub mod bradley_terry;
pub mod cells;
pub mod judge;
pub mod ladder;
pub mod pairs;
pub mod render;
pub mod store;
