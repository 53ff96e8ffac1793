//! Disks on Linux: mounts from `/proc/self/mountinfo`, I/O counters from `/proc/diskstats`,
//! sizes from `statvfs`.
//!
//! `statvfs` on a hung network mount blocks forever, so it runs on a worker thread with a
//! deadline: a mount that does not answer is reported `unresponsive` with its last known sizes,
//! and is not asked again until the stuck call returns. The rest of the sample never waits on it.
//!
//! The mount table is read again only when it changed: where `<proc_root>` is this process's
//! own procfs, `mountinfo` is kept open and `poll`ed (the kernel flags it `POLLPRI` after a
//! mount or an unmount in the namespace), and read at least every [`MOUNTS_EVERY`] all the
//! same; elsewhere (a fixture tree) it is read every sample.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use smon_proto::Disk;

use crate::CollectError;
use crate::filters::DiskFilter;

/// Filesystem types that are not storage; left out unless `include_fs_types` names them.
pub const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "nfsd",
    "devfs",
    "functionfs",
    "rootfs",
];

/// The longest the mount table is kept without reading it again, even when `poll` says it has
/// not changed.
pub const MOUNTS_EVERY: Duration = Duration::from_secs(10);

/// How long one `statvfs` may take before its mount is declared unresponsive.
const STATVFS_DEADLINE: Duration = Duration::from_millis(250);

/// One line of `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Device number `major:minor` (0 major for virtual and network filesystems).
    pub dev: (u32, u32),
    /// Where it is mounted.
    pub mount_point: String,
    /// Filesystem type.
    pub fs_type: String,
    /// Mount source, e.g. `/dev/sda1` or `server:/export`.
    pub source: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Undoes the octal escapes (`\040` for a space) the kernel writes in mountinfo paths.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Three octal digits of at most `\\377`: the kernel writes no more, and a larger
        // value does not fit a byte (it stays as written).
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/<pid>/mountinfo` text. Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        let Some((maj, min)) = l[2].split_once(':') else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (maj.parse(), min.parse()) else {
            continue;
        };
        out.push(Mount {
            dev: (maj, min),
            mount_point: unescape(l[4]),
            fs_type: r[0].to_owned(),
            source: unescape(r[1]),
            // The superblock options (after the separator) say whether the filesystem itself is
            // read-only; per-mount options would call every disk read-only inside a service
            // sandbox (systemd's ProtectSystem=strict remounts the agent's view read-only).
            read_only: r.get(2).is_some_and(|o| o.split(',').any(|o| o == "ro")),
        });
    }
    out
}

/// Cumulative I/O counters of one block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoCounters {
    /// Bytes read since boot.
    pub read_bytes: u64,
    /// Bytes written since boot.
    pub write_bytes: u64,
}

/// I/O counters by device number.
pub type IoTable = HashMap<(u32, u32), IoCounters>;

/// Parses `/proc/diskstats`: device number -> counters. Sectors there are always 512 bytes.
pub fn parse_diskstats(text: &str) -> IoTable {
    let mut out = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Ok(maj), Ok(min), Ok(rd), Ok(wr)) = (
            f[0].parse(),
            f[1].parse(),
            f[5].parse::<u64>(),
            f[9].parse::<u64>(),
        ) else {
            continue;
        };
        out.insert(
            (maj, min),
            // Saturating: a corrupt or hostile line must not overflow (a panic in debug builds).
            IoCounters {
                read_bytes: rd.saturating_mul(512),
                write_bytes: wr.saturating_mul(512),
            },
        );
    }
    out
}

/// Chooses the mounts to report: drops pseudo and excluded filesystems and mounts below
/// excluded paths, and keeps one mount per block device (the shortest path), so bind mounts
/// are not counted twice.
pub fn select_mounts(mounts: Vec<Mount>, filter: &DiskFilter) -> Vec<Mount> {
    let mut chosen: Vec<Mount> = Vec::new();
    for m in mounts {
        let included = filter.include_fs_types.contains(&m.fs_type);
        if !included && PSEUDO_FS.contains(&m.fs_type.as_str()) {
            continue;
        }
        if filter.exclude_fs_types.contains(&m.fs_type) {
            continue;
        }
        if filter.exclude_mounts.iter().any(|x| {
            m.mount_point == *x
                || (m.mount_point.starts_with(x.as_str())
                    && m.mount_point[x.len()..].starts_with('/'))
        }) {
            continue;
        }
        if m.dev.0 != 0 {
            if let Some(prev) = chosen.iter_mut().find(|c| c.dev == m.dev) {
                if m.mount_point.len() < prev.mount_point.len() {
                    *prev = m;
                }
                continue;
            }
        } else if chosen.iter().any(|c| c.mount_point == m.mount_point) {
            continue;
        }
        chosen.push(m);
    }
    chosen
}

/// Sizes from one `statvfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsSize {
    /// Size of the filesystem.
    pub total: u64,
    /// Free space, including blocks reserved for root.
    pub free: u64,
    /// Space available to unprivileged users.
    pub avail: u64,
}

