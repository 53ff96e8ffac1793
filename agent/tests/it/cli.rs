//! The real `smon-agent` binary as a command-line tool: a reader that leaves early (`| head`)
//! ends every command's output quietly (status 0, nothing on stderr, no backtrace); the
//! one-shot commands (`--once`, `query`, `--check-config`) write no file; `query --watch`
//! redraws in place on a terminal; `--check-config` lists every problem; the daemon's log
//! lines name it.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_smon-agent");

/// How the reader of the child's stdout leaves.
#[derive(Clone, Copy, Debug)]
enum Reader {
    /// Gone before the child starts (`| head -c 0`): its first write fails, whatever its size.
    GoneAtStart,
    /// Reads one byte, then closes the pipe (`| head -c 1`).
    OneByte,
}

/// Runs `cmd` with its stdout into a pipe whose reader leaves as `reader` says, and `stdin`
/// on its stdin; returns the exit status and stderr.
fn into_closed_pipe(mut cmd: Command, reader: Reader, stdin: &str) -> (ExitStatus, String) {
    let (r, w) = std::io::pipe().expect("pipe");
    let r = match reader {
        Reader::GoneAtStart => {
            drop(r);
            None
        }
        Reader::OneByte => Some(r),
    };
    cmd.stdout(w)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG");
    let mut child = cmd.spawn().expect("spawn");
    // The write end lives on in the child only.
    drop(cmd);
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    if let Some(mut r) = r {
        let mut one = [0u8; 1];
        r.read_exact(&mut one).expect("the first byte");
        drop(r);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after its reader left: {:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (status, err)
}

fn quiet(what: &str, (status, stderr): (ExitStatus, String)) {
    assert!(
        status.success() && stderr.is_empty(),
        "{what}: status {status:?}, stderr:\n{stderr}"
    );
}

fn config(dir: &Path, port: u16, gpu: &str) -> std::path::PathBuf {
    let path = dir.join("config_node.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"manager":{{"mode":"supervisor"}},"monitor":{{"mode":"node","interval_ms":200,"grpc_listen":"127.0.0.1:{port}","gpu":"{gpu}","token":"{TOKEN}"}}}}"#
        ),
    )
    .expect("write config");
    path
}

fn agent(args: &[&str], cfg: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).arg("--config").arg(cfg);
    c
}

#[test]
fn once_stops_quietly_when_its_reader_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    // gpu "auto": NVML's "not available" line is the daemon's to log, not a one-shot call's.
    let cfg = config(dir.path(), support::free_port(), "auto");
    for args in [&["--once"][..], &["--once", "--json"]] {
        quiet(
            &format!("{args:?} | head -c 0"),
            into_closed_pipe(agent(args, &cfg), Reader::GoneAtStart, ""),
        );
    }
    quiet(
        "--once --json | head -c 1",
        into_closed_pipe(agent(&["--once", "--json"], &cfg), Reader::OneByte, ""),
    );
}

#[test]
fn subcommands_stop_quietly_when_their_reader_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), support::free_port(), "off");
    quiet(
        "gen-supervisor-conf | head -c 0",
        into_closed_pipe(
            agent(&["gen-supervisor-conf"], &cfg),
            Reader::GoneAtStart,
            "",
        ),
    );
    let mut hash = Command::new(BIN);
    hash.args(["hash-password", "--user", "bob"]);
    quiet(
        "hash-password | head -c 0",
        into_closed_pipe(hash, Reader::GoneAtStart, "a long enough password\n"),
    );
}

#[test]
fn query_watch_stops_quietly_when_its_reader_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::free_port();
    let cfg = config(dir.path(), port, "off");
    let mut server = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agent");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    let addr = format!("127.0.0.1:{port}");
    // Wait until the agent answers.
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "agent not up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let query = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["query", "--addr", &addr, "--token-file"])
            .arg(&token_file)
            .args(extra);
        c
    };
    let watch = into_closed_pipe(query(&["--watch", "--json"]), Reader::OneByte, "");
    let text = into_closed_pipe(query(&["--watch"]), Reader::OneByte, "");
    let once = into_closed_pipe(query(&["--json", "--detail"]), Reader::GoneAtStart, "");
    // On a terminal (`script` gives it one) --watch redraws in place; into a pipe it appends.
    let watch_for = |tty: bool| {
        let cmd = format!(
            "timeout 1.5 {BIN} query --addr {addr} --token-file {} --watch",
            token_file.display()
        );
        let mut c = if tty {
            let mut c = Command::new("script");
            c.args(["-qec", &cmd, "/dev/null"]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", &cmd]);
            c
        };
        let out = c.stdin(Stdio::null()).output().expect("run");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let on_tty = watch_for(true);
    let piped = watch_for(false);
    let _ = server.kill();
    let _ = server.wait();
    assert!(on_tty.matches("\x1b[H\x1b[2J").count() >= 2, "{on_tty:?}");
    assert!(
        piped.matches("\n#").count() >= 1 && !piped.contains('\x1b'),
        "{piped:?}"
    );
    assert!(
        piped.contains("GiB") && !piped.contains(" MiB  swap"),
        "{piped}"
    );
    quiet("query --watch --json | head -c 1", watch);
    quiet("query --watch | head -c 1", text);
    quiet("query --json --detail | head -c 0", once);
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// `--once`, `query` and `--check-config` with the embedded example config, whose token file
/// and users file are relative to the working directory: an empty directory stays empty.
#[test]
fn one_shot_commands_write_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::free_port().to_string();
    let runs: [&[&str]; 5] = [
        &["--once"],
        &["--once", "--json"],
        &["--check-config"],
        &["query", "--addr", &format!("127.0.0.1:{port}")],
        &["query", "--json", "--addr", &format!("127.0.0.1:{port}")],
    ];
    for args in runs {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("SMON_TOKEN")
            .output()
            .expect("run");
        // stdout carries the host's command lines (other tests run `--token-file ...`): only
        // the old advice to hand a new token over, and any word of a token on stderr, count.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stdout.contains("give it to the aggregator") && !stderr.contains("token"),
            "{args:?} talks of a token:\n{stderr}\n{stdout}"
        );
        assert_eq!(
            entries(dir.path()),
            Vec::<String>::new(),
            "{args:?} wrote into its working directory"
        );
    }
}

