//! `report human`: win rates and annotator agreement of a blinded study (`annotate`).

pub mod agreement;
pub mod render;
pub mod report;
