//! What `smonctl top` draws, as pure functions from [`App`] to a ratatui [`Buffer`]: one host
//! (header, CPU/memory/swap gauges, per-core bars, disks, network, GPUs with their processes,
//! the process table), the fleet list, the help overlay and the footer with the error line.
//! No terminal and no I/O here: tests render into `TestBackend` and read the text, and
//! `--once` prints the same buffer ([`text`]).
//!
//! Every string that comes from the monitored host (process names, command lines, mounts,
//! user and host names) goes through [`terminal_safe`]: any local user there can choose them,
//! and a raw escape sequence would rewrite the operator's screen.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Widget};
use smon_api::wire::{HostRow, Status};
use smon_proto::{Process, Snapshot};

use crate::app::{App, Mode, Sort};
use crate::fmt::{bar, human_bytes, level, of, pct, rate, terminal_safe, uptime};

/// Draws the whole screen for `app`.
pub struct View<'a>(pub &'a App);

impl Widget for View<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        draw(self.0, area, buf);
    }
}

/// Draws the whole screen for `app` into `buf`.
pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let [body, footer_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
    match (&app.mode, &app.open) {
        (Mode::Agent(addr), _) => match &app.snapshot {
            Some(s) => host(s, &format!("agent {addr}"), app, body, buf),
            None => waiting(
                &format!("waiting for the first sample from {addr}"),
                body,
                buf,
            ),
        },
        (Mode::Fleet(url), None) => fleet(app, url, body, buf),
        (Mode::Fleet(_), Some(id)) => match &app.detail {
            None => waiting(&format!("loading {}", terminal_safe(id)), body, buf),
            Some(d) => match &d.detail {
                Some(s) => host(s, &row_title(&d.host), app, body, buf),
                None => no_sample(&d.host, app.interactive, body, buf),
            },
        },
    }
    footer(app, footer_area, buf);
    if app.help {
        help(app, area, buf);
    }
}

/// The rendered text of `buf`, one line per row, trailing spaces and empty last rows removed
/// (what `--once` prints).
pub fn text(buf: &Buffer) -> String {
    let a = buf.area;
    let mut lines: Vec<String> = (a.y..a.y + a.height)
        .map(|y| {
            let l: String = (a.x..a.x + a.width)
                .filter_map(|x| buf.cell((x, y)).map(|c| c.symbol().to_owned()))
                .collect();
            l.trim_end().to_owned()
        })
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines.join("\n") + "\n"
}

/// The height at which everything `app` holds fits at `width` (`--once` draws at that height,
/// with at most `max_processes` process rows).
pub fn natural_height(app: &App, width: u16, max_processes: usize) -> u16 {
    let n = match (&app.mode, &app.open) {
        (Mode::Fleet(_), None) => app.hosts.len() + 4,
        _ => {
            let s = match (&app.snapshot, &app.detail) {
                (Some(s), _)
                | (
                    None,
                    Some(smon_api::wire::HostDetail {
                        detail: Some(s), ..
                    }),
                ) => s,
                _ => return 3,
            };
            let (_, core_rows) = core_grid(s, width);
            3 + usize::from(core_rows)
                + usize::from(io_height(s))
                + usize::from(gpu_height(s))
                + 2
                + s.processes.len().min(max_processes)
                + 1
        }
    };
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn row_title(r: &HostRow) -> String {
    let reported = r
        .hostname
        .as_deref()
        .filter(|h| *h != r.name)
        .map(|h| format!(" ({})", terminal_safe(h)))
        .unwrap_or_default();
    format!("{}{reported} {}", terminal_safe(&r.id), r.status.as_str())
}

fn waiting(what: &str, area: Rect, buf: &mut Buffer) {
    Paragraph::new(format!(" {what}...")).render(area, buf);
}

fn no_sample(r: &HostRow, interactive: bool, area: Rect, buf: &mut Buffer) {
    let why = r
        .last_error
        .as_deref()
        .map(|e| terminal_safe(e).into_owned())
        .unwrap_or_else(|| "no sample yet".to_owned());
    let mut lines = vec![
        Line::from(vec![
            Span::styled(
                format!(" {} ", terminal_safe(&r.id)),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            status_span(r.status),
        ]),
        Line::from(format!(" {why}")),
    ];
    if interactive {
        lines.push(Line::from(dim(" Esc: back to the list")));
    }
    Paragraph::new(lines).render(area, buf);
}

fn status_span(s: Status) -> Span<'static> {
    let c = match s {
        Status::Up => Color::Green,
        Status::Stale => Color::Yellow,
        Status::Down => Color::Red,
        Status::Pending => Color::DarkGray,
    };
    Span::styled(
        s.as_str(),
        Style::default().fg(c).add_modifier(Modifier::BOLD),
    )
}

fn bold(s: impl Into<String>) -> Span<'static> {
    Span::styled(s.into(), Style::default().add_modifier(Modifier::BOLD))
}

