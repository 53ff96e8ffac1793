//! Start-up pages given back: once a daemon is up, the pages of its own binary that only
//! start-up touched stop counting in its memory.
//!
//! The kernel maps a file's pages into a process 64 KiB around each page it faults in
//! ("fault-around"), and start-up runs code spread over most of the binary (argument and
//! config parsing, TLS and listener set-up, the first sample). So after start-up a daemon has
//! most of its binary mapped, although it runs far less of it from then on: the agent's server
//! had 8.4 of its 11.5 MiB of loadable pages mapped, 5.8 MiB once they were dropped and the
//! steady state had faulted its own back (BENCHMARKS.md, "the binary's start-up pages given
//! back").
//!
//! [`release_startup_pages`] drops the mappings of the binary's read-only pages with
//! `madvise(MADV_DONTNEED)`. Nothing is lost: these pages are the file's own (the page cache
//! keeps them), and the next use of one maps it again with a minor fault. Only mappings that
//! cannot hold a private copy of a page are touched: read-only, and with no anonymous page
//! (`Anonymous: 0 kB` in `/proc/self/smaps`), which leaves out the relocated `.data.rel.ro`
//! (its pages are private copies written by the dynamic loader) as well as the data and the
//! heap. Linux only; elsewhere it does nothing.

use std::time::Duration;

/// How long after start-up the pages are dropped: past the first samples, probes and client
/// connections, so that what runs every second is faulted back once, not start-up's code.
pub const AFTER: Duration = Duration::from_secs(20);

/// Why the pages could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    /// `/proc/self/smaps` or `/proc/self/exe` could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The kernel refused the advice.
    #[error("madvise(MADV_DONTNEED) of {start:#x}-{end:#x}: {source}")]
    Advise {
        /// First address of the mapping.
        start: usize,
        /// One past its last address.
        end: usize,
        /// The cause.
        source: std::io::Error,
    },
}

/// A mapping of the binary that may be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    /// Resident KiB before (`Rss:`).
    rss_kib: u64,
}

/// The mappings of `exe` in `smaps` (the text of `/proc/self/smaps`) that are private,
/// read-only and hold no anonymous page.
fn droppable(smaps: &str, exe: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    // The mapping being read: its range and Rss, whether its header qualifies, and whether
    // its `Anonymous:` line said 0 (a mapping without that line is left alone).
    let mut current: Option<(Mapping, bool, bool)> = None;
    let finish = |c: Option<(Mapping, bool, bool)>, out: &mut Vec<Mapping>| {
        if let Some((m, true, true)) = c {
            out.push(m);
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            // A header: `start-end perms offset dev inode path`.
            finish(current.take(), &mut out);
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let ok = path == exe
                && perms.len() == 4
                && perms.starts_with('r')
                && !perms.contains('w')
                && perms.ends_with('p');
            current = Some((
                Mapping {
                    start,
                    end,
                    rss_kib: 0,
                },
                ok,
                false,
            ));
            continue;
        }
        let Some((m, _, no_copies)) = current.as_mut() else {
            continue;
        };
        let kib = fields.next().and_then(|v| v.parse::<u64>().ok());
        match first {
            "Rss:" => m.rss_kib = kib.unwrap_or(0),
            // A private copy of a page (the loader's relocations): dropping would lose it.
            "Anonymous:" => *no_copies = kib == Some(0),
            _ => {}
        }
    }
    finish(current.take(), &mut out);
    out
}

