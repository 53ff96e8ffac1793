//! Who each simulated host is: its name, cluster, role, hardware, disks, network interfaces,
//! GPUs and logged-in users. Drawn once from the seed and the host's index, so the same seed
//! always gives the same fleet; nothing here changes while the simulator runs.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::Arc;

use smon_proto::{HostInfo, Session};

use crate::config::SimConfig;
use crate::procs::{ProcTable, TableKey};
use crate::rng::{Rng, hash2};

/// Sampling phases per interval: host `i` samples in phase `i % SLOTS`, so that thousands of
/// hosts do not all answer in the same millisecond (real agents start at different times).
pub const SLOTS: usize = 10;

/// What a host is for; decides its size, its disks, its processes and its GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A GPU training node.
    Gpu,
    /// A CPU batch node.
    Compute,
    /// A web front end.
    Web,
    /// A database server.
    Db,
    /// A file server.
    Storage,
    /// A login node with interactive users.
    Login,
}

impl Role {
    /// The tag written into the aggregator config, and the host-name prefix.
    pub fn tag(self) -> &'static str {
        match self {
            Role::Gpu => "gpu",
            Role::Compute => "cpu",
            Role::Web => "web",
            Role::Db => "db",
            Role::Storage => "nas",
            Role::Login => "login",
        }
    }
}

/// A GPU product.
#[derive(Debug)]
pub struct GpuModel {
    /// Product name as NVML reports it.
    pub name: &'static str,
    /// Memory size.
    pub memory_bytes: u64,
    /// Enforced power limit.
    pub power_limit_mw: u32,
    /// Power draw when idle.
    pub idle_mw: u32,
    /// Whether the card has a fan (SXM and passive cards report none).
    pub has_fan: bool,
}

const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// The GPU products hosts are drawn from.
pub static GPU_MODELS: [GpuModel; 5] = [
    GpuModel {
        name: "NVIDIA H100 80GB HBM3",
        memory_bytes: 80 * GIB,
        power_limit_mw: 700_000,
        idle_mw: 70_000,
        has_fan: false,
    },
    GpuModel {
        name: "NVIDIA A100-SXM4-40GB",
        memory_bytes: 40 * GIB,
        power_limit_mw: 400_000,
        idle_mw: 52_000,
        has_fan: false,
    },
    GpuModel {
        name: "NVIDIA L40S",
        memory_bytes: 48 * GIB,
        power_limit_mw: 350_000,
        idle_mw: 35_000,
        has_fan: false,
    },
    GpuModel {
        name: "NVIDIA RTX A6000",
        memory_bytes: 48 * GIB,
        power_limit_mw: 300_000,
        idle_mw: 22_000,
        has_fan: true,
    },
    GpuModel {
        name: "Tesla T4",
        memory_bytes: 16 * GIB,
        power_limit_mw: 70_000,
        idle_mw: 10_000,
        has_fan: false,
    },
];

/// A mounted filesystem.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    /// Block device or source.
    pub device: String,
    /// Filesystem type.
    pub fs_type: &'static str,
    /// Mount point.
    pub mount_point: String,
    /// Size.
    pub total_bytes: u64,
    /// Mounted read-only.
    pub read_only: bool,
    /// Whether the device has I/O counters (a network filesystem has none).
    pub has_io: bool,
    /// Fill level at start, 0-1.
    pub used_frac: f32,
    /// Typical I/O rate in bytes per second.
    pub io_bytes_per_s: f32,
}

/// A network interface.
#[derive(Debug, Clone)]
pub struct NicSpec {
    /// Interface name.
    pub name: String,
    /// MAC address (empty for InfiniBand).
    pub mac: String,
    /// Addresses with prefix length.
    pub addresses: Vec<String>,
    /// Typical traffic in bytes per second.
    pub bytes_per_s: f32,
}

/// A GPU of a host.
#[derive(Debug, Clone)]
pub struct GpuSpec {
    /// Its product.
    pub model: &'static GpuModel,
    /// Stable UUID.
    pub uuid: String,
}