fn dim(s: impl Into<String>) -> Span<'static> {
    Span::styled(s.into(), Style::default().fg(Color::DarkGray))
}

fn right(s: impl Into<String>) -> Cell<'static> {
    Cell::from(Line::from(s.into()).right_aligned())
}

fn header_style() -> Style {
    Style::default()
        .fg(Color::Cyan)
        .add_modifier(Modifier::BOLD)
}

fn section(title: String) -> Block<'static> {
    Block::new()
        .borders(Borders::TOP)
        .border_style(Style::default().fg(Color::DarkGray))
        .title(Span::styled(title, header_style()))
}

/// Columns and rows of the per-core grid: cells of 18 columns when the cores fit in 4 rows,
/// else 12, else 9 (bars without their figure), at most 8 rows.
fn core_grid(s: &Snapshot, width: u16) -> (u16, u16) {
    let n = s.cpu.as_ref().map_or(0, |c| c.per_core_percent.len());
    if n == 0 {
        return (18, 0);
    }
    for (cell, max_rows) in [(18u16, 4usize), (12, 8)] {
        let cols = usize::from((width / cell).max(1));
        let rows = n.div_ceil(cols);
        if rows <= max_rows {
            return (cell, u16::try_from(rows).unwrap_or(8));
        }
    }
    let cols = usize::from((width / 9).max(1));
    (9, u16::try_from(n.div_ceil(cols).min(8)).unwrap_or(8))
}

fn io_height(s: &Snapshot) -> u16 {
    let n = s.disks.len().max(s.networks.len()).min(8);
    if n == 0 { 0 } else { 2 + n as u16 }
}

fn gpu_height(s: &Snapshot) -> u16 {
    if s.gpus.is_empty() {
        return 0;
    }
    let n: usize = s
        .gpus
        .iter()
        .map(|g| 1 + g.processes.len() + usize::from(!g.error.is_empty()))
        .sum();
    2 + n.min(12) as u16
}

/// One host: its sample `s`, titled `source` at the right of the header.
fn host(s: &Snapshot, source: &str, app: &App, area: Rect, buf: &mut Buffer) {
    let (cell, core_rows) = core_grid(s, area.width);
    let [head, gauges, cores, io, gpus, procs] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Length(core_rows),
        Constraint::Length(io_height(s)),
        Constraint::Length(gpu_height(s)),
        Constraint::Min(3),
    ])
    .areas(area);
    header(s, source, head, buf);
    gauges_(s, gauges, buf);
    per_core(s, cell, cores, buf);
    if io.height > 0 {
        let [d, n] = Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
            .spacing(2)
            .areas(io);
        disks(s, d, buf);
        networks(s, n, buf);
    }
    gpus_(s, gpus, buf);
    processes(s, app, procs, buf);
}

fn header(s: &Snapshot, source: &str, area: Rect, buf: &mut Buffer) {
    let load = s.load.unwrap_or_default();
    let cores = s.cpu.as_ref().map_or(0, |c| c.logical_cores);
    let left = Line::from(vec![
        bold(format!(" {}", terminal_safe(&s.hostname))),
        Span::raw(format!("  up {}", uptime(s.uptime_s))),
        Span::raw(format!(
            "  load {:.2} {:.2} {:.2}",
            load.one, load.five, load.fifteen
        )),
        Span::raw(format!("  {} processes  {cores} cores", s.process_count)),
    ]);
    left.render(area, buf);
    Line::from(dim(format!("{source} ")))
        .right_aligned()
        .render(area, buf);
}

