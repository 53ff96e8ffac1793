//! What a new user tripped over in the UI, on data made to show it: a dashboard served
//! in-process on port 0 over a store that a task feeds with fixed samples of two hosts, and
//! Debian's chromium (through `web/ui/tests/browser.mjs details`) at a desktop and a phone size.
//!
//! - `lab:busy`: 2 cores, no swap, no temperature sensors, a GPU drawing 652 of 700 W, a
//!   process at 1,310 % CPU with a child and a grandchild, and 60 kernel threads (kthreadd's
//!   children at 0 B, listed first by pid as on a real host).
//! - `lab:warm`: a sensor at 70.6 °C, 312 processes, 1.5 MiB/s in and 250 KiB/s out, 4 MiB/s
//!   read and 2 MiB/s written: the optional overview columns.

use std::process::Command;
use std::time::Duration;

use smon_proto::{
    Cpu, Disk, Gpu, LoadAverage, Memory, NetInterface, Parts, Process, Snapshot, Temperature,
};
use smon_web::clock::now_ms;

use crate::fleet::{PublicServer, serve_public, spec, ui_dir};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn process(pid: u32, ppid: u32, name: &str, cpu: f32, kernel_thread: bool) -> Process {
    Process {
        pid,
        ppid,
        user: "root".into(),
        name: name.into(),
        cmdline: if kernel_thread {
            String::new()
        } else {
            format!("/usr/bin/{name}")
        },
        cpu_percent: cpu,
        memory_bytes: if kernel_thread { 0 } else { 300 * MIB },
        state: "sleeping".into(),
        kernel_thread,
        ..Default::default()
    }
}

fn base(seq: u64, cores: u32) -> Snapshot {
    Snapshot {
        seq,
        sample_unix_ms: now_ms(),
        hostname: "h".into(),
        uptime_s: 86_400,
        load: Some(LoadAverage {
            one: 1.5,
            five: 1.2,
            fifteen: 1.0,
        }),
        cpu: Some(Cpu {
            total_percent: 40.0 + (seq % 10) as f32,
            logical_cores: cores,
            per_core_percent: (0..cores).map(|c| 20.0 + 30.0 * c as f32).collect(),
            ..Default::default()
        }),
        disks: vec![Disk {
            device: "/dev/vda1".into(),
            fs_type: "ext4".into(),
            mount_point: "/".into(),
            total_bytes: 100 * GIB,
            used_bytes: 60 * GIB,
            available_bytes: 40 * GIB,
            used_percent: 60.0,
            read_bytes_per_s: Some(4 * MIB),
            write_bytes_per_s: Some(2 * MIB),
            ..Default::default()
        }],
        parts: Some(Parts {
            processes: true,
            per_core: true,
            gpu_processes: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `lab:busy`: see the module doc.
fn busy(seq: u64) -> Snapshot {
    let mut processes = vec![
        process(1, 0, "systemd", 0.1, false),
        process(2, 0, "kthreadd", 0.0, true),
    ];
    processes.extend((0..60).map(|k| process(3 + k, 2, &format!("kworker/{k}:0"), 0.0, true)));
    processes.extend([
        process(100, 1, "trainer", 1310.4, false),
        process(101, 100, "loader", 12.0, false),
        process(102, 101, "decoder", 3.0, false),
    ]);
    Snapshot {
        memory: Some(Memory {
            total_bytes: 64 * GIB,
            used_bytes: 16 * GIB,
            available_bytes: 48 * GIB,
            used_percent: 25.0,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
            swap_used_percent: 0.0,
        }),
        process_count: processes.len() as u32,
        processes,
        gpus: vec![Gpu {
            index: 0,
            uuid: "GPU-0".into(),
            name: "NVIDIA H200".into(),
            utilization_percent: Some(97),
            memory_utilization_percent: Some(60),
            memory_used_bytes: Some(100 * GIB),
            memory_total_bytes: Some(141 * GIB),
            fan_percent: None,
            temperature_celsius: Some(66),
            power_mw: Some(652_000),
            power_limit_mw: Some(700_000),
            performance_state: Some(0),
            processes: vec![],
            ..Gpu::default()
        }],
        ..base(seq, 2)
    }
}

/// `lab:warm`: see the module doc.
fn warm(seq: u64) -> Snapshot {
    Snapshot {
        memory: Some(Memory {
            total_bytes: 32 * GIB,
            used_bytes: 8 * GIB,
            available_bytes: 24 * GIB,
            used_percent: 25.0,
            swap_total_bytes: 4 * GIB,
            swap_used_bytes: GIB,
            swap_used_percent: 25.0,
        }),
        networks: vec![NetInterface {
            name: "eth0".into(),
            rx_bytes_per_s: 3 * MIB / 2,
            tx_bytes_per_s: 250 * 1024,
            ..Default::default()
        }],
        temperatures: vec![Temperature {
            label: "Package id 0".into(),
            celsius: Some(70.6),
            max_celsius: Some(80.0),
            critical_celsius: Some(100.0),
        }],
        process_count: 312,
        processes: vec![process(1, 0, "systemd", 0.2, false)],
        ..base(seq, 16)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_show_columns_cards_and_processes_at_desktop_and_phone_sizes() {
    let _turn = crate::ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let PublicServer {
        addr,
        web,
        stop,
        server,
    } = serve_public(dir.path(), vec![spec("lab", "busy"), spec("lab", "warm")]).await;
    let feeder = {
        let (web, stop) = (web.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seq = 0;
            while !stop.is_cancelled() {
                seq += 1;
                {
                    let mut st = web.store();
                    st.apply("lab:busy", busy(seq), now_ms());
                    st.apply("lab:warm", warm(seq), now_ms());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let url = format!("http://{addr}/");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(ui_dir().join("tests/browser.mjs"))
            .args(["details", &url, "lab:busy", "lab:warm"])
            .current_dir(ui_dir())
            .output()
            .expect("node is installed")
    })
    .await
    .expect("browser");
    stop.cancel();
    let _ = feeder.await;
    let _ = server.await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok: details:"),
        "browser.mjs details failed:\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