/// Drops the mappings of this binary's read-only pages (see the module doc); returns the KiB
/// that were resident in them.
#[cfg(target_os = "linux")]
pub fn release_startup_pages() -> Result<u64, PagesError> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(|source| PagesError::Read {
        path: "/proc/self/exe",
        source,
    })?;
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|source| PagesError::Read {
        path: "/proc/self/smaps",
        source,
    })?;
    // A path with a space or a replaced binary (" (deleted)") does not match a field of
    // smaps: nothing is dropped then.
    let mut released = 0;
    for m in droppable(&smaps, &exe.to_string_lossy()) {
        // SAFETY: the range is a whole mapping of this binary's file that is private,
        // read-only and holds no anonymous page (no private copy of any page), so every page
        // of it reads back the same from the file after MADV_DONTNEED; no Rust object lives in
        // it (it is code and read-only data), and it stays mapped.
        #[allow(unsafe_code)]
        let r = unsafe {
            rustix::mm::madvise(
                m.start as *mut std::ffi::c_void,
                m.end - m.start,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
        r.map_err(|e| PagesError::Advise {
            start: m.start,
            end: m.end,
            source: e.into(),
        })?;
        released += m.rss_kib;
    }
    Ok(released)
}

/// Does nothing off Linux.
#[cfg(not(target_os = "linux"))]
pub fn release_startup_pages() -> Result<u64, PagesError> {
    Ok(0)
}

/// Releases the start-up pages [`AFTER`] start-up, unless `stop` comes first; logs the outcome
/// at debug (a failure at warn: nothing else depends on it).
pub async fn release_after_startup(stop: tokio_util::sync::CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(AFTER) => {}
        _ = stop.cancelled() => return,
    }
    match release_startup_pages() {
        Ok(kib) => tracing::debug!(kib, "Start-up pages of the binary released."),
        Err(e) => tracing::warn!(error = %e, "Cannot release the binary's start-up pages."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55e50e9ee000-55e50ed47000 r--p 00000000 fe:00 5481662                    /usr/bin/smon-agent
Size:               3428 kB
Rss:                1464 kB
Anonymous:             0 kB
55e50ed47000-55e50f4bb000 r-xp 00358000 fe:00 5481662                    /usr/bin/smon-agent
Size:               7632 kB
Rss:                6544 kB
Anonymous:             0 kB
55e50f4bb000-55e50f51f000 r--p 00acb000 fe:00 5481662                    /usr/bin/smon-agent
Size:                400 kB
Rss:                 400 kB
Anonymous:           400 kB
55e50f51f000-55e50f524000 rw-p 00b2e000 fe:00 5481662                    /usr/bin/smon-agent
Rss:                  20 kB
Anonymous:            12 kB
55e50f524000-55e50f528000 r--s 00000000 fe:00 5481662                    /usr/bin/smon-agent
Rss:                   4 kB
Anonymous:             0 kB
7f18755f7000-7f187574d000 r-xp 00028000 fe:00 131                        /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 996 kB
Anonymous:             0 kB
55e78c6cd000-55e78c6ee000 rw-p 00000000 00:00 0                          [heap]
Rss:                 104 kB
Anonymous:           104 kB
";

    #[test]
    fn only_the_binarys_read_only_pages_without_private_copies() {
        let got = droppable(SMAPS, "/usr/bin/smon-agent");
        assert_eq!(
            got,
            vec![
                Mapping {
                    start: 0x55e5_0e9e_e000,
                    end: 0x55e5_0ed4_7000,
                    rss_kib: 1464
                },
                Mapping {
                    start: 0x55e5_0ed4_7000,
                    end: 0x55e5_0f4b_b000,
                    rss_kib: 6544
                },
            ],
            "the relocated .data.rel.ro (anonymous pages), the data, a shared mapping, \
             libc and the heap stay"
        );
        assert!(droppable(SMAPS, "/usr/bin/other").is_empty());
    }

    #[test]
    fn a_mapping_is_left_when_its_anonymous_line_is_missing_or_unreadable() {
        let s = "\
1000-2000 r-xp 00000000 fe:00 1 /bin/x
Rss: 4 kB
Anonymous: ? kB
2000-3000 r-xp 00001000 fe:00 1 /bin/x
Rss: 4 kB
3000-4000 r-xp 00002000 fe:00 1 /bin/x
Rss: 4 kB
Anonymous: 0 kB
";
        let got = droppable(s, "/bin/x");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].start, 0x3000);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_test_binary_runs_on_after_its_pages_are_dropped() {
        let before: u64 = (0..200_000u64).map(|i| i.wrapping_mul(i)).sum();
        let kib = release_startup_pages().expect("released");
        assert!(kib > 0, "a running binary has resident text");
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let exe = std::fs::read_link("/proc/self/exe").expect("exe");
        let after: u64 = droppable(&smaps, &exe.to_string_lossy())
            .iter()
            .map(|m| m.rss_kib)
            .sum();
        assert!(after < kib, "resident {after} KiB after, {kib} KiB before");
        // The code still runs and the read-only data still reads the same.
        let again: u64 = (0..200_000u64).map(|i| i.wrapping_mul(i)).sum();
        assert_eq!(before, again);
    }
}
