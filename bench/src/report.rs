//! The figures of one `smon-bench agent` run (smon-agent, node_exporter, Glances) as a markdown section, and the splice that puts
//! that section into BENCHMARKS.md between its markers without touching the rest of the file.
//! Pure logic: no I/O, tested on made-up figures.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::bail;

use crate::machine::Machine;
use crate::procfs::{Memory, Pss};
use crate::stats::Latency;

/// Marks the start of the generated section in BENCHMARKS.md.
pub const START: &str = "<!-- bench:agent:start -->";
/// Marks the end of the generated section.
pub const END: &str = "<!-- bench:agent:end -->";

/// The command that reproduces the figures.
pub const REPRODUCE: &str = "cargo build --release -p smon-agent && cargo run -p smon-bench --release -- agent --write BENCHMARKS.md";

/// Most memory the agent may use: PSS summed over its processes (manager and server).
pub const TARGET_PSS: u64 = 10 * 1024 * 1024;
/// Most CPU the agent may use while polled at 1 Hz, in percent of one core.
pub const TARGET_CPU_PERCENT: f64 = 0.3;
/// Median `GetSnapshot` latency on loopback must be below this.
pub const TARGET_P50: Duration = Duration::from_millis(1);

/// What was measured of one exporter.
#[derive(Debug, Clone)]
pub struct Exporter {
    /// Version line, e.g. "node_exporter, version 1.5.0".
    pub version: String,
    /// Memory at the end of the polling window, summed over the exporter's processes (RSS,
    /// which counts the pages they share once per process).
    pub memory: Memory,
    /// PSS at the end of the window, summed over its processes.
    pub pss: Pss,
    /// Smallest and largest summed PSS seen during the window (read once a second).
    pub pss_range: (u64, u64),
    /// Each process's memory when there are several (the agent's server and manager).
    pub processes: Vec<ProcMemory>,
    /// Smallest and largest VmRSS seen during the window (read once a second).
    pub rss_range: (u64, u64),
    /// VmHWM after the latency burst.
    pub hwm_after_burst: u64,
    /// CPU over the window, percent of one core.
    pub cpu_percent: f64,
    /// What one poll returns, in words.
    pub payload: String,
    /// Mean bytes per poll at 1 Hz.
    pub bytes_per_poll: f64,
    /// Latency of the 1 Hz polls.
    pub poll: Latency,
    /// Failed polls during the window.
    pub failed_polls: usize,
    /// Polls attempted during the window.
    pub polls: usize,
    /// Back-to-back calls of the same kind as the 1 Hz poll.
    pub burst: Latency,
    /// Calls in that burst.
    pub burst_calls: u64,
}

/// One process of an exporter that runs several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcMemory {
    /// Its role, e.g. "server" or "manager".
    pub name: String,
    /// VmRSS, bytes.
    pub rss: u64,
    /// PSS, bytes.
    pub pss: u64,
}

/// The agent alone with its web view off, polled the same way for a second window.
#[derive(Debug, Clone)]
pub struct WebOff {
    /// Memory at the end of that window, summed over its processes.
    pub memory: Memory,
    /// PSS at the end of that window, summed.
    pub pss: Pss,
    /// Smallest and largest summed PSS during that window.
    pub pss_range: (u64, u64),
    /// Each process's memory.
    pub processes: Vec<ProcMemory>,
    /// CPU over that window, percent of one core, summed over its processes.
    pub cpu_percent: f64,
    /// Failed polls in that window.
    pub failed_polls: usize,
    /// Polls attempted in that window.
    pub polls: usize,
}

/// smon-only figures.
#[derive(Debug, Clone)]
pub struct AgentOnly {
    /// Back-to-back summary calls (`parts` absent).
    pub summary_burst: Latency,
    /// Bytes of a summary reply.
    pub summary_bytes: f64,
    /// The agent's `collect_us` over the distinct samples seen in the window.
    pub collect: Latency,
    /// Mean `collect_us`.
    pub collect_mean_us: f64,
    /// Mean process count of those samples.
    pub processes_mean: f64,
    /// Mean of `collect_us / process_count` per sample.
    pub us_per_process: f64,
}

