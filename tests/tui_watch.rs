//! The watching views of issue 20 drawn from fixed data (as tests/tui_views.rs does): the
//! alerts list, the status bar with an open alert, the GPU panel with synthetic samples and
//! its process table (the run's own device and process marked), the host panel's history;
//! and what the keys do: `a` lists alerts, `E` writes the report, a raised alert rings the
//! bell only when asked and only for alerts raised after the viewer opened.

mod common;

use common::tui::{draw, key, lines};

use std::io::Write;
use std::path::{Path, PathBuf};

use crossterm::event::KeyCode;
use polaris::gpu::{DeviceStats, GpuProcess, HostStats, ProcessStats, Sample};
use polaris::run::alerts::{Alert, Rule};
use polaris::run::{Event, EventKind, PROTOCOL_VERSION};
use polaris::tui::theme::Theme;
use polaris::tui::{Action, App, DirLink};

struct Fixture {
    tmp: tempfile::TempDir,
    app: App,
}

impl Fixture {
    fn dir(&self) -> PathBuf {
        self.tmp.path().join("run-fixture")
    }
}

/// The 40-step fixture with `config` as its config.toml, opened read only.
fn fixture(config: &str) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run(tmp.path());
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let link = DirLink::new(&dir, None);
    let mut app = App::new(&dir, Box::new(link), vec![Theme::built_in("dark").unwrap()], 0);
    app.update(Action::Tick);
    Fixture { tmp, app }
}

fn append(dir: &Path, seq: u64, time: f64, kind: EventKind) {
    let ev = Event { v: PROTOCOL_VERSION, seq, time, kind };
    let mut f = std::fs::OpenOptions::new().append(true).open(dir.join("events.jsonl")).unwrap();
    writeln!(f, "{}", serde_json::to_string(&ev).unwrap()).unwrap();
}

fn alert(rule: Rule, device: Option<&str>, step: usize, raised: bool, text: &str) -> EventKind {
    EventKind::Alert(Alert {
        rule,
        device: device.map(String::from),
        raised,
        step: Some(step),
        text: text.into(),
    })
}

/// Three alert events: zero variance raised at 12 and cleared at 14, reward collapse raised
/// at 40 (open), with the fixture's old times.
fn with_alerts(f: &mut Fixture) {
    let dir = f.dir();
    append(
        &dir,
        100,
        1_750_000_100.0,
        alert(
            Rule::ZeroVariance,
            None,
            12,
            true,
            "5 of 8 groups scored every row the same (62%; alerts.zero_variance_share 50%)",
        ),
    );
    append(
        &dir,
        101,
        1_750_000_101.0,
        alert(
            Rule::ZeroVariance,
            None,
            14,
            false,
            "1 of 8 groups scored every row the same (12%; alerts.zero_variance_share 50%)",
        ),
    );
    append(&dir, 102, 1_750_000_102.0, alert(Rule::RewardCollapse, None, 40, true, "mean policy reward of the last 5 steps -0.210, 0.640 below its best 0.430 (alerts.reward_drop 0.5)"));
    f.app.update(Action::Tick);
}

fn text(app: &App, width: u16, height: u16) -> String {
    // the stall's age is the clock's
    let out = lines(&draw(app, width, height));
    regex::Regex::new(r"no event for \d+ min").unwrap().replace_all(&out, "no event for <N> min").into_owned()
}

fn snap(name: &str, app: &App) {
    for (w, h) in [(80, 24), (200, 50)] {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text(app, w, h));
    }
}

#[test]
fn the_status_bar_shows_an_open_alert_and_a_lists_them() {
    let mut f = fixture("");
    with_alerts(&mut f);
    let bar = text(&f.app, 200, 50).lines().last().unwrap().to_string();
    assert!(bar.contains("⚠ 1 alert: reward collapse (a)"), "{bar}");
    snap("alerts_status_bar", &f.app);
    key(&mut f.app, KeyCode::Char('a'));
    assert!(f.app.state.alerts.shown);
    snap("alerts_list", &f.app);
    key(&mut f.app, KeyCode::Esc);
    assert!(!f.app.state.alerts.shown);
}

