//! The evaluation plots (PNG and SVG, from `length.json` / `elo.json` summaries) and
//! `polaris-tui report eval`, on fixture summaries built from the report types.

mod common;

use std::path::Path;
use std::process::Command;

use common::eval_fixture::{elo_report, length_report, write_both, write_json, BUCKETS, MODELS};
use polaris::eval::plot::{write_elo_plot, write_length_plots};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The PNG's size, and how many of its pixels are not the white background.
fn png(path: &Path) -> ((u32, u32), usize) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    (img.dimensions(), inked)
}

fn svg(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.trim_start().starts_with("<svg"), "{}: not an SVG", path.display());
    assert!(text.trim_end().ends_with("</svg>"), "{}: not closed", path.display());
    text
}

/// Filled circles of an RGB colour in plotters' SVG (`fill="#RRGGBB"` on a `<circle`).
fn circles(svg: &str, rgb: &str) -> usize {
    svg.lines().filter(|l| l.contains("<circle") && l.contains(&format!("fill=\"#{rgb}\""))).count()
}

/// plotters' SVG writes colours upper-case; the first two series colours.
const BLUE: &str = "1F77B4";
const ORANGE: &str = "FF7F0E";

#[test]
fn length_plots_are_written_as_png_and_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_length_plots(&length_report(), tmp.path()).unwrap();
    let want = ["length_ratio.png", "length_ratio.svg", "quality_by_length.png", "quality_by_length.svg"];
    // written then renamed: no temporary file is left beside them
    assert_eq!(names(tmp.path()), want);
    assert_eq!(written.len(), 4);
    for name in ["quality_by_length.png", "length_ratio.png"] {
        let (size, inked) = png(&tmp.path().join(name));
        assert_eq!(size, (1000, 600), "{name}");
        // axes, text, lines and bars: thousands of pixels; a blank picture has none
        assert!(inked > 5_000, "{name}: only {inked} non-background pixels");
    }
    for name in ["quality_by_length.svg", "length_ratio.svg"] {
        let text = svg(&tmp.path().join(name));
        for label in MODELS.iter().chain(BUCKETS.iter().map(|b| &b.0)) {
            assert!(text.contains(label), "{name} does not name {label}");
        }
        assert!(text.contains("requested length (words)"), "{name}: no x axis label");
    }
    let quality = svg(&tmp.path().join("quality_by_length.svg"));
    assert!(quality.contains("mean Story Quality") && quality.contains("judge offline"));
    let ratio = svg(&tmp.path().join("length_ratio.svg"));
    assert!(ratio.contains("mean length ratio") && ratio.contains("requested length (1.0)"));
    // the picture has the colours of both series
    assert!(circles(&quality, BLUE) > 0 && circles(&quality, ORANGE) > 0);
}

/// A bucket without a mean is left out (not drawn at 0); a model without any value is only
/// named in the legend.
#[test]
fn missing_values_are_skipped_not_drawn_as_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let full = length_report();
    write_length_plots(&full, tmp.path()).unwrap();
    let quality = svg(&tmp.path().join("quality_by_length.svg"));
    // base has SQ in 2 of 3 buckets, grpo-hri in 3; each also has one legend marker
    assert_eq!(circles(&quality, BLUE), 2 + 1, "base: two buckets and its legend");
    assert_eq!(circles(&quality, ORANGE), 3 + 1, "grpo-hri: three buckets and its legend");

    let mut r = full.clone();
    for row in r.rows.iter_mut().filter(|row| row.model == "base") {
        row.sq_mean = None;
        row.sq_ci = None;
    }
    write_length_plots(&r, tmp.path()).unwrap();
    let quality = svg(&tmp.path().join("quality_by_length.svg"));
    assert_eq!(circles(&quality, BLUE), 1, "base: only its legend marker");
    assert_eq!(circles(&quality, ORANGE), 3 + 1);
}

#[test]
fn an_empty_summary_is_an_error_not_an_empty_picture() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = length_report();
    r.rows.clear();
    let e = format!("{:#}", write_length_plots(&r, tmp.path()).unwrap_err());
    assert!(e.contains("empty"), "{e}");

    let mut r = length_report();
    for row in &mut r.rows {
        row.sq_mean = None;
    }
    let e = format!("{:#}", write_length_plots(&r, tmp.path()).unwrap_err());
    assert!(e.contains("no Story Quality"), "{e}");

    let mut r = length_report();
    r.rows[0].bucket = "0-10".into();
    let e = format!("{:#}", write_length_plots(&r, tmp.path()).unwrap_err());
    assert!(e.contains("bucket `0-10`"), "{e}");

    let mut o = elo_report();
    o.ratings.clear();
    let e = format!("{:#}", write_elo_plot(&o, tmp.path()).unwrap_err());
    assert!(e.contains("no finite rating"), "{e}");
    assert!(names(tmp.path()).is_empty(), "nothing written: {:?}", names(tmp.path()));
}