fn gauges_(s: &Snapshot, area: Rect, buf: &mut Buffer) {
    let cpu = s.cpu.as_ref().map_or(f32::NAN, |c| c.total_percent);
    let m = s.memory.unwrap_or_default();
    let half = (area.width / 2).max(1);
    // Room for the label (6) and "251.9 GiB / 251.9 GiB" (22) beside the bar.
    let w = half.saturating_sub(28).clamp(10, 40);
    let line = |label: &str, p: f32, extra: String| {
        let mut v = vec![bold(format!(" {label:<4} "))];
        v.extend(bar(p, w));
        v.push(Span::raw(format!(" {extra}")));
        Line::from(v)
    };
    let [l, r] = Layout::horizontal([Constraint::Length(half), Constraint::Min(1)]).areas(area);
    let [l1, l2] = Layout::vertical([Constraint::Length(1); 2]).areas(l);
    let [r1, r2] = Layout::vertical([Constraint::Length(1); 2]).areas(r);
    line("CPU", cpu, String::new()).render(l1, buf);
    line("MEM", m.used_percent, of(m.used_bytes, m.total_bytes)).render(r1, buf);
    if m.swap_total_bytes == 0 {
        Line::from(vec![bold(" SWAP "), dim("no swap")]).render(r2, buf);
    } else {
        line(
            "SWAP",
            m.swap_used_percent,
            of(m.swap_used_bytes, m.swap_total_bytes),
        )
        .render(r2, buf);
    }
    let temps: Vec<f32> = s.temperatures.iter().filter_map(|t| t.celsius).collect();
    let hottest = temps.iter().copied().fold(f32::NAN, f32::max);
    let mut facts = vec![bold(" TASK "), Span::raw(format!("{} ", s.process_count))];
    if hottest.is_finite() {
        facts.push(bold(" TEMP "));
        facts.push(Span::styled(
            format!("{hottest:.0} C"),
            Style::default().fg(level(hottest)),
        ));
    }
    if !s.sessions.is_empty() {
        facts.push(bold("  USERS "));
        facts.push(Span::raw(s.sessions.len().to_string()));
    }
    Line::from(facts).render(l2, buf);
}

fn per_core(s: &Snapshot, cell: u16, area: Rect, buf: &mut Buffer) {
    let Some(cpu) = &s.cpu else { return };
    if area.height == 0 {
        return;
    }
    let cols = usize::from((area.width / cell).max(1));
    for (i, p) in cpu.per_core_percent.iter().enumerate() {
        let (row, col) = (i / cols, i % cols);
        let Ok(y) = u16::try_from(row) else { break };
        if y >= area.height {
            break;
        }
        let x = u16::try_from(col).unwrap_or(0) * cell;
        let r = Rect::new(area.x + x, area.y + y, cell, 1);
        let mut v = vec![dim(format!("{i:>4} "))];
        v.extend(bar(*p, cell.saturating_sub(6)));
        Line::from(v).render(r, buf);
    }
}

fn disks(s: &Snapshot, area: Rect, buf: &mut Buffer) {
    let rows = s.disks.iter().map(|d| {
        let (used, size) = if d.unresponsive {
            (
                Cell::from("-"),
                Cell::from(
                    Line::from(Span::styled(
                        "not answering",
                        Style::default().fg(Color::Red),
                    ))
                    .right_aligned(),
                ),
            )
        } else {
            (
                Cell::from(Span::styled(
                    pct(d.used_percent),
                    Style::default().fg(level(d.used_percent)),
                )),
                right(of(d.used_bytes, d.total_bytes)),
            )
        };
        let io = |v: Option<u64>| v.map_or("-".to_owned(), rate);
        Row::new(vec![
            Cell::from(terminal_safe(&d.mount_point).into_owned()),
            used,
            size,
            right(io(d.read_bytes_per_s)),
            right(io(d.write_bytes_per_s)),
        ])
    });
    Table::new(
        rows,
        [
            Constraint::Min(8),
            Constraint::Length(7),
            Constraint::Length(21),
            Constraint::Length(12),
            Constraint::Length(12),
        ],
    )
    .header(
        Row::new(vec![
            Cell::from("MOUNT"),
            Cell::from("USED"),
            right("SIZE"),
            right("READ"),
            right("WRITE"),
        ])
        .style(header_style()),
    )
    .block(section(" Disks ".into()))
    .render(area, buf);
}