/// How sizes are read; tests substitute a function that hangs like a dead NFS server.
pub type StatFn = fn(&Path) -> std::io::Result<FsSize>;

/// The real `statvfs`.
pub fn statvfs(path: &Path) -> std::io::Result<FsSize> {
    let s = rustix::fs::statvfs(path)?;
    let fr = s.f_frsize;
    Ok(FsSize {
        total: s.f_blocks.saturating_mul(fr),
        free: s.f_bfree.saturating_mul(fr),
        avail: s.f_bavail.saturating_mul(fr),
    })
}

type Reply = (PathBuf, std::io::Result<FsSize>);

/// A thread that runs `statvfs` calls one at a time.
struct Worker {
    req: mpsc::Sender<PathBuf>,
    reply: mpsc::Receiver<Reply>,
}

impl Worker {
    fn spawn(stat: StatFn) -> std::io::Result<Self> {
        let (req_tx, req_rx) = mpsc::channel::<PathBuf>();
        let (rep_tx, rep_rx) = mpsc::channel::<Reply>();
        thread::Builder::new()
            .name("smon-statvfs".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                // Ends when the sampler drops the request side (also after giving up on a stuck call).
                while let Ok(p) = req_rx.recv() {
                    let r = stat(&p);
                    if rep_tx.send((p, r)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            req: req_tx,
            reply: rep_rx,
        })
    }
}

/// Disk collector state kept between samples.
pub struct DiskCollector {
    proc_root: PathBuf,
    filter: DiskFilter,
    worker: Option<Worker>,
    /// Mounts whose `statvfs` is stuck, with the receiver on which the answer will arrive.
    stuck: Vec<(String, mpsc::Receiver<Reply>)>,
    last_size: HashMap<String, FsSize>,
    last_io: Option<(Instant, IoTable)>,
    rdev_cache: HashMap<String, Option<(u32, u32)>>,
    stat: StatFn,
    /// `<proc_root>/self/mountinfo` kept open to be polled for changes (our own procfs only).
    mounts_watch: Option<std::fs::File>,
    /// The mounts selected at the last read of the table, and when it was read.
    mounts: Option<(Instant, Vec<Mount>)>,
    /// How many times the mount table was read (for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    mounts_reads: u64,
}

/// `<root>/self/mountinfo` opened when `<root>/self` names this process: a procfs of our own
/// pid namespace, whose file the kernel flags when the mount table changes.
fn own_mountinfo(root: &Path) -> Option<std::fs::File> {
    let me = std::fs::read_link(root.join("self")).ok()?;
    (me.to_str()?.parse::<u32>().ok()? == std::process::id())
        .then(|| std::fs::File::open(root.join("self/mountinfo")).ok())
        .flatten()
}

impl DiskCollector {
    /// A collector reading `<proc_root>/self/mountinfo` and `<proc_root>/diskstats`.
    pub fn new(proc_root: PathBuf, filter: DiskFilter) -> Self {
        Self {
            proc_root,
            filter,
            worker: None,
            stuck: Vec::new(),
            last_size: HashMap::new(),
            last_io: None,
            rdev_cache: HashMap::new(),
            stat: statvfs,
            mounts_watch: None,
            mounts: None,
            mounts_reads: 0,
        }
    }

