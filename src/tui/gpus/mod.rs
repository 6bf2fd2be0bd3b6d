//! GPUs, like nvitop: per device its SM and memory-bandwidth utilisation, memory,
//! temperature, power against its cap and clocks as numbers and ten-minute sparklines, then
//! one table of every device's compute processes (pid, user, GPU memory, SM share, host CPU
//! and memory, command). The run's own devices and processes are marked `▶`. Without NVML,
//! one line saying so and the host's CPU and memory with the same history, and a table of
//! its busiest processes.

pub mod state;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Sparkline, Table, Wrap};
use ratatui::Frame;

use super::state::TabId;
use super::tab::{leaves, no_keys, wheel_moves, Tab};
use super::theme::Theme;
use super::widgets::{gib, pane};
use crate::gpu::{DeviceStats, HostStats, ProcessStats, Sample};
use state::{fit, DeviceHistory, GpuState};

pub const ID: TabId = TabId("GPUs");

/// Nothing but the global keys.
pub const TAB: Tab = Tab {
    id: ID,
    help: None,
    keys: no_keys,
    update: leaves,
    wheel: wheel_moves,
    draw: |frame, area, s| draw(frame, area, &s.gpu, s.theme()),
};

pub fn draw(frame: &mut Frame, area: Rect, g: &GpuState, t: &Theme) {
    match &g.last {
        None => frame.render_widget(
            Paragraph::new("Reading the devices (once a second)…").style(t.dim()).block(pane(" GPUs ", t)),
            area,
        ),
        Some(Sample::Devices(devices)) if devices.is_empty() => frame.render_widget(
            Paragraph::new("NVML found no NVIDIA devices.").style(t.dim()).block(pane(" GPUs ", t)),
            area,
        ),
        Some(Sample::Devices(devices)) => {
            let rows = processes(devices, g);
            // the table takes what its rows need, up to two fifths of the view
            let want = rows.len() as u16 + 3;
            let [top, bottom] = Layout::vertical([
                Constraint::Min(0),
                Constraint::Length(want.min(area.height * 2 / 5).max(4)),
            ])
            .areas(area);
            let n = devices.len() as u32;
            let cells = Layout::vertical(vec![Constraint::Ratio(1, n); devices.len()]).split(top);
            let empty = DeviceHistory::default();
            for (i, (d, cell)) in devices.iter().zip(cells.iter()).enumerate() {
                let own = g.own_devices.contains(&d.index);
                draw_device(frame, *cell, d, g.devices.get(i).unwrap_or(&empty), own, t);
            }
            draw_processes(frame, bottom, " Processes ", rows, true, t);
        }
        Some(Sample::Host { why, host }) => draw_host(frame, area, why, host, g, t),
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "–".into(), f)
}

fn draw_device(frame: &mut Frame, area: Rect, d: &DeviceStats, h: &DeviceHistory, own: bool, t: &Theme) {
    let title = if own {
        Line::from(vec![
            Span::styled(format!(" ▶ GPU {} · {} ", d.index, d.name), t.title()),
            Span::styled("· this run ", t.accent()),
        ])
    } else {
        Line::from(format!(" GPU {} · {} ", d.index, d.name))
    };
    let block = pane(title, t);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let power = match (d.power_watts, d.power_limit_watts) {
        (Some(w), Some(cap)) => format!("{w:.0} / {cap:.0} W"),
        (Some(w), None) => format!("{w:.0} W"),
        _ => "– W".into(),
    };
    let numbers = format!(
        "SM {}% · mem bw {} · memory {} / {} · {} · {power} · clocks SM {} mem {}",
        d.util_percent,
        opt(d.mem_util_percent, |p| format!("{p}%")),
        gib(d.mem_used_bytes),
        gib(d.mem_total_bytes),
        opt(d.temperature_c, |c| format!("{c} °C")),
        opt(d.sm_clock_mhz, |m| format!("{m} MHz")),
        opt(d.mem_clock_mhz, |m| format!("{m} MHz")),
    );
    let [head, sparks] = Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(inner);
    frame.render_widget(Paragraph::new(numbers).style(t.base()).wrap(Wrap { trim: true }), head);
    let cols = Layout::horizontal([Constraint::Ratio(1, 4); 4]).split(sparks);
    spark(frame, cols[0], "SM %", &h.sm, t.policy, t);
    spark(frame, cols[1], "mem bw %", &h.bandwidth, t.reference, t);
    spark(frame, cols[2], "memory %", &h.memory, t.length, t);
    spark(frame, cols[3], "power % cap", &h.power, t.warn, t);
}

/// A labelled sparkline of the last ten minutes (0..=100), one column per slice of it.
fn spark(
    frame: &mut Frame,
    area: Rect,
    name: &str,
    data: &std::collections::VecDeque<u64>,
    colour: Color,
    t: &Theme,
) {
    let [label, line] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let line = Rect { width: line.width.saturating_sub(1), ..line }; // a gap between columns
                                                                     // the span is said where it fits (every sparkline here spans ten minutes)
    let text =
        if name.len() + 10 <= label.width as usize { format!("{name} · 10 min") } else { name.to_string() };
    frame.render_widget(Paragraph::new(text).style(t.dim()), label);
    let bars = fit(data, line.width as usize);
    frame.render_widget(Sparkline::default().data(bars).max(100).style(t.fg(colour)), line);
}

