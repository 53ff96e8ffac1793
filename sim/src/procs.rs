//! Process lists. A host's processes follow from its role and size, so hosts of the same kind
//! share one precomputed [`ProcTable`]; a sample only scales the table by the host's current
//! CPU and memory use (with a little per-process noise) and is built only when a caller asks
//! for the process list. Hosts without a caller asking cost nothing here.

use smon_proto::{GpuProcess, Process};

use crate::profile::{Role, USERS};
use crate::rng::{Rng, hash2, unit_of};

/// What decides a host's process table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableKey {
    /// The host's role.
    pub role: Role,
    /// Logical CPUs.
    pub cores: u32,
    /// GPUs.
    pub gpus: u32,
    /// Interactive sessions (login nodes only, else 0).
    pub sessions: usize,
}

/// One process of a table.
#[derive(Debug)]
pub struct ProcSpec {
    /// Pid; for a process started after boot (`late`), an offset added to the host's base.
    pub pid: u32,
    /// Started after boot: the pid is offset per host.
    pub late: bool,
    /// Parent pid (0: none), offset like `pid` when `ppid_late`.
    pub ppid: u32,
    /// The parent is a late process.
    pub ppid_late: bool,
    /// Owner.
    pub user: &'static str,
    /// Short name.
    pub name: String,
    /// Command line (empty for kernel threads).
    pub cmdline: String,
    /// Share of the host's CPU use (relative weight).
    pub cpu: f32,
    /// Share of the host's used memory (relative weight).
    pub mem: f32,
    /// When it started, as a fraction of the time between boot and the simulator's start.
    pub start: f32,
    /// State when not busy ("sleeping", "idle").
    pub state: &'static str,
    /// The GPU it runs on and how ("compute", "graphics", "compute+graphics").
    pub gpu: Option<(u32, &'static str)>,
    /// The supervisord program it belongs to (the program's own process or a child of it),
    /// as an index into the flattened [`crate::state::PROGRAMS`]; `None`: none.
    pub program: Option<usize>,
}

/// The process list of one kind of host.
#[derive(Debug)]
pub struct ProcTable {
    /// The processes; the last `transient` ones come and go between samples.
    pub procs: Vec<ProcSpec>,
    /// Short-lived processes at the end of `procs`.
    pub transient: usize,
    /// Per supervisord program (flattened [`crate::state::PROGRAMS`] order): the index in
    /// `procs` of its own process, and how many processes it has (itself and its children).
    pub programs: Vec<(usize, usize)>,
    cpu_sum: f32,
    mem_sum: f32,
}

/// What a sample needs to turn a table into a host's process list.
#[derive(Debug, Clone, Copy)]
pub struct RenderCtx {
    /// The host's pid offset for late processes.
    pub pid_base: u32,
    /// Boot time.
    pub boot_ms: u64,
    /// When the simulator started (late processes started before it).
    pub anchor_ms: u64,
    /// Sample time.
    pub now_ms: u64,
    /// CPU use of the whole host in percent of one core (100 x cores when all busy).
    pub core_percent: f32,
    /// Memory in use.
    pub mem_used: u64,
    /// Total memory.
    pub mem_total: u64,
    /// Per-sample noise seed.
    pub noise: u64,
    /// The supervisord program (flattened [`crate::state::PROGRAMS`] index) that is not
    /// running on this host: its processes are left out.
    pub program_down: Option<usize>,
}

type Pid = (u32, bool);
const NONE: Pid = (0, false);
const INIT: Pid = (1, false);
const KTHREADD: Pid = (2, false);

struct Builder {
    procs: Vec<ProcSpec>,
    early: u32,
    late: u32,
    rng: Rng,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        pid: Pid,
        parent: Pid,
        user: &'static str,
        name: &str,
        cmdline: String,
        cpu: f32,
        mem: f32,
        state: &'static str,
    ) -> Pid {
        let start = if pid.1 {
            0.05 + 0.95 * self.rng.unit()
        } else {
            0.0
        };
        self.procs.push(ProcSpec {
            pid: pid.0,
            late: pid.1,
            ppid: parent.0,
            ppid_late: parent.1,
            user,
            name: name.to_owned(),
            cmdline,
            cpu,
            mem,
            start,
            state,
            gpu: None,
            program: None,
        });
        pid
    }