    /// Whether the mount table must be read again: never read, read [`MOUNTS_EVERY`] ago,
    /// not watched, or flagged by the kernel as changed since the last `poll`.
    fn mounts_changed(&mut self, now: Instant) -> bool {
        let Some((at, _)) = &self.mounts else {
            return true;
        };
        if now.saturating_duration_since(*at) >= MOUNTS_EVERY {
            return true;
        }
        let Some(f) = &self.mounts_watch else {
            return true;
        };
        // The kernel reports a change once per poll (and clears it): a read follows.
        use rustix::event::{PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(f, PollFlags::PRI)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(_) => fds[0]
                .revents()
                .intersects(PollFlags::PRI | PollFlags::ERR | PollFlags::NVAL),
            Err(_) => true,
        }
    }

    /// Replaces the size reader (for tests).
    pub fn with_stat(mut self, stat: StatFn) -> Self {
        self.stat = stat;
        self
    }

    /// Block device number behind a mount, for I/O rates: the mount's own device, or for
    /// filesystems with anonymous device numbers (btrfs) the device file it was mounted from.
    fn io_dev(&mut self, m: &Mount) -> (u32, u32) {
        if m.dev.0 != 0 || !m.source.starts_with("/dev/") {
            return m.dev;
        }
        *self
            .rdev_cache
            .entry(m.source.clone())
            .or_insert_with(|| {
                rustix::fs::stat(m.source.as_str())
                    .ok()
                    .map(|st| (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)))
            })
            .get_or_insert(m.dev)
    }

