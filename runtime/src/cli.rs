//! Output of the command-line side of every smon binary (`--once`, `query`, `hash-password`,
//! `gen-supervisor-conf`): writing to stdout when the reader may leave early, as in
//! `smon-agent --once --json | head`.
//!
//! Rust ignores SIGPIPE, so a write into a closed pipe fails with EPIPE, and `print!` panics on
//! it (a backtrace, exit status 101). smon writes through a locked stdout instead and treats
//! a closed pipe as the end of its output: the command stops writing and exits with status 0,
//! silently. 0 and not 141 (what a shell shows for a tool killed by SIGPIPE): the reader had
//! what it wanted, and `set -o pipefail` scripts do not fail on `smon-agent ... | head`.
//!
//! Also the text helpers every terminal output shares (`smon-agent query`, `smonctl top`):
//! sizes for people ([`human_bytes`]), remote strings made safe to print
//! ([`terminal_safe`]) and times as `YYYY-MM-DD HH:MM:SS` in UTC ([`utc_time`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, ErrorKind, Write};

/// Whether stdout still has a reader after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Written; keep going.
    Open,
    /// The reader has gone (EPIPE): stop writing, and exit with status 0.
    Closed,
}

/// Whether `e` says the reader of a pipe has gone.
pub fn is_closed_pipe(e: &io::Error) -> bool {
    e.kind() == ErrorKind::BrokenPipe
}

/// Writes `text` to `w` and flushes it; a closed pipe is [`Output::Closed`], not an error.
pub fn write_to(w: &mut impl Write, text: &str) -> io::Result<Output> {
    match w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
        Ok(()) => Ok(Output::Open),
        Err(e) if is_closed_pipe(&e) => Ok(Output::Closed),
        Err(e) => Err(e),
    }
}

/// Writes `text` to stdout (locked, flushed); see [`write_to`].
pub fn print(text: &str) -> io::Result<Output> {
    write_to(&mut io::stdout().lock(), text)
}

/// A size for people: bytes below 1 KiB, else KiB, MiB, GiB, TiB or PiB with one decimal
/// (`252.0 GiB`, not `258019 MiB`).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    // 1023.96 KiB would print as "1024.0 KiB": the next unit says it better.
    while v >= 1023.95 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A remote string made safe for a terminal: control characters (escape sequences, carriage
/// returns, newlines) and bidirectional overrides are written as `\u{..}` escapes. Process
/// names, command lines, mount points and user names come from the monitored host, where any
/// local user can choose them; printed raw they could rewrite the operator's screen.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.contains(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A time in ms since the epoch as `YYYY-MM-DD HH:MM:SS`, in UTC (tables of `smonctl audit`
/// and `smon-aggregator token list`).
pub fn utc_time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // The civil date of a day count from 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_times() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc_time(1_764_806_461_999), "2025-12-04 00:01:01");
    }

    use super::*;

    #[test]
    fn sizes_are_for_people() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_bytes(258_019 << 20), "252.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn terminal_safe_escapes_what_a_terminal_acts_on() {
        assert!(matches!(terminal_safe("plain ü"), Cow::Borrowed("plain ü")));
        assert_eq!(
            terminal_safe("a\u{1b}[2J\r\u{202e}b"),
            r"a\u{1b}[2J\u{d}\u{202e}b"
        );
    }

    struct Gone;
    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(ErrorKind::StorageFull))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_output_and_other_errors_stay_errors() {
        let mut v = Vec::new();
        assert_eq!(write_to(&mut v, "a\n").expect("written"), Output::Open);
        assert_eq!(v, b"a\n");
        assert_eq!(write_to(&mut Gone, "a").expect("closed"), Output::Closed);
        let e = write_to(&mut Full, "a").expect_err("disk full is an error");
        assert_eq!(e.kind(), ErrorKind::StorageFull);
    }
}
