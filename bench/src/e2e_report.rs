//! The figures of one `smon-bench e2e` run: the browser script's JSON summary, read into a
//! struct, and the markdown section for BENCHMARKS.md. Pure logic: no I/O, tested on made-up
//! figures.

use std::fmt::Write as _;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::machine::Machine;
use crate::report::verdict;

/// Marks the start of the generated section in BENCHMARKS.md.
pub const START: &str = "<!-- bench:e2e:start -->";
/// Marks the end of the generated section.
pub const END: &str = "<!-- bench:e2e:end -->";

/// The command that reproduces the figures.
pub const REPRODUCE: &str = "cargo build --release -p smon-agent -p smon-aggregator && cargo run -p smon-bench --release -- e2e --write BENCHMARKS.md";

/// The median latency may exceed the interval by this much.
pub const TARGET_MARGIN_MS: f64 = 200.0;

/// How far apart `agents` agents with this sampling interval are started, so that their
/// sampling phases spread evenly over the interval.
pub fn stagger_ms(interval_ms: u64, agents: usize) -> u64 {
    interval_ms / (agents.max(1) as u64)
}

/// What `web/ui/tests/e2e-latency.mjs` measured in the browser (its JSON summary).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Rows the page waited for, all up, before measuring.
    pub hosts: u64,
    /// `data-sample-ms` changes seen (one per host per new sample).
    pub samples: u64,
    /// Latency from the agent's sample to the DOM, median, in ms.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Sample to the hub's emit (`server_time_ms` of the delta that carried it), median.
    pub emit_p50_ms: Option<f64>,
    /// Sample to the hub's emit, 99th percentile.
    pub emit_p99_ms: Option<f64>,
    /// The hub's emit to the DOM, median.
    pub deliver_p50_ms: Option<f64>,
    /// The hub's emit to the DOM, 99th percentile.
    pub deliver_p99_ms: Option<f64>,
    /// Samples matched with the delta frame that carried them.
    pub matched: u64,
    /// Gap between a host's consecutive samples in the DOM, median, ms.
    pub gap_p50_ms: Option<f64>,
    /// Largest such gap.
    pub gap_max_ms: Option<f64>,
    /// Gaps over 1.5 times the median: samples lost or overwritten on the way.
    pub long_gaps: u64,
    /// WebSocket bytes (payload and frame headers) plus long-polling bytes, per second.
    pub bytes_per_s: f64,
    /// WebSocket payload bytes per second.
    pub payload_bytes_per_s: f64,
    /// WebSocket frames per second.
    pub frames_per_s: f64,
    /// `overview_delta` frames in the window.
    pub delta_frames: u64,
    /// Mean payload bytes of an `overview_delta` frame.
    pub mean_delta_bytes: f64,
    /// Long-polling bytes in the window (0 once upgraded to WebSocket).
    pub polling_bytes: f64,
    /// DOM mutation records in the window (attributes, text, children).
    pub dom_updates: u64,
    /// The page's JavaScript time, ms per second of the window.
    pub script_ms_per_s: Option<f64>,
    /// The page's main-thread task time (script, style, layout, ...), ms per second.
    pub task_ms_per_s: Option<f64>,
    /// Of which layout, ms per second.
    pub layout_ms_per_s: Option<f64>,
    /// Of which style recalculation, ms per second.
    pub style_ms_per_s: Option<f64>,
    /// Length of the window, seconds.
    pub window_s: f64,
    /// Socket.IO transport at the end ("websocket").
    pub transport: String,
}

