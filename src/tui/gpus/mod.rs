//! GPUs: per device utilisation, memory, temperature, power and clocks as numbers and
//! sparklines, and per-process memory; without NVML, one line saying so and the host's CPU
//! and memory instead.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Sparkline, Wrap};
use ratatui::Frame;

use super::state::State;
use super::theme::Theme;
use super::widgets::{gib, pane};
use crate::gpu::{DeviceStats, HostStats, Sample};

pub fn draw(frame: &mut Frame, area: Rect, s: &State) {
    let t = s.theme();
    match &s.gpu.last {
        None => frame.render_widget(
            Paragraph::new("Reading the devices (once a second)…").style(t.dim()).block(pane(" GPUs ", t)),
            area,
        ),
        Some(Sample::Devices(devices)) if devices.is_empty() => frame.render_widget(
            Paragraph::new("NVML found no NVIDIA devices.").style(t.dim()).block(pane(" GPUs ", t)),
            area,
        ),
        Some(Sample::Devices(devices)) => {
            let n = devices.len() as u32;
            let cells = Layout::vertical(vec![Constraint::Ratio(1, n); devices.len()]).split(area);
            for (i, (d, cell)) in devices.iter().zip(cells.iter()).enumerate() {
                let util: Vec<u64> =
                    s.gpu.util.get(i).map(|q| q.iter().copied().collect()).unwrap_or_default();
                let mem: Vec<u64> = s.gpu.mem.get(i).map(|q| q.iter().copied().collect()).unwrap_or_default();
                draw_device(frame, *cell, d, &util, &mem, t);
            }
        }
        Some(Sample::Host { why, host }) => {
            let cpu: Vec<u64> = s.gpu.cpu.iter().copied().collect();
            let mem: Vec<u64> = s.gpu.host_mem.iter().copied().collect();
            draw_host(frame, area, why, host, &cpu, &mem, t);
        }
    }
}

fn draw_device(frame: &mut Frame, area: Rect, d: &DeviceStats, util: &[u64], mem: &[u64], t: &Theme) {
    let block = pane(format!(" GPU {} · {} ", d.index, d.name), t);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let opt = |v: Option<String>| v.unwrap_or_else(|| "–".into());
    let numbers = format!(
        "util {}% · memory {} / {} · {} · {} · SM {} · mem {}",
        d.util_percent,
        gib(d.mem_used_bytes),
        gib(d.mem_total_bytes),
        opt(d.temperature_c.map(|c| format!("{c} °C"))),
        opt(d.power_watts.map(|w| format!("{w:.0} W"))),
        opt(d.sm_clock_mhz.map(|m| format!("{m} MHz"))),
        opt(d.mem_clock_mhz.map(|m| format!("{m} MHz"))),
    );
    let procs: Vec<String> = d.processes.iter().map(|(pid, b)| format!("pid {pid} {}", gib(*b))).collect();
    let [head, sparks, tail] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(numbers).style(t.base()).wrap(Wrap { trim: true }), head);
    let [u, m] = Layout::horizontal([Constraint::Percentage(50), Constraint::Min(0)]).areas(sparks);
    spark(frame, u, "util %", util, t.policy, t);
    spark(frame, m, "memory %", mem, t.length, t);
    let procs = if procs.is_empty() { "no compute processes".to_string() } else { procs.join(" · ") };
    frame.render_widget(Paragraph::new(procs).style(t.dim()), tail);
}

fn spark(frame: &mut Frame, area: Rect, name: &str, data: &[u64], colour: ratatui::style::Color, t: &Theme) {
    let [label, line] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(name.to_string()).style(t.dim()), label);
    // the newest samples that fit, right-aligned
    let w = line.width as usize;
    let data = &data[data.len().saturating_sub(w)..];
    frame.render_widget(Sparkline::default().data(data).max(100).style(t.fg(colour)), line);
}

fn draw_host(
    frame: &mut Frame,
    area: Rect,
    why: &str,
    host: &HostStats,
    cpu: &[u64],
    mem: &[u64],
    t: &Theme,
) {
    let [note, panels] = Layout::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(area);
    let text = vec![
        Line::styled(why.to_string(), t.fg(t.warn)),
        Line::styled("Showing the host's CPU and memory instead.", t.dim()),
    ];
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), note);
    let [c, m] = Layout::horizontal([Constraint::Percentage(50), Constraint::Min(0)]).areas(panels);
    let cb = pane(format!(" CPU · {} cores · {:.0}% ", host.cores, host.cpu_percent), t);
    let inner = cb.inner(c);
    frame.render_widget(cb, c);
    spark(frame, inner, "busy % of all cores", cpu, t.policy, t);
    let mb = pane(format!(" Memory · {} / {} ", gib(host.mem_used_bytes), gib(host.mem_total_bytes)), t);
    let inner = mb.inner(m);
    frame.render_widget(mb, m);
    spark(frame, inner, "used %", mem, t.length, t);
}