    fn next(&mut self, late: bool) -> Pid {
        if late {
            self.late += self.rng.below(1, 9) as u32;
            (self.late, true)
        } else {
            self.early += self.rng.below(1, 4) as u32;
            (self.early, false)
        }
    }

    fn kernel(&mut self, name: String, cpu: f32) {
        let pid = self.next(false);
        self.push(
            pid,
            KTHREADD,
            "root",
            &name,
            String::new(),
            cpu,
            0.0,
            "idle",
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        parent: Pid,
        user: &'static str,
        name: &str,
        cmdline: impl Into<String>,
        cpu: f32,
        mem: f32,
        late: bool,
    ) -> Pid {
        let pid = self.next(late);
        self.push(
            pid,
            parent,
            user,
            name,
            cmdline.into(),
            cpu,
            mem,
            "sleeping",
        )
    }

    fn on_gpu(&mut self, gpu: u32, kind: &'static str) {
        if let Some(p) = self.procs.last_mut() {
            p.gpu = Some((gpu, kind));
        }
    }
}

impl ProcTable {
    /// Builds the table for one kind of host.
    pub fn build(key: TableKey) -> Self {
        let mut b = Builder {
            procs: Vec::new(),
            early: 2,
            late: 0,
            rng: Rng::new(hash2(
                u64::from(key.cores) << 8 | u64::from(key.gpus),
                key.role as u64 * 31 + key.sessions as u64,
            )),
        };
        b.push(
            INIT,
            NONE,
            "root",
            "systemd",
            "/sbin/init".into(),
            0.01,
            0.3,
            "sleeping",
        );
        b.push(
            KTHREADD,
            NONE,
            "root",
            "kthreadd",
            String::new(),
            0.0,
            0.0,
            "sleeping",
        );
        for c in 0..key.cores.min(64) {
            b.kernel(format!("migration/{c}"), 0.002);
            b.kernel(format!("ksoftirqd/{c}"), 0.01);
        }
        for k in [
            "rcu_sched",
            "rcu_gp",
            "kswapd0",
            "khugepaged",
            "kcompactd0",
            "kauditd",
            "oom_reaper",
            "writeback",
            "kblockd",
            "jbd2/nvme0n1p2-8",
            "kworker/u256:1-events_unbound",
        ] {
            b.kernel(k.to_owned(), 0.01);
        }
        b.early = (b.early + 50).max(300);
        let system: [(&str, &str, &str, f32, f32); 10] = [
            (
                "root",
                "systemd-journald",
                "/lib/systemd/systemd-journald",
                0.02,
                0.4,
            ),
            (
                "root",
                "systemd-udevd",
                "/lib/systemd/systemd-udevd",
                0.0,
                0.2,
            ),
            (
                "root",
                "systemd-logind",
                "/lib/systemd/systemd-logind",
                0.0,
                0.1,
            ),
            (
                "messagebus",
                "dbus-daemon",
                "/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only",
                0.0,
                0.1,
            ),
            ("root", "cron", "/usr/sbin/cron -f", 0.0, 0.05),
            (
                "syslog",
                "rsyslogd",
                "/usr/sbin/rsyslogd -n -iNONE",
                0.01,
                0.1,
            ),
            ("_chrony", "chronyd", "/usr/sbin/chronyd -F 1", 0.0, 0.05),
            (
                "root",
                "sshd",
                "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
                0.0,
                0.1,
            ),
            (
                "root",
                "agetty",
                "/sbin/agetty -o -p -- \\u --noclear - linux",
                0.0,
                0.02,
            ),
            (
                "smon",
                "smon-agent",
                "/usr/bin/smon-agent --config /etc/smon/config_node.json",
                0.05,
                0.2,
            ),
        ];
        let mut cron = INIT;
        let mut sshd = INIT;
        for (user, name, cmd, cpu, mem) in system {
            let pid = b.add(INIT, user, name, cmd, cpu, mem, false);
            match name {
                "cron" => cron = pid,
                "sshd" => sshd = pid,
                _ => {}
            }
        }
        match key.role {
            Role::Web => web(&mut b, key),
            Role::Db => db(&mut b, key),
            Role::Compute => compute(&mut b, key),
            Role::Gpu => gpu(&mut b, key),
            Role::Storage => storage(&mut b, key),
            Role::Login => login(&mut b, key, sshd),
        }
        let programs = supervised(&mut b);
        let transient = [
            ("sh", "/bin/sh -c /usr/lib/sysstat/debian-sa1 1 1"),
            ("sleep", "sleep 60"),
            ("logrotate", "/usr/sbin/logrotate /etc/logrotate.conf"),
            ("find", "find /tmp -mtime +7 -delete"),
        ];
        for (name, cmd) in transient {
            b.add(cron, "root", name, cmd, 0.05, 0.01, true);
        }
        let procs = b.procs;
        Self {
            cpu_sum: procs.iter().map(|p| p.cpu).sum::<f32>().max(1e-6),
            mem_sum: procs.iter().map(|p| p.mem).sum::<f32>().max(1e-6),
            transient: transient.len(),
            programs,
            procs,
        }
    }

