//! `smon-agent query`: a small gRPC client for scripts and for checking an agent by hand
//! (one snapshot, or a live stream with `--watch`), and the plain-text rendering shared with
//! `--once`.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use smon_proto::agent_client::AgentClient;
use smon_proto::{GetSnapshotRequest, Parts, Snapshot, WatchRequest};
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

/// Runs the query, printing to stdout.
pub async fn run(q: Query) -> anyhow::Result<()> {
    let uri = format!("http://{}", q.addr);
    let channel = Endpoint::from_shared(uri.clone())
        .with_context(|| format!("'{}' is not a valid address", q.addr))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {uri}"))?;
    let auth: Option<MetadataValue<_>> = match &q.token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .context("the token has characters not allowed in a header")?,
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
    let print = |s: &Snapshot| -> anyhow::Result<()> {
        if q.json {
            println!("{}", serde_json::to_string(s)?);
        } else {
            print!("{}", render(s));
        }
        Ok(())
    };
    if q.watch {
        let mut stream = client
            .watch(WatchRequest {
                parts: Some(parts),
                min_interval_ms: 0,
            })
            .await
            .context("Watch failed")?
            .into_inner();
        while let Some(s) = stream.next().await {
            print(&s.context("the stream broke")?)?;
        }
    } else {
        let s = client
            .get_snapshot(GetSnapshotRequest { parts: Some(parts) })
            .await
            .context("GetSnapshot failed")?;
        print(s.get_ref())?;
    }
    Ok(())
}

fn mib(b: u64) -> u64 {
    b >> 20
}

/// A snapshot as a few lines of text.
pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let cpu = s.cpu.clone().unwrap_or_default();
    let mem = s.memory.unwrap_or_default();
    let load = s.load.unwrap_or_default();
    let _ = writeln!(
        o,
        "#{} {}  up {} s  {} processes",
        s.seq, s.hostname, s.uptime_s, s.process_count
    );
    let _ = writeln!(
        o,
        "  cpu     {:5.1} % of {} cores  load {:.2} {:.2} {:.2}",
        cpu.total_percent, cpu.logical_cores, load.one, load.five, load.fifteen
    );
    let _ = writeln!(
        o,
        "  memory  {:5.1} % of {} MiB  swap {:.1} % of {} MiB",
        mem.used_percent,
        mib(mem.total_bytes),
        mem.swap_used_percent,
        mib(mem.swap_total_bytes)
    );
    for d in &s.disks {
        let _ = writeln!(
            o,
            "  disk    {:5.1} % of {} MiB  {} ({}) on {}{}",
            d.used_percent,
            mib(d.total_bytes),
            d.device,
            d.fs_type,
            d.mount_point,
            if d.unresponsive { "  UNRESPONSIVE" } else { "" }
        );
    }
    for n in &s.networks {
        let _ = writeln!(
            o,
            "  net     {}  rx {} B/s  tx {} B/s",
            n.name, n.rx_bytes_per_s, n.tx_bytes_per_s
        );
    }
    for u in &s.sessions {
        let from = if u.from.is_empty() {
            "local"
        } else {
            u.from.as_str()
        };
        let _ = writeln!(o, "  user    {} on {} from {}", u.user, u.terminal, from);
    }
    for g in &s.gpus {
        let pct = |v: Option<u32>| v.map_or("-".to_owned(), |v| format!("{v} %"));
        let _ = writeln!(
            o,
            "  gpu {}   {}  util {}  mem {}/{} MiB  temp {}  power {} W",
            g.index,
            g.name,
            pct(g.utilization_percent),
            g.memory_used_bytes.map_or(0, mib),
            g.memory_total_bytes.map_or(0, mib),
            g.temperature_celsius
                .map_or("-".to_owned(), |t| format!("{t} C")),
            g.power_mw
                .map_or("-".to_owned(), |p| format!("{:.0}", f64::from(p) / 1000.0)),
        );
    }
    for p in s.processes.iter().take(10) {
        let _ = writeln!(
            o,
            "  proc    {:>7} {:<10} {:5.1} % {:>6} MiB  {}",
            p.pid,
            p.user,
            p.cpu_percent,
            mib(p.memory_bytes),
            p.cmdline
        );
    }
    for e in &s.errors {
        let _ = writeln!(o, "  error   {e}");
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
            text.contains("util 40 %") && text.contains("temp -") && text.contains("power - W"),
            "{text}"
        );
    }
}
