//! The figures of the fleet benchmarks (`scale`, `fanout`, `overview`, `soak`) as markdown
//! sections for BENCHMARKS.md, and the table of every figure against its target that `all`
//! prints. Pure logic: no I/O, tested on made-up figures.

use std::fmt::Write as _;

use serde_json::Value;

use crate::machine::Machine;
use crate::report::Report;
use crate::staleness::Buckets;
use crate::stats::Latency;

/// Markers of the sections.
pub const SCALE_START: &str = "<!-- bench:scale:start -->";
/// End of the scale section.
pub const SCALE_END: &str = "<!-- bench:scale:end -->";
/// Start of the fan-out section.
pub const FANOUT_START: &str = "<!-- bench:fanout:start -->";
/// End of the fan-out section.
pub const FANOUT_END: &str = "<!-- bench:fanout:end -->";
/// Start of the overview page section.
pub const OVERVIEW_START: &str = "<!-- bench:overview:start -->";
/// End of the overview page section.
pub const OVERVIEW_END: &str = "<!-- bench:overview:end -->";
/// Start of the soak section.
pub const SOAK_START: &str = "<!-- bench:soak:start -->";
/// End of the soak section.
pub const SOAK_END: &str = "<!-- bench:soak:end -->";
/// Start of the summary table (written by `all`).
pub const SUMMARY_START: &str = "<!-- bench:summary:start -->";
/// End of the summary table.
pub const SUMMARY_END: &str = "<!-- bench:summary:end -->";

/// The commands that reproduce every figure.
pub const REPRODUCE: &str = "cargo build --release -p smon-agent -p smon-aggregator -p smon-sim\n\
     (cd web/ui && npm ci)   # socket.io-client and playwright-core for the browser scripts\n\
     cargo run -p smon-bench --release -- all --write BENCHMARKS.md            # about 1 h 20 min (1 h soak)\n\
     cargo run -p smon-bench --release -- all --quick                          # smoke run, about 6 min\n\
     cargo run -p smon-bench --release -- soak --soak-s 86400 --write BENCHMARKS.md   # a longer soak";

/// Targets of issue #6 on the 2-core machine.
pub const TARGET_AGG_CPU: f64 = 100.0;
/// Aggregator RSS at 10,000 agents.
pub const TARGET_AGG_RSS: u64 = 1 << 30;
/// p99 staleness, ms.
pub const TARGET_STALENESS_P99_MS: f64 = 2000.0;
/// p99 delivery to 1,000 browsers, ms.
pub const TARGET_DELIVERY_P99_MS: f64 = 250.0;
/// Script time per update at 1,000 hosts, ms.
pub const TARGET_SCRIPT_MS: f64 = 16.0;
/// Input delay p99 for "responsive", ms (RAIL: answer input within 100 ms).
pub const TARGET_INPUT_P99_MS: f64 = 100.0;
/// Aggregator RSS growth over the soak.
pub const TARGET_RSS_GROWTH: f64 = 0.05;

/// One figure against its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Which benchmark: "a" to "e".
    pub bench: &'static str,
    /// What is measured.
    pub metric: String,
    /// The figure.
    pub value: String,
    /// The target in words.
    pub target: String,
    /// Met or not; `None` when it could not be measured.
    pub pass: Option<bool>,
}

/// One `scale` run.
#[derive(Debug, Clone)]
pub struct ScaleRun {
    /// Simulated agents.
    pub agents: u64,
    /// The measured window, seconds.
    pub window_s: f64,
    /// Aggregator CPU, % of one core.
    pub cpu_percent: Option<f64>,
    /// Simulator CPU, % of one core.
    pub sim_cpu_percent: Option<f64>,
    /// Aggregator RSS at the end.
    pub rss_end: u64,
    /// Aggregator's largest RSS in the window.
    pub rss_max: u64,
    /// The staleness histogram's samples in the window.
    pub hist: Option<Buckets>,
    /// Exact ages (ms) of hosts' latest samples, from five reads of `/api/v1/hosts`.
    pub rows: Vec<u64>,
    /// `bench-fanout.mjs` with one client.
    pub browser: Value,
}