    /// How many processes the host has in the sample with this noise seed, the program
    /// `down` (not running) left out.
    pub fn count(&self, noise: u64, down: Option<usize>) -> usize {
        let gone = down
            .and_then(|i| self.programs.get(i))
            .map_or(0, |&(_, n)| n);
        self.procs.len() - (noise % (self.transient as u64 + 1)) as usize - gone
    }

    /// CPU (percent of one core) and memory (bytes) of program `i`'s processes in a sample
    /// with `c`: their shares of the host's use as [`ProcTable::render`] gives them, without
    /// the per-process noise (what the agent sums from its latest process scan).
    pub fn program_use(&self, i: usize, c: &RenderCtx) -> (f32, u64) {
        let Some(&(at, n)) = self.programs.get(i) else {
            return (0.0, 0);
        };
        let procs = &self.procs[at..at + n];
        let cpu = c.core_percent.max(0.0) * procs.iter().map(|p| p.cpu).sum::<f32>() / self.cpu_sum;
        let mem =
            c.mem_used as f64 * f64::from(procs.iter().map(|p| p.mem).sum::<f32>() / self.mem_sum);
        ((cpu * 10.0).round() / 10.0, mem as u64)
    }

    /// The pid of program `i`'s own process on a host with this pid offset.
    pub fn program_pid(&self, i: usize, pid_base: u32) -> Option<u32> {
        let &(at, _) = self.programs.get(i)?;
        let p = &self.procs[at];
        Some(Self::pid(pid_base, p.pid, p.late))
    }

    fn pid(base: u32, pid: u32, late: bool) -> u32 {
        if late { base + pid } else { pid }
    }

    /// The host's process list for one sample, sorted by CPU use, highest first.
    pub fn render(&self, c: &RenderCtx) -> Vec<Process> {
        let n = self.procs.len() - (c.noise % (self.transient as u64 + 1)) as usize;
        let core_pct = c.core_percent.max(0.0);
        let mut out: Vec<Process> = self.procs[..n]
            .iter()
            .enumerate()
            .filter(|(_, p)| p.program.is_none() || p.program != c.program_down)
            .map(|(i, p)| {
                let h = hash2(c.noise, i as u64);
                let wobble = 0.6 + 0.8 * unit_of(h);
                let cpu = core_pct * p.cpu / self.cpu_sum * wobble;
                let mem = if p.mem > 0.0 {
                    (c.mem_used as f64 * f64::from(p.mem / self.mem_sum))
                        * (0.95 + 0.1 * f64::from(unit_of(h.rotate_left(23))))
                } else {
                    0.0
                };
                let start_ms = if p.late {
                    c.boot_ms
                        + ((c.anchor_ms.saturating_sub(c.boot_ms)) as f64 * f64::from(p.start))
                            as u64
                } else {
                    c.boot_ms + u64::from(p.pid) * 7
                };
                Process {
                    pid: Self::pid(c.pid_base, p.pid, p.late),
                    ppid: if p.ppid == 0 {
                        0
                    } else {
                        Self::pid(c.pid_base, p.ppid, p.ppid_late)
                    },
                    user: p.user.to_owned(),
                    name: p.name.clone(),
                    cmdline: p.cmdline.clone(),
                    cpu_percent: (cpu * 10.0).round() / 10.0,
                    memory_bytes: mem as u64,
                    memory_percent: if c.mem_total > 0 {
                        (mem / c.mem_total as f64 * 100.0) as f32
                    } else {
                        0.0
                    },
                    start_unix_ms: start_ms,
                    run_time_s: c.now_ms.saturating_sub(start_ms) / 1000,
                    state: if cpu >= 20.0 { "running" } else { p.state }.to_owned(),
                    // The simulated kernel threads are those without a command line.
                    kernel_thread: p.cmdline.is_empty(),
                    program: p.program.map_or_else(String::new, program_name),
                    container: String::new(),
                }
            })
            .collect();
        out.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
        out
    }

