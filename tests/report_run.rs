//! `report run`: from a run directory (the 40-step fixture, with alerts and a config), the
//! CSV has every step metric as a column with the logged values, the Markdown summary has its
//! sections with the final and best values, and the curves are a PNG that decodes and an SVG
//! that parses as XML, both with something drawn.

mod common;

use std::io::Write;
use std::path::Path;

use polaris::run::alerts::{Alert, Rule};
use polaris::run::{Event, EventKind, PROTOCOL_VERSION};
use polaris::train::throughput::DeviceThroughput;

/// Appends events after the fixture's (seq from 1000, time 1_750_000_100 on).
fn append(dir: &Path, kinds: Vec<EventKind>) {
    let mut f = std::fs::OpenOptions::new().append(true).open(dir.join("events.jsonl")).unwrap();
    for (i, kind) in kinds.into_iter().enumerate() {
        let ev = Event { v: PROTOCOL_VERSION, seq: 1000 + i as u64, time: 1_750_000_100.0 + i as f64, kind };
        writeln!(f, "{}", serde_json::to_string(&ev).unwrap()).unwrap();
    }
}

fn alert(rule: Rule, step: usize, raised: bool, text: &str) -> EventKind {
    EventKind::Alert(Alert { rule, device: None, raised, step: Some(step), text: text.into() })
}

fn fixture(tmp: &Path) -> std::path::PathBuf {
    let dir = common::run_fixture::write_run(tmp);
    std::fs::write(dir.join("config.toml"), "[run]\nname = \"fixture\"\nsteps = 40\n").unwrap();
    // a step with per-device throughput, redone after a resume from step 40's checkpoint
    let mut s41 = common::run_fixture::step_stats(41);
    s41.devices = vec![
        DeviceThroughput {
            device: "cuda:0".into(),
            name: Some("NVIDIA H100 80GB HBM3".into()),
            train_tokens_per_second: 5000.0,
            generate_tokens_per_second: 900.0,
            mfu: Some(0.25),
        },
        DeviceThroughput { device: "cuda:1".into(), mfu: Some(0.5), ..Default::default() },
    ];
    append(
        &dir,
        vec![
            alert(Rule::ZeroVariance, 12, true, "5 of 8 groups scored every row the same"),
            alert(Rule::ZeroVariance, 14, false, "1 of 8 groups scored every row the same"),
            EventKind::Started { config: serde_json::json!({}), resumed_from_step: Some(40) },
            EventKind::Step(Box::new(s41)),
            alert(Rule::RewardCollapse, 41, true, "mean policy reward fell | far"),
            EventKind::Finished { step: 41, reason: "finished".into() },
        ],
    );
    dir
}