/// Everything one run reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// The command line of this run, e.g. "smon-bench agent --write BENCHMARKS.md".
    pub command_line: String,
    /// Seconds of polling measured.
    pub window_s: u64,
    /// Seconds of polling before the window.
    pub warmup_s: u64,
    /// Calls per kind in the burst.
    pub burst_calls: u64,
    /// Idle processes the benchmark added.
    pub extra_procs: usize,
    /// The agent.
    pub smon: Exporter,
    /// smon-only figures.
    pub agent: AgentOnly,
    /// The agent with its web view off, unless left out.
    pub web_off: Option<WebOff>,
    /// node_exporter, or why it is missing.
    pub node: Result<Exporter, String>,
    /// Glances in web server mode, or why it is missing.
    pub glances: Result<Exporter, String>,
}

/// "7.9 MiB".
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// "12.3 KiB (12 595 B)".
fn kib(bytes: f64) -> String {
    format!("{:.1} KiB ({:.0} B)", bytes / 1024.0, bytes)
}

/// Milliseconds with a precision that suits the size.
fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.3} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// "8.9 MiB (server 6.1 + manager 2.8)" for several processes, "8.9 MiB" for one.
fn split(total: u64, parts: &[ProcMemory], of: fn(&ProcMemory) -> u64) -> String {
    if parts.len() < 2 {
        return mib(total);
    }
    let each: Vec<String> = parts
        .iter()
        .map(|p| format!("{} {:.1}", p.name, of(p) as f64 / (1024.0 * 1024.0)))
        .collect();
    format!("{} ({})", mib(total), each.join(" + "))
}

fn lat3(l: &Latency) -> String {
    format!("{} / {} / {}", ms(l.p50), ms(l.p99), ms(l.max))
}

pub(crate) fn verdict(met: bool, goal: &str) -> String {
    format!("{goal}: **{}**", if met { "met" } else { "missed" })
}

impl Report {
    /// Whether each target is met: (name, measured, met).
    pub fn targets(&self) -> Vec<(&'static str, String, bool)> {
        let s = &self.smon;
        let a = &self.agent;
        vec![
            (
                "PSS (manager + server) at most 10 MiB, web view on",
                mib(s.pss.total),
                s.pss.total <= TARGET_PSS,
            ),
            (
                "CPU at most 0.3 % of one core at 1 Hz",
                format!("{:.2} %", s.cpu_percent),
                s.cpu_percent <= TARGET_CPU_PERCENT,
            ),
            (
                "GetSnapshot p50 under 1 ms (summary burst)",
                ms(a.summary_burst.p50),
                a.summary_burst.p50 < TARGET_P50,
            ),
            (
                "GetSnapshot p50 under 1 ms (detail burst)",
                ms(s.burst.p50),
                s.burst.p50 < TARGET_P50,
            ),
            (
                "GetSnapshot p50 under 1 ms (detail at 1 Hz)",
                ms(s.poll.p50),
                s.poll.p50 < TARGET_P50,
            ),
        ]
    }