    /// The processes on GPU `index`, sharing `mem_used` of its memory.
    pub fn gpu_processes(&self, c: &RenderCtx, index: u32, mem_used: u64) -> Vec<GpuProcess> {
        let on: Vec<&ProcSpec> = self
            .procs
            .iter()
            .filter(|p| p.gpu.is_some_and(|(g, _)| g == index))
            .collect();
        let share = mem_used / on.len().max(1) as u64;
        on.into_iter()
            .map(|p| GpuProcess {
                pid: Self::pid(c.pid_base, p.pid, p.late),
                name: p.name.clone(),
                user: p.user.to_owned(),
                memory_used_bytes: Some(share),
                kind: p.gpu.map(|(_, k)| k).unwrap_or("compute").to_owned(),
            })
            .collect()
    }
}

/// `group:name` of program `i` of the flattened [`crate::state::PROGRAMS`].
pub fn program_name(i: usize) -> String {
    crate::state::PROGRAMS
        .iter()
        .flat_map(|(g, names)| names.iter().map(move |n| format!("{g}:{n}")))
        .nth(i)
        .unwrap_or_default()
}

/// supervisord and the processes of its 20 programs ([`crate::state::PROGRAMS`]), started
/// after boot: one process each, and two children of the `web:api` program (a pre-forking
/// server) and of each `web:worker-*`, marked with the program as the agent marks them (a
/// program's pid and its descendants). Returns (index of the program's process, number of its
/// processes) per program.
fn supervised(b: &mut Builder) -> Vec<(usize, usize)> {
    let sup = b.add(
        INIT,
        "root",
        "supervisord",
        "/usr/bin/python3 /usr/bin/supervisord -n -c /etc/supervisor/supervisord.conf",
        0.01,
        0.3,
        false,
    );
    let mut out = Vec::new();
    let mut i = 0;
    for (group, names) in crate::state::PROGRAMS {
        for name in names {
            let user = if group == "infra" { "root" } else { "app" };
            let (cpu, mem) = match group {
                "web" => (0.6, 1.5),
                "db" => (0.2, 1.0),
                "jobs" => (0.1, 0.5),
                _ => (0.05, 0.2),
            };
            let cmd = format!("/srv/{group}/bin/{name} --config /etc/{group}/{name}.toml");
            let at = b.procs.len();
            let leader = b.add(sup, user, name, cmd.clone(), cpu, mem, true);
            let children = if group == "web" && (*name == "api" || name.starts_with("worker")) {
                2
            } else {
                0
            };
            for _ in 0..children {
                b.add(leader, user, name, format!("{cmd} --child"), cpu, mem, true);
            }
            for p in &mut b.procs[at..] {
                p.program = Some(i);
            }
            out.push((at, 1 + children));
            i += 1;
        }
    }
    out
}

fn user_for(b: &mut Builder) -> &'static str {
    USERS[b.rng.below(0, USERS.len() as u64) as usize]
}

fn web(b: &mut Builder, key: TableKey) {
    let nginx = b.add(
        INIT,
        "root",
        "nginx",
        "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",
        0.01,
        0.1,
        false,
    );
    for _ in 0..key.cores {
        b.add(
            nginx,
            "www-data",
            "nginx",
            "nginx: worker process",
            1.0,
            0.4,
            true,
        );
    }
    let fpm = b.add(
        INIT,
        "root",
        "php-fpm8.2",
        "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",
        0.01,
        0.3,
        false,
    );
    for _ in 0..(key.cores * 2).min(48) {
        b.add(
            fpm,
            "www-data",
            "php-fpm8.2",
            "php-fpm: pool www",
            0.7,
            1.2,
            true,
        );
    }
    b.add(
        INIT,
        "redis",
        "redis-server",
        "/usr/bin/redis-server 127.0.0.1:6379",
        0.3,
        3.0,
        false,
    );
    let containerd = b.add(
        INIT,
        "root",
        "containerd",
        "/usr/bin/containerd",
        0.05,
        0.5,
        false,
    );
    b.add(
        containerd,
        "root",
        "dockerd",
        "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
        0.05,
        0.8,
        false,
    );
}

