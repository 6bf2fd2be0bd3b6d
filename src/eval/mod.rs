//! Evaluations, one folder each: `length/` (Story Quality and length ratio per requested
//! length), `elo/` (a pairwise ladder of systems), `human/` (blinded human studies),
//! `bench/` (the POLARIS release's benchmarks) and `agree/` (reward sources against a study's
//! human verdicts); each owns its runner, statistics, store and
//! rendering. Shared: `stats/` (bootstrap intervals, agreement, table cells), `plot/`, and
//! `report`/`summary`, the summary files the reports, plots and the TUI read.

pub mod agree;
pub mod bench;
pub mod elo;
pub mod human;
pub mod length;
pub mod plot;
pub mod report;
pub mod stats;
pub mod summary;