    /// The section, markers included.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let s = &self.smon;
        let a = &self.agent;
        let mut o = String::new();
        let _ = writeln!(o, "{START}");
        let _ = writeln!(o, "## smon-agent next to node_exporter and Glances\n");
        let _ = writeln!(o, "Measured {}.  ", m.summary());
        let version = |p: &Result<Exporter, String>, name: &str| match p {
            Ok(n) => n.version.clone(),
            Err(why) => format!("{name} {why}"),
        };
        let _ = writeln!(
            o,
            "{}; {}; {}.\n",
            s.version,
            version(&self.node, "node_exporter"),
            version(&self.glances, "Glances")
        );
        let _ = writeln!(o, "Reproduce:\n\n```sh\n{REPRODUCE}\n```\n");
        let _ = writeln!(
            o,
            "This run: `{}` ({} s window after {} s warm-up, {} extra idle processes, {} calls \
             per burst).\n",
            self.command_line, self.window_s, self.warmup_s, self.extra_procs, self.burst_calls
        );
        let _ = writeln!(
            o,
            "How: all three run as children of the benchmark, on loopback. The agent samples \
             every 1 s (token auth, GPU off); node_exporter runs its default collectors, which \
             list no processes; Glances runs as a web server (`glances -w --disable-webui -t 1`, \
             default plugins, process list included). Each is polled at 1 Hz on its own \
             schedule, a third of a second apart: smon with `GetSnapshot` asking for every part \
             (processes, per-core, GPU processes) on one gRPC channel, node_exporter with \
             `GET /metrics` (text, no gzip) and Glances with `GET /api/4/all` (JSON, no gzip), \
             each on one keep-alive connection. The agent runs as shipped, `manager.mode: self`: \
             a manager process and the server it runs, two processes of one binary, with the \
             single-host web view on (`server.web: true`, checked to answer, not browsed); \
             every memory and CPU figure of the agent is the sum over both. PSS is `Pss` from \
             `/proc/<pid>/smaps_rollup` (pages shared between processes split between them, so \
             the binary's pages count once); RSS is `VmRSS`/`VmHWM` from `/proc/<pid>/status` \
             (summed, it counts the pages the two share twice); CPU is the `utime + stime` \
             delta from `/proc/<pid>/stat` over the window's wall time. After the bursts the \
             agent is stopped and started again with the web view off, alone, and polled the \
             same way for a second window (the rows marked web view off). Bytes per poll: smon, the encoded protobuf reply (gRPC and \
             HTTP/2 framing not counted); the others, the response body. The bursts come after \
             the window, back to back on the same connection (Glances: 200 calls at most). \
             Sample time is the agent's own `collect_us` of each distinct sample seen in the \
             window.\n"
        );