impl Summary {
    /// Reads the script's JSON summary, naming the field that is missing or of the wrong type.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let v: Value = serde_json::from_str(text.trim()).context("not JSON")?;
        let num = |k: &str| -> anyhow::Result<f64> {
            v.get(k)
                .and_then(Value::as_f64)
                .with_context(|| format!("field '{k}' is missing or not a number"))
        };
        let opt = |k: &str| v.get(k).and_then(Value::as_f64);
        let count = |k: &str| -> anyhow::Result<u64> {
            let n = num(k)?;
            if n < 0.0 || n.fract() != 0.0 {
                bail!("field '{k}' is not a count: {n}");
            }
            Ok(n as u64)
        };
        Ok(Self {
            hosts: count("hosts")?,
            samples: count("samples")?,
            p50_ms: num("p50_ms")?,
            p99_ms: num("p99_ms")?,
            max_ms: num("max_ms")?,
            mean_ms: num("mean_ms")?,
            emit_p50_ms: opt("emit_p50_ms"),
            emit_p99_ms: opt("emit_p99_ms"),
            deliver_p50_ms: opt("deliver_p50_ms"),
            deliver_p99_ms: opt("deliver_p99_ms"),
            matched: count("matched")?,
            gap_p50_ms: opt("gap_p50_ms"),
            gap_max_ms: opt("gap_max_ms"),
            long_gaps: count("long_gaps")?,
            bytes_per_s: num("bytes_per_s")?,
            payload_bytes_per_s: num("payload_bytes_per_s")?,
            frames_per_s: num("frames_per_s")?,
            delta_frames: count("delta_frames")?,
            mean_delta_bytes: num("mean_delta_bytes")?,
            polling_bytes: num("polling_bytes")?,
            dom_updates: count("dom_updates")?,
            script_ms_per_s: opt("script_ms_per_s"),
            task_ms_per_s: opt("task_ms_per_s"),
            layout_ms_per_s: opt("layout_ms_per_s"),
            style_ms_per_s: opt("style_ms_per_s"),
            window_s: num("window_s")?,
            transport: v
                .get("transport")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
        })
    }
}

/// Everything one run reports.
#[derive(Debug, Clone)]
pub struct E2eReport {
    /// The machine.
    pub machine: Machine,
    /// The command line of this run.
    pub command_line: String,
    /// Versions of what ran: agent, aggregator, browser, Node.js.
    pub versions: Vec<String>,
    /// Agents in the demo fleet.
    pub agents: usize,
    /// Fake GPUs per agent, in order.
    pub gpus: Vec<u32>,
    /// Sample and poll interval, ms.
    pub interval_ms: u64,
    /// Requested window, seconds.
    pub duration_s: u64,
    /// Seconds between every host being up and the browser starting.
    pub warmup_s: u64,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started and when it ended.
    pub load: ([f64; 3], [f64; 3]),
    /// What the browser measured.
    pub summary: Summary,
}

fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), ms)
}

fn opt_ms1(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.1} ms"))
}

/// "1 234 B/s (1.2 KiB/s)".
fn rate(bytes_per_s: f64) -> String {
    format!("{bytes_per_s:.0} B/s ({:.2} KiB/s)", bytes_per_s / 1024.0)
}

