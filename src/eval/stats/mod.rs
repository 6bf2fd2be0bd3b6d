//! Statistics and table cells several evaluations share: win rates with bootstrap intervals
//! over prompts, annotator agreement, and the text of a table cell.

pub mod agreement;
pub mod cells;
pub mod winrate;
