//! `smon-agent query`: a small gRPC client for scripts and for checking an agent by hand
//! (one snapshot, or a live stream with `--watch`), and the plain-text rendering shared with
//! `--once`.

use std::fmt::Write as _;
use std::time::Duration;

use smon_proto::agent_client::AgentClient;
use smon_proto::{GetSnapshotRequest, Parts, Snapshot, WatchRequest};
use smon_runtime::cli::{self, Output, human_bytes, terminal_safe as clean};
use tokio_stream::StreamExt as _;
use tonic::metadata::MetadataValue;
use tonic::transport::Endpoint;

/// What to ask the agent for.
#[derive(Debug, Clone)]
pub struct Query {
    /// Agent address, `host:port`.
    pub addr: String,
    /// Bearer token (none for an agent with `"auth": "none"`).
    pub token: Option<String>,
    /// Stream samples until interrupted instead of printing one.
    pub watch: bool,
    /// Ask for every part (processes, per-core, GPU processes).
    pub detail: bool,
    /// Print JSON (one object per line) instead of text.
    pub json: bool,
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The address is not one.
    #[error("'{addr}' is not a valid address")]
    Address {
        /// As given.
        addr: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The agent could not be reached.
    #[error("cannot connect to {uri}")]
    Connect {
        /// Where.
        uri: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The token cannot go in a header.
    #[error("the token has characters not allowed in a header")]
    Token,
    /// The agent refused or failed the call.
    #[error("{call} failed: {}", .status.message())]
    Call {
        /// `GetSnapshot` or `Watch`.
        call: &'static str,
        /// The agent's answer.
        status: tonic::Status,
    },
    /// A live stream ended with an error.
    #[error("the stream broke: {}", .0.message())]
    Stream(tonic::Status),
    /// A sample could not be written as JSON.
    #[error("cannot write JSON")]
    Json(#[from] serde_json::Error),
    /// Stdout failed (other than its reader leaving, which ends the output quietly).
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
}

/// Runs the query, printing to stdout.
pub async fn run(q: Query) -> Result<(), QueryError> {
    let uri = format!("http://{}", q.addr);
    let channel = Endpoint::from_shared(uri.clone())
        .map_err(|source| QueryError::Address {
            addr: q.addr.clone(),
            source,
        })?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|source| QueryError::Connect {
            uri: uri.clone(),
            source,
        })?;
    let auth: Option<MetadataValue<_>> = match &q.token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .map_err(|_| QueryError::Token)?,
        ),
        None => None,
    };
    let mut client = AgentClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
        if let Some(v) = &auth {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    });
    let parts = if q.detail {
        Parts::DETAIL
    } else {
        Parts::SUMMARY
    };
    // On a terminal, `--watch` redraws in place (cursor home, clear the screen) instead of
    // appending a block per sample; into a pipe or a file every sample is appended, as scripts
    // want. A full-screen view with sorting is `smonctl top`'s job, not the lean agent's.
    let redraw = q.watch && !q.json && std::io::IsTerminal::is_terminal(&std::io::stdout());
    // A reader that leaves (`| head`) ends the output: the query stops, status 0.
    let print = |s: &Snapshot| -> Result<Output, QueryError> {
        let text = if q.json {
            serde_json::to_string(s)? + "\n"
        } else if redraw {
            format!("{CLEAR}{}", render(s))
        } else {
            render(s)
        };
        cli::print(&text).map_err(QueryError::Stdout)
    };
    if q.watch {
        let mut stream = client
            .watch(WatchRequest {
                parts: Some(parts),
                min_interval_ms: 0,
            })
            .await
            .map_err(|status| QueryError::Call {
                call: "Watch",
                status,
            })?
            .into_inner();
        while let Some(s) = stream.next().await {
            if print(&s.map_err(QueryError::Stream)?)? == Output::Closed {
                break;
            }
        }
    } else {
        let s = client
            .get_snapshot(GetSnapshotRequest { parts: Some(parts) })
            .await
            .map_err(|status| QueryError::Call {
                call: "GetSnapshot",
                status,
            })?;
        print(s.get_ref())?;
    }
    Ok(())
}

/// Moves the cursor home and clears the screen (ANSI; no terminal library in the agent).
const CLEAR: &str = "\x1b[H\x1b[2J";