fn db(b: &mut Builder, key: TableKey) {
    let pg = b.add(
        INIT,
        "postgres",
        "postgres",
        "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main -c config_file=/etc/postgresql/15/main/postgresql.conf",
        0.05,
        8.0,
        false,
    );
    for w in [
        "checkpointer",
        "background writer",
        "walwriter",
        "autovacuum launcher",
        "logical replication launcher",
    ] {
        b.add(
            pg,
            "postgres",
            "postgres",
            format!("postgres: 15/main: {w}"),
            0.1,
            0.5,
            false,
        );
    }
    for _ in 0..(key.cores * 3).min(150) {
        let (x, y, port) = (
            b.rng.below(1, 250),
            b.rng.below(1, 250),
            b.rng.below(32768, 61000),
        );
        let state = if b.rng.chance(0.3) { "SELECT" } else { "idle" };
        let cpu = if state == "idle" { 0.05 } else { 1.0 };
        b.add(
            pg,
            "postgres",
            "postgres",
            format!("postgres: 15/main: app appdb 10.1.{x}.{y}({port}) {state}"),
            cpu,
            0.6,
            true,
        );
    }
    b.add(
        INIT,
        "postgres",
        "pgbouncer",
        "/usr/sbin/pgbouncer /etc/pgbouncer/pgbouncer.ini",
        0.1,
        0.2,
        false,
    );
}

fn slurm(b: &mut Builder) -> Pid {
    b.add(
        INIT,
        "munge",
        "munged",
        "/usr/sbin/munged --foreground",
        0.0,
        0.05,
        false,
    );
    b.add(
        INIT,
        "root",
        "slurmd",
        "/usr/sbin/slurmd --systemd",
        0.01,
        0.1,
        false,
    )
}

fn compute(b: &mut Builder, key: TableKey) {
    let slurmd = slurm(b);
    let job = b.rng.below(100_000, 999_999);
    let step = b.add(
        slurmd,
        "root",
        "slurmstepd",
        format!("slurmstepd: [{job}.0]"),
        0.01,
        0.1,
        true,
    );
    let user = user_for(b);
    for _ in 0..key.cores {
        b.add(
            step,
            user,
            "lmp",
            "/opt/sw/lammps/2Aug2023/bin/lmp -in in.lj -sf omp",
            1.0,
            1.0,
            true,
        );
    }
}

fn gpu(b: &mut Builder, key: TableKey) {
    b.add(
        INIT,
        "nvpd",
        "nvidia-persistenced",
        "/usr/bin/nvidia-persistenced --user nvpd",
        0.0,
        0.02,
        false,
    );
    if key.gpus >= 8 {
        b.add(
            INIT,
            "root",
            "nv-fabricmanager",
            "/usr/bin/nv-fabricmanager -c /usr/share/nvidia/nvswitch/fabricmanager.cfg",
            0.01,
            0.1,
            false,
        );
    }
    let slurmd = slurm(b);
    let job = b.rng.below(100_000, 999_999);
    let step = b.add(
        slurmd,
        "root",
        "slurmstepd",
        format!("slurmstepd: [{job}.0]"),
        0.01,
        0.1,
        true,
    );
    let user = user_for(b);
    let run = b.add(
        step,
        user,
        "torchrun",
        format!(
            "/opt/conda/bin/python3 /opt/conda/bin/torchrun --nproc_per_node={} train.py --config configs/llm-7b.yaml",
            key.gpus
        ),
        0.05,
        0.5,
        true,
    );
    for g in 0..key.gpus {
        let cmd = format!(
            "/opt/conda/bin/python3 -u train.py --config configs/llm-7b.yaml --local_rank={g}"
        );
        let rank = b.add(run, user, "python3", cmd.clone(), 1.5, 4.0, true);
        b.on_gpu(g, "compute");
        for _ in 0..4 {
            b.add(rank, user, "pt_data_worker", cmd.clone(), 0.4, 1.0, true);
        }
    }
}

fn storage(b: &mut Builder, key: TableKey) {
    for _ in 0..(key.cores * 4).min(64) {
        b.kernel("nfsd".into(), 0.1);
    }
    for (user, name, cmd) in [
        ("_rpc", "rpcbind", "/sbin/rpcbind -f -w"),
        ("root", "rpc.mountd", "/usr/sbin/rpc.mountd"),
        ("statd", "rpc.statd", "/sbin/rpc.statd"),
        ("root", "smartd", "/usr/sbin/smartd -n"),
    ] {
        b.add(INIT, user, name, cmd, 0.01, 0.1, false);
    }
}

