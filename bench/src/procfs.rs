//! What the benchmark reads about a process from `/proc`: resident memory (`status`),
//! proportional memory (`smaps_rollup`), CPU time (`stat`) and its children. The parsers take
//! the file text so they are tested without a process.

use anyhow::{Context as _, bail};

/// Memory figures of a process from `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss: u64,
    /// Highest resident set size since the process started (`VmHWM`).
    pub hwm: u64,
    /// Resident anonymous memory: heap, stacks (`RssAnon`).
    pub anon: u64,
    /// Resident file-backed memory: the binary and shared libraries (`RssFile`).
    pub file: u64,
    /// Threads (`Threads`).
    pub threads: u64,
}

/// Reads the memory figures of `pid`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_status(&text).with_context(|| format!("{path}: unexpected format"))
}

/// Parses the text of `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> anyhow::Result<Memory> {
    let mut m = Memory::default();
    let mut found = 0;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let field = match key {
            "VmRSS" => &mut m.rss,
            "VmHWM" => &mut m.hwm,
            "RssAnon" => &mut m.anon,
            "RssFile" => &mut m.file,
            "Threads" => &mut m.threads,
            _ => continue,
        };
        *field = kib_value(key, value)?;
        found += 1;
    }
    if found < 5 {
        bail!("VmRSS, VmHWM, RssAnon, RssFile or Threads missing");
    }
    Ok(m)
}

/// Proportional set size of a process from `/proc/<pid>/smaps_rollup`, in bytes: each resident
/// page divided by the number of processes that map it. Unlike RSS it can be summed over
/// processes that share pages (a manager and its server, one binary) without counting them
/// twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pss {
    /// `Pss`.
    pub total: u64,
    /// `Pss_Anon`: heap, stacks.
    pub anon: u64,
    /// `Pss_File`: the binary and shared libraries.
    pub file: u64,
}

impl std::ops::Add for Pss {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            total: self.total + o.total,
            anon: self.anon + o.anon,
            file: self.file + o.file,
        }
    }
}

impl std::iter::Sum for Pss {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |a, b| a + b)
    }
}

/// Reads the PSS of `pid` (Linux 4.14 and later; needs the same user as the process, or root).
pub fn pss(pid: u32) -> anyhow::Result<Pss> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_smaps_rollup(&text).with_context(|| format!("{path}: unexpected format"))
}

/// Parses the text of `/proc/<pid>/smaps_rollup`.
pub fn parse_smaps_rollup(text: &str) -> anyhow::Result<Pss> {
    let mut p = Pss::default();
    let mut found = [false; 3];
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (i, field) = match key {
            "Pss" => (0, &mut p.total),
            "Pss_Anon" => (1, &mut p.anon),
            "Pss_File" => (2, &mut p.file),
            _ => continue,
        };
        *field = kib_value(key, value)?;
        found[i] = true;
    }
    // Pss_Anon and Pss_File came with Linux 5.9; before that only the total is known.
    if !found[0] {
        bail!("no Pss line");
    }
    Ok(p)
}

/// "  1234 kB" in bytes.
fn kib_value(key: &str, value: &str) -> anyhow::Result<u64> {
    let mut words = value.split_whitespace();
    let n: u64 = words
        .next()
        .and_then(|w| w.parse().ok())
        .with_context(|| format!("{key}: {value:?} is not a number"))?;
    match words.next() {
        Some("kB") => Ok(n * 1024),
        None => Ok(n),
        Some(unit) => bail!("{key}: unknown unit {unit:?}"),
    }
}

/// The pids whose parent is `pid` (from each `/proc/<n>/stat`), in ascending order.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|n| {
            std::fs::read_to_string(format!("/proc/{n}/stat"))
                .ok()
                .and_then(|t| parse_stat_ppid(&t))
                == Some(pid)
        })
        .collect();
    out.sort_unstable();
    out
}