fn networks(s: &Snapshot, area: Rect, buf: &mut Buffer) {
    let rows = s.networks.iter().map(|n| {
        Row::new(vec![
            Cell::from(terminal_safe(&n.name).into_owned()),
            right(rate(n.rx_bytes_per_s)),
            right(rate(n.tx_bytes_per_s)),
        ])
    });
    Table::new(
        rows,
        [
            Constraint::Min(6),
            Constraint::Length(12),
            Constraint::Length(12),
        ],
    )
    .header(Row::new(vec![Cell::from("IFACE"), right("RX"), right("TX")]).style(header_style()))
    .block(section(" Network ".into()))
    .render(area, buf);
}

fn gpus_(s: &Snapshot, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let mut rows = Vec::new();
    for g in &s.gpus {
        let util = g.utilization_percent.map(|u| u as f32);
        let power = match (g.power_mw, g.power_limit_mw) {
            (Some(p), Some(l)) => format!(
                "{:.0} / {:.0} W",
                f64::from(p) / 1000.0,
                f64::from(l) / 1000.0
            ),
            (Some(p), None) => format!("{:.0} W", f64::from(p) / 1000.0),
            _ => "-".to_owned(),
        };
        let mem = match (g.memory_used_bytes, g.memory_total_bytes) {
            (Some(u), Some(t)) => of(u, t),
            (Some(u), None) => human_bytes(u),
            _ => "-".to_owned(),
        };
        rows.push(Row::new(vec![
            Cell::from(g.index.to_string()),
            Cell::from(terminal_safe(&g.name).into_owned()),
            Cell::from(Span::styled(
                opt(util.map(pct)),
                Style::default().fg(level(util.unwrap_or(0.0))),
            )),
            right(mem),
            right(opt(g.temperature_celsius.map(|t| format!("{t} C")))),
            right(power),
        ]));
        if !g.error.is_empty() {
            rows.push(Row::new(vec![
                Cell::from(""),
                Cell::from(Span::styled(
                    terminal_safe(&g.error).into_owned(),
                    Style::default().fg(Color::Red),
                )),
            ]));
        }
        for p in &g.processes {
            rows.push(
                Row::new(vec![
                    Cell::from(""),
                    Cell::from(format!(
                        "  pid {} {} ({})",
                        p.pid,
                        terminal_safe(&p.name),
                        terminal_safe(&p.user)
                    )),
                    Cell::from(""),
                    right(opt(p.memory_used_bytes.map(human_bytes))),
                ])
                .style(Style::default().fg(Color::Gray)),
            );
        }
    }
    Table::new(
        rows,
        [
            Constraint::Length(3),
            Constraint::Min(16),
            Constraint::Length(7),
            Constraint::Length(23),
            Constraint::Length(6),
            Constraint::Length(13),
        ],
    )
    .header(
        Row::new(vec![
            Cell::from("#"),
            Cell::from("GPU"),
            Cell::from("UTIL"),
            right("MEMORY"),
            right("TEMP"),
            right("POWER"),
        ])
        .style(header_style()),
    )
    .block(section(" GPUs ".into()))
    .render(area, buf);
}

/// The processes the table shows (kernel threads only with `kernel_threads`), in its order.
pub fn sorted_processes(s: &Snapshot, sort: Sort, kernel_threads: bool) -> Vec<&Process> {
    let mut v: Vec<&Process> = s
        .processes
        .iter()
        .filter(|p| kernel_threads || !p.kernel_thread)
        .collect();
    let cpu = |p: &Process| {
        if p.cpu_percent.is_finite() {
            p.cpu_percent
        } else {
            -1.0
        }
    };
    match sort {
        Sort::Memory => v.sort_by_key(|p| std::cmp::Reverse(p.memory_bytes)),
        Sort::Cpu | Sort::Name => v.sort_by(|a, b| {
            cpu(b)
                .total_cmp(&cpu(a))
                .then(b.memory_bytes.cmp(&a.memory_bytes))
        }),
    }
    v
}