    /// Takes one sample. Problems are appended to `errors`; what could be read is returned.
    pub fn sample(&mut self, errors: &mut Vec<CollectError>) -> Vec<Disk> {
        let now = Instant::now();
        if self.mounts_changed(now) {
            // Opened before the read: a change after it is flagged at the next poll.
            if self.mounts_watch.is_none() {
                self.mounts_watch = own_mountinfo(&self.proc_root);
            }
            let path = self.proc_root.join("self/mountinfo");
            self.mounts_reads += 1;
            let mountinfo = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(error) => {
                    self.mounts = None;
                    errors.push(CollectError::Read {
                        area: "disks",
                        path,
                        error,
                    });
                    return Vec::new();
                }
            };
            let mounts = select_mounts(parse_mountinfo(&mountinfo), &self.filter);
            self.mounts = Some((now, mounts));
        }
        let (read_at, mounts) = self.mounts.take().unwrap_or((now, Vec::new()));
        let out = self.sample_mounts(now, &mounts, errors);
        self.mounts = Some((read_at, mounts));
        out
    }

    /// The disks of `mounts` now.
    fn sample_mounts(
        &mut self,
        now: Instant,
        mounts: &[Mount],
        errors: &mut Vec<CollectError>,
    ) -> Vec<Disk> {
        let io_now = std::fs::read_to_string(self.proc_root.join("diskstats"))
            .map(|t| parse_diskstats(&t))
            .unwrap_or_default();
        let prev = self.last_io.take();

        // Stuck calls that have since returned free their mount again.
        self.stuck
            .retain(|(_, rx)| matches!(rx.try_recv(), Err(mpsc::TryRecvError::Empty)));

        let mut out = Vec::with_capacity(mounts.len());
        for m in mounts {
            let stuck = self.stuck.iter().any(|(p, _)| *p == m.mount_point);
            let size = if stuck {
                None
            } else {
                self.stat_with_deadline(&m.mount_point, errors)
            };
            let unresponsive = size.is_none();
            let size = match size {
                Some(s) => {
                    self.last_size.insert(m.mount_point.clone(), s);
                    s
                }
                None => match self.last_size.get(&m.mount_point) {
                    Some(s) => *s,
                    None => {
                        if stuck {
                            errors.push(CollectError::StatvfsBlocked {
                                mount: m.mount_point.clone(),
                            });
                        }
                        FsSize::default()
                    }
                },
            };
            if size.total == 0 && !unresponsive {
                continue; // nothing to report about an empty filesystem (e.g. a FUSE stub)
            }
            let used = size.total.saturating_sub(size.free);
            let denom = used.saturating_add(size.avail);
            let dev = self.io_dev(m);
            let rates = match (&prev, io_now.get(&dev)) {
                (Some((t0, old)), Some(new)) => old.get(&dev).map(|old| {
                    let secs = now.duration_since(*t0).as_secs_f64().max(1e-3);
                    let rate = |a: u64, b: u64| (b.saturating_sub(a) as f64 / secs).round() as u64;
                    (
                        rate(old.read_bytes, new.read_bytes),
                        rate(old.write_bytes, new.write_bytes),
                    )
                }),
                (None, Some(_)) => Some((0, 0)),
                _ => None,
            };
            out.push(Disk {
                device: m.source.clone(),
                fs_type: m.fs_type.clone(),
                mount_point: m.mount_point.clone(),
                total_bytes: size.total,
                used_bytes: used,
                available_bytes: size.avail,
                used_percent: if denom == 0 {
                    0.0
                } else {
                    (used as f64 * 100.0 / denom as f64) as f32
                },
                read_bytes_per_s: rates.map(|r| r.0),
                write_bytes_per_s: rates.map(|r| r.1),
                unresponsive,
                read_only: m.read_only,
            });
        }
        self.last_io = Some((now, io_now));
        self.last_size
            .retain(|k, _| mounts.iter().any(|m| m.mount_point == *k));
        out
    }

    fn stat_with_deadline(
        &mut self,
        mount: &str,
        errors: &mut Vec<CollectError>,
    ) -> Option<FsSize> {
        if self.worker.is_none() {
            match Worker::spawn(self.stat) {
                Ok(w) => self.worker = Some(w),
                Err(error) => {
                    errors.push(CollectError::Thread {
                        area: "disks",
                        thread: "statvfs",
                        error,
                    });
                    return None;
                }
            }
        }
        let w = self.worker.as_ref()?;
        if w.req.send(PathBuf::from(mount)).is_err() {
            self.worker = None;
            return None;
        }
        match w.reply.recv_timeout(STATVFS_DEADLINE) {
            Ok((_, Ok(s))) => Some(s),
            Ok((_, Err(error))) => {
                errors.push(CollectError::Statvfs {
                    mount: mount.to_owned(),
                    error,
                });
                None
            }
            Err(_) => {
                // Give the stuck worker up: keep its reply channel to learn when it returns, and
                // start a fresh worker for the other mounts.
                errors.push(CollectError::StatvfsTimedOut {
                    mount: mount.to_owned(),
                });
                tracing::warn!(
                    mount,
                    "A filesystem did not answer statvfs in time; reporting it unresponsive."
                );
                if let Some(w) = self.worker.take() {
                    self.stuck.push((mount.to_owned(), w.reply));
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = include_str!("../tests/fixtures/proc/self/mountinfo");
    const DISKSTATS: &str = include_str!("../tests/fixtures/proc/diskstats");

    #[test]
    fn parses_mountinfo_fixture() {
        let m = parse_mountinfo(MOUNTINFO);
        let root = m.iter().find(|m| m.mount_point == "/").expect("root");
        assert_eq!(root.dev, (259, 2));
        assert_eq!(root.fs_type, "ext4");
        assert_eq!(root.source, "/dev/nvme0n1p2");
        assert!(!root.read_only);
        let spaced = m
            .iter()
            .find(|m| m.mount_point == "/mnt/my disk")
            .expect("escaped path");
        assert_eq!(spaced.fs_type, "vfat");
        assert!(
            m.iter()
                .any(|m| m.mount_point == "/snap/core/1" && m.read_only)
        );
        let nfs = m.iter().find(|m| m.fs_type == "nfs4").expect("nfs");
        assert_eq!(nfs.source, "nas:/export/home");
        assert_eq!(nfs.dev.0, 0);
    }

    #[test]
    fn selects_real_filesystems_once() {
        let picked = select_mounts(parse_mountinfo(MOUNTINFO), &DiskFilter::default());
        let points: Vec<&str> = picked.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(
            points,
            vec!["/", "/boot/efi", "/mnt/my disk", "/home/shared", "/data"]
        );
        // The bind mount of / under /var/lib/docker-bind is dropped: same device, longer path.
    }

    #[test]
    fn filters_are_applied() {
        let filter = DiskFilter {
            include_fs_types: vec!["tmpfs".into()],
            exclude_fs_types: vec!["nfs4".into()],
            exclude_mounts: vec!["/boot".into(), "/mnt/my disk".into()],
        };
        let picked = select_mounts(parse_mountinfo(MOUNTINFO), &filter);
        let points: Vec<&str> = picked.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(points, vec!["/", "/dev/shm", "/run", "/data"]);
    }

    #[test]
    fn parses_diskstats_fixture() {
        let d = parse_diskstats(DISKSTATS);
        assert_eq!(
            d[&(259, 2)],
            IoCounters {
                read_bytes: 123_456 * 512,
                write_bytes: 654_321 * 512
            }
        );
        assert_eq!(d[&(8, 0)].read_bytes, 1000 * 512);
        assert!(!d.contains_key(&(7, 0)) || d[&(7, 0)].read_bytes == 0);
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(r"/mnt/my\040disk"), "/mnt/my disk");
        assert_eq!(unescape(r"/a\134b"), r"/a\b");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
        // Found by the property tests: used to overflow a u8 (a panic in debug builds).
        assert_eq!(unescape(r"/a\400b\777"), r"/a\400b\777");
    }

    #[test]
    fn huge_sector_counts_saturate() {
        // Found by the property tests: `sectors * 512` used to overflow.
        let d = parse_diskstats("0 0 sda 1 0 36028797018963968 5 2 0 18446744073709551615 8 0 9");
        assert_eq!(d[&(0, 0)].read_bytes, u64::MAX);
        assert_eq!(d[&(0, 0)].write_bytes, u64::MAX);
    }

    fn fake_stat(p: &Path) -> std::io::Result<FsSize> {
        if p == Path::new("/home/shared") {
            // A dead NFS server: the call does not come back for a long time.
            std::thread::sleep(Duration::from_secs(3));
        }
        Ok(FsSize {
            total: 1000,
            free: 400,
            avail: 300,
        })
    }

    #[test]
    fn a_hung_mount_is_reported_unresponsive_without_stalling_the_others() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc");
        let mut c = DiskCollector::new(root, DiskFilter::default()).with_stat(fake_stat);
        for round in 0..3 {
            let mut errors = Vec::new();
            let started = Instant::now();
            let disks = c.sample(&mut errors);
            // One deadline at most, in the first round; later rounds skip the stuck mount.
            let limit = if round == 0 {
                STATVFS_DEADLINE * 2
            } else {
                STATVFS_DEADLINE
            };
            assert!(
                started.elapsed() < limit,
                "round {round} took {:?}",
                started.elapsed()
            );
            assert_eq!(disks.len(), 5, "{disks:?}");
            for d in &disks {
                if d.mount_point == "/home/shared" {
                    assert!(d.unresponsive);
                    assert!(
                        d.read_bytes_per_s.is_none(),
                        "a network fs has no I/O counters"
                    );
                } else {
                    assert!(!d.unresponsive, "{d:?}");
                    assert_eq!(
                        (d.total_bytes, d.used_bytes, d.available_bytes),
                        (1000, 600, 300)
                    );
                    assert!(
                        (d.used_percent - 66.666).abs() < 0.01,
                        "df-style percent: {}",
                        d.used_percent
                    );
                }
            }
            assert!(
                errors
                    .iter()
                    .any(|e| e.to_string().contains("/home/shared")),
                "{errors:?}"
            );
        }
        // I/O rates come from the diskstats fixture for block devices.
        let mut errors = Vec::new();
        let disks = c.sample(&mut errors);
        let root_disk = disks.iter().find(|d| d.mount_point == "/").expect("root");
        assert_eq!(
            root_disk.read_bytes_per_s,
            Some(0),
            "unchanged counters give a zero rate"
        );
    }

    /// On this process's own procfs the mount table is read once and then again only when a
    /// mount comes or goes (the kernel flags `mountinfo` with `POLLPRI`). Mounting needs root:
    /// without it, only the first half runs.
    #[test]
    fn the_mount_table_is_read_again_only_when_it_changes() {
        let filter = DiskFilter {
            include_fs_types: vec!["tmpfs".into()],
            ..DiskFilter::default()
        };
        let mut c = DiskCollector::new(PathBuf::from("/proc"), filter);
        let mut errors = Vec::new();
        c.sample(&mut errors);
        assert!(c.mounts_watch.is_some(), "our own procfs is watched");
        assert_eq!(c.mounts_reads, 1);
        // (Another mount made on this machine meanwhile would read it again.)
        for _ in 0..3 {
            c.sample(&mut errors);
        }
        assert_eq!(c.mounts_reads, 1, "unchanged: not read again");
        let dir = tempfile::tempdir().expect("tempdir");
        let at = dir.path().to_str().expect("utf-8 path").to_owned();
        let mount = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "smon-test", &at])
            .stderr(std::process::Stdio::null())
            .status();
        if !mount.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED the second half: cannot mount a tmpfs here (not root?)");
            return;
        }
        struct Unmount(String);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let mut guard = Some(Unmount(at.clone()));
        let listed = |d: &[Disk]| d.iter().any(|d| d.mount_point == at);
        assert!(
            listed(&c.sample(&mut errors)),
            "a new mount at the next sample"
        );
        assert_eq!(c.mounts_reads, 2);
        drop(guard.take());
        assert!(!listed(&c.sample(&mut errors)), "gone at the next sample");
        assert_eq!(c.mounts_reads, 3);
    }

    #[test]
    fn live_sample_reports_root() {
        let mut c = DiskCollector::new(PathBuf::from("/proc"), DiskFilter::default());
        let mut errors = Vec::new();
        let first = c.sample(&mut errors);
        let second = c.sample(&mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        // A container may mount its root as overlay (a pseudo fs here), so only check shapes.
        for d in first.iter().chain(&second) {
            assert!(d.total_bytes > 0 && d.used_bytes <= d.total_bytes, "{d:?}");
            assert!((0.0..=100.0).contains(&d.used_percent));
        }
    }
}