/// The parent pid (field 4) from the text of `/proc/<pid>/stat`.
pub fn parse_stat_ppid(text: &str) -> Option<u32> {
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time a process has used (all its threads, living and exited), in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_stat_ticks(&text).with_context(|| format!("{path}: unexpected format"))
}

/// `utime + stime` from the text of `/proc/<pid>/stat`.
pub fn parse_stat_ticks(text: &str) -> anyhow::Result<u64> {
    // The command name (field 2) is in parentheses and may itself hold spaces and ')'; the
    // fields after the last ')' start at field 3 (state).
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .context("no ')' after the command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14 and stime field 15 of the whole line: indexes 11 and 12 here.
    let get = |i: usize, name: &str| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("{name} missing or not a number"))
    };
    Ok(get(11, "utime")? + get(12, "stime")?)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of [`cpu_ticks`].
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_in_bytes() {
        let text = "Name:\tsmon-agent\nVmHWM:\t    9000 kB\nVmRSS:\t    8192 kB\n\
                    RssAnon:\t    2048 kB\nRssFile:\t    6144 kB\nRssShmem:\t       0 kB\nThreads:\t5\n";
        let m = parse_status(text).expect("parsed");
        assert_eq!(
            m,
            Memory {
                rss: 8192 * 1024,
                hwm: 9000 * 1024,
                anon: 2048 * 1024,
                file: 6144 * 1024,
                threads: 5,
            }
        );
    }

    #[test]
    fn status_without_rss_is_an_error() {
        assert!(parse_status("Name:\tkthreadd\nThreads:\t1\n").is_err());
    }

    #[test]
    fn stat_ticks_with_a_tricky_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let text = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 900 0 0 0 123 45 0 0 20 0 5 0";
        assert_eq!(parse_stat_ticks(text).expect("parsed"), 168);
        assert!(parse_stat_ticks("4242 (x) S 1").is_err());
    }

    #[test]
    fn smaps_rollup_pss() {
        let text = "55d1c0a00000-7ffd8e5f1000 ---p 00000000 00:00 0                [rollup]\n\
                    Rss:               10240 kB\nPss:                7000 kB\n\
                    Pss_Dirty:          1500 kB\nPss_Anon:           1500 kB\n\
                    Pss_File:           5500 kB\nPss_Shmem:             0 kB\n";
        let p = parse_smaps_rollup(text).expect("parsed");
        assert_eq!(
            p,
            Pss {
                total: 7000 * 1024,
                anon: 1500 * 1024,
                file: 5500 * 1024,
            }
        );
        assert_eq!(
            [p, p].into_iter().sum::<Pss>().total,
            14000 * 1024,
            "summed"
        );
        // Before Linux 5.9: the total alone.
        let old = parse_smaps_rollup("Rss:  8 kB\nPss:  4 kB\n").expect("parsed");
        assert_eq!((old.total, old.anon, old.file), (4096, 0, 0));
        assert!(parse_smaps_rollup("Rss:  8 kB\n").is_err());
        assert!(parse_smaps_rollup("Pss:  many kB\n").is_err());
    }

    #[test]
    fn stat_ppid() {
        assert_eq!(
            parse_stat_ppid("4242 (a) b (c)) S 17 4242 4242 0"),
            Some(17)
        );
        assert_eq!(parse_stat_ppid("4242 (x)"), None);
    }

    #[test]
    fn finds_its_children_and_their_pss() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("sleep");
        let kids = children(std::process::id());
        let pss_of_child = pss(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(kids.contains(&child.id()), "{kids:?}");
        let p = pss_of_child.expect("the child's smaps_rollup");
        assert!(p.total > 0 && p.total >= p.anon, "{p:?}");
        let own = pss(std::process::id()).expect("own smaps_rollup");
        assert!(own.total > 0, "{own:?}");
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let m = memory(me).expect("own status");
        assert!(m.rss > 0 && m.hwm >= m.rss && m.threads >= 1, "{m:?}");
        cpu_ticks(me).expect("own stat");
        assert!(ticks_per_second() >= 1);
    }
}