/// Everything fixed about one simulated host.
#[derive(Debug)]
pub struct Profile {
    /// Cluster name.
    pub cluster: String,
    /// Host name in its cluster (the aggregator config's `name`).
    pub name: String,
    /// Where its agent listens.
    pub addr: SocketAddrV4,
    /// What it is for.
    pub role: Role,
    /// Sampling phase, `0..SLOTS`.
    pub slot: usize,
    /// Seed of its random walks.
    pub seed: u64,
    /// The answer of `GetInfo`.
    pub info: HostInfo,
    /// Base clock of the CPU.
    pub base_mhz: u32,
    /// Highest boost clock.
    pub boost_mhz: u32,
    /// CPU sockets (one package temperature sensor each).
    pub sockets: u32,
    /// Long-run mean CPU use, 0-1.
    pub base_load: f32,
    /// Long-run mean memory use, 0-1.
    pub base_mem: f32,
    /// Filesystems.
    pub disks: Vec<DiskSpec>,
    /// Network interfaces.
    pub nics: Vec<NicSpec>,
    /// GPUs.
    pub gpus: Vec<GpuSpec>,
    /// Logged-in users.
    pub sessions: Vec<Session>,
    /// Its process list, shared with every host of the same kind.
    pub procs: Arc<ProcTable>,
    /// Added to the pids of processes started after boot, so hosts differ.
    pub pid_base: u32,
}

const CLUSTER_WORDS: [&str; 16] = [
    "atlas", "boreal", "cygnus", "draco", "eridan", "fornax", "gemini", "hydra", "indus", "lyra",
    "mensa", "norma", "orion", "pavo", "sagitta", "vela",
];

/// (name, version, kernel, root filesystem type).
const OSES: [(&str, &str, &str, &str); 4] = [
    ("Debian GNU/Linux", "12", "6.1.0-18-amd64", "ext4"),
    ("Ubuntu", "22.04", "5.15.0-105-generic", "ext4"),
    ("Ubuntu", "24.04", "6.8.0-31-generic", "ext4"),
    ("Rocky Linux", "9.3", "5.14.0-362.24.1.el9_3.x86_64", "xfs"),
];

/// (brand, base MHz, boost MHz).
const CPUS: [(&str, u32, u32); 6] = [
    ("AMD EPYC 7B13 64-Core Processor", 2450, 3500),
    ("AMD EPYC 9654 96-Core Processor", 2400, 3700),
    ("Intel(R) Xeon(R) Platinum 8480+", 2000, 3800),
    ("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 2000, 3200),
    ("Intel(R) Xeon(R) E-2388G CPU @ 3.20GHz", 3200, 5100),
    ("AMD EPYC 7313P 16-Core Processor", 3000, 3700),
];

/// People who log in (login nodes have the first few of them).
pub const USERS: [&str; 16] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil",
];

const MAC_VENDORS: [&str; 3] = ["3c:ec:ef", "b8:ce:f6", "00:25:90"];

fn mac(r: &mut Rng) -> String {
    let b = r.next_u64().to_le_bytes();
    format!(
        "{}:{:02x}:{:02x}:{:02x}",
        r.pick(&MAC_VENDORS),
        b[0],
        b[1],
        b[2]
    )
}