/// One table row: the mark, device, pid, user, GPU memory, SM, CPU, host memory, command.
struct ProcessRow {
    own: bool,
    device: Option<u32>,
    pid: u32,
    gpu_mem: Option<u64>,
    sm: Option<u32>,
    host: Option<ProcessStats>,
}

/// Every device's processes, the run's own first, then by GPU memory.
fn processes(devices: &[DeviceStats], g: &GpuState) -> Vec<ProcessRow> {
    let mut rows: Vec<ProcessRow> = devices
        .iter()
        .flat_map(|d| {
            d.processes.iter().map(|p| ProcessRow {
                own: g.is_own(p.pid),
                device: Some(d.index),
                pid: p.pid,
                gpu_mem: p.gpu_mem_bytes,
                sm: p.sm_percent,
                host: p.host.clone(),
            })
        })
        .collect();
    rows.sort_by(|a, b| b.own.cmp(&a.own).then(b.gpu_mem.cmp(&a.gpu_mem)).then(a.pid.cmp(&b.pid)));
    rows
}

fn draw_processes(frame: &mut Frame, area: Rect, title: &str, rows: Vec<ProcessRow>, gpu: bool, t: &Theme) {
    let block = pane(title.to_string(), t);
    if rows.is_empty() {
        let what = if gpu { "no compute processes" } else { "no processes readable" };
        frame.render_widget(Paragraph::new(what).style(t.dim()).block(block), area);
        return;
    }
    let header = if gpu {
        vec!["", "GPU", "PID", "USER", "GPU MEM", "SM", "CPU", "HOST MEM", "COMMAND"]
    } else {
        vec!["", "PID", "USER", "CPU", "HOST MEM", "COMMAND"]
    };
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            let h = r.host.as_ref();
            let mut cells = vec![Cell::from(if r.own { "▶" } else { " " })];
            if gpu {
                cells.push(Cell::from(opt(r.device, |d| d.to_string())));
            }
            cells.push(Cell::from(r.pid.to_string()));
            cells.push(Cell::from(opt(h, |h| h.user.clone())));
            if gpu {
                cells.push(Cell::from(opt(r.gpu_mem, gib)));
                cells.push(Cell::from(opt(r.sm, |p| format!("{p}%"))));
            }
            cells.push(Cell::from(opt(h, |h| format!("{:.0}%", h.cpu_percent))));
            cells.push(Cell::from(opt(h, |h| gib(h.mem_bytes))));
            cells.push(Cell::from(opt(h, |h| h.command.clone())));
            let style = if r.own { t.accent() } else { t.base() };
            Row::new(cells).style(style)
        })
        .collect();
    let widths: Vec<Constraint> = if gpu {
        vec![
            Constraint::Length(1),
            Constraint::Length(3),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(4),
            Constraint::Length(5),
            Constraint::Length(9),
            Constraint::Min(10),
        ]
    } else {
        vec![
            Constraint::Length(1),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Length(9),
            Constraint::Min(10),
        ]
    };
    let header = Row::new(header).style(t.dim());
    frame.render_widget(Table::new(body, widths).header(header).block(block).style(Style::default()), area);
}

fn draw_host(frame: &mut Frame, area: Rect, why: &str, host: &HostStats, g: &GpuState, t: &Theme) {
    let want = host.processes.len() as u16 + 3;
    let [note, panels, table] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(5),
        Constraint::Length(want.min(area.height * 2 / 5).max(4)),
    ])
    .areas(area);
    let text = vec![
        Line::styled(why.to_string(), t.fg(t.warn)),
        Line::styled("Showing the host's CPU and memory instead.", t.dim()),
    ];
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), note);
    let [c, m] = Layout::horizontal([Constraint::Percentage(50), Constraint::Min(0)]).areas(panels);
    let cb = pane(format!(" CPU · {} cores · {:.0}% ", host.cores, host.cpu_percent), t);
    let inner = cb.inner(c);
    frame.render_widget(cb, c);
    spark(frame, inner, "busy % of all cores", &g.cpu, t.policy, t);
    let mb = pane(format!(" Memory · {} / {} ", gib(host.mem_used_bytes), gib(host.mem_total_bytes)), t);
    let inner = mb.inner(m);
    frame.render_widget(mb, m);
    spark(frame, inner, "used %", &g.host_mem, t.length, t);
    let mut rows: Vec<ProcessRow> = host
        .processes
        .iter()
        .map(|p| ProcessRow {
            own: g.is_own(p.pid),
            device: None,
            pid: p.pid,
            gpu_mem: None,
            sm: None,
            host: Some(p.clone()),
        })
        .collect();
    rows.sort_by_key(|r| !r.own); // stable: the busiest order otherwise
    draw_processes(frame, table, " Busiest processes ", rows, false, t);
}