#[test]
fn a_run_report_writes_csv_markdown_png_and_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture(tmp.path());
    let out = tmp.path().join("out");
    let written = polaris::run::report::write_to(&dir, &out).unwrap();
    let mut names: Vec<String> =
        written.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["curves.png", "curves.svg", "steps.csv", "summary.md"]);

    // CSV: a header, one row per standing step (1..=41), every StepStats field a column
    let csv = std::fs::read_to_string(out.join("steps.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(&header[..2], ["step", "time"]);
    for col in
        ["policy_reward_mean", "loss", "grad_norm", "kl", "entropy", "zero_variance_groups", "judge_cost"]
    {
        assert!(header.contains(&col), "no column {col}: {header:?}");
    }
    for col in ["devices.0.mfu", "devices.0.name", "devices.1.mfu", "devices.1.train_tokens_per_second"] {
        assert!(header.contains(&col), "no column {col}: {header:?}");
    }
    assert_eq!(lines.len(), 1 + 41);
    let cell = |row: usize, col: &str| -> String {
        let i = header.iter().position(|c| *c == col).unwrap();
        lines[row].split(',').nth(i).unwrap().to_string()
    };
    for step in [1usize, 20, 41] {
        let want = common::run_fixture::step_stats(step);
        assert_eq!(cell(step, "step"), step.to_string());
        // the CSV prints the shortest form that reads back as the same f64: exact
        assert_eq!(cell(step, "policy_reward_mean").parse::<f64>().unwrap(), want.policy_reward_mean);
        assert_eq!(cell(step, "loss").parse::<f64>().unwrap(), want.loss);
    }
    assert_eq!(cell(41, "devices.0.mfu"), "0.25");
    assert_eq!(cell(41, "devices.0.name"), "NVIDIA H100 80GB HBM3");
    assert_eq!(cell(1, "devices.0.mfu"), "", "steps without devices have empty cells");
    assert_eq!(cell(1, "time"), "1750000001", "the event's Unix time");

    // Markdown: its sections, the values, the alerts
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for section in [
        "# Run run-fixture",
        "## Final and best values",
        "## Alerts",
        "## Time and cost",
        "## Files",
        "## Configuration",
    ] {
        assert!(md.contains(&format!("{section}\n")), "no section {section}:\n{md}");
    }
    assert!(md.contains("41 steps logged (last: step 41); finished at step 41."), "{md}");
    let last = common::run_fixture::step_stats(41).policy_reward_mean;
    let best =
        (1..=41).map(|s| common::run_fixture::step_stats(s).policy_reward_mean).fold(f64::MIN, f64::max);
    let best_step =
        (1..=41).find(|s| common::run_fixture::step_stats(*s).policy_reward_mean == best).unwrap();
    let row = format!("| policy reward (mean) | {last:.4} | {best:.4} | {best_step} |");
    assert!(md.contains(&row), "no row {row}:\n{md}");
    assert!(
        md.contains("Open at the end:\n\n- **step 41: reward collapse: mean policy reward fell | far**"),
        "{md}"
    );
    assert!(md.contains("| 12 | zero-variance groups | raised |"), "{md}");
    assert!(md.contains("| 14 | zero-variance groups | cleared |"), "{md}");
    assert!(md.contains("fell \\| far"), "a | in a table cell is escaped:\n{md}");
    // no validation ran: its cost is 0, not the "-0.0000" of an empty f64 sum
    assert!(md.contains("| judge cost, validation (USD) | 0.0000 |"), "{md}");
    assert!(md.contains("```toml\n[run]\nname = \"fixture\""), "{md}");
    assert!(md.contains("- [curves.png](curves.png)"), "{md}");

    // PNG decodes, and is not blank: some pixels are not white
    let img = image::open(out.join("curves.png")).unwrap().to_rgb8();
    assert!(img.width() >= 1000 && img.height() >= 300);
    let coloured = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(coloured > 10_000, "{coloured} non-white pixels");
    // SVG parses as XML, and draws the lines and the panel titles
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let lines = doc.descendants().filter(|n| n.has_tag_name("polyline")).count();
    assert!(lines >= 10, "{lines} polylines");
    let text: String = doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect();
    for title in ["reward", "loss", "model FLOPs utilisation", "run-fixture · 41 steps"] {
        assert!(text.contains(title), "the SVG does not say {title}");
    }
}

#[test]
fn a_report_of_a_folder_that_is_not_a_run_or_has_no_step_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let e = polaris::run::report::write(tmp.path()).unwrap_err();
    assert!(format!("{e:#}").contains("not a run directory (no events.jsonl)"), "{e:#}");
    std::fs::write(
        tmp.path().join("events.jsonl"),
        format!(
            "{}\n",
            serde_json::to_string(&Event {
                v: PROTOCOL_VERSION,
                seq: 1,
                time: 1.0,
                kind: EventKind::Started { config: serde_json::json!({}), resumed_from_step: None }
            })
            .unwrap()
        ),
    )
    .unwrap();
    let e = polaris::run::report::write(tmp.path()).unwrap_err();
    assert!(format!("{e:#}").contains("no step logged yet"), "{e:#}");
    assert!(!tmp.path().join("report").exists(), "nothing is written for nothing");
}

#[test]
fn report_run_on_the_command_line_writes_into_the_run_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture(tmp.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args(["report", "run"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    for name in ["steps.csv", "curves.png", "curves.svg", "summary.md"] {
        assert!(dir.join("report").join(name).is_file(), "{name} not written");
        assert!(said.contains(&format!("report/{name}")), "{said}");
    }
}