fn load3(l: &[f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
}

impl E2eReport {
    /// The latency target, ms: the interval plus [`TARGET_MARGIN_MS`].
    pub fn target_ms(&self) -> f64 {
        self.interval_ms as f64 + TARGET_MARGIN_MS
    }

    /// How far apart the agents are started: the interval spread evenly over them.
    pub fn stagger_ms(&self) -> u64 {
        stagger_ms(self.interval_ms, self.agents)
    }

    /// Whether the median latency is under the target.
    pub fn met(&self) -> bool {
        self.summary.p50_ms < self.target_ms()
    }

    /// The section, markers included.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let s = &self.summary;
        let iv = self.interval_ms;
        let mut o = String::new();
        let _ = writeln!(o, "{START}");
        let _ = writeln!(o, "## End to end: agent sample to browser DOM\n");
        let _ = writeln!(
            o,
            "Measured {}; load average \
             {} at the start, {} at the end.  ",
            m.summary(),
            load3(&self.load.0),
            load3(&self.load.1),
        );
        let _ = writeln!(o, "{}.\n", self.versions.join("; "));
        let _ = writeln!(o, "Reproduce:\n\n```sh\n{REPRODUCE}\n```\n");
        let gpus: Vec<String> = self.gpus.iter().map(u32::to_string).collect();
        let _ = writeln!(
            o,
            "This run: `{}` ({} agents with {} fake GPUs, {iv} ms interval, {} s window after \
             {} s warm-up).\n",
            self.command_line,
            self.agents,
            gpus.join("/"),
            self.duration_s,
            self.warmup_s,
        );
        let _ = writeln!(
            o,
            "How: a demo fleet of {} real `smon-agent` release processes on 127.0.0.2 and up \
             (node mode, {iv} ms sampling, token auth, GPUs off or 1–2 fake ones) and one real \
             `smon-aggregator` (app mode, one cluster `demo`, poll interval {iv} ms, its own host \
             left out) run as children of the benchmark. The agents are started {} ms apart, \
             so that their sampling phases spread over the interval as in a fleet started at \
             unrelated times (started together, every sample would wait the same time for the \
             hub's tick, whatever that time happened to be in that run). Once every host is up \
             and the warm-up has passed, \
             `web/ui/tests/e2e-latency.mjs` opens the home page in headless Debian chromium \
             (playwright-core) and waits for Socket.IO to upgrade to WebSocket. For the window, \
             a `MutationObserver` sees every change of a row's `data-sample-ms` (the agent's \
             sample time) and records `Date.now() - sample_ms`: every process runs on this \
             machine, on one clock. Each `overview_delta` frame carries the hub's \
             `server_time_ms`, which splits a sample's latency into sample → hub emit and emit \
             → DOM. Bytes are every Socket.IO frame the page received, from the Chrome DevTools \
             Protocol (`Network.webSocketFrameReceived`: payload plus WebSocket frame header; \
             long-polling responses with their headers, had there been any); TCP/IP overhead \
             is not counted. Main-thread time is `Performance.getMetrics` before and after \
             the window (headless, software rendering, the DevTools session attached). \
             Percentiles are nearest-rank.\n",
            self.agents,
            self.stagger_ms(),
        );
        let expected = (self.agents as f64 * s.window_s * 1000.0 / iv as f64).round();
        let mut rows: Vec<[String; 3]> = Vec::new();
        let mut row = |metric: String, value: String, target: String| {
            rows.push([metric, value, target]);
        };
        row(
            "latency, agent sample → row in the DOM, p50 / p99 / max".into(),
            format!("{} / {} / {}", ms(s.p50_ms), ms(s.p99_ms), ms(s.max_ms)),
            verdict(self.met(), &format!("p50 < {}", ms(self.target_ms()))),
        );
        row("latency, mean".into(), ms(s.mean_ms), String::new());
        row(
            "of which sample → hub emit (`server_time_ms`), p50 / p99".into(),
            format!("{} / {}", opt_ms(s.emit_p50_ms), opt_ms(s.emit_p99_ms)),
            String::new(),
        );
        row(
            "of which hub emit → DOM, p50 / p99".into(),
            format!(
                "{} / {}",
                opt_ms(s.deliver_p50_ms),
                opt_ms(s.deliver_p99_ms)
            ),
            String::new(),
        );
        row(
            "samples seen in the DOM (one per host per interval expected)".into(),
            format!(
                "{} of about {expected:.0} ({} matched to their frame)",
                s.samples, s.matched
            ),
            String::new(),
        );
        row(
            "gap between a host's consecutive samples in the DOM, p50 / max; gaps over 1.5 × \
             p50 (samples lost or overwritten)"
                .into(),
            format!(
                "{} / {}; {}",
                opt_ms(s.gap_p50_ms),
                opt_ms(s.gap_max_ms),
                s.long_gaps
            ),
            String::new(),
        );
        row(
            format!(
                "bytes per second one browser receives, overview of {} hosts",
                self.agents
            ),
            rate(s.bytes_per_s),
            String::new(),
        );
        row(
            "of which Socket.IO payload".into(),
            rate(s.payload_bytes_per_s),
            String::new(),
        );
        row(
            "WebSocket frames per second".into(),
            format!("{:.2}", s.frames_per_s),
            String::new(),
        );
        row(
            "`overview_delta` frames, mean size".into(),
            format!("{} frames, {:.0} B", s.delta_frames, s.mean_delta_bytes),
            String::new(),
        );
        row(
            "long-polling bytes in the window".into(),
            format!("{:.0} B (transport: {})", s.polling_bytes, s.transport),
            String::new(),
        );
        row(
            "DOM mutation records per second".into(),
            format!("{:.1}", s.dom_updates as f64 / s.window_s.max(f64::EPSILON)),
            String::new(),
        );
        row(
            "page main thread, ms per second: script / style + layout / all tasks".into(),
            format!(
                "{} / {} / {}",
                opt_ms1(s.script_ms_per_s),
                opt_ms1(s.style_ms_per_s.zip(s.layout_ms_per_s).map(|(a, b)| a + b)),
                opt_ms1(s.task_ms_per_s),
            ),
            String::new(),
        );
        let _ = writeln!(o, "| metric | value | target |");
        let _ = writeln!(o, "|---|---|---|");
        for r in &rows {
            let _ = writeln!(o, "| {} | {} | {} |", r[0], r[1], r[2]);
        }
        let _ = writeln!(
            o,
            "\nTarget: p50 latency below interval + {TARGET_MARGIN_MS:.0} ms ({}): {}, **{}**.\n",
            ms(self.target_ms()),
            ms(s.p50_ms),
            if self.met() { "met" } else { "missed" }
        );
        let _ = writeln!(
            o,
            "Why it is what it is: the agent pushes each sample to the aggregator as it is \
             taken (a gRPC `Watch` stream), but the hub sends `overview_delta` once per \
             interval on its own tick, which is not in step with the agents' clocks, so a \
             sample waits for the next tick: on average half an interval, at most one \
             (sample → hub emit above, p50 {}). Delivery over the WebSocket and the DOM \
             update add only the emit → DOM part (p50 {}).",
            opt_ms(s.emit_p50_ms),
            opt_ms(s.deliver_p50_ms)
        );
        let _ = writeln!(o, "{END}");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"samples":300,"p50_ms":512,"p99_ms":1003,"max_ms":1010,"mean_ms":508.4,
        "emit_p50_ms":505,"emit_p99_ms":995,"deliver_p50_ms":4,"deliver_p99_ms":9,"matched":298,
        "gap_p50_ms":1000,"gap_max_ms":2001,"long_gaps":2,
        "bytes_per_s":3210.4,"payload_bytes_per_s":3190,"frames_per_s":1.03,"delta_frames":60,
        "mean_delta_bytes":3150,"polling_bytes":0,"dom_updates":1800,"script_ms_per_s":2.5,
        "task_ms_per_s":6.1,"layout_ms_per_s":0.5,"style_ms_per_s":0.8,"window_s":60.01,"hosts":5,"transport":"websocket"}"#;

    fn report(summary: Summary) -> E2eReport {
        E2eReport {
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                memory_bytes: 4 << 30,
                kernel: "6.1.0".into(),
                os: "Debian GNU/Linux 12 (bookworm)".into(),
                date: "2024-01-01 00:00 UTC".into(),
            },
            command_line: "smon-bench e2e".into(),
            versions: vec!["smon-agent 0.1.0".into(), "Chromium 120".into()],
            agents: 5,
            gpus: vec![0, 1, 2, 0, 1],
            interval_ms: 1000,
            duration_s: 60,
            warmup_s: 5,
            load: ([0.5, 0.4, 0.3], [0.7, 0.5, 0.3]),
            summary,
        }
    }

    #[test]
    fn parses_the_scripts_summary() {
        let s = Summary::parse(JSON).expect("parsed");
        assert_eq!((s.samples, s.matched, s.delta_frames), (300, 298, 60));
        assert_eq!(s.hosts, 5);
        assert_eq!((s.p50_ms, s.p99_ms), (512.0, 1003.0));
        assert_eq!(s.deliver_p50_ms, Some(4.0));
        assert_eq!(s.transport, "websocket");

        let null_split = JSON.replace(r#""emit_p50_ms":505"#, r#""emit_p50_ms":null"#);
        assert_eq!(
            Summary::parse(&null_split).expect("parsed").emit_p50_ms,
            None
        );

        let err = Summary::parse(&JSON.replace(r#""p99_ms":1003,"#, ""))
            .expect_err("p99 missing")
            .to_string();
        assert!(err.contains("'p99_ms'"), "{err}");
        let err = Summary::parse(&JSON.replace(r#""samples":300"#, r#""samples":2.5"#))
            .expect_err("not a count")
            .to_string();
        assert!(err.contains("'samples'"), "{err}");
        assert!(Summary::parse("FAIL").is_err());
    }

    #[test]
    fn table_states_the_verdict() {
        let text = report(Summary::parse(JSON).expect("parsed")).markdown();
        assert!(
            text.starts_with(START) && text.trim_end().ends_with(END),
            "{text}"
        );
        assert!(text.contains(REPRODUCE), "{text}");
        assert!(
            text.contains("| 512 ms / 1003 ms / 1010 ms | p50 < 1200 ms: **met** |"),
            "{text}"
        );
        assert!(text.contains("| 300 of about 300 (298 matched"), "{text}");
        assert!(text.contains("| 3210 B/s (3.14 KiB/s) |"), "{text}");
        assert!(text.contains("5 agents with 0/1/2/0/1 fake GPUs"), "{text}");
        assert!(text.contains("(1200 ms): 512 ms, **met**"), "{text}");
        assert!(text.contains("| 1000 ms / 2001 ms; 2 |"), "{text}");
        assert!(text.contains("| 2.5 ms / 1.3 ms / 6.1 ms |"), "{text}");
        assert!(text.contains("started 200 ms apart"), "{text}");

        let slow = JSON.replace(r#""p50_ms":512"#, r#""p50_ms":1250"#);
        let text = report(Summary::parse(&slow).expect("parsed")).markdown();
        assert!(text.contains("p50 < 1200 ms: **missed**"), "{text}");
        assert!(text.contains("**missed**.\n"), "{text}");
    }
}