/// A snapshot as a few lines of text.
pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let cpu = s.cpu.clone().unwrap_or_default();
    let mem = s.memory.unwrap_or_default();
    let load = s.load.unwrap_or_default();
    let _ = writeln!(
        o,
        "#{} {}  up {} s  {} processes",
        s.seq,
        clean(&s.hostname),
        s.uptime_s,
        s.process_count
    );
    let _ = writeln!(
        o,
        "  cpu     {:5.1} % of {} cores  load {:.2} {:.2} {:.2}",
        cpu.total_percent, cpu.logical_cores, load.one, load.five, load.fifteen
    );
    let _ = writeln!(
        o,
        "  memory  {:5.1} % of {}  swap {:.1} % of {}",
        mem.used_percent,
        human_bytes(mem.total_bytes),
        mem.swap_used_percent,
        human_bytes(mem.swap_total_bytes)
    );
    for d in &s.disks {
        let _ = writeln!(
            o,
            "  disk    {:5.1} % of {}  {} ({}) on {}{}",
            d.used_percent,
            human_bytes(d.total_bytes),
            clean(&d.device),
            clean(&d.fs_type),
            clean(&d.mount_point),
            if d.unresponsive { "  UNRESPONSIVE" } else { "" }
        );
    }
    for n in &s.networks {
        let _ = writeln!(
            o,
            "  net     {}  rx {}/s  tx {}/s",
            clean(&n.name),
            human_bytes(n.rx_bytes_per_s),
            human_bytes(n.tx_bytes_per_s)
        );
    }
    for u in &s.sessions {
        let from = if u.from.is_empty() {
            "local"
        } else {
            u.from.as_str()
        };
        let _ = writeln!(
            o,
            "  user    {} on {} from {}",
            clean(&u.user),
            clean(&u.terminal),
            clean(from)
        );
    }
    for g in &s.gpus {
        let pct = |v: Option<u32>| v.map_or("-".to_owned(), |v| format!("{v} %"));
        let _ = writeln!(
            o,
            "  gpu {}   {}  util {}  mem {} / {}  temp {}  power {} W",
            g.index,
            clean(&g.name),
            pct(g.utilization_percent),
            g.memory_used_bytes.map_or("-".to_owned(), human_bytes),
            g.memory_total_bytes.map_or("-".to_owned(), human_bytes),
            g.temperature_celsius
                .map_or("-".to_owned(), |t| format!("{t} C")),
            g.power_mw
                .map_or("-".to_owned(), |p| format!("{:.0}", f64::from(p) / 1000.0)),
        );
    }
    for p in s.processes.iter().take(10) {
        let _ = writeln!(
            o,
            "  proc    {:>7} {:<10} {:5.1} % {:>10}  {}",
            p.pid,
            clean(&p.user),
            p.cpu_percent,
            human_bytes(p.memory_bytes),
            clean(&p.cmdline)
        );
    }
    for e in &s.errors {
        let _ = writeln!(o, "  error   {}", clean(e));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use smon_proto::{Disk, Gpu};

    #[test]
    fn renders_absent_fields_as_dashes() {
        let s = Snapshot {
            seq: 3,
            hostname: "h1".into(),
            disks: vec![Disk {
                mount_point: "/mnt/nfs".into(),
                unresponsive: true,
                ..Default::default()
            }],
            gpus: vec![Gpu {
                index: 0,
                name: "G".into(),
                utilization_percent: Some(40),
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render(&s);
        assert!(text.starts_with("#3 h1"), "{text}");
        assert!(text.contains("/mnt/nfs  UNRESPONSIVE"), "{text}");
        assert!(
            text.contains("util 40 %")
                && text.contains("mem - / -")
                && text.contains("temp -")
                && text.contains("power - W"),
            "{text}"
        );
    }

    #[test]
    fn sizes_are_for_people() {
        let s = Snapshot {
            memory: Some(smon_proto::Memory {
                total_bytes: 258_019 << 20,
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = render(&s);
        assert!(text.contains("of 252.0 GiB  swap 0.0 % of 0 B"), "{text}");
        assert!(!text.contains("MiB"), "{text}");
    }

    #[test]
    fn remote_strings_cannot_drive_the_terminal() {
        // Found by the property tests: a process could name itself with an escape sequence.
        let s = Snapshot {
            hostname: "h1\u{1b}]0;owned\u{7}".into(),
            processes: vec![smon_proto::Process {
                cmdline: "evil\r\u{1b}[2J\u{202e}txt.exe\nfake line".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render(&s);
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            !text.contains(['\u{1b}', '\r', '\u{7}', '\u{202e}']),
            "{text:?}"
        );
        assert!(
            text.contains(r"evil\u{d}\u{1b}[2J\u{202e}txt.exe\u{a}fake line"),
            "{text}"
        );
    }
}

/// Property test of [`render`]: whatever strings and numbers a (possibly hostile) agent sends,
/// the text has one line per item and no character that a terminal acts on. Cases:
/// `PROPTEST_CASES` (256 when unset; for a long session
/// `PROPTEST_CASES=100000 cargo test -p smon-agent --lib query`).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use smon_proto::{Cpu, Disk, Gpu, Memory, NetInterface, Process, Session};

    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,12}",
            ".{0,12}",
            "[a-z\\n\\r\\t\\x1b\\x07\\x00\\x7f\\u{85}\\u{9b}\\u{202e}\\u{2066}\\[;]{0,12}",
        ]
    }

    fn float() -> impl Strategy<Value = f32> {
        prop_oneof![
            any::<f32>(),
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(-0.0),
            0f32..100.0
        ]
    }

    fn snapshot() -> impl Strategy<Value = Snapshot> {
        let disk = (text(), text(), text(), any::<u64>(), float(), any::<bool>()).prop_map(
            |(device, fs_type, mount_point, total_bytes, used_percent, unresponsive)| Disk {
                device,
                fs_type,
                mount_point,
                total_bytes,
                used_percent,
                unresponsive,
                ..Default::default()
            },
        );
        let net = (text(), any::<u64>()).prop_map(|(name, rx_bytes_per_s)| NetInterface {
            name,
            rx_bytes_per_s,
            ..Default::default()
        });
        let session = (text(), text(), text()).prop_map(|(user, terminal, from)| Session {
            user,
            terminal,
            from,
            ..Default::default()
        });
        let gpu = (
            text(),
            any::<Option<u32>>(),
            any::<Option<u64>>(),
            any::<Option<u32>>(),
        )
            .prop_map(|(name, u, m, p)| Gpu {
                name,
                utilization_percent: u,
                memory_used_bytes: m,
                memory_total_bytes: m,
                temperature_celsius: u,
                power_mw: p,
                ..Default::default()
            });
        let process = (any::<u32>(), text(), text(), float(), any::<u64>()).prop_map(
            |(pid, user, cmdline, cpu_percent, memory_bytes)| Process {
                pid,
                user,
                cmdline,
                cpu_percent,
                memory_bytes,
                ..Default::default()
            },
        );
        let vec = |n| proptest::collection::vec(text(), 0..n);
        (
            (any::<u64>(), text(), float(), any::<u64>()),
            proptest::collection::vec(disk, 0..3),
            proptest::collection::vec(net, 0..3),
            proptest::collection::vec(session, 0..3),
            proptest::collection::vec(gpu, 0..3),
            proptest::collection::vec(process, 0..14),
            vec(3),
        )
            .prop_map(
                |(
                    (seq, hostname, pct, bytes),
                    disks,
                    networks,
                    sessions,
                    gpus,
                    processes,
                    errors,
                )| {
                    Snapshot {
                        seq,
                        hostname,
                        cpu: Some(Cpu {
                            total_percent: pct,
                            ..Default::default()
                        }),
                        memory: Some(Memory {
                            total_bytes: bytes,
                            used_percent: pct,
                            ..Default::default()
                        }),
                        disks,
                        networks,
                        sessions,
                        gpus,
                        processes,
                        errors,
                        ..Default::default()
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn one_line_per_item_and_nothing_a_terminal_acts_on(s in snapshot()) {
            let text = render(&s);
            let want = 3
                + s.disks.len()
                + s.networks.len()
                + s.sessions.len()
                + s.gpus.len()
                + s.processes.len().min(10)
                + s.errors.len();
            prop_assert_eq!(text.lines().count(), want, "{}", text);
            prop_assert!(
                !text.chars().any(|c| c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c))),
                "{:?}",
                text
            );
        }
    }
}
