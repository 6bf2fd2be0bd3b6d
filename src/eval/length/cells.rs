//! The length summary's table as text cells, one row per `LengthRow`: the TUI's Eval view
//! lays them out as widgets and `report eval` as fixed-width columns.

use std::fmt::Write;

use crate::eval::report::LengthReport;
use crate::eval::stats::cells::{fixed, interval, percent, share, text_table};

pub const LENGTH_HEADER: [&str; 9] =
    ["model", "bucket", "stories", "SQ", "CI", "ratio", "CI", "under", "over"];

/// Per (model, bucket): the model, the bucket, judged / generated stories, SQ and its
/// interval, length ratio and its interval, under- and over-length shares.
pub fn length_rows(r: &LengthReport) -> Vec<[String; 9]> {
    r.rows
        .iter()
        .map(|row| {
            [
                row.model.clone(),
                row.bucket.clone(),
                if row.judged == row.stories {
                    row.stories.to_string()
                } else {
                    format!("{}/{}", row.judged, row.stories)
                },
                fixed(row.sq_mean, 3),
                interval(row.sq_ci, 3),
                fixed(row.length_ratio_mean, 2),
                interval(row.length_ratio_ci, 2),
                share(row.under_share),
                share(row.over_share),
            ]
        })
        .collect()
}

/// The length summary for a terminal: a heading and the table.
pub fn length_text(r: &LengthReport) -> String {
    let mut out = format!(
        "Story Quality and length ratio by requested length · judge {} · {} samples per prompt · {} CIs ({} bootstrap resamples over prompts)\n",
        r.judge,
        r.samples,
        percent(r.confidence),
        r.resamples
    );
    if r.prompts_outside_buckets > 0 {
        let _ =
            writeln!(out, "{} prompts asked for a length outside every bucket", r.prompts_outside_buckets);
    }
    out.push('\n');
    out + &text_table(LENGTH_HEADER, &length_rows(r))
}
