//! The real `smon-aggregator` binary as a command-line tool: a reader that leaves early
//! (`| head -c 0`) ends its output quietly, with status 0 and nothing on stderr.

use std::io::Write as _;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_smon-aggregator");

/// Runs `cmd` with `stdin` on its stdin and its stdout into a pipe whose reader has gone, so
/// that its first write fails with EPIPE; asserts a quiet exit.
fn quiet_into_closed_pipe(what: &str, mut cmd: Command, stdin: &str) {
    let (r, w) = std::io::pipe().expect("pipe");
    drop(r);
    cmd.stdout(w)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG");
    let mut child = cmd.spawn().expect("spawn");
    drop(cmd);
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.is_empty(),
        "{what}: {:?}, stderr:\n{err}",
        out.status
    );
}

#[test]
fn subcommands_stop_quietly_when_their_reader_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config_app.json");
    std::fs::write(
        &cfg,
        r#"{"manager":{"mode":"supervisor"},"monitor":{"mode":"app"}}"#,
    )
    .expect("config");
    let mut gen_conf = Command::new(BIN);
    gen_conf
        .arg("gen-supervisor-conf")
        .arg("--config")
        .arg(&cfg);
    quiet_into_closed_pipe("gen-supervisor-conf | head -c 0", gen_conf, "");
    let mut hash = Command::new(BIN);
    hash.args(["hash-password", "--user", "ann", "--role", "admin"]);
    quiet_into_closed_pipe(
        "hash-password | head -c 0",
        hash,
        "a long enough password\n",
    );
}

/// `--check-config` makes start-up's checks: a dashboard on 0.0.0.0 that nobody could log in
/// to is reported (exit 64), and the same with public read-only mode is valid.
#[test]
fn check_config_refuses_a_public_address_without_users() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let run = |rel: &str| {
        Command::new(BIN)
            .args(["--check-config", "--config"])
            .arg(fixtures.join(rel))
            .env_remove("RUST_LOG")
            .output()
            .expect("run")
    };
    let out = run("invalid/public_address_without_users.json");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("server.host: '0.0.0.0' is not a loopback address, and there are no users"),
        "{err}"
    );
    let out = run("valid/public_read_only_on_any_address.json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The aggregator's log lines name it (`smon-aggregator::manager`), never the crate a line
/// comes from (the kit's `smon_runtime`, once `smon_agent`).
#[test]
fn log_lines_name_the_aggregator() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config_app.json");
    std::fs::write(
        &cfg,
        r#"{"server":{"port":0,"auth":{"public_read_only":true}},"monitor":{"mode":"app","self_gpu":"auto"}}"#,
    )
    .expect("config");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut log = String::new();
    while !log.contains("Serving the dashboard.") {
        match lines.next() {
            Some(Ok(l)) => {
                log.push_str(&l);
                log.push('\n');
            }
            _ => panic!("the aggregator ended:\n{log}"),
        }
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    for l in lines.map_while(Result::ok) {
        log.push_str(&l);
        log.push('\n');
    }
    let _ = child.wait();
    assert!(
        log.contains("smon-aggregator::manager: Manager: started the server."),
        "{log}"
    );
    assert!(!log.contains("smon_"), "a crate's name in the log:\n{log}");
    assert!(log.matches("NVML is not available").count() <= 1, "{log}");
}