/// Property tests of the hand-written `mountinfo` and `diskstats` parsers: arbitrary input never
/// panics, and what the kernel writes (octal-escaped paths) reads back exactly. Cases per
/// property: `PROPTEST_CASES` (256 when unset; CI keeps the default, a long session sets e.g.
/// `PROPTEST_CASES=100000 cargo test -p smon-collect --lib`).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn config() -> ProptestConfig {
        // Failing cases are kept as named tests, not as regression files in the tree.
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Escapes a path the way the kernel's `seq_escape` does for mountinfo (`" \t\n\\"`).
    fn kernel_escape(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
                c => out.push(c),
            }
        }
        out
    }

    /// Pieces that steer random lines into the parser's branches.
    fn mountinfo_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(" ".to_owned()),
            Just(" - ".to_owned()),
            Just("\n".to_owned()),
            Just("\\".to_owned()),
            "\\\\[0-9]{0,4}",
            "[0-9]{1,12}:[0-9]{1,12}",
            "-?[0-9]{1,25}",
            "/[a-z/]{0,8}",
            "r[ow],[a-z,]{0,8}",
            "\\PC{0,6}",
        ]
    }

    /// Pieces of diskstats lines: numbers up to and past `u64::MAX`.
    fn diskstats_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            any::<u64>().prop_map(|n| n.to_string()),
            (u64::MAX - 1000..=u64::MAX).prop_map(|n| n.to_string()),
            "[0-9]{18,25}",
            "-[0-9]{1,5}",
            "[a-z]{1,6}[0-9]?",
        ]
    }

    fn mount() -> impl Strategy<Value = Mount> {
        (
            any::<(u32, u32)>(),
            "/\\PC{0,20}|/[ \\t\\n\\\\a-z-]{0,20}",
            "[a-z0-9._]{1,12}",
            "\\PC{1,20}|[ \\t\\n\\\\a-z/:-]{1,20}",
            any::<bool>(),
        )
            .prop_map(|(dev, mount_point, fs_type, source, read_only)| Mount {
                dev,
                mount_point,
                fs_type,
                source,
                read_only,
            })
    }

    fn mountinfo_line(id: usize, m: &Mount) -> String {
        format!(
            "{id} 1 {}:{} / {} rw,relatime shared:1 - {} {} {},errors=continue",
            m.dev.0,
            m.dev.1,
            kernel_escape(&m.mount_point),
            m.fs_type,
            kernel_escape(&m.source),
            if m.read_only { "ro" } else { "rw" },
        )
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn mountinfo_never_panics_on_any_text(text in "\\PC{0,400}") {
            let _ = parse_mountinfo(&text);
        }

        #[test]
        fn mountinfo_never_panics_on_line_like_text(
            pieces in proptest::collection::vec(mountinfo_piece(), 0..60)
        ) {
            let text = pieces.concat();
            for m in parse_mountinfo(&text) {
                prop_assert!(!m.fs_type.contains(' '));
            }
        }

        #[test]
        fn unescape_never_panics_and_leaves_plain_text(s in "[\\\\0-9a-z ]{0,40}|\\PC{0,40}") {
            let u = unescape(&s);
            if !s.contains('\\') {
                prop_assert_eq!(u, s);
            }
        }

        #[test]
        fn what_the_kernel_writes_reads_back(mounts in proptest::collection::vec(mount(), 0..8)) {
            let text: String = mounts
                .iter()
                .enumerate()
                .map(|(i, m)| mountinfo_line(i, m) + "\n")
                .collect();
            prop_assert_eq!(parse_mountinfo(&text), mounts);
        }

        #[test]
        fn diskstats_never_panics(
            pieces in proptest::collection::vec(diskstats_piece(), 0..80),
            noise in "\\PC{0,100}",
        ) {
            let _ = parse_diskstats(&(pieces.concat() + &noise));
        }

        #[test]
        fn diskstats_reads_any_counter(
            dev in any::<(u32, u32)>(),
            rd in any::<u64>(),
            wr in any::<u64>(),
        ) {
            let line = format!("{} {} sda 1 0 {rd} 5 2 0 {wr} 8 0 9 13 0 0 0 0", dev.0, dev.1);
            let t = parse_diskstats(&line);
            prop_assert_eq!(
                t.get(&dev).copied(),
                Some(IoCounters {
                    read_bytes: rd.saturating_mul(512),
                    write_bytes: wr.saturating_mul(512),
                })
            );
        }

        #[test]
        fn selection_never_panics_and_keeps_one_mount_per_device(
            mounts in proptest::collection::vec(mount(), 0..12),
            excludes in proptest::collection::vec("/\\PC{0,6}|/[a-z/]{0,6}", 0..3),
        ) {
            let filter = DiskFilter {
                include_fs_types: vec!["tmpfs".into()],
                exclude_fs_types: vec!["nfs4".into()],
                exclude_mounts: excludes,
            };
            let picked = select_mounts(mounts, &filter);
            for (i, a) in picked.iter().enumerate() {
                for b in &picked[i + 1..] {
                    prop_assert!(a.dev.0 == 0 || a.dev != b.dev, "{a:?} {b:?}");
                }
            }
        }
    }
}
