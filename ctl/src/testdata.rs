//! Test data: fleet rows and snapshots as a real aggregator and agent send them.

use smon_api::wire::HostRow;
use smon_proto::{
    Cpu, Disk, Gpu, GpuProcess, LoadAverage, Memory, NetInterface, Process, Snapshot,
};

/// A row of host `id` (`cluster:name`), up, with this CPU and memory use. From JSON, as the
/// client reads it, so that fields added to the wire later need no change here.
pub(crate) fn row(id: &str, cpu: f32, mem: f32) -> HostRow {
    let (cluster, name) = id.split_once(':').unwrap_or(("c", id));
    serde_json::from_value(serde_json::json!({
        "id": id, "cluster": cluster, "name": name, "address": "10.0.0.1:50051", "tags": [],
        "status": "up", "status_since_ms": 0, "gpus": [], "spark": [],
        "cpu_percent": cpu, "mem_percent": mem,
    }))
    .expect("a host row")
}

/// A big host: 251.9 GiB of memory (258019 MiB), 4 cores, two disks, a network interface, an
/// H200 with a process, and four processes.
pub(crate) fn snapshot() -> Snapshot {
    let proc_ = |pid: u32, user: &str, cpu: f32, mem_mib: u64, cmd: &str| Process {
        pid,
        user: user.into(),
        name: cmd.split(' ').next().unwrap_or_default().into(),
        cmdline: cmd.into(),
        cpu_percent: cpu,
        memory_bytes: mem_mib << 20,
        memory_percent: (mem_mib as f32) / 258_019.0 * 100.0,
        ..Default::default()
    };
    Snapshot {
        seq: 7,
        hostname: "gpu-node-1".into(),
        uptime_s: 3 * 86_400 + 3600,
        load: Some(LoadAverage {
            one: 1.25,
            five: 0.5,
            fifteen: 0.25,
        }),
        cpu: Some(Cpu {
            total_percent: 37.5,
            logical_cores: 4,
            per_core_percent: vec![10.0, 95.0, 50.0, 0.0],
            ..Default::default()
        }),
        memory: Some(Memory {
            total_bytes: 258_019 << 20,
            used_bytes: 64 << 30,
            used_percent: 25.4,
            swap_total_bytes: 0,
            ..Default::default()
        }),
        disks: vec![
            Disk {
                device: "/dev/nvme0n1p2".into(),
                fs_type: "ext4".into(),
                mount_point: "/".into(),
                total_bytes: 1 << 40,
                used_bytes: 700 << 30,
                used_percent: 68.4,
                read_bytes_per_s: Some(3 << 20),
                write_bytes_per_s: Some(512 << 10),
                ..Default::default()
            },
            Disk {
                mount_point: "/mnt/nfs".into(),
                unresponsive: true,
                ..Default::default()
            },
        ],
        networks: vec![NetInterface {
            name: "eth0".into(),
            rx_bytes_per_s: 12 << 20,
            tx_bytes_per_s: 1536,
            ..Default::default()
        }],
        process_count: 312,
        processes: vec![
            proc_(101, "alice", 5.0, 40_000, "python train.py"),
            proc_(202, "bob", 1310.5, 100, "stress --cpu 14"),
            proc_(303, "root", 0.0, 2, "sshd: alice"),
            proc_(404, "carol", 20.0, 9_000, "postgres: writer"),
        ],
        gpus: vec![Gpu {
            index: 0,
            name: "NVIDIA H200".into(),
            utilization_percent: Some(87),
            memory_used_bytes: Some(80 << 30),
            memory_total_bytes: Some(143_771 << 20),
            temperature_celsius: Some(64),
            power_mw: Some(652_000),
            power_limit_mw: Some(700_000),
            processes: vec![GpuProcess {
                pid: 101,
                name: "python".into(),
                user: "alice".into(),
                memory_used_bytes: Some(79 << 30),
                kind: "compute".into(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}