#[test]
fn the_elo_ladder_is_written_as_png_and_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let r = elo_report();
    write_elo_plot(&r, tmp.path()).unwrap();
    assert_eq!(names(tmp.path()), ["elo.png", "elo.svg"]);
    let (size, inked) = png(&tmp.path().join("elo.png"));
    assert_eq!(size, (1000, 160 + 50 * 3));
    assert!(inked > 3_000, "only {inked} non-background pixels");
    let text = svg(&tmp.path().join("elo.svg"));
    for system in
        ["grpo-hri", "base (anchor)", "sft", "Elo rating", "1087 [1041, 1139]", "anchor rating 1000"]
    {
        assert!(text.contains(system), "elo.svg does not say {system}");
    }
    // the ladder reads best first: grpo-hri's label is drawn above (earlier in y) sft's
    // plotters writes `<text x=".." y=".." ...>`, the text itself on the next line
    let lines: Vec<&str> = text.lines().collect();
    let y_of = |label: &str| -> f64 {
        let i = lines.iter().position(|l| l.trim() == label).unwrap_or_else(|| panic!("no text {label}"));
        let at = lines[i - 1].find(" y=\"").unwrap() + 4;
        lines[i - 1][at..].split('"').next().unwrap().parse().unwrap()
    };
    assert!(y_of("grpo-hri") < y_of("sft"));
}

fn polaris(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui")).args(args).output().unwrap()
}

#[test]
fn report_eval_redraws_the_plots_and_prints_the_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_both(&tmp.path().join("eval/length"));
    let o = polaris(&["report", "eval", dir.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    // the missing SQ prints as a dash, next to the ratio that exists
    assert!(
        out.lines().any(|l| l.starts_with("base") && l.contains("8000-12000") && l.contains("0/16")),
        "{out}"
    );
    assert!(out.contains("0.710  0.670–0.760"), "{out}");
    assert!(out.contains("base (anchor)") && out.contains("1041–1139"), "{out}");
    assert!(out.contains("first position wins 0.53"), "{out}");
    for name in ["quality_by_length", "length_ratio", "elo"] {
        for ext in ["png", "svg"] {
            assert!(dir.join(format!("{name}.{ext}")).is_file(), "no {name}.{ext}");
        }
    }
}

#[test]
fn report_eval_names_a_damaged_summary() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("elo.json"), "{\"v\": 1, \"judge\": ").unwrap();
    let o = polaris(&["report", "eval", tmp.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("elo.json: not JSON"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    write_json(&tmp.path().join("elo.json"), &serde_json::json!({"v": 7}));
    let err = String::from_utf8_lossy(&polaris(&["report", "eval", tmp.path().to_str().unwrap()]).stderr)
        .into_owned();
    assert!(err.contains("field `v` is 7"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let o = polaris(&["report", "eval", empty.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no length.json or elo.json"), "{err}");
}

/// One model in one bucket without an interval, and one system: the axes still get a span
/// (a single value is padded around itself) and the pictures are drawn.
#[test]
fn a_single_value_still_gets_a_picture() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = length_report();
    r.models.truncate(1);
    r.buckets.truncate(1);
    r.rows.truncate(1);
    r.rows[0].sq_ci = None;
    r.rows[0].length_ratio_ci = None;
    write_length_plots(&r, tmp.path()).unwrap();
    let quality = svg(&tmp.path().join("quality_by_length.svg"));
    assert_eq!(circles(&quality, BLUE), 1 + 1, "its one value and its legend");
    let (_, inked) = png(&tmp.path().join("quality_by_length.png"));
    assert!(inked > 2_000, "only {inked} non-background pixels");

    let mut o = elo_report();
    o.ratings.retain(|e| e.system == "base");
    write_elo_plot(&o, tmp.path()).unwrap();
    assert_eq!(png(&tmp.path().join("elo.png")).0, (1000, 160 + 50));
    assert!(svg(&tmp.path().join("elo.svg")).contains("base (anchor)"));
}
