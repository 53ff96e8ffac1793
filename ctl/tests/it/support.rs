//! Helpers: the real `smon-agent` and `smon-aggregator` binaries on loopback, and running
//! `smonctl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The token of every test agent.
pub const TOKEN: &str = "smonctl-test-token-0123456789abcdef";

/// A sibling binary of smonctl, built on demand when only this package's tests were asked for.
pub fn bin(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_smonctl"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let bin = dir.join(name);
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", name])
            .status()
            .expect("cargo build");
        assert!(st.success(), "building {name} failed");
    }
    bin
}

/// A free port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits until something listens on `port`.
pub fn wait_listening(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon process in a directory of its own; killed on drop.
pub struct Daemon {
    /// Its port.
    pub port: u16,
    /// Its directory (config, token, users).
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, dir: tempfile::TempDir, config: &str, port: u16) -> Daemon {
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, config).expect("config");
    let err = std::fs::File::create(dir.path().join("err.log")).expect("log file");
    let child = Command::new(bin(name))
        .args([
            "--no-supervise".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn");
    wait_listening(port, name);
    Daemon { port, dir, child }
}

/// An agent on 127.0.0.1 with the token [`TOKEN`] (also in `<dir>/token`), one fake GPU and a
/// 200 ms interval.
pub fn agent() -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).expect("token file");
    let port = free_port();
    let config = format!(
        r#"{{"monitor":{{"mode":"node","interval_ms":200,"grpc_listen":"127.0.0.1:{port}","token":"{TOKEN}","gpu":"fake","fake_gpu_count":1}}}}"#
    );
    spawn("smon-agent", dir, &config, port)
}

/// An aggregator on 127.0.0.1 polling `agent` as `lab:n1` (and itself as `local:...`), with
/// no users: it makes `admin` and writes its password to `<dir>/password` (one line).
pub fn aggregator(agent: &Daemon) -> Daemon {
    let d = aggregator_with(agent, "");
    let pw_file = d.dir.path().join("smon-users.initial-password");
    let started = Instant::now();
    let password = loop {
        let text = std::fs::read_to_string(&pw_file).unwrap_or_default();
        if let Some(p) = text.lines().find_map(|l| l.strip_prefix("password: ")) {
            break p.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no password file"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::fs::write(d.dir.path().join("password"), format!("{password}\n")).expect("password");
    d
}

/// Like [`aggregator`] with `server_extra` in the `server` block (starting with a comma), and
/// no wait for a password file.
pub fn aggregator_with(agent: &Daemon, server_extra: &str) -> Daemon {
    let clusters = format!(
        r#"[{{"name":"lab","hosts":[{{"name":"n1","address":"127.0.0.1:{}","token":"{TOKEN}"}}]}}]"#,
        agent.port
    );
    aggregator_of(&clusters, server_extra)
}

/// An aggregator watching `clusters` (the JSON of `monitor.clusters`), with `server_extra` in
/// the `server` block; no wait for a password file.
pub fn aggregator_of(clusters: &str, server_extra: &str) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = format!(
        r#"{{"server":{{"host":"127.0.0.1","port":{port}{server_extra}}},"monitor":{{"mode":"app","poll_interval_ms":200,"self_gpu":"off","clusters":{clusters}}}}}"#
    );
    spawn("smon-aggregator", dir, &config, port)
}

/// A daemon `name` (`smon-agent`, `smon-aggregator`) on 127.0.0.1 with the config
/// `config(port, dir)` in a directory of its own.
pub fn daemon_with(name: &str, config: impl FnOnce(u16, &std::path::Path) -> String) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let text = config(port, dir.path());
    spawn(name, dir, &text, port)
}

/// Runs `smonctl` with `args` (stdout and stderr captured: not a terminal).
pub fn smonctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smonctl"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("smonctl")
}

/// Its stdout and stderr as text.
pub fn texts(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `smonctl` until `done(stdout)` holds (the daemons need a moment for their first
/// sample); returns that stdout. Panics after 30 s with the last output.
pub fn until(args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let o = smonctl(args);
        let (out, err) = texts(&o);
        if o.status.success() && done(&out) {
            return out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "smonctl {args:?}: {:?}\n{out}\n{err}",
            o.status
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts `o` failed with one line on stderr holding `want`, and no panic or backtrace.
pub fn fails_with(o: &Output, want: &str) {
    let (out, err) = texts(o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.starts_with("smonctl: ") && err.contains(want), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
}