impl ScaleRun {
    /// Percentiles of the exact row ages.
    pub fn staleness(&self) -> Option<Latency> {
        let v: Vec<std::time::Duration> = self
            .rows
            .iter()
            .map(|ms| std::time::Duration::from_millis(*ms))
            .collect();
        Latency::of(&v)
    }
}

/// One `fanout` run.
#[derive(Debug, Clone)]
pub struct FanoutRun {
    /// Hosts on the overview.
    pub hosts: u64,
    /// Socket.IO clients.
    pub clients: u64,
    /// Aggregator CPU over the window.
    pub cpu_percent: Option<f64>,
    /// Simulator CPU over the window.
    pub sim_cpu_percent: Option<f64>,
    /// Aggregator's largest RSS in the window.
    pub rss_max: u64,
    /// `bench-fanout.mjs`'s summary.
    pub summary: Value,
}

/// The `overview` run.
#[derive(Debug, Clone)]
pub struct OverviewRun {
    /// Hosts on the page.
    pub hosts: u64,
    /// Aggregator CPU over the window.
    pub cpu_percent: Option<f64>,
    /// `bench-overview.mjs`'s summary.
    pub summary: Value,
}

/// The `soak` run.
#[derive(Debug, Clone)]
pub struct SoakRun {
    /// Hosts.
    pub hosts: u64,
    /// Socket.IO clients.
    pub clients: u64,
    /// Measured seconds.
    pub duration_s: f64,
    /// Warm-up before, seconds.
    pub warmup_s: u64,
    /// Seconds at each end over which the RSS median is taken.
    pub span_s: f64,
    /// Aggregator RSS after the warm-up (median of the first span).
    pub rss_start: u64,
    /// At the end (median of the last span).
    pub rss_end: u64,
    /// Largest.
    pub rss_max: u64,
    /// Aggregator CPU over the soak.
    pub cpu_percent: Option<f64>,
    /// `bench-fanout.mjs`'s summary.
    pub summary: Value,
}

impl SoakRun {
    /// (end - start) / start.
    pub fn growth(&self) -> Option<f64> {
        (self.rss_start > 0)
            .then(|| (self.rss_end as f64 - self.rss_start as f64) / self.rss_start as f64)
    }
}

/// Everything a suite command measured.
#[derive(Debug, Clone)]
pub struct SuiteReport {
    /// The machine.
    pub machine: Machine,
    /// This run's command line.
    pub command_line: String,
    /// Versions of what ran.
    pub versions: Vec<String>,
    /// `--quick`.
    pub quick: bool,
    /// Window of each measurement, seconds.
    pub window_s: u64,
    /// Warm-up before it.
    pub warmup_s: u64,
    /// (a), with `all`.
    pub agent: Option<Report>,
    /// (b), one per fleet size.
    pub scale: Vec<ScaleRun>,
    /// (c), one per client count.
    pub fanout: Vec<FanoutRun>,
    /// (d).
    pub overview: Option<OverviewRun>,
    /// (e).
    pub soak: Option<SoakRun>,
    /// Whether the aggregator configs had `server.auth.public_read_only`.
    pub public_read_only: bool,
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "—".to_owned(), f)
}

fn ms0(v: Option<f64>) -> String {
    opt(v, |v| format!("{v:.0} ms"))
}

fn ms1(v: Option<f64>) -> String {
    opt(v, |v| format!("{v:.1} ms"))
}

fn pct(v: Option<f64>) -> String {
    opt(v, |v| format!("{v:.1} %"))
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// "123 KiB/s".
fn rate(v: Option<f64>) -> String {
    opt(v, |v| {
        if v >= 1024.0 * 1024.0 {
            format!("{:.2} MiB/s", v / (1024.0 * 1024.0))
        } else {
            format!("{:.1} KiB/s", v / 1024.0)
        }
    })
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "**FAIL**",
        None => "n/a",
    }
}