fn gpu_uuid(r: &mut Rng) -> String {
    let a = r.next_u64();
    let b = r.next_u64();
    format!(
        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Cluster number `ci`'s name, e.g. `orion-03`.
pub fn cluster_name(seed: u64, ci: u32) -> String {
    let w =
        CLUSTER_WORDS[(hash2(seed, u64::from(ci) + 0xC1) % CLUSTER_WORDS.len() as u64) as usize];
    format!("{w}-{ci:02}")
}

/// Builds every host's profile; hosts of the same kind share one process table.
pub fn build_all(cfg: &SimConfig, now_ms: u64) -> Vec<Profile> {
    let mut tables: HashMap<TableKey, Arc<ProcTable>> = HashMap::new();
    (0..cfg.agents)
        .filter_map(|i| Some((i, cfg.addr(i)?)))
        .map(|(i, addr)| build(cfg, i, addr, now_ms, &mut tables))
        .collect()
}

fn build(
    cfg: &SimConfig,
    i: u32,
    addr: SocketAddrV4,
    now_ms: u64,
    tables: &mut HashMap<TableKey, Arc<ProcTable>>,
) -> Profile {
    let seed = hash2(cfg.seed, u64::from(i));
    let mut r = Rng::new(seed);
    let ci = i / cfg.hosts_per_cluster;
    let j = i % cfg.hosts_per_cluster;
    let cluster = cluster_name(cfg.seed, ci);
    // One OS per cluster, as clusters are usually installed alike.
    let (os_name, os_version, kernel, root_fs) =
        OSES[(hash2(cfg.seed, u64::from(ci)) % OSES.len() as u64) as usize];

    let roll = r.unit();
    let mut role = match roll {
        x if x < 0.30 => Role::Gpu,
        x if x < 0.55 => Role::Compute,
        x if x < 0.70 => Role::Web,
        x if x < 0.80 => Role::Db,
        x if x < 0.90 => Role::Storage,
        _ => Role::Login,
    };
    if role == Role::Gpu && cfg.max_gpus == 0 {
        role = Role::Compute;
    }
    let gpu_count = match role {
        Role::Gpu => {
            let fits: Vec<u32> = [1, 2, 4, 8, 16]
                .into_iter()
                .filter(|&n| n <= cfg.max_gpus)
                .collect();
            *r.pick(&fits)
        }
        Role::Login if cfg.max_gpus > 0 && r.chance(0.3) => 1,
        _ => 0,
    };
    let cores: u32 = *r.pick(match role {
        Role::Gpu => &[32, 48, 64, 96, 128][..],
        Role::Compute => &[16, 32, 48, 64, 96, 128],
        Role::Web => &[2, 4, 8, 16],
        Role::Db => &[8, 16, 32, 64],
        Role::Storage => &[4, 8, 16, 32],
        Role::Login => &[8, 16, 32],
    });
    let gib_per_core = match role {
        Role::Gpu | Role::Db => *r.pick(&[8, 16]),
        Role::Compute | Role::Login => *r.pick(&[4, 8]),
        Role::Web | Role::Storage => *r.pick(&[2, 4]),
    };
    let memory_total = u64::from(cores) * gib_per_core * GIB;
    let swap_total = match role {
        Role::Gpu | Role::Compute => 0,
        _ => r.below(1, 9) * 2 * GIB,
    };
    let (brand, base_mhz, boost_mhz) = *r.pick(&CPUS);
    let smt = cores >= 4 && r.chance(0.8);
    let sockets = if cores >= 64 { 2 } else { 1 };
    let boot_unix_ms = now_ms.saturating_sub(r.below(3_600_000, 120 * 86_400_000));

    let name = format!("{}{:03}", role.tag(), j + 1);
    let hostname = format!("{name}.{cluster}.sim");

    let disks = disks(&mut r, role, root_fs, j);
    let nics = nics(&mut r, role, ci, j);
    let gpu_model = match role {
        Role::Login => &GPU_MODELS[3],
        _ => r.pick(&GPU_MODELS[..3]),
    };
    let gpus: Vec<GpuSpec> = (0..gpu_count)
        .map(|_| GpuSpec {
            model: gpu_model,
            uuid: gpu_uuid(&mut r),
        })
        .collect();
    let n_sessions = match role {
        Role::Login => *r.pick(&[4usize, 8, 12]),
        _ if r.chance(0.3) => r.below(1, 3) as usize,
        _ => 0,
    };
    let sessions = (0..n_sessions)
        .map(|k| {
            let login = now_ms.saturating_sub(r.below(60_000, 10 * 86_400_000));
            Session {
                user: if role == Role::Login {
                    USERS[k % USERS.len()].into()
                } else {
                    "ops".into()
                },
                terminal: format!("pts/{k}"),
                from: format!("10.20.{}.{}", r.below(0, 255), r.below(1, 255)),
                login_unix_ms: login.max(boot_unix_ms + 60_000),
                pid: r.below(3000, 400_000) as u32,
            }
        })
        .collect();
    let key = TableKey {
        role,
        cores,
        gpus: gpu_count,
        sessions: if role == Role::Login { n_sessions } else { 0 },
    };
    let procs = tables
        .entry(key)
        .or_insert_with(|| Arc::new(ProcTable::build(key)))
        .clone();

    let mut capabilities: Vec<String> = [
        "cpu",
        "memory",
        "disks",
        "network",
        "processes",
        "temperatures",
        "users",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    if gpu_count > 0 {
        capabilities.push("gpus".into());
    }
    let info = HostInfo {
        hostname,
        os_name: os_name.into(),
        os_version: os_version.into(),
        kernel_version: kernel.into(),
        arch: "x86_64".into(),
        boot_unix_ms,
        cpu_brand: brand.into(),
        cpu_logical_cores: cores,
        cpu_physical_cores: Some(if smt { cores / 2 } else { cores }),
        memory_total_bytes: memory_total,
        swap_total_bytes: swap_total,
        gpu_names: gpus.iter().map(|g| g.model.name.to_owned()).collect(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        capabilities,
        sample_interval_ms: cfg.interval_ms() as u32,
        gpu_source: if gpu_count > 0 { "fake" } else { "none" }.into(),
        gpu_status: String::new(),
        gpu_driver_version: if gpu_count > 0 { "550.54.15" } else { "" }.into(),
        cuda_driver_version: if gpu_count > 0 { "12.4" } else { "" }.into(),
    };
    let base_load = match role {
        Role::Gpu | Role::Compute => 0.35 + 0.5 * r.unit(),
        Role::Web => 0.1 + 0.4 * r.unit(),
        Role::Db => 0.15 + 0.35 * r.unit(),
        Role::Storage => 0.03 + 0.15 * r.unit(),
        Role::Login => 0.02 + 0.2 * r.unit(),
    };
    Profile {
        cluster,
        name,
        addr,
        role,
        slot: i as usize % SLOTS,
        seed,
        info,
        base_mhz,
        boost_mhz,
        sockets,
        base_load,
        base_mem: 0.2 + 0.6 * r.unit(),
        disks,
        nics,
        gpus,
        sessions,
        procs,
        pid_base: r.below(2_000, 300_000) as u32,
    }
}

fn disks(r: &mut Rng, role: Role, root_fs: &'static str, j: u32) -> Vec<DiskSpec> {
    let disk = |device: &str,
                fs_type: &'static str,
                mount: &str,
                total_bytes: u64,
                used_frac: f32,
                io: f32| DiskSpec {
        device: device.to_owned(),
        fs_type,
        mount_point: mount.to_owned(),
        total_bytes,
        read_only: false,
        has_io: true,
        used_frac,
        io_bytes_per_s: io,
    };
    let mut all = vec![disk(
        "/dev/nvme0n1p2",
        root_fs,
        "/",
        r.below(1, 8) * 256 * GIB,
        0.15 + 0.6 * r.unit(),
        2e6,
    )];
    all.push(disk(
        "/dev/nvme0n1p1",
        "vfat",
        "/boot/efi",
        512 << 20,
        0.01,
        0.0,
    ));
    match role {
        Role::Gpu | Role::Compute => all.push(disk(
            "/dev/nvme1n1",
            "xfs",
            "/scratch",
            r.below(2, 8) * 2 * TIB,
            0.1 + 0.8 * r.unit(),
            4e8,
        )),
        Role::Db => all.push(disk(
            "/dev/nvme1n1",
            "xfs",
            "/var/lib/postgresql",
            r.below(1, 5) * 2 * TIB,
            0.3 + 0.5 * r.unit(),
            1.5e8,
        )),
        Role::Storage => {
            for (k, dev) in ["sdb", "sdc", "sdd"].iter().enumerate() {
                all.push(disk(
                    &format!("/dev/{dev}"),
                    "xfs",
                    &format!("/srv/export{k}"),
                    r.below(1, 5) * 16 * TIB,
                    0.4 + 0.5 * r.unit(),
                    2e8,
                ));
            }
        }
        Role::Web | Role::Login => {}
    }
    all.push(disk(
        "/dev/nvme0n1p3",
        root_fs,
        "/home",
        r.below(1, 5) * TIB,
        0.2 + 0.6 * r.unit(),
        5e6,
    ));
    let mut nfs = disk(
        &format!("filer{:02}:/export/data", j % 3 + 1),
        "nfs4",
        "/data",
        r.below(1, 6) * 100 * TIB,
        0.5 + 0.4 * r.unit(),
        0.0,
    );
    nfs.has_io = false;
    all.push(nfs);
    let mut sw = disk("filer01:/export/sw", "nfs4", "/opt/sw", 4 * TIB, 0.62, 0.0);
    sw.has_io = false;
    sw.read_only = true;
    all.push(sw);
    // 1 to 6 filesystems: the root one always, then the others in the order above.
    let n = r.below(1, 7) as usize;
    all.truncate(n.min(all.len()));
    all
}

fn nics(r: &mut Rng, role: Role, ci: u32, j: u32) -> Vec<NicSpec> {
    let (c, a, b) = (ci % 254 + 1, j / 254, j % 254 + 1);
    let primary = if r.chance(0.5) { "eno1" } else { "ens3f0" };
    let scale = match role {
        Role::Web => 2e7,
        Role::Storage => 3e8,
        Role::Db => 5e7,
        Role::Gpu | Role::Compute => 3e7,
        Role::Login => 5e6,
    };
    let mut v = vec![NicSpec {
        name: primary.into(),
        mac: mac(r),
        addresses: vec![
            format!("10.{c}.{a}.{b}/16"),
            format!("fe80::{:x}:{:x}/64", r.below(1, 0xffff), r.below(1, 0xffff)),
        ],
        bytes_per_s: scale,
    }];
    if r.chance(0.4) {
        v.push(NicSpec {
            name: if primary == "eno1" { "eno2" } else { "ens3f1" }.into(),
            mac: mac(r),
            addresses: vec![format!("172.16.{a}.{b}/24")],
            bytes_per_s: scale * 0.2,
        });
    }
    if matches!(role, Role::Gpu | Role::Compute) {
        v.push(NicSpec {
            name: "ib0".into(),
            mac: String::new(),
            addresses: vec![format!("192.168.{}.{b}/16", (c + a) % 256)],
            bytes_per_s: if role == Role::Gpu { 2e9 } else { 3e8 },
        });
    }
    if matches!(role, Role::Web | Role::Login) && r.chance(0.5) {
        v.push(NicSpec {
            name: "docker0".into(),
            mac: mac(r),
            addresses: vec!["172.17.0.1/16".into()],
            bytes_per_s: 2e5,
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::sample;

    #[test]
    fn same_seed_same_fleet_and_sizes_in_range() {
        let cfg = SimConfig {
            agents: 500,
            hosts_per_cluster: 100,
            ..sample()
        };
        let a = build_all(&cfg, 1_700_000_000_000);
        let b = build_all(&cfg, 1_700_000_000_000);
        assert_eq!(a.len(), 500);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.name, y.name);
            assert_eq!(x.info, y.info);
        }
        let other = build_all(
            &SimConfig {
                seed: 2,
                ..cfg.clone()
            },
            1_700_000_000_000,
        );
        assert!(a.iter().zip(&other).any(|(x, y)| x.info != y.info));
        let mut ids = std::collections::HashSet::new();
        let mut gpu_hosts = 0;
        for p in &a {
            assert!(
                ids.insert(format!("{}:{}", p.cluster, p.name)),
                "{}",
                p.name
            );
            assert!((2..=128).contains(&p.info.cpu_logical_cores));
            assert!((1..=6).contains(&p.disks.len()));
            assert!(p.gpus.len() <= 8);
            assert_eq!(p.info.gpu_names.len(), p.gpus.len());
            assert!(p.procs.procs.len() >= 20, "{}", p.procs.procs.len());
            gpu_hosts += usize::from(!p.gpus.is_empty());
        }
        assert!(gpu_hosts > 50, "{gpu_hosts}");
        assert_eq!(a[0].cluster, a[99].cluster);
        assert_ne!(a[99].cluster, a[100].cluster);
    }

    #[test]
    fn no_gpus_when_none_are_allowed() {
        let cfg = SimConfig {
            agents: 200,
            max_gpus: 0,
            ..sample()
        };
        assert!(build_all(&cfg, 0).iter().all(|p| p.gpus.is_empty()));
    }
}