fn login(b: &mut Builder, key: TableKey, sshd: Pid) {
    let work = [
        ("vim", "vim analysis.py", 0.05),
        ("htop", "htop", 0.3),
        (
            "python3",
            "python3 plot_results.py --input /data/run42",
            2.0,
        ),
        ("tmux: server", "tmux new -s main", 0.02),
    ];
    for k in 0..key.sessions {
        let user = USERS[k % USERS.len()];
        let priv_ = b.add(
            sshd,
            "root",
            "sshd",
            format!("sshd: {user} [priv]"),
            0.0,
            0.05,
            true,
        );
        let sess = b.add(
            priv_,
            user,
            "sshd",
            format!("sshd: {user}@pts/{k}"),
            0.01,
            0.05,
            true,
        );
        let bash = b.add(sess, user, "bash", "-bash", 0.0, 0.05, true);
        let (name, cmd, cpu) = work[k % work.len()];
        b.add(bash, user, name, cmd, cpu, 0.5, true);
    }
    if key.gpus > 0 {
        b.add(
            INIT,
            "root",
            "Xorg",
            "/usr/lib/xorg/Xorg :0 -nolisten tcp -auth /var/run/lightdm/root/:0",
            0.2,
            0.5,
            false,
        );
        b.on_gpu(0, "graphics");
        let user = user_for(b);
        b.add(
            INIT,
            user,
            "paraview",
            "/opt/sw/paraview/5.11/bin/paraview --state run42.pvsm",
            1.0,
            2.0,
            true,
        );
        b.on_gpu(0, "compute+graphics");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(noise: u64) -> RenderCtx {
        RenderCtx {
            pid_base: 10_000,
            boot_ms: 1_000_000,
            anchor_ms: 2_000_000,
            now_ms: 2_500_000,
            core_percent: 3200.0,
            mem_used: 64 << 30,
            mem_total: 128 << 30,
            noise,
            program_down: None,
        }
    }

    #[test]
    fn tables_are_large_enough_and_sorted_by_cpu() {
        for role in [
            Role::Gpu,
            Role::Compute,
            Role::Web,
            Role::Db,
            Role::Storage,
            Role::Login,
        ] {
            for cores in [2, 16, 128] {
                let t = ProcTable::build(TableKey {
                    role,
                    cores,
                    gpus: if role == Role::Gpu { 4 } else { 0 },
                    sessions: if role == Role::Login { 4 } else { 0 },
                });
                assert!(
                    (20..=600).contains(&t.procs.len()),
                    "{role:?} {cores}: {}",
                    t.procs.len()
                );
                let list = t.render(&ctx(3));
                assert_eq!(list.len(), t.count(3, None));
                let down = t.render(&RenderCtx {
                    program_down: Some(0),
                    ..ctx(3)
                });
                assert_eq!(down.len(), t.count(3, Some(0)));
                assert_eq!(down.len() + 3, list.len(), "web:api has 3 processes");
                assert!(
                    list.windows(2)
                        .all(|w| w[0].cpu_percent >= w[1].cpu_percent)
                );
                let total: f32 = list.iter().map(|p| p.cpu_percent).sum();
                assert!((2000.0..4500.0).contains(&total), "{role:?}: {total}");
                assert!(list.iter().any(|p| p.pid == 1 && p.ppid == 0));
                assert!(list.iter().all(|p| p.run_time_s <= 1_500));
                let pids: std::collections::HashSet<u32> = list.iter().map(|p| p.pid).collect();
                assert_eq!(pids.len(), list.len(), "pids unique");
            }
        }
    }

    #[test]
    fn gpu_processes_sit_on_their_gpu() {
        let t = ProcTable::build(TableKey {
            role: Role::Gpu,
            cores: 64,
            gpus: 8,
            sessions: 0,
        });
        let on3 = t.gpu_processes(&ctx(1), 3, 8 << 30);
        assert_eq!(on3.len(), 1);
        assert_eq!(on3[0].memory_used_bytes, Some(8 << 30));
        assert_eq!(on3[0].kind, "compute");
        assert!(t.gpu_processes(&ctx(1), 8, 1).is_empty());
    }
}
