//! Files that hold secrets (the users file with its password hashes, bearer-token files, the
//! first-start password, the login throttle's state, the audit log): written readable by their
//! owner only, atomically, and checked for group or world access when read, as ssh checks a
//! private key.
//!
//! The daemons WARN about a secret file that others may read (at start, and in
//! `--check-config`) rather than refusing it: a deploy tool with a loose umask should not turn
//! into an outage, and the hashes are argon2 (slow to crack). The README's "Security" section
//! says so.

use std::io::Write;
use std::path::Path;

/// A secret file that users other than its owner may read or write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}: mode {mode:04o} lets {who} read or write this secret file; run `chmod 600 {}`",
    path.display(),
    path.display()
)]
pub struct TooOpen {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// `group`, `others`, or `group and others`.
    pub who: &'static str,
}

/// Checks that `path`, a secret file, is not open to its group or to others. A missing file,
/// or one that cannot be inspected, is not this check's business (`Ok`): reading it reports
/// those.
#[cfg(unix)]
pub fn check(path: &Path) -> Result<(), TooOpen> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    use std::os::unix::fs::MetadataExt;
    let mode = meta.permissions().mode() & 0o7777;
    // The packaged layout: a file owned by root, readable by the daemon's own group only
    // (`root:smon 0640` in /etc/smon/tokens). The daemon cannot change it and nobody else can
    // read it, so that is not a finding. Group write, or any bit for others, still is.
    let read_through_own_group = mode & 0o070 == 0o040
        && meta.gid() == rustix::process::getegid().as_raw()
        && meta.uid() != rustix::process::geteuid().as_raw();
    let group_finding = mode & 0o070 != 0 && !read_through_own_group;
    let who = match (group_finding, mode & 0o007 != 0) {
        (false, false) => return Ok(()),
        (true, false) => "group",
        (false, true) => "others",
        (true, true) => "group and others",
    };
    Err(TooOpen {
        path: path.to_owned(),
        mode,
        who,
    })
}

/// Elsewhere there are no Unix permission bits to check.
#[cfg(not(unix))]
pub fn check(_path: &Path) -> Result<(), TooOpen> {
    Ok(())
}

/// The problems of each of `paths` (secret files), as lines for a log or `--check-config`.
pub fn warnings<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Vec<String> {
    paths
        .into_iter()
        .filter_map(|p| check(p).err())
        .map(|e| e.to_string())
        .collect()
}

/// Writes `bytes` to `path` readable by its owner only, atomically: a temporary file beside
/// it (mode 0600 from its creation, never briefly wider), synced, then renamed over `path`.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = open_private(&tmp, false)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
}

/// Appends `line` and a newline to `path`, created readable by its owner only, with one
/// `write` call (so that concurrent appenders never interleave within a line), then syncs.
pub fn append_private(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = open_private(path, true)?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    f.write_all(&buf)?;
    f.sync_data()
}

#[cfg(unix)]
fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.create(true).mode(0o600);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn written_files_are_private_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("secret");
        write_private(&p, b"one").expect("write");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).expect("read"), b"one");
        assert!(check(&p).is_ok());
        write_private(&p, b"two").expect("rewrite");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "no temporary file left"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = check(&p).expect_err("world-readable");
        assert_eq!((e.mode, e.who), (0o644, "group and others"));
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert_eq!(check(&p).expect_err("group").who, "group");
        assert_eq!(warnings([p.as_path()]).len(), 1);
        assert!(check(&dir.path().join("missing")).is_ok());
    }

    #[test]
    fn appends_are_private_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("audit.jsonl");
        append_private(&p, "a").expect("append");
        append_private(&p, "b").expect("append");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "a\nb\n");
        assert_eq!(mode(&p), 0o600);
    }
}
