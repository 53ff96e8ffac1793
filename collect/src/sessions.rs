//! Logged-in users, read from the utmp file (`/var/run/utmp`): user, terminal, remote host,
//! login time and session leader pid. A missing file means no sessions (some minimal and
//! container systems have none), not an error.

use std::path::Path;

use smon_proto::Session;

use crate::CollectError;

/// Reads the `USER_PROCESS` entries of a utmp file. A record that cannot be parsed is skipped
/// and reported in `errors`; the sessions read before a truncated tail are kept.
pub fn read_sessions(path: &Path, errors: &mut Vec<CollectError>) -> Vec<Session> {
    let parser = match utmp_rs::UtmpParser::from_path(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => {
            errors.push(read_error(path, error));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in parser {
        match entry {
            Ok(utmp_rs::UtmpEntry::UserProcess {
                pid,
                line,
                user,
                host,
                time,
                ..
            }) if !user.is_empty() => {
                out.push(Session {
                    user,
                    terminal: line,
                    from: host,
                    login_unix_ms: u64::try_from(time.unix_timestamp_nanos() / 1_000_000)
                        .unwrap_or(0),
                    pid: u32::try_from(pid).unwrap_or(0),
                });
            }
            Ok(_) => {}
            Err(utmp_rs::ParseError::Utmp(e)) => {
                errors.push(CollectError::SessionRecord {
                    path: path.to_owned(),
                    detail: e.to_string(),
                });
            }
            Err(e) => {
                let error = match e {
                    utmp_rs::ParseError::Io(io) => io,
                    other => std::io::Error::other(other),
                };
                errors.push(read_error(path, error));
                break;
            }
        }
    }
    out
}

fn read_error(path: &Path, error: std::io::Error) -> CollectError {
    CollectError::Read {
        area: "sessions",
        path: path.to_owned(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/utmp")
            .join(name)
    }

    #[test]
    fn reads_local_and_remote_sessions() {
        let mut errors = Vec::new();
        let s = read_sessions(&fixture("sessions.utmp"), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        // The fixture also holds BOOT_TIME, LOGIN_PROCESS and DEAD_PROCESS records: only the
        // three USER_PROCESS ones are sessions.
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(
            s[0],
            Session {
                user: "alice".into(),
                terminal: "tty1".into(),
                from: String::new(),
                login_unix_ms: 1_700_000_000_250,
                pid: 1201
            }
        );
        assert_eq!(
            s[1],
            Session {
                user: "bob".into(),
                terminal: "pts/0".into(),
                from: "203.0.113.7".into(),
                login_unix_ms: 1_700_000_100_000,
                pid: 2302
            }
        );
        assert_eq!(s[2].user, "carol");
        assert_eq!(s[2].terminal, "pts/1");
        assert_eq!(s[2].from, "laptop.example.org");
        assert_eq!(s[2].login_unix_ms, 1_700_000_200_999);
    }

    #[test]
    fn empty_and_missing_files_mean_no_sessions() {
        let mut errors = Vec::new();
        assert_eq!(read_sessions(&fixture("empty.utmp"), &mut errors), vec![]);
        assert_eq!(
            read_sessions(&fixture("does-not-exist.utmp"), &mut errors),
            vec![]
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn truncated_file_is_an_error_not_a_panic() {
        let mut errors = Vec::new();
        let s = read_sessions(&fixture("truncated.utmp"), &mut errors);
        assert!(s.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].to_string().contains("truncated.utmp"),
            "{errors:?}"
        );
    }
}

/// Property tests of the utmp reader: arbitrary bytes and the session fixture with random
/// bytes overwritten or cut off never panic; the records before a damaged one are kept. Cases
/// per property: `PROPTEST_CASES` (256 when unset; for a long session
/// `PROPTEST_CASES=100000 cargo test -p smon-collect --lib`).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/utmp/sessions.utmp");

    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn read(bytes: &[u8]) -> (Vec<Session>, Vec<String>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("utmp");
        std::fs::write(&path, bytes).expect("write");
        let mut errors = Vec::new();
        let s = read_sessions(&path, &mut errors);
        (s, errors.iter().map(ToString::to_string).collect())
    }

    /// A byte overwrite: an offset into the fixture and the bytes to write there.
    fn patch() -> impl Strategy<Value = (usize, Vec<u8>)> {
        (
            0..FIXTURE.len(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                // Whole little-endian integers: times and pids at the edges of their range.
                prop_oneof![
                    Just(i32::MIN),
                    Just(-1),
                    Just(i32::MAX),
                    Just(999_999),
                    Just(1_000_000)
                ]
                .prop_map(|n| n.to_le_bytes().to_vec()),
            ],
        )
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bytes_are_survived(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let (s, _) = read(&bytes);
            prop_assert!(s.len() <= bytes.len() / 384);
        }

        #[test]
        fn a_damaged_fixture_is_survived(
            patches in proptest::collection::vec(patch(), 0..12),
            cut in 0..=FIXTURE.len(),
        ) {
            let mut bytes = FIXTURE.to_vec();
            for (at, with) in &patches {
                for (i, b) in with.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            bytes.truncate(cut);
            let (s, _) = read(&bytes);
            prop_assert!(s.len() <= 3 + patches.len(), "{s:?}");
            for x in &s {
                prop_assert!(!x.user.is_empty());
            }
        }
    }
}