#[test]
fn a_run_without_alerts_lists_none() {
    let mut f = fixture("");
    key(&mut f.app, KeyCode::Char('a'));
    let shown = text(&f.app, 80, 24);
    assert!(shown.contains(" none") && shown.contains("no alert raised in this run"), "{shown}");
    assert!(!shown.lines().last().unwrap().contains('⚠'), "{shown}");
}

#[test]
fn a_running_run_quiet_for_longer_than_stalled_minutes_is_stalled() {
    let mut f = fixture("[alerts]\nstalled_minutes = 30.0\n");
    // the fixture ends paused (quiet on purpose); resumed long ago and silent since
    assert!(f.app.state.alerts.stalled.is_none());
    append(&f.dir(), 100, 1_750_000_100.0, EventKind::Resumed { step: 40 });
    f.app.update(Action::Tick);
    let stalled = f.app.state.alerts.stalled.as_ref().expect("stalled");
    assert_eq!(stalled.rule, Rule::Stalled);
    key(&mut f.app, KeyCode::Char('a'));
    snap("alerts_stalled", &f.app);
    // the rule off: no stall
    let mut f = fixture("[alerts]\nstalled_minutes = 0.0\n");
    append(&f.dir(), 100, 1_750_000_100.0, EventKind::Resumed { step: 40 });
    f.app.update(Action::Tick);
    assert!(f.app.state.alerts.stalled.is_none());
}

#[test]
fn the_bell_rings_for_alerts_raised_after_opening_and_only_when_asked() {
    let now = polaris::run::exit::now();
    // asked: an old alert does not ring, a new one does, a cleared one does not
    let mut f = fixture("[alerts]\nbell = true\n");
    with_alerts(&mut f);
    assert!(!f.app.state.alerts.ring, "alerts logged before opening ring");
    append(&f.dir(), 200, now + 1.0, alert(Rule::ZeroVariance, None, 41, false, "cleared"));
    f.app.update(Action::Tick);
    assert!(!f.app.state.alerts.ring, "a cleared alert rang");
    append(&f.dir(), 201, now + 2.0, alert(Rule::ClipFraction, None, 42, true, "30% clipped"));
    f.app.update(Action::Tick);
    assert!(f.app.state.alerts.ring);
    // not asked (the default): silent
    let mut f = fixture("");
    append(&f.dir(), 200, now + 1.0, alert(Rule::ClipFraction, None, 41, true, "30% clipped"));
    f.app.update(Action::Tick);
    assert!(!f.app.state.alerts.ring);
    assert_eq!(f.app.state.alerts.open().len(), 1);
}

#[test]
fn e_writes_the_report_into_the_run_dir_and_says_where() {
    let mut f = fixture("[run]\nsteps = 40\n");
    key(&mut f.app, KeyCode::Char('E'));
    let report = f.dir().join("report");
    for name in ["steps.csv", "curves.png", "curves.svg", "summary.md"] {
        assert!(report.join(name).is_file(), "{name} not written");
    }
    let note = f.app.state.note.clone().unwrap();
    assert!(note.starts_with("report written to ") && note.ends_with("run-fixture/report"), "{note}");
}

fn process(pid: u32, user: &str, cpu: f64, mem_gib: u64, command: &str) -> ProcessStats {
    ProcessStats {
        pid,
        user: user.into(),
        cpu_percent: cpu,
        mem_bytes: mem_gib << 30,
        command: command.into(),
    }
}