impl SuiteReport {
    /// Every figure that has a target.
    pub fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        if let Some(a) = &self.agent {
            for (name, value, ok) in a.targets() {
                out.push(Check {
                    bench: "a",
                    metric: format!("agent: {name}"),
                    value,
                    target: name.to_owned(),
                    pass: Some(ok),
                });
            }
        }
        for s in &self.scale {
            let n = thousands(s.agents);
            out.push(Check {
                bench: "b",
                metric: format!("aggregator CPU, {n} agents at 1 Hz"),
                value: pct(s.cpu_percent),
                target: "under one core (100 %)".into(),
                pass: s.cpu_percent.map(|c| c < TARGET_AGG_CPU),
            });
            out.push(Check {
                bench: "b",
                metric: format!("aggregator RSS (peak in window), {n} agents"),
                value: mib(s.rss_max),
                target: "under 1 GiB".into(),
                pass: Some(s.rss_max < TARGET_AGG_RSS),
            });
            let st = s.staleness();
            out.push(Check {
                bench: "b",
                metric: format!("staleness p99 (sample → store), {n} agents"),
                value: ms0(st.map(|l| l.p99.as_secs_f64() * 1000.0)),
                target: "under 2 s".into(),
                pass: st.map(|l| (l.p99.as_secs_f64() * 1000.0) < TARGET_STALENESS_P99_MS),
            });
        }
        for f in &self.fanout {
            let p99 = num(&f.summary, "p99_ms");
            out.push(Check {
                bench: "c",
                metric: format!(
                    "delivery p99, {} clients, {} hosts",
                    thousands(f.clients),
                    thousands(f.hosts)
                ),
                value: ms0(p99),
                target: "under 250 ms".into(),
                pass: p99.map(|v| v < TARGET_DELIVERY_P99_MS),
            });
        }
        if let Some(o) = &self.overview {
            let p50 = num(&o.summary, "script_p50_ms");
            out.push(Check {
                bench: "d",
                metric: format!(
                    "overview script time per update (median), {} hosts",
                    thousands(o.hosts)
                ),
                value: ms1(p50),
                target: "under 16 ms".into(),
                pass: p50.map(|v| v < TARGET_SCRIPT_MS),
            });
            let input = num(&o.summary, "input_delay_p99_ms");
            out.push(Check {
                bench: "d",
                metric: "page responsive: input delay p99 during updates".into(),
                value: ms0(input),
                target: "under 100 ms".into(),
                pass: input.map(|v| v < TARGET_INPUT_P99_MS),
            });
        }
        if let Some(s) = &self.soak {
            let stalled = num(&s.summary, "stalled_clients");
            let disc = num(&s.summary, "disconnects");
            out.push(Check {
                bench: "e",
                metric: format!("soak {:.0} s: clients that stopped receiving", s.duration_s),
                value: opt(stalled, |v| format!("{v:.0} of {}", s.clients)),
                target: "none".into(),
                pass: stalled.map(|v| v == 0.0),
            });
            out.push(Check {
                bench: "e",
                metric: "soak: disconnects".into(),
                value: opt(disc, |v| format!("{v:.0}")),
                target: "none".into(),
                pass: disc.map(|v| v == 0.0),
            });
            let g = s.growth();
            out.push(Check {
                bench: "e",
                metric: "soak: aggregator RSS growth after warm-up".into(),
                value: opt(g, |g| {
                    format!(
                        "{:+.1} % ({} → {})",
                        g * 100.0,
                        mib(s.rss_start),
                        mib(s.rss_end)
                    )
                }),
                target: "within 5 %".into(),
                pass: g.map(|g| g <= TARGET_RSS_GROWTH),
            });
        }
        out
    }

    /// The table of targets, as printed and as written in the summary section.
    pub fn table(checks: &[Check]) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "| | figure | measured | target | verdict |");
        let _ = writeln!(o, "|---|---|---|---|---|");
        for c in checks {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                c.bench,
                c.metric,
                c.value,
                c.target,
                verdict(c.pass)
            );
        }
        let pass = checks.iter().filter(|c| c.pass == Some(true)).count();
        let _ = writeln!(o, "\n{pass} of {} targets met.", checks.len());
        o
    }

    fn header(&self, o: &mut String, title: &str) {
        let m = &self.machine;
        let _ = writeln!(o, "## {title}\n");
        let _ = writeln!(o, "Measured {}.  ", m.summary());
        if !self.versions.is_empty() {
            let _ = writeln!(o, "{}.\n", self.versions.join("; "));
        }
        let _ = writeln!(
            o,
            "This run: `{}`{}.\n",
            self.command_line,
            if self.quick {
                " (**--quick**: short windows, a smoke run, not figures to quote)"
            } else {
                ""
            }
        );
    }

    /// The sections this run measured: (start marker, end marker, text with markers).
    pub fn sections(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut out = Vec::new();
        if !self.scale.is_empty() {
            out.push((SCALE_START, SCALE_END, self.scale_md()));
        }
        if !self.fanout.is_empty() {
            out.push((FANOUT_START, FANOUT_END, self.fanout_md()));
        }
        if self.overview.is_some() {
            out.push((OVERVIEW_START, OVERVIEW_END, self.overview_md()));
        }
        if self.soak.is_some() {
            out.push((SOAK_START, SOAK_END, self.soak_md()));
        }
        out
    }

    fn fleet_how(&self) -> String {
        format!(
            "The fleet: `smon-sim` (one process; each simulated agent listens on its own \
             address from 127.1.0.1 up and streams the real gRPC `Watch` contract, sampling \
             every 1 s) and one `smon-aggregator --no-supervise` (app mode, the simulator's \
             config with the aggregator's own host left out{}), both children of the \
             benchmark, on loopback, on this one machine. CPU and RSS of each are read from \
             `/proc/<pid>/stat` and `/proc/<pid>/status` once a second; CPU is % of one core \
             over the window. Every client and the simulator share the machine's 2 cores \
             with the aggregator, so the aggregator's figures are measured under that load.",
            if self.public_read_only {
                ", `server.auth.public_read_only` on so that the benchmark's clients read \
                 anonymously"
            } else {
                ""
            }
        )
    }

    fn scale_md(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{SCALE_START}");
        self.header(&mut o, "(b) Aggregator at 1,000 to 10,000 agents");
        let _ = writeln!(
            o,
            "How: {} Each fleet warms up {} s after every host is up; then the window of {} s \
             with one Socket.IO client (`web/ui/tests/bench-fanout.mjs`, socket.io-client) on \
             the overview, which gives the bytes per second one browser receives. Staleness \
             is the time from an agent's sample (`sample_unix_ms`, set by the simulator) to \
             its arrival in the aggregator's store (`last_seen_ms`), both on this machine's \
             clock: p50/p99 are exact, over every host's latest sample in five reads of \
             `/api/v1/hosts` a second apart right after the window (the reads stay out of the \
             CPU window); the aggregator's own histogram `smon_poll_latency_seconds` (every \
             sample in the window, but only bucket bounds) is the cross-check. The CPU window \
             leaves out 2 s at each end, where `/metrics` is read.\n",
            self.fleet_how(),
            self.warmup_s,
            self.window_s
        );
        let head: Vec<String> = self
            .scale
            .iter()
            .map(|s| format!("{} agents", thousands(s.agents)))
            .collect();
        let _ = writeln!(o, "| metric | {} | target |", head.join(" | "));
        let _ = writeln!(o, "|---|{}---|", "---|".repeat(self.scale.len()));
        let row = |o: &mut String, name: &str, f: &dyn Fn(&ScaleRun) -> String, t: &str| {
            let cells: Vec<String> = self.scale.iter().map(f).collect();
            let _ = writeln!(o, "| {name} | {} | {t} |", cells.join(" | "));
        };
        row(
            &mut o,
            "aggregator CPU, % of one core",
            &|s| pct(s.cpu_percent),
            "< 100 %",
        );
        row(
            &mut o,
            "aggregator RSS, peak in the window / at the end",
            &|s| format!("{} / {}", mib(s.rss_max), mib(s.rss_end)),
            "< 1 GiB",
        );
        row(
            &mut o,
            "staleness, sample → store, p50 / p99 / max (exact, latest sample of every host)",
            &|s| {
                s.staleness().map_or("—".into(), |l| {
                    format!(
                        "{:.0} / {:.0} / {:.0} ms ({} readings)",
                        l.p50.as_secs_f64() * 1000.0,
                        l.p99.as_secs_f64() * 1000.0,
                        l.max.as_secs_f64() * 1000.0,
                        l.n
                    )
                })
            },
            "p99 < 2 s",
        );
        row(
            &mut o,
            "staleness histogram (every sample in the window): p50 / p99 at most; share ≤ 1 s / ≤ 2.5 s",
            &|s| {
                s.hist.as_ref().map_or("—".into(), |h| {
                    let b = |p| {
                        h.percentile_bound(p).map_or("—".into(), |v| {
                            if v.is_finite() {
                                format!("{v} s")
                            } else {
                                "> 30 s".into()
                            }
                        })
                    };
                    format!(
                        "{} / {}; {} / {} ({} samples)",
                        b(50.0),
                        b(99.0),
                        pct(h.share_at_most(1.0).map(|x| x * 100.0)),
                        pct(h.share_at_most(2.5).map(|x| x * 100.0)),
                        h.count()
                    )
                })
            },
            "",
        );
        row(
            &mut o,
            "overview bytes/s to one browser (socket bytes read)",
            &|s| rate(num(&s.browser, "bytes_per_s_per_client")),
            "",
        );
        row(
            &mut o,
            "`overview_delta` per second to it, mean size",
            &|s| {
                format!(
                    "{} / s, {}",
                    opt(num(&s.browser, "deltas_per_client_per_s"), |v| format!(
                        "{v:.2}"
                    )),
                    opt(num(&s.browser, "mean_delta_chars"), |v| format!(
                        "{:.0} KiB",
                        v / 1024.0
                    ))
                )
            },
            "",
        );
        row(
            &mut o,
            "delivery to it (hub build → client decoded), p50 / p99",
            &|s| {
                format!(
                    "{} / {}",
                    ms0(num(&s.browser, "p50_ms")),
                    ms0(num(&s.browser, "p99_ms"))
                )
            },
            "",
        );
        row(
            &mut o,
            "simulator CPU, % of one core (load beside the aggregator)",
            &|s| pct(s.sim_cpu_percent),
            "",
        );
        row(&mut o, "window", &|s| format!("{:.0} s", s.window_s), "");
        let _ = writeln!(o, "{SCALE_END}");
        o
    }

    fn fanout_md(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{FANOUT_START}");
        self.header(
            &mut o,
            "(c) Browser fan-out: Socket.IO clients on the overview",
        );
        let _ = writeln!(
            o,
            "How: {} `web/ui/tests/bench-fanout.mjs` opens the clients in one Node.js process \
             with socket.io-client 4.8 over WebSocket (50 at a time), subscribes each to the \
             overview room and, after a {} s warm-up, measures for {} s. Delivery latency: \
             `Date.now()` when a client has decoded an `overview_delta` minus the frame's \
             `server_time_ms` (when the hub built it), for every frame to every client. Bytes: \
             what each client's TCP socket read (WebSocket frames and headers; no TCP/IP \
             overhead). So that one process can stand for 1,000 browsers, its socket.io parser \
             reads overview frames only up to `server_time_ms` instead of parsing their JSON \
             (everything else, handshake and acks included, goes through the stock decoder); \
             the client process's own CPU is in the table: near 100 % it, not the server, \
             sets the latency.\n",
            self.fleet_how(),
            self.warmup_s,
            self.window_s
        );
        let head: Vec<String> = self
            .fanout
            .iter()
            .map(|f| format!("{} clients", thousands(f.clients)))
            .collect();
        let _ = writeln!(o, "| metric | {} | target |", head.join(" | "));
        let _ = writeln!(o, "|---|{}---|", "---|".repeat(self.fanout.len()));
        let row = |o: &mut String, name: &str, f: &dyn Fn(&FanoutRun) -> String, t: &str| {
            let cells: Vec<String> = self.fanout.iter().map(f).collect();
            let _ = writeln!(o, "| {name} | {} | {t} |", cells.join(" | "));
        };
        let n = |f: &FanoutRun, k: &str| num(&f.summary, k);
        row(
            &mut o,
            "delivery latency, p50 / p99 / max",
            &|f| {
                format!(
                    "{} / {} / {}",
                    ms0(n(f, "p50_ms")),
                    ms0(n(f, "p99_ms")),
                    ms0(n(f, "max_ms"))
                )
            },
            "p99 < 250 ms",
        );
        row(
            &mut o,
            "aggregator CPU, % of one core",
            &|f| pct(f.cpu_percent),
            "",
        );
        row(&mut o, "aggregator RSS, peak", &|f| mib(f.rss_max), "");
        row(
            &mut o,
            "bytes/s per client",
            &|f| rate(n(f, "bytes_per_s_per_client")),
            "",
        );
        row(
            &mut o,
            "`overview_delta` per client per second (min per client over the window)",
            &|f| {
                format!(
                    "{} ({})",
                    opt(n(f, "deltas_per_client_per_s"), |v| format!("{v:.2}")),
                    opt(n(f, "min_deltas_per_client"), |v| format!("{v:.0}"))
                )
            },
            "",
        );
        row(
            &mut o,
            "disconnects / clients silent at the end / longest gap",
            &|f| {
                format!(
                    "{} / {} / {}",
                    opt(n(f, "disconnects"), |v| format!("{v:.0}")),
                    opt(n(f, "stalled_clients"), |v| format!("{v:.0}")),
                    ms0(n(f, "max_gap_ms"))
                )
            },
            "",
        );
        row(
            &mut o,
            "client process CPU (Node.js, all clients), % of one core",
            &|f| pct(n(f, "client_cpu_percent")),
            "",
        );
        row(
            &mut o,
            "simulator CPU, % of one core",
            &|f| pct(f.sim_cpu_percent),
            "",
        );
        let _ = writeln!(o, "{FANOUT_END}");
        o
    }

    fn overview_md(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{OVERVIEW_START}");
        let Some(r) = &self.overview else {
            return o;
        };
        let n = |k: &str| num(&r.summary, k);
        self.header(
            &mut o,
            &format!(
                "(d) The overview page of {} hosts in headless chromium",
                thousands(r.hosts)
            ),
        );
        let _ = writeln!(
            o,
            "How: {} `web/ui/tests/bench-overview.mjs` opens the home page in Debian's \
             chromium (headless, software rendering, playwright-core), waits for every row up \
             and the WebSocket, warms up {} s, then for {} s reads the page's main-thread \
             time (CDP `Performance.getMetrics`: ScriptDuration, TaskDuration, Layout, \
             RecalcStyle) half an interval after each `overview_delta` arrives; the difference \
             between two reads one frame apart is the cost of one live update. Meanwhile CDP \
             moves the mouse over the table every 200 ms and the page records each \
             `pointermove`'s delay (`performance.now() - event.timeStamp`), the gaps between \
             animation frames and long tasks: the page counts as responsive when the p99 \
             input delay is under 100 ms.\n",
            self.fleet_how(),
            self.warmup_s,
            self.window_s
        );
        let _ = writeln!(o, "| metric | value | target |");
        let _ = writeln!(o, "|---|---|---|");
        let mut row = |name: &str, v: String, t: &str| {
            let _ = writeln!(o, "| {name} | {v} | {t} |");
        };
        row(
            "script time per update, p50 / p99 / max",
            format!(
                "{} / {} / {}",
                ms1(n("script_p50_ms")),
                ms1(n("script_p99_ms")),
                ms1(n("script_max_ms"))
            ),
            "p50 < 16 ms",
        );
        row(
            "all main-thread tasks per update, p50 / p99",
            format!("{} / {}", ms1(n("task_p50_ms")), ms1(n("task_p99_ms"))),
            "",
        );
        row(
            "style + layout per update, p50",
            ms1(n("layout_style_p50_ms")),
            "",
        );
        row(
            "updates in the window (measured one by one)",
            format!(
                "{} ({})",
                opt(n("updates"), |v| format!("{v:.0}")),
                opt(n("updates_measured"), |v| format!("{v:.0}"))
            ),
            "",
        );
        row(
            "`overview_delta` mean size",
            opt(n("mean_delta_chars"), |v| format!("{:.0} KiB", v / 1024.0)),
            "",
        );
        row(
            "input delay, p50 / p99 / max",
            format!(
                "{} / {} / {}",
                ms1(n("input_delay_p50_ms")),
                ms1(n("input_delay_p99_ms")),
                ms1(n("input_delay_max_ms"))
            ),
            "p99 < 100 ms",
        );
        row(
            "animation frame gaps, p50 / p99 / max",
            format!(
                "{} / {} / {}",
                ms1(n("raf_gap_p50_ms")),
                ms1(n("raf_gap_p99_ms")),
                ms1(n("raf_gap_max_ms"))
            ),
            "",
        );
        row(
            "long tasks (> 50 ms), count / longest",
            format!(
                "{} / {}",
                opt(n("long_tasks"), |v| format!("{v:.0}")),
                ms0(n("long_task_max_ms"))
            ),
            "",
        );
        row(
            "main thread, ms per second: script / all tasks",
            format!(
                "{} / {}",
                ms1(n("script_ms_per_s")),
                ms1(n("task_ms_per_s"))
            ),
            "",
        );
        row("aggregator CPU meanwhile", pct(r.cpu_percent), "");
        let _ = writeln!(o, "{OVERVIEW_END}");
        o
    }

    fn soak_md(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{SOAK_START}");
        let Some(s) = &self.soak else {
            return o;
        };
        let n = |k: &str| num(&s.summary, k);
        self.header(
            &mut o,
            &format!(
                "(e) Soak: {} hosts, {} clients, {:.0} s",
                thousands(s.hosts),
                s.clients,
                s.duration_s
            ),
        );
        let _ = writeln!(
            o,
            "How: {} `bench-fanout.mjs` keeps {} Socket.IO clients on the overview (warm-up \
             {} s with every client connected, then the soak). A client has stopped receiving \
             when its last `overview_delta` is more than 5 intervals old at the end. RSS growth \
             compares the median RSS of the soak's first {:.0} s with that of its last {:.0} s.\n",
            self.fleet_how(),
            s.clients,
            s.warmup_s,
            s.span_s,
            s.span_s
        );
        let _ = writeln!(o, "| metric | value | target |");
        let _ = writeln!(o, "|---|---|---|");
        let mut row = |name: &str, v: String, t: &str| {
            let _ = writeln!(o, "| {name} | {v} | {t} |");
        };
        row(
            "clients that stopped receiving",
            opt(n("stalled_clients"), |v| format!("{v:.0} of {}", s.clients)),
            "none",
        );
        row(
            "disconnects / reconnects / connect errors",
            format!(
                "{} / {} / {}",
                opt(n("disconnects"), |v| format!("{v:.0}")),
                opt(n("reconnects"), |v| format!("{v:.0}")),
                opt(n("connect_errors"), |v| format!("{v:.0}"))
            ),
            "no disconnects",
        );
        row(
            "aggregator RSS after warm-up → end (growth); peak",
            format!(
                "{} → {} ({}); {}",
                mib(s.rss_start),
                mib(s.rss_end),
                opt(s.growth(), |g| format!("{:+.1} %", g * 100.0)),
                mib(s.rss_max)
            ),
            "growth ≤ 5 %",
        );
        row(
            "longest gap between two deltas to one client",
            ms0(n("max_gap_ms")),
            "",
        );
        row(
            "delivery latency, p50 / p99 / max",
            format!(
                "{} / {} / {}",
                ms0(n("p50_ms")),
                ms0(n("p99_ms")),
                ms0(n("max_ms"))
            ),
            "",
        );
        row(
            "deltas per client per second; fewest to one client",
            format!(
                "{}; {}",
                opt(n("deltas_per_client_per_s"), |v| format!("{v:.2}")),
                opt(n("min_deltas_per_client"), |v| format!("{v:.0}"))
            ),
            "",
        );
        row("aggregator CPU, % of one core", pct(s.cpu_percent), "");
        let _ = writeln!(o, "{SOAK_END}");
        o
    }

    /// The summary section `all` writes: the machine, the commands and the table of targets.
    pub fn summary_section(&self, checks: &[Check]) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{SUMMARY_START}");
        self.header(
            &mut o,
            "Summary: every figure against its target (issue #6)",
        );
        let _ = writeln!(o, "Reproduce:\n\n```sh\n{REPRODUCE}\n```\n");
        o.push_str(&Self::table(checks));
        let _ = writeln!(o, "{SUMMARY_END}");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> SuiteReport {
        SuiteReport {
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                memory_bytes: 4 << 30,
                kernel: "6.1.0".into(),
                os: "Debian".into(),
                date: "2024-01-01 00:00 UTC".into(),
            },
            command_line: "smon-bench all".into(),
            versions: vec!["smon-aggregator 0.1.0".into()],
            quick: false,
            window_s: 60,
            warmup_s: 10,
            agent: None,
            scale: vec![ScaleRun {
                agents: 10_000,
                window_s: 60.0,
                cpu_percent: Some(80.0),
                sim_cpu_percent: Some(50.0),
                rss_end: 300 << 20,
                rss_max: 310 << 20,
                hist: Some(Buckets {
                    le: vec![(1.0, 90), (2.5, 100), (f64::INFINITY, 100)],
                }),
                rows: (1..=100).map(|i| i * 30).collect(),
                browser: json!({"bytes_per_s_per_client": 2_097_152.0, "p50_ms": 20, "p99_ms": 40,
                                "deltas_per_client_per_s": 1.0, "mean_delta_chars": 2_097_152.0}),
            }],
            fanout: vec![FanoutRun {
                hosts: 1000,
                clients: 1000,
                cpu_percent: Some(60.0),
                sim_cpu_percent: None,
                rss_max: 100 << 20,
                summary: json!({"p50_ms": 100, "p99_ms": 300, "max_ms": 400}),
            }],
            overview: Some(OverviewRun {
                hosts: 1000,
                cpu_percent: None,
                summary: json!({"script_p50_ms": 12.5, "input_delay_p99_ms": 30}),
            }),
            soak: Some(SoakRun {
                hosts: 500,
                clients: 200,
                duration_s: 3600.0,
                warmup_s: 300,
                span_s: 60.0,
                rss_start: 100 << 20,
                rss_end: 104 << 20,
                rss_max: 105 << 20,
                cpu_percent: Some(20.0),
                summary: json!({"stalled_clients": 0, "disconnects": 1}),
            }),
            public_read_only: true,
        }
    }

    #[test]
    fn checks_against_targets() {
        let r = report();
        let c = r.checks();
        let find = |m: &str| c.iter().find(|c| c.metric.starts_with(m)).expect(m).clone();
        assert_eq!(find("aggregator CPU, 10,000").pass, Some(true));
        let st = find("staleness p99");
        assert_eq!((st.value.as_str(), st.pass), ("2970 ms", Some(false)));
        assert_eq!(find("delivery p99, 1,000 clients").pass, Some(false));
        assert_eq!(find("overview script").pass, Some(true));
        assert_eq!(find("soak: disconnects").pass, Some(false));
        let g = find("soak: aggregator RSS growth");
        assert_eq!(g.pass, Some(true));
        assert!(g.value.starts_with("+4.0 %"), "{}", g.value);
        let t = SuiteReport::table(&c);
        assert!(t.contains("| c | delivery p99, 1,000 clients, 1,000 hosts | 300 ms | under 250 ms | **FAIL** |"), "{t}");
        assert!(t.contains("6 of 9 targets met."), "{t}");
    }

    #[test]
    fn sections_carry_markers_and_figures() {
        let r = report();
        let s = r.sections();
        assert_eq!(s.len(), 4);
        for (start, end, text) in &s {
            assert!(
                text.starts_with(start) && text.trim_end().ends_with(end),
                "{text}"
            );
        }
        let scale = &s[0].2;
        assert!(
            scale.contains("| metric | 10,000 agents | target |"),
            "{scale}"
        );
        assert!(scale.contains("| 80.0 % | < 100 % |"), "{scale}");
        assert!(
            scale.contains("1 s / 2.5 s; 90.0 % / 100.0 % (100 samples)"),
            "{scale}"
        );
        assert!(scale.contains("2.00 MiB/s"), "{scale}");
        assert!(scale.contains("public_read_only"), "{scale}");
        let summary = r.summary_section(&r.checks());
        assert!(summary.starts_with(SUMMARY_START) && summary.contains(REPRODUCE));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(999), "999");
    }
}