        let peers = [self.node.as_ref(), self.glances.as_ref()];
        let n = |f: &dyn Fn(&Exporter) -> String| -> [String; 2] {
            peers.map(|p| match p {
                Ok(e) => f(e),
                Err(why) => why.clone(),
            })
        };
        let both = |v: &str| [v.to_owned(), v.to_owned()];
        let mut rows: Vec<[String; 5]> = Vec::new();
        let mut row = |metric: &str, smon: String, [node, glances]: [String; 2], target: String| {
            rows.push([metric.to_owned(), smon, node, glances, target]);
        };
        row(
            "PSS, steady (summed over the processes at the end of the window)",
            split(s.pss.total, &s.processes, |p| p.pss),
            n(&|e| mib(e.pss.total)),
            verdict(s.pss.total <= TARGET_PSS, "≤ 10 MiB"),
        );
        row(
            "PSS during the window, min – max",
            format!("{} – {}", mib(s.pss_range.0), mib(s.pss_range.1)),
            n(&|e| format!("{} – {}", mib(e.pss_range.0), mib(e.pss_range.1))),
            String::new(),
        );
        row(
            "of which anonymous / file-backed (PSS)",
            format!("{} / {}", mib(s.pss.anon), mib(s.pss.file)),
            n(&|e| format!("{} / {}", mib(e.pss.anon), mib(e.pss.file))),
            String::new(),
        );
        if let Some(w) = &self.web_off {
            row(
                "PSS, steady, web view off (second window)",
                split(w.pss.total, &w.processes, |p| p.pss),
                both("—"),
                String::new(),
            );
        }
        row(
            "RSS, steady (VmRSS at the end of the window, summed over the processes)",
            split(s.memory.rss, &s.processes, |p| p.rss),
            n(&|e| mib(e.memory.rss)),
            String::new(),
        );
        row(
            "RSS during the window, min – max",
            format!("{} – {}", mib(s.rss_range.0), mib(s.rss_range.1)),
            n(&|e| format!("{} – {}", mib(e.rss_range.0), mib(e.rss_range.1))),
            String::new(),
        );
        row(
            "of which anonymous / file-backed",
            format!("{} / {}", mib(s.memory.anon), mib(s.memory.file)),
            n(&|e| format!("{} / {}", mib(e.memory.anon), mib(e.memory.file))),
            String::new(),
        );
        row(
            "RSS peak (VmHWM) at the end of the window",
            mib(s.memory.hwm),
            n(&|e| mib(e.memory.hwm)),
            String::new(),
        );
        row(
            "RSS peak (VmHWM) after the bursts",
            mib(s.hwm_after_burst),
            n(&|e| mib(e.hwm_after_burst)),
            String::new(),
        );
        row(
            "threads",
            s.memory.threads.to_string(),
            n(&|e| e.memory.threads.to_string()),
            String::new(),
        );
        row(
            &format!("CPU, % of one core, polled at 1 Hz for {} s", self.window_s),
            format!("{:.2} %", s.cpu_percent),
            n(&|e| format!("{:.2} %", e.cpu_percent)),
            verdict(s.cpu_percent <= TARGET_CPU_PERCENT, "≤ 0.3 %"),
        );
        row(
            "CPU time per 1 Hz poll (and sample)",
            format!("{:.2} ms", s.cpu_percent * 10.0),
            n(&|e| format!("{:.2} ms", e.cpu_percent * 10.0)),
            String::new(),
        );
        if let Some(w) = &self.web_off {
            row(
                &format!(
                    "CPU, % of one core, web view off, polled at 1 Hz for {} s",
                    self.window_s
                ),
                format!("{:.2} %", w.cpu_percent),
                both("—"),
                String::new(),
            );
            row(
                "RSS, steady, web view off",
                split(w.memory.rss, &w.processes, |p| p.rss),
                both("—"),
                String::new(),
            );
            row(
                "failed polls in the web-view-off window",
                format!("{} of {}", w.failed_polls, w.polls),
                both("—"),
                String::new(),
            );
        }
        row(
            "what one poll returns",
            s.payload.clone(),
            n(&|e| e.payload.clone()),
            String::new(),
        );
        row(
            "bytes per poll",
            kib(s.bytes_per_poll),
            n(&|e| kib(e.bytes_per_poll)),
            String::new(),
        );
        row(
            "latency per poll at 1 Hz, p50 / p99 / max",
            lat3(&s.poll),
            n(&|e| lat3(&e.poll)),
            verdict(s.poll.p50 < TARGET_P50, "p50 < 1 ms"),
        );
        row(
            &format!(
                "latency, {} back-to-back detail polls, p50 / p99 / max",
                self.burst_calls
            ),
            lat3(&s.burst),
            n(&|e| {
                if e.burst_calls == self.burst_calls {
                    lat3(&e.burst)
                } else {
                    format!("{} ({} calls)", lat3(&e.burst), e.burst_calls)
                }
            }),
            verdict(s.burst.p50 < TARGET_P50, "p50 < 1 ms"),
        );
        row(
            &format!(
                "latency, {} back-to-back summary calls, p50 / p99 / max",
                self.burst_calls
            ),
            lat3(&a.summary_burst),
            both("no equivalent"),
            verdict(a.summary_burst.p50 < TARGET_P50, "p50 < 1 ms"),
        );
        row(
            "bytes per summary call",
            kib(a.summary_bytes),
            both("no equivalent"),
            String::new(),
        );
        row(
            "sample time (`collect_us`), mean / p50 / max",
            format!(
                "{:.2} ms / {} / {}",
                a.collect_mean_us / 1000.0,
                ms(a.collect.p50),
                ms(a.collect.max)
            ),
            both("—"),
            String::new(),
        );
        row(
            "processes per sample",
            format!("{:.0}", a.processes_mean),
            both("—"),
            String::new(),
        );
        row(
            "sample time per process (whole sample ÷ processes)",
            format!("{:.1} µs", a.us_per_process),
            both("—"),
            String::new(),
        );
        row(
            "failed polls in the window",
            format!("{} of {}", s.failed_polls, s.polls),
            n(&|e| format!("{} of {}", e.failed_polls, e.polls)),
            String::new(),
        );

