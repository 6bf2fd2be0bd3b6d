//! The evaluation charts, drawn from the summaries of `report.rs` and written as both PNG and
//! SVG: `quality_by_length` and `length_ratio` from a `LengthReport`, `elo` from an
//! `EloReport`, and `curves` from a run's steps (`run::report`). Each chart is drawn once,
//! generic over plotters' `DrawingBackend`, for the bitmap and the SVG backend. Text uses the bundled DejaVu Sans (no system fonts, no
//! fontconfig). A missing value is left out of a chart, never drawn as 0; a summary with
//! nothing to draw is an error.

mod bench;
mod curves;
mod elo;
mod length;
mod slots;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::{EloReport, LengthReport};

pub const QUALITY_BY_LENGTH: &str = "quality_by_length";
pub const LENGTH_RATIO: &str = "length_ratio";
pub const ELO: &str = "elo";
pub const CURVES: &str = "curves";

pub use curves::{Panel, Series};

/// The one font family every chart's text uses (registered from the bundled file).
const FONT: &str = "sans-serif";
static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Writes `quality_by_length.{png,svg}` and `length_ratio.{png,svg}` into `dir` (created if
/// needed); returns the paths written.
pub fn write_length_plots(report: &LengthReport, dir: &Path) -> Result<Vec<PathBuf>> {
    let quality = length::Chart::quality(report)?;
    let ratio = length::Chart::ratio(report)?;
    let mut written = write_chart(&quality, dir, QUALITY_BY_LENGTH)?;
    written.extend(write_chart(&ratio, dir, LENGTH_RATIO)?);
    Ok(written)
}

/// Writes `elo.{png,svg}` into `dir` (created if needed); returns the paths written.
pub fn write_elo_plot(report: &EloReport, dir: &Path) -> Result<Vec<PathBuf>> {
    write_chart(&elo::Ladder::new(report)?, dir, ELO)
}

/// Writes `bench_table.{png,svg}` (the paper-style table as panels) into `dir`; returns the paths.
pub fn write_bench_plot(table: &crate::eval::bench::table::PaperTable, dir: &Path) -> Result<Vec<PathBuf>> {
    write_chart(&bench::Chart::new(table)?, dir, crate::eval::bench::table::TABLE_STEM)
}

/// Writes `curves.{png,svg}` (a run's step metrics, a panel each) into `dir`; returns the
/// paths written.
pub fn write_curves(title: String, panels: Vec<Panel>, dir: &Path) -> Result<Vec<PathBuf>> {
    write_chart(&curves::Curves::new(title, panels)?, dir, CURVES)
}

/// What a drawing returns: plotters' error for the backend it drew on.
type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A chart whose data is checked and gathered: drawing it cannot find it empty.
trait Plot {
    /// Pixels (the SVG's user units too).
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB>;
}

/// Draws `plot` on both backends and writes `dir/stem.png` and `dir/stem.svg`, each to a
/// temporary file first, fsynced, then renamed over the old one.
fn write_chart(plot: &impl Plot, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let size = plot.size();
    let failed = |e: String| anyhow!("drawing {stem}: {e}");

    let png = dir.join(format!("{stem}.png"));
    // the encoder picks the format from the extension, so the temporary name ends in .png
    let tmp = dir.join(format!(".{stem}.{}.tmp.png", std::process::id()));
    let drawn = (|| {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        plot.draw(&root).map_err(|e| failed(e.to_string()))?;
        root.present().map_err(|e| failed(e.to_string()))?;
        drop(root);
        File::open(&tmp).and_then(|f| f.sync_all()).with_context(|| format!("cannot sync {}", tmp.display()))
    })();
    if let Err(e) = drawn {
        // a half-drawn picture is not left behind
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &png).with_context(|| format!("cannot move {} into place", tmp.display()))?;

    let mut svg_text = String::new();
    {
        let root = SVGBackend::with_string(&mut svg_text, size).into_drawing_area();
        plot.draw(&root).map_err(|e| failed(e.to_string()))?;
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    let svg = dir.join(format!("{stem}.svg"));
    crate::durable::write_atomic(&svg, svg_text.as_bytes())?;
    Ok(vec![png, svg])
}

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok());
    // the bytes are the file shipped in assets/fonts, so a failure is a broken build
    ok.then_some(()).ok_or_else(|| anyhow!("the bundled font assets/fonts/DejaVuSans.ttf does not load"))
}

/// Series colours: distinct on white, in a fixed order.
fn colour(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    COLOURS[i % COLOURS.len()]
}

/// (lo, hi) of the values, padded by `pad` of the span on each side (or by `pad` absolute
/// when every value is the same); None for no finite value.
fn padded_range(values: impl IntoIterator<Item = f64>, pad: f64) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return None;
    }
    let margin = if hi > lo { pad * (hi - lo) } else { pad.max(lo.abs() * pad) };
    Some((lo - margin, hi + margin))
}
