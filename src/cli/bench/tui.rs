//! `polaris-tui bench tui`: the TUI's drawing cost and its idle CPU use; then the dashboard
//! with `--runs` runs overlaid (`open RUN RUN RUN`), every step carrying the reward's
//! components and the Story Quality rubric's 16 dimension means. Draws go into
//! ratatui's TestBackend (the terminal's own write time is left out: it depends on the
//! terminal). Idle CPU is the whole process's (UI loop + device poller) over a few seconds
//! attached to a paused run, with no input.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::run::stats::{ComponentMeans, DimensionMean, StepStats};
use crate::run::{Control, Event, EventKind, PROTOCOL_VERSION};
use crate::tui::curves::state::{ComparedRun, Page};
use crate::tui::curves::Msg;
use crate::tui::{dashboard, groups};
use crate::tui::{run_loop, theme::Theme, ui, Action, App, Link};

#[derive(Args, Debug)]
pub struct TuiBench {
    /// Steps of history behind the dashboard.
    #[arg(long, default_value_t = 100_000)]
    pub steps: usize,
    /// Groups in the step the Groups view shows (6 rows each).
    #[arg(long, default_value_t = 64)]
    pub groups: usize,
    /// Frames timed per view.
    #[arg(long, default_value_t = 50)]
    pub frames: usize,
    /// Seconds the idle TUI is watched.
    #[arg(long, default_value_t = 5.0)]
    pub idle_secs: f64,
    /// Runs overlaid on the dashboard, the followed one included, each of `--steps` steps.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// Events from memory, once.
struct Replay(Vec<Event>);

impl Link for Replay {
    fn poll(&mut self) -> (Vec<Event>, Vec<String>) {
        (std::mem::take(&mut self.0), vec![])
    }
    fn send(&mut self, _: Control) -> Result<()> {
        bail!("a benchmark has no trainer")
    }
    fn can_control(&self) -> bool {
        false
    }
}

/// Step `step` of run `run`: the overview's series, every signal of the Signals page, and
/// the Story Quality rubric's dimensions (`dims`: key, max).
fn stats_of(run: usize, step: usize, dims: &[(String, i64)]) -> StepStats {
    let (x, r) = (step as f64, run as f64);
    let mut s = stats(step);
    s.policy_reward_mean += 0.2 * r;
    s.groups = 64;
    s.zero_variance_groups = step % 7;
    s.clip_frac_low = 0.01 * (x * 0.13).sin().abs();
    s.clip_frac_high = 0.02 * (x * 0.11).cos().abs();
    s.entropy = 2.0 - 1e-5 * x + 0.1 * (x * 0.05).sin();
    s.judge_latency_p50 = Some(4.0 + (x * 0.02).sin());
    s.judge_latency_p95 = Some(9.0 + 2.0 * (x * 0.03).sin().abs());
    s.judge_cost = 0.05;
    s.length_in_band = Some(0.5 + 0.4 * (x * 2e-4 + r).sin());
    s.components = Some(ComponentMeans {
        story_quality: 0.4 + 0.1 * (x * 1e-3).sin(),
        repetition: 0.05 * (x * 0.07).sin().abs(),
        length: 0.2 * (x * 0.003).cos().abs(),
        blank: if step.is_multiple_of(50) { 0.1 } else { 0.0 },
        overlong: -0.01 * (x * 0.2).sin().abs(),
    });
    s.dimensions = dims
        .iter()
        .enumerate()
        .map(|(i, (key, max))| DimensionMean {
            key: key.clone(),
            mean: *max as f64 * (0.5 + 0.3 * (x * 1e-4 * (i + 1) as f64 + r).sin()),
            max: *max,
        })
        .collect();
    s
}

fn stats(step: usize) -> StepStats {
    let x = step as f64;
    StepStats {
        step,
        policy_reward_mean: (x * 1e-3).sin() + 0.1 * (x * 0.37).sin(),
        policy_reward_std: 0.2,
        best_of_group_mean: (x * 1e-3).sin() + 0.3,
        reference_reward_mean: Some(0.8),
        length_ratio_mean: Some(0.9 + 0.1 * (x * 0.01).cos()),
        loss: 0.1 * (x * 0.3).cos(),
        kl: 1e-3 * (x * 1e-4),
        grad_norm: 1.0 + (x * 0.7).sin().abs(),
        lr: 1e-6,
        hri_weight: 0.5,
        seconds_generate: 3.0,
        seconds_judge: 1.0,
        seconds_train: 2.0,
        ..Default::default()
    }
}

pub fn run(args: TuiBench) -> Result<()> {
    let dir = super::tempdir()?;
    let mut events: Vec<Event> = (1..=args.steps)
        .map(|s| Event {
            v: PROTOCOL_VERSION,
            seq: s as u64,
            time: 0.0,
            kind: EventKind::Step(Box::new(stats(s))),
        })
        .collect();
    events.push(Event {
        v: PROTOCOL_VERSION,
        seq: args.steps as u64 + 1,
        time: 0.0,
        kind: EventKind::Paused { step: args.steps },
    });
    write_rollouts(&dir, args.steps, args.groups)?;
    let theme = Theme::built_in("dark").expect("built in");
    let mut app = App::new(&dir, Box::new(Replay(events)), vec![theme], 0);
    app.update(Action::Tick);

    println!("| view | size | history | ms per frame (min) | ms per frame (median) |");
    println!("|---|---|---|---|---|");
    for (tab, what) in [
        (dashboard::ID, format!("{} steps", args.steps)),
        (groups::ID, format!("{} groups x 6", args.groups)),
    ] {
        app.update(Action::SelectTab(tab));
        let (min, median) = time_frames(&app, 200, 50, args.frames)?;
        println!("| {} | 200x50 | {what} | {min:.2} | {median:.2} |", tab.title());
    }
    for (w, h) in [(80, 24), (300, 80)] {
        app.update(Action::SelectTab(dashboard::ID));
        let (min, median) = time_frames(&app, w, h, args.frames)?;
        println!("| Dashboard | {w}x{h} | {} steps | {min:.2} | {median:.2} |", args.steps);
    }

    overlaid(&mut app, &args)?;

    // idle: the loop and the device poller, attached to the paused run, no input
    app.update(Action::SelectTab(dashboard::ID));
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let gpu_tx = tx.clone();
    let poller = crate::gpu::spawn_poller(Duration::from_secs(1), stop.clone(), move |s| {
        gpu_tx.send(Action::Gpu(s)).is_ok()
    });
    let idle = Duration::from_secs_f64(args.idle_secs);
    let ender = std::thread::spawn(move || {
        std::thread::sleep(idle);
        let _ = tx.send(Action::Quit);
    });
    let mut term = Terminal::new(TestBackend::new(200, 50))?;
    let (cpu0, t0) = (process_cpu_secs()?, Instant::now());
    run_loop(&mut term, &mut app, &rx)?;
    let (cpu, wall) = (process_cpu_secs()? - cpu0, t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    let _ = poller.join();
    let _ = ender.join();
    println!();
    println!(
        "idle TUI on a paused run: {:.2}% of one core ({cpu:.3} s CPU over {wall:.1} s)",
        100.0 * cpu / wall
    );
    match &app.state.gpu.last {
        Some(crate::gpu::Sample::Devices(d)) => {
            let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
            println!("device poller: NVML, {} device(s): {}", d.len(), names.join(", "));
        }
        Some(crate::gpu::Sample::Host { why, .. }) => println!("device poller: host fallback ({why})"),
        None => println!("device poller: no sample yet"),
    }
    Ok(())
}

/// The dashboard with `args.runs` runs of `args.steps` steps overlaid: each page, smoothing
/// off and on, at 200x50 and 80x24.
fn overlaid(app: &mut App, args: &TuiBench) -> Result<()> {
    let dims: Vec<(String, i64)> =
        crate::reward::rubric::Rubric::builtin()?.dimensions.iter().map(|d| (d.key.clone(), d.max)).collect();
    let s = &mut app.state;
    // the followed run again, now with every signal; the others beside it
    s.history = Default::default();
    (1..=args.steps).for_each(|step| s.history.push(stats_of(0, step, &dims)));
    for run in 1..args.runs.max(1) {
        let mut history = crate::tui::history::History::default();
        (1..=args.steps).for_each(|step| history.push(stats_of(run, step, &dims)));
        let name = format!("run-{run}");
        s.curves.runs.push(ComparedRun { name, dir: std::path::PathBuf::new(), history });
    }
    // the Signals page on the first rubric dimension: it, and its 15 siblings beneath
    let histories = crate::tui::curves::histories(&s.history, &s.curves);
    let first_dim =
        crate::tui::curves::signals::catalogue(histories).iter().position(|e| e.family == "Rubric");
    s.curves.signal = first_dim.unwrap_or(0);
    println!();
    println!("{} runs of {} steps overlaid (16 rubric dimensions per step):", args.runs.max(1), args.steps);
    println!();
    println!("| page | size | smoothing | ms per frame (min) | ms per frame (median) |");
    println!("|---|---|---|---|---|");
    app.update(Action::SelectTab(dashboard::ID));
    for more in [false, true] {
        if more {
            // 0.9: three presses of >
            (0..3).for_each(|_| app.update(Action::Curves(Msg::Smoothing { more: true })));
        }
        let w = app.state.curves.weight();
        for page in Page::ALL {
            app.state.curves.page = page;
            for (width, height) in [(200, 50), (80, 24)] {
                let (min, median) = time_frames(app, width, height, args.frames)?;
                println!("| {} | {width}x{height} | {w} | {min:.2} | {median:.2} |", page.title());
            }
        }
    }
    (0..3).for_each(|_| app.update(Action::Curves(Msg::Smoothing { more: false })));
    app.state.curves.page = Page::Overview;
    Ok(())
}

/// Fastest and median milliseconds to draw the app's current view at `w` x `h`.
fn time_frames(app: &App, w: u16, h: u16, frames: usize) -> Result<(f64, f64)> {
    let mut term = Terminal::new(TestBackend::new(w, h))?;
    let mut ms = Vec::with_capacity(frames);
    for _ in 0..frames.max(1) {
        let t = Instant::now();
        term.draw(|f| ui::draw(f, &app.state))?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[0], ms[ms.len() / 2]))
}

/// One step's rollouts: `groups` groups of 5 policy rows and a reference.
fn write_rollouts(dir: &std::path::Path, step: usize, groups: usize) -> Result<()> {
    use crate::reward::breakdown::{Breakdown, Candidate, Response, Weights};
    use crate::run::rollout::ScoredRollout;
    use crate::train::group::Rollout;
    let mut f = std::io::BufWriter::new(std::fs::File::create(crate::run::RunDir::at(dir).rollouts())?);
    for group in 0..groups {
        let prompt = format!("Write a story titled \"Bench {group}\". The story should be 300 words long.");
        for row in 0..6 {
            let story = "The lamp went out at dusk and Mara climbed the stairs. ".repeat(20 + row);
            let response = Response { tokens: 400, thinking_tokens: 0, ended: true, is_reference: row == 5 };
            let c = Candidate {
                prompt: prompt.clone(),
                story: story.clone(),
                response: Some(response),
                reference: None,
            };
            let breakdown = Breakdown::rules(&c, Weights::training());
            let rollout = Rollout {
                group,
                is_reference: row == 5,
                prompt_ids: vec![],
                response_ids: vec![],
                thinking: None,
                story,
                ended: true,
                cut_tokens: 0,
                thinking_tokens: 0,
            };
            let r = ScoredRollout {
                step,
                kind: Default::default(),
                prompt: prompt.clone(),
                rollout,
                reward: 0.1 * row as f64,
                advantage: 0.0,
                breakdown,
            };
            writeln!(f, "{}", serde_json::to_string(&r)?)?;
        }
    }
    f.flush()?;
    Ok(())
}

/// User + system CPU seconds of this process, from /proc/self/stat (clock ticks of 1/100 s,
/// Linux's USER_HZ).
fn process_cpu_secs() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // fields after the parenthesised command name; utime and stime are the 14th and 15th
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => Ok((u + s) as f64 / 100.0),
        _ => bail!("cannot read this process's CPU time from /proc/self/stat"),
    }
}