        let _ = writeln!(
            o,
            "| metric | smon-agent | node_exporter | Glances | target |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|");
        for r in &rows {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                r[0], r[1], r[2], r[3], r[4]
            );
        }
        let targets = self.targets();
        let met = targets.iter().filter(|t| t.2).count();
        let _ = writeln!(o, "\nTargets met: {met} of {}.", targets.len());
        for (name, value, ok) in &targets {
            let _ = writeln!(
                o,
                "- {name}: {value}, {}",
                if *ok { "met" } else { "**missed**" }
            );
        }
        let _ = writeln!(o, "{END}");
        o
    }
}

/// The new content of BENCHMARKS.md: `section` (markers included) replaces what lies between
/// the markers `start` and `end` in `existing`, is appended when there are none, or starts a
/// new file.
pub fn splice_between(
    existing: Option<&str>,
    section: &str,
    start: &str,
    end: &str,
) -> anyhow::Result<String> {
    let section = section.trim_end_matches('\n');
    let Some(text) = existing else {
        return Ok(format!(
            "# smon benchmarks\n\nFigures measured by `smon-bench` (crate `bench/`), side by side \
             with the tools smon replaces, in one run on one machine. The sections between \
             `bench:*` markers are rewritten by `smon-bench ... --write BENCHMARKS.md`; the rest \
             of this file is kept as written.\n\n{section}\n"
        ));
    };
    match (text.find(start), text.find(end)) {
        (Some(s), Some(e)) if s < e => {
            Ok(format!("{}{section}{}", &text[..s], &text[e + end.len()..]))
        }
        (None, None) => Ok(format!("{}\n\n{section}\n", text.trim_end_matches('\n'))),
        _ => bail!("the markers {start} and {end} are not a matched pair; fix them by hand"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(p50_us: u64) -> Latency {
        Latency {
            n: 10,
            p50: Duration::from_micros(p50_us),
            p99: Duration::from_micros(p50_us * 2),
            max: Duration::from_micros(p50_us * 3),
        }
    }

    fn exporter(rss_mib: u64, cpu: f64, p50_us: u64) -> Exporter {
        Exporter {
            version: "x 1.0".into(),
            memory: Memory {
                rss: rss_mib << 20,
                hwm: (rss_mib + 1) << 20,
                anon: 1 << 20,
                file: (rss_mib - 1) << 20,
                threads: 5,
            },
            pss: Pss {
                total: (rss_mib - 1) << 20,
                anon: 1 << 20,
                file: (rss_mib - 2) << 20,
            },
            pss_range: ((rss_mib - 1) << 20, (rss_mib - 1) << 20),
            processes: Vec::new(),
            rss_range: (rss_mib << 20, rss_mib << 20),
            hwm_after_burst: (rss_mib + 2) << 20,
            cpu_percent: cpu,
            payload: "everything".into(),
            bytes_per_poll: 2048.0,
            poll: lat(p50_us),
            failed_polls: 0,
            polls: 60,
            burst: lat(p50_us),
            burst_calls: 2000,
        }
    }

    /// The agent's two processes: the manager 2 MiB of each, the server the rest.
    fn two(mut e: Exporter) -> Exporter {
        let part = |name: &str, rss: u64, pss: u64| ProcMemory {
            name: name.into(),
            rss,
            pss,
        };
        e.processes = vec![
            part("server", e.memory.rss - (2 << 20), e.pss.total - (2 << 20)),
            part("manager", 2 << 20, 2 << 20),
        ];
        e
    }

    fn report(smon: Exporter, node: Result<Exporter, String>) -> Report {
        let glances = node.clone().map(|mut g| {
            g.burst_calls = 200;
            g
        });
        Report {
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                memory_bytes: 4 << 30,
                kernel: "6.1.0".into(),
                os: "Debian GNU/Linux 12 (bookworm)".into(),
                date: "2024-01-01 00:00 UTC".into(),
            },
            command_line: "smon-bench agent".into(),
            window_s: 60,
            warmup_s: 5,
            burst_calls: 2000,
            extra_procs: 200,
            smon: two(smon),
            agent: AgentOnly {
                summary_burst: lat(200),
                summary_bytes: 900.0,
                collect: lat(5000),
                collect_mean_us: 5000.0,
                processes_mean: 250.0,
                us_per_process: 20.0,
            },
            web_off: Some(WebOff {
                memory: Memory {
                    rss: 7 << 20,
                    ..Memory::default()
                },
                pss: Pss {
                    total: 11 << 19,
                    anon: 1 << 20,
                    file: 9 << 19,
                },
                pss_range: (11 << 19, 11 << 19),
                processes: vec![
                    ProcMemory {
                        name: "server".into(),
                        rss: 5 << 20,
                        pss: 4 << 20,
                    },
                    ProcMemory {
                        name: "manager".into(),
                        rss: 2 << 20,
                        pss: 3 << 19,
                    },
                ],
                cpu_percent: 0.1,
                failed_polls: 0,
                polls: 60,
            }),
            node,
            glances,
        }
    }

    #[test]
    fn table_marks_targets_and_a_missing_peer() {
        let text = report(exporter(8, 0.2, 400), Err("not installed".into())).markdown();
        assert!(
            text.starts_with(START) && text.trim_end().ends_with(END),
            "{text}"
        );
        assert!(text.contains("| PSS, steady (summed over the processes at the end of the window) | 7.0 MiB (server 5.0 + manager 2.0) | not installed | not installed | ≤ 10 MiB: **met** |"), "{text}");
        assert!(
            text.contains("| PSS, steady, web view off (second window) | 5.5 MiB (server 4.0 + manager 1.5) | — | — |  |"),
            "{text}"
        );
        assert!(
            text.contains("| RSS, steady (VmRSS at the end of the window, summed over the processes) | 8.0 MiB (server 6.0 + manager 2.0) |"),
            "{text}"
        );
        assert!(
            text.contains("| 0.20 % | not installed | not installed | ≤ 0.3 %: **met** |"),
            "{text}"
        );
        assert!(text.contains("Targets met: 5 of 5."), "{text}");
        assert!(text.contains(REPRODUCE));

        let text = report(exporter(12, 0.5, 1500), Ok(exporter(20, 0.75, 9000))).markdown();
        assert!(
            text.contains(
                "| 11.0 MiB (server 9.0 + manager 2.0) | 19.0 MiB | 19.0 MiB | ≤ 10 MiB: **missed** |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| 0.50 % | 0.75 % | 0.75 % | ≤ 0.3 %: **missed** |"),
            "{text}"
        );
        assert!(text.contains("Targets met: 1 of 5."), "{text}");
        assert!(text.contains("ms (200 calls) |"), "{text}");
        assert!(
            text.contains(
                "- PSS (manager + server) at most 10 MiB, web view on: 11.0 MiB, **missed**"
            ),
            "{text}"
        );
    }

    #[test]
    fn splice_creates_replaces_and_appends() {
        let splice = |old: Option<&str>, sec: &str| splice_between(old, sec, START, END);
        let sec = format!("{START}\nnew\n{END}\n");
        let created = splice(None, &sec).expect("created");
        assert!(created.starts_with("# smon benchmarks\n") && created.ends_with(&sec));

        let old = format!("# T\n\nintro\n\n{START}\nold\n{END}\n\n## Analysis\nkept\n");
        let replaced = splice(Some(&old), &sec).expect("replaced");
        assert_eq!(
            replaced,
            format!("# T\n\nintro\n\n{START}\nnew\n{END}\n\n## Analysis\nkept\n")
        );
        assert_eq!(splice(Some(&replaced), &sec).expect("again"), replaced);

        let appended = splice(Some("# T\n\nother\n"), &sec).expect("appended");
        assert_eq!(appended, format!("# T\n\nother\n\n{START}\nnew\n{END}\n"));

        assert!(splice(Some(&format!("{END}\n{START}\n")), &sec).is_err());
        assert!(splice(Some(&format!("{START}\n")), &sec).is_err());
    }
}
