//! Output of the command-line side of every smon binary (`--once`, `query`, `hash-password`,
//! `gen-supervisor-conf`): writing to stdout when the reader may leave early, as in
//! `smon-agent --once --json | head`.
//!
//! Rust ignores SIGPIPE, so a write into a closed pipe fails with EPIPE, and `print!` panics on
//! it (a backtrace, exit status 101). smon writes through a locked stdout instead and treats
//! a closed pipe as the end of its output: the command stops writing and exits with status 0,
//! silently. 0 and not 141 (what a shell shows for a tool killed by SIGPIPE): the reader had
//! what it wanted, and `set -o pipefail` scripts do not fail on `smon-agent ... | head`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