/// Two H100s: the run's own cuda:0 with its trainer (pid 4242) and another user's job on
/// cuda:1; `n` samples with utilisation rising.
fn device_samples(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            let util = 20 + (7 * i as u32) % 80;
            let d = |index: u32, processes: Vec<GpuProcess>| DeviceStats {
                index,
                name: "NVIDIA H100 80GB HBM3".into(),
                util_percent: if index == 0 { util } else { 35 },
                mem_util_percent: Some(if index == 0 { util / 2 } else { 10 }),
                mem_used_bytes: if index == 0 { 71 << 30 } else { 20 << 30 },
                mem_total_bytes: 80 << 30,
                temperature_c: Some(61),
                power_watts: Some(if index == 0 { 540.0 } else { 210.0 }),
                power_limit_watts: Some(700.0),
                sm_clock_mhz: Some(1980),
                mem_clock_mhz: Some(2619),
                processes,
            };
            Sample::Devices(vec![
                d(
                    0,
                    vec![GpuProcess {
                        pid: 4242,
                        gpu_mem_bytes: Some(70 << 30),
                        sm_percent: Some(util),
                        host: Some(process(
                            4242,
                            "alice",
                            101.0,
                            24,
                            "polaris-tui train --config run.toml --daemon",
                        )),
                    }],
                ),
                d(
                    1,
                    vec![
                        GpuProcess {
                            pid: 777,
                            gpu_mem_bytes: Some(19 << 30),
                            sm_percent: Some(35),
                            host: Some(process(777, "bob", 99.0, 8, "python serve.py --port 8000")),
                        },
                        // a process in another container: no host side, no memory figure
                        GpuProcess { pid: 91, gpu_mem_bytes: None, sm_percent: None, host: None },
                    ],
                ),
            ])
        })
        .collect()
}

#[test]
fn the_gpu_panel_marks_the_runs_devices_and_processes_with_ten_minutes_of_history() {
    let mut f = fixture("[run]\ndevices = \"cuda:0\"\n");
    assert_eq!(f.app.state.gpu.own_devices, vec![0]);
    key(&mut f.app, KeyCode::Char('4'));
    // daemon.pid names the trainer when it runs; the fixture has none, so say it here
    f.app.state.gpu.own_pids = vec![4242];
    for s in device_samples(300) {
        f.app.update(Action::Gpu(s));
    }
    let shown = text(&f.app, 200, 50);
    assert!(shown.contains("▶ GPU 0 · NVIDIA H100 80GB HBM3 · this run"), "{shown}");
    assert!(!shown.contains("▶ GPU 1"), "{shown}");
    let own = shown.lines().find(|l| l.contains("4242")).unwrap();
    assert!(own.contains('▶') && own.contains("alice") && own.contains("polaris-tui train"), "{own}");
    let other = shown.lines().find(|l| l.contains("777")).unwrap();
    assert!(!other.contains('▶') && other.contains("bob"), "{other}");
    assert!(shown.contains("540 / 700 W"), "power against its cap: {shown}");
    snap("gpus_processes", &f.app);
}

#[test]
fn the_host_panel_keeps_ten_minutes_and_lists_the_busiest_processes() {
    let mut f = fixture("");
    key(&mut f.app, KeyCode::Char('4'));
    f.app.state.gpu.own_pids = vec![4242];
    // 700 samples: more than the 600 kept
    for i in 0..700u64 {
        f.app.update(Action::Gpu(Sample::Host {
            why:
                "NVML is not available (libnvidia-ml.so.1: cannot open shared object file): no NVIDIA driver?"
                    .into(),
            host: HostStats {
                cpu_percent: (i / 10) as f64,
                cores: 2,
                mem_used_bytes: 6 << 30,
                mem_total_bytes: 16 << 30,
                processes: vec![
                    process(999, "carol", 150.0, 3, "cc1plus -O2 big.cpp"),
                    process(4242, "alice", 95.0, 5, "polaris-tui train --model tiny"),
                ],
            },
        }));
    }
    assert_eq!(f.app.state.gpu.cpu.len(), polaris::tui::state::GPU_HISTORY);
    // samples 100..700 kept: the oldest is sample 100's 10%
    assert_eq!(f.app.state.gpu.cpu.front(), Some(&10));
    let shown = text(&f.app, 80, 24);
    let own = shown.lines().find(|l| l.contains("4242")).unwrap();
    assert!(own.contains('▶'), "{own}");
    snap("gpus_host_processes", &f.app);
}