fn processes(s: &Snapshot, app: &App, area: Rect, buf: &mut Buffer) {
    let (sort, scroll) = (app.sort, app.scroll);
    let sorted = sorted_processes(s, sort, app.kernel_threads);
    let title = if s.processes.is_empty() {
        " Processes (none in this sample) ".to_owned()
    } else {
        let by = if sort == Sort::Memory {
            "memory"
        } else {
            "CPU"
        };
        let hidden = s.processes.len() - sorted.len();
        let kernel = if hidden > 0 {
            format!(", {hidden} kernel threads hidden (K)")
        } else {
            String::new()
        };
        format!(" Processes: {} by {by} (c/m){kernel} ", sorted.len())
    };
    let first = scroll.min(sorted.len().saturating_sub(1));
    let rows = sorted.iter().skip(first).map(|p| {
        let cmd = if p.cmdline.is_empty() {
            &p.name
        } else {
            &p.cmdline
        };
        Row::new(vec![
            right(p.pid.to_string()),
            Cell::from(terminal_safe(&p.user).into_owned()),
            Cell::from(
                Line::from(Span::styled(
                    pct(p.cpu_percent),
                    Style::default().fg(level(p.cpu_percent / 4.0)),
                ))
                .right_aligned(),
            ),
            right(human_bytes(p.memory_bytes)),
            right(pct(p.memory_percent)),
            Cell::from(terminal_safe(cmd).into_owned()),
        ])
    });
    let sorted_col = |name: &'static str, on: bool| {
        let l = Line::from(name).right_aligned();
        Cell::from(if on {
            l.style(Style::default().add_modifier(Modifier::REVERSED))
        } else {
            l
        })
    };
    Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(10),
            // "1310.5%": a busy process on a many-core host is not cut off.
            Constraint::Length(8),
            Constraint::Length(10),
            Constraint::Length(6),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(vec![
            right("PID"),
            Cell::from("USER"),
            sorted_col("CPU%", sort != Sort::Memory),
            sorted_col("MEM", sort == Sort::Memory),
            right("MEM%"),
            Cell::from("COMMAND"),
        ])
        .style(header_style()),
    )
    .block(section(title))
    .render(area, buf);
}