/// `--check-config` lists every problem of a file at once (unknown keys, wrong types, bad
/// values, and what start-up would refuse), exits 64, and writes nothing on stdout.
#[test]
fn check_config_reports_every_problem_at_once() {
    let f = support::fixture("invalid/every_kind.json");
    let out = Command::new(BIN)
        .args(["--check-config", "--config"])
        .arg(&f)
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], "smon-agent: invalid configuration:", "{err}");
    assert_eq!(lines.len(), 1 + 10, "{err}");
    for want in [
        "server.prot: '8081' is not a known key",
        "manager.probe_failures: '3' is a string",
        "monitor.intervall_ms: '500' is not a known key",
        "monitor.disks.exclude_mounts[1]: '5' is a number",
        "manager.mode: 'docker'",
        "monitor.interval_ms: '50'",
        "server.host: '0.0.0.0' is not a loopback address, and there are no users",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
}

/// Runs `cmd` (a daemon, `RUST_LOG` unset) until its stderr has a line with `until`, then
/// stops it with SIGTERM; returns its stderr.
pub fn daemon_log(mut cmd: Command, until: &str) -> String {
    use std::io::BufRead as _;
    let mut child = cmd
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.contains(until) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no {until:?} in the log:\n{log}");
            }
        }
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let _ = child.wait();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        log.push_str(&line);
        log.push('\n');
    }
    log
}

/// The daemon's log lines name the daemon (`smon-agent::...`), not the crate they come from,
/// and NVML's "not available" line comes once (the self manager and its server together).
#[test]
fn daemon_log_lines_name_the_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config_node.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"monitor":{{"mode":"node","grpc_listen":"127.0.0.1:{}","gpu":"auto","token":"{TOKEN}"}}}}"#,
            support::free_port()
        ),
    )
    .expect("config");
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(&path);
    let log = daemon_log(cmd, "Serving gRPC.");
    assert!(log.contains("Manager: started the server."), "{log}");
    for line in log
        .lines()
        .filter(|l| l.contains("  INFO ") || l.contains(" WARN "))
    {
        assert!(
            line.contains(" smon-agent"),
            "a line without the daemon's name: {line}"
        );
    }
    assert!(!log.contains("smon_"), "a crate's name in the log:\n{log}");
    assert!(
        log.matches("NVML is not available").count() <= 1,
        "NVML said more than once:\n{log}"
    );
}

/// A daemon whose stderr reader has gone (`smon-agent 2>&1 | head -3`) still stops on
/// SIGTERM: a log line that cannot be written is dropped, not a panic in the task that logged.
#[test]
fn a_closed_stderr_does_not_stop_the_daemon_from_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::free_port();
    let cfg = config(dir.path(), port, "off");
    let (r, w) = std::io::pipe().expect("pipe");
    drop(r);
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(w);
    let mut child = cmd.spawn().expect("spawn");
    drop(cmd);
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "agent not up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() > Duration::from_secs(3) {
            let _ = child.kill();
            panic!("still running 3 s after SIGTERM with its stderr closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// `query --help` points to the full-screen view, which lives in smonctl (the lean agent links
/// no terminal library).
#[test]
fn query_help_points_to_smonctl_top() {
    let out = Command::new(BIN)
        .args(["query", "--help"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("smonctl top --agent HOST:PORT"), "{text}");
}

/// A host without an NVIDIA driver (`gpu: auto`, no libnvidia-ml) says so once, not at every
/// retry of the GPU thread's backoff (it retries every 200 ms at first here).
#[test]
fn a_host_without_nvml_says_so_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config_node.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"monitor":{{"mode":"node","interval_ms":200,"grpc_listen":"127.0.0.1:{}","gpu":"auto","token":"{TOKEN}"}}}}"#,
            support::free_port()
        ),
    )
    .expect("config");
    let log_path = dir.path().join("agent.log");
    let mut child = Command::new(BIN)
        .args(["--no-supervise", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log"))
        .spawn()
        .expect("spawn");
    // 200, 400, 800, 1600 ms: four retries fit in 4 s.
    std::thread::sleep(Duration::from_secs(4));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).expect("log");
    let said = log.matches("NVML is not available").count();
    if log.contains("GPU source opened.") {
        eprintln!("this machine has an NVIDIA driver: nothing to say");
        assert_eq!(said, 0, "{log}");
    } else {
        assert_eq!(said, 1, "said {said} times:\n{log}");
    }
}
