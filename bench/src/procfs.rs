//! What the benchmark reads about a process from `/proc`: resident memory (`status`) and CPU
//! time (`stat`). The parsers take the file text so they are tested without a process.

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
        let mut words = value.split_whitespace();
        let n: u64 = words
            .next()
            .and_then(|w| w.parse().ok())
            .with_context(|| format!("{key}: {value:?} is not a number"))?;
        *field = match words.next() {
            Some("kB") => n * 1024,
            None => n,
            Some(unit) => bail!("{key}: unknown unit {unit:?}"),
        };
        found += 1;
    }
    if found < 5 {
        bail!("VmRSS, VmHWM, RssAnon, RssFile or Threads missing");
    }
    Ok(m)
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
    fn reads_this_process() {
        let me = std::process::id();
        let m = memory(me).expect("own status");
        assert!(m.rss > 0 && m.hwm >= m.rss && m.threads >= 1, "{m:?}");
        cpu_ticks(me).expect("own stat");
        assert!(ticks_per_second() >= 1);
    }
}