fn fleet(app: &App, url: &str, area: Rect, buf: &mut Buffer) {
    let hosts = app.sorted_hosts();
    let count = |s: Status| hosts.iter().filter(|h| h.status == s).count();
    let [head, table, detail] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(2),
        Constraint::Length(1),
    ])
    .areas(area);
    Line::from(vec![
        bold(" smon fleet"),
        Span::raw(format!("  {} hosts: ", hosts.len())),
        Span::styled(
            format!("{} up", count(Status::Up)),
            Style::default().fg(Color::Green),
        ),
        Span::raw(", "),
        Span::styled(
            format!("{} stale", count(Status::Stale)),
            Style::default().fg(Color::Yellow),
        ),
        Span::raw(", "),
        Span::styled(
            format!("{} down", count(Status::Down)),
            Style::default().fg(Color::Red),
        ),
        Span::raw(format!(", {} pending", count(Status::Pending))),
    ])
    .render(head, buf);
    Line::from(dim(format!("{url} ")))
        .right_aligned()
        .render(head, buf);
    let opt_pct = |v: Option<f32>| {
        let p = v.unwrap_or(f32::NAN);
        Cell::from(Line::from(Span::styled(pct(p), Style::default().fg(level(p)))).right_aligned())
    };
    let opt_rate = |v: Option<u64>| right(v.map_or("-".to_owned(), rate));
    let rows = hosts.iter().map(|h| {
        let gpu = if h.gpus.is_empty() {
            "-".to_owned()
        } else {
            let utils: Vec<u32> = h.gpus.iter().filter_map(|g| g.util_percent).collect();
            let used: u64 = h.gpus.iter().filter_map(|g| g.mem_used_bytes).sum();
            let util = if utils.is_empty() {
                "-".to_owned()
            } else {
                format!("{}%", utils.iter().sum::<u32>() / utils.len() as u32)
            };
            format!("{}x {util} {}", h.gpus.len(), human_bytes(used))
        };
        let load = h.load.map_or("-".to_owned(), |l| format!("{:.2}", l[0]));
        let mem = match (h.mem_used_bytes, h.mem_total_bytes) {
            (Some(u), Some(t)) => of(u, t),
            _ => "-".to_owned(),
        };
        Row::new(vec![
            Cell::from(terminal_safe(&h.id).into_owned()),
            Cell::from(status_span(h.status)),
            opt_pct(h.cpu_percent),
            opt_pct(h.mem_percent),
            right(mem),
            opt_pct(h.disk_max_percent),
            opt_rate(h.net_rx_bytes_per_s),
            opt_rate(h.net_tx_bytes_per_s),
            right(gpu),
            right(load),
            right(h.uptime_s.map_or("-".to_owned(), uptime)),
        ])
    });
    let sorted_col = |name: &'static str, on: bool| {
        let l = Line::from(name).right_aligned();
        Cell::from(if on {
            l.style(Style::default().add_modifier(Modifier::REVERSED))
        } else {
            l
        })
    };
    let t = Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(21),
            Constraint::Length(7),
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(17),
            Constraint::Length(6),
            Constraint::Length(9),
        ],
    )
    .header(
        Row::new(vec![
            Cell::from(Line::from("HOST").style(if app.sort == Sort::Name {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            })),
            Cell::from("STATUS"),
            sorted_col("CPU", app.sort == Sort::Cpu),
            sorted_col("MEM", app.sort == Sort::Memory),
            right("MEMORY"),
            right("DISK"),
            right("NET RX"),
            right("NET TX"),
            right("GPUS"),
            right("LOAD"),
            right("UP"),
        ])
        .style(header_style()),
    )
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
    .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(if hosts.is_empty() {
        None
    } else {
        Some(app.selected_index())
    });
    ratatui::widgets::StatefulWidget::render(t, table, buf, &mut state);
    if hosts.is_empty() {
        let [_, empty] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(table);
        Line::from(dim(" no hosts yet")).render(empty, buf);
    }
    if let Some(h) = hosts.get(app.selected_index())
        && let Some(e) = &h.last_error
    {
        Line::from(vec![
            Span::styled(
                format!(" {}: ", terminal_safe(&h.id)),
                Style::default().fg(Color::Red),
            ),
            Span::raw(terminal_safe(e).into_owned()),
        ])
        .render(detail, buf);
    }
}

fn footer(app: &App, area: Rect, buf: &mut Buffer) {
    if let Some(e) = &app.error {
        Line::from(Span::styled(
            format!(" ! {}", terminal_safe(e)),
            Style::default().fg(Color::White).bg(Color::Red),
        ))
        .render(area, buf);
        return;
    }
    if !app.interactive {
        return;
    }
    let keys = if app.showing_list() {
        " q quit  ? help  Up/Down select  Enter open  c/m/n sort"
    } else if app.open.is_some() {
        " q quit  ? help  Esc back  c/m sort  Up/Down scroll"
    } else {
        " q quit  ? help  c/m sort  Up/Down scroll"
    };
    Line::from(dim(keys)).render(area, buf);
}

fn help(app: &App, area: Rect, buf: &mut Buffer) {
    let mut lines = vec![
        Line::from(bold("smonctl top")),
        Line::from(""),
        Line::from(" q, Ctrl-C     quit"),
        Line::from(" ?             this help (any key closes it)"),
        Line::from(" c             sort by CPU"),
        Line::from(" m             sort by memory"),
        Line::from(" K             show or hide kernel threads"),
        Line::from(" Up/Down, j/k  scroll the processes"),
        Line::from(" PgUp/PgDn     scroll by 10, Home: to the top"),
    ];
    if matches!(app.mode, Mode::Fleet(_)) {
        lines.extend([
            Line::from(" n             fleet list: by cluster and name"),
            Line::from(" Enter         open the selected host"),
            Line::from(" Esc           back to the list"),
        ]);
    }
    lines.extend([
        Line::from(""),
        Line::from(dim("Sizes in KiB/MiB/GiB, rates per second;")),
        Line::from(dim("process CPU is % of one core.")),
    ]);
    let h = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let r = area.centered(Constraint::Length(52), Constraint::Length(h));
    Clear.render(r, buf);
    Paragraph::new(lines)
        .block(Block::bordered().title(" Help "))
        .render(r, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Key, Update};
    use crate::testdata::{row, snapshot};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// The screen for `app` at `w` x `h`, as text.
    fn screen(app: &App, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        t.draw(|f| f.render_widget(View(app), f.area()))
            .expect("draw");
        text(t.backend().buffer())
    }

    fn agent() -> App {
        let mut a = App::new(Mode::Agent("10.0.0.1:50051".into()));
        a.apply(Update::Snapshot(Box::new(snapshot())));
        a
    }

    #[test]
    fn a_host_shows_human_sizes_gauges_cores_disks_network_and_gpus() {
        let s = screen(&agent(), 120, 40);
        for want in [
            "gpu-node-1  up 3d 01:00  load 1.25 0.50 0.25  312 processes  4 cores",
            "agent 10.0.0.1:50051",
            "CPU  [",
            "37.5%]",
            "64.0 GiB / 252.0 GiB",
            "SWAP no swap",
            "95.0%]",
            "/mnt/nfs",
            "not answering",
            "700.0 GiB / 1.0 TiB",
            "3.0 MiB/s",
            "eth0",
            "12.0 MiB/s",
            "1.5 KiB/s",
            "NVIDIA H200",
            "87.0%",
            "80.0 GiB / 140.4 GiB",
            "64 C",
            "652 / 700 W",
            "pid 101 python (alice)",
            "79.0 GiB",
            "1310.5%",
            "39.1 GiB",
        ] {
            assert!(s.contains(want), "no {want:?} in\n{s}");
        }
        assert!(!s.contains("MiB /") && !s.contains("258019"), "{s}");
    }

    #[test]
    fn processes_sort_by_cpu_then_by_memory_on_m() {
        let mut a = agent();
        let order = |s: &str| {
            let pos = |needle: &str| s.find(needle).unwrap_or(usize::MAX);
            let mut v = [
                ("stress", pos("stress --cpu")),
                ("python", pos("python train")),
                ("postgres", pos("postgres: writer")),
                ("sshd", pos("sshd: alice")),
            ];
            v.sort_by_key(|x| x.1);
            v.map(|x| x.0)
        };
        let s = screen(&a, 120, 40);
        assert_eq!(order(&s), ["stress", "postgres", "python", "sshd"], "{s}");
        assert!(s.contains("Processes: 4 by CPU"), "{s}");
        a.key(Key::Char('m'));
        let s = screen(&a, 120, 40);
        assert_eq!(order(&s), ["python", "postgres", "stress", "sshd"], "{s}");
        assert!(s.contains("Processes: 4 by memory"), "{s}");
    }

    #[test]
    fn kernel_threads_are_hidden_until_k() {
        let mut a = agent();
        if let Some(s) = a.snapshot.as_mut() {
            s.processes[2].kernel_thread = true;
            s.processes[2].cmdline.clear();
            s.processes[2].name = "kworker/0:1".into();
        }
        let s = screen(&a, 120, 40);
        assert!(
            !s.contains("kworker")
                && s.contains("Processes: 3 by CPU (c/m), 1 kernel threads hidden (K)"),
            "{s}"
        );
        a.key(Key::Char('K'));
        let s = screen(&a, 120, 40);
        assert!(
            s.contains("kworker/0:1") && s.contains("Processes: 4 by CPU"),
            "{s}"
        );
    }

    #[test]
    fn the_error_line_replaces_the_keys_and_the_data_stays() {
        let mut a = agent();
        a.apply(Update::Error(
            "cannot connect to 10.0.0.1:50051: connection refused".into(),
        ));
        let s = screen(&a, 100, 30);
        let last = s.lines().last().unwrap_or_default();
        assert_eq!(
            last, " ! cannot connect to 10.0.0.1:50051: connection refused",
            "{s}"
        );
        assert!(s.contains("gpu-node-1"), "{s}");
        a.apply(Update::Snapshot(Box::new(snapshot())));
        let s = screen(&a, 100, 30);
        assert!(
            s.lines().last().unwrap_or_default().contains("q quit"),
            "{s}"
        );
    }

    #[test]
    fn small_terminals_and_hostile_names_do_not_break_the_view() {
        let mut a = agent();
        if let Some(s) = a.snapshot.as_mut() {
            s.hostname = "h\u{1b}]0;owned\u{7}".into();
            s.processes[0].cmdline = "evil\r\u{1b}[2J".into();
        }
        for (w, h) in [(120, 40), (80, 24), (40, 10), (10, 3), (1, 1)] {
            let s = screen(&a, w, h);
            assert!(!s.contains(['\u{1b}', '\r', '\u{7}']), "{s:?}");
        }
        assert!(screen(&a, 120, 40).contains(r"h\u{1b}]0;owned\u{7}"));
        a.key(Key::Char('?'));
        let s = screen(&a, 80, 24);
        assert!(s.contains("Help") && s.contains("sort by memory"), "{s}");
    }

    #[test]
    fn the_fleet_list_shows_status_and_use_and_marks_the_selection() {
        let mut a = App::new(Mode::Fleet("http://127.0.0.1:8080/".into()));
        let mut big = row("lab:n1", 37.5, 25.4);
        big.mem_used_bytes = Some(64 << 30);
        big.mem_total_bytes = Some(258_019 << 20);
        big.net_rx_bytes_per_s = Some(12 << 20);
        big.gpus = serde_json::from_value(serde_json::json!([
            {"index": 0, "name": "H200", "util_percent": 80, "mem_used_bytes": 85899345920u64, "mem_total_bytes": 150754820096u64},
            {"index": 1, "name": "H200", "util_percent": 40, "mem_used_bytes": 0, "mem_total_bytes": 150754820096u64}
        ])).expect("gpus");
        let mut down = row("lab:n2", f32::NAN, f32::NAN);
        down.status = Status::Down;
        down.cpu_percent = None;
        down.last_error = Some("cannot connect to 10.0.0.2:50051: connection refused".into());
        a.apply(Update::Hosts(vec![big, down]));
        let s = screen(&a, 150, 10);
        for want in [
            "2 hosts: 1 up, 0 stale, 1 down",
            "> lab:n1",
            "up",
            "37.5%",
            "64.0 GiB / 252.0 GiB",
            "12.0 MiB/s",
            "2x 60% 80.0 GiB",
            "down",
        ] {
            assert!(s.contains(want), "no {want:?} in\n{s}");
        }
        a.key(Key::Down);
        let s = screen(&a, 150, 10);
        assert!(s.contains("> lab:n2"), "{s}");
        assert!(
            s.contains("lab:n2: cannot connect to 10.0.0.2:50051: connection refused"),
            "{s}"
        );
        a.key(Key::Enter);
        let s = screen(&a, 150, 10);
        assert!(s.contains("loading lab:n2"), "{s}");
        let mut d: smon_api::wire::HostDetail =
            serde_json::from_value(serde_json::json!({"host": row("lab:n2", 0.0, 0.0)}))
                .expect("detail");
        d.host.status = Status::Down;
        d.host.last_error = Some("the agent refused the token".into());
        a.apply(Update::Detail(Box::new(d.clone())));
        let s = screen(&a, 150, 10);
        assert!(
            s.contains("lab:n2 down") && s.contains("the agent refused the token"),
            "{s}"
        );
        d.detail = Some(snapshot());
        d.host.status = Status::Up;
        d.host.hostname = Some("gpu-node-1".into());
        a.apply(Update::Detail(Box::new(d)));
        let s = screen(&a, 150, 40);
        assert!(
            s.contains("lab:n2 (gpu-node-1) up") && s.contains("NVIDIA H200"),
            "{s}"
        );
    }

    #[test]
    fn once_text_fits_everything_at_its_natural_height() {
        let mut a = agent();
        a.interactive = false;
        let h = natural_height(&a, 120, 20);
        let mut buf = Buffer::empty(Rect::new(0, 0, 120, h));
        draw(&a, Rect::new(0, 0, 120, h), &mut buf);
        let s = text(&buf);
        assert!(
            s.contains("sshd: alice") && s.contains("pid 101 python"),
            "{s}"
        );
        assert!(s.ends_with('\n') && !s.ends_with("\n\n"), "{s:?}");
        assert!(!s.contains("q quit"), "no key hints in text: {s}");
    }
}
