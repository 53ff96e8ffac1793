//! `smonctl top --agent`: one frame of a real agent, and the sentences for what goes wrong.

use crate::support::{agent, fails_with, free_port, smonctl, texts, until};

#[test]
fn once_draws_a_real_agent_with_human_sizes_processes_and_its_gpu() {
    let a = agent();
    let addr = format!("127.0.0.1:{}", a.port);
    let token = a.dir.path().join("token");
    let args = [
        "top",
        "--agent",
        &addr,
        "--token-file",
        token.to_str().expect("utf-8"),
        "--once",
        "--width",
        "140",
    ];
    // The first sample with processes takes an interval or two.
    let out = until(&args, |o| o.contains("Processes: ") && o.contains("by CPU"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    for want in [
        hostname.trim(),
        "CPU  [",
        "MEM  [",
        "GiB",
        "PID",
        "COMMAND",
        "GPUs",
        "UTIL",
        &format!("agent {addr}"),
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    // Sizes for people: never a count of MiB in the tens of thousands.
    assert!(
        !out.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[1].starts_with("MiB")
                && w[0].len() >= 5
                && w[0].chars().all(|c| c.is_ascii_digit())),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "--once prints text, not escape sequences"
    );
    assert!(!out.contains("q quit"), "--once shows no key hints: {out}");
    let by_mem = until(&[&args[..], &["--sort", "memory"]].concat(), |o| {
        o.contains("by memory")
    });
    assert!(by_mem.contains("PID"), "{by_mem}");
}

#[test]
fn a_wrong_token_a_closed_port_and_no_terminal_are_one_sentence_each() {
    let a = agent();
    let addr = format!("127.0.0.1:{}", a.port);
    let wrong = a.dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token-0123456789abcdef").expect("file");
    let o = smonctl(&[
        "top",
        "--agent",
        &addr,
        "--token-file",
        wrong.to_str().expect("utf-8"),
        "--once",
    ]);
    fails_with(&o, &format!("the agent at {addr} refused the token"));
    let closed = format!("127.0.0.1:{}", free_port());
    let o = smonctl(&["top", "--agent", &closed, "--once"]);
    fails_with(
        &o,
        &format!("cannot connect to {closed}: connection refused. Is the agent running"),
    );
    let o = smonctl(&[
        "top",
        "--agent",
        &addr,
        "--token-file",
        "/nonexistent/token",
        "--once",
    ]);
    fails_with(&o, "cannot read the token file /nonexistent/token");
    // Without --once the view needs a terminal: stdout is a pipe here.
    let o = smonctl(&["top", "--agent", &addr]);
    fails_with(&o, "stdout is not a terminal");
    let (_, err) = texts(&smonctl(&[
        "top",
        "--agent",
        &addr,
        "--server",
        "http://x/",
    ]));
    assert!(err.contains("cannot be used with"), "{err}");
}

/// What a terminal received so far, read by a thread as it comes (a pipe left unread would
/// fill and stall the view): the bytes, and what they show on a 120 x 40 terminal. The view
/// is checked on the emulated screen, not in the bytes: ratatui redraws only the cells that
/// changed, so a line of text is in the bytes whole only when every cell of it changed.
#[derive(Clone)]
struct Screen(std::sync::Arc<std::sync::Mutex<(Vec<u8>, vt100::Parser)>>);

impl Default for Screen {
    fn default() -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new((
            Vec::new(),
            vt100::Parser::new(
                std::num::NonZero::new(40).expect("rows"),
                std::num::NonZero::new(120).expect("columns"),
                0,
            ),
        ))))
    }
}

impl Screen {
    fn feed(&self, bytes: &[u8]) {
        let mut t = self.0.lock().expect("lock");
        t.0.extend_from_slice(bytes);
        t.1.process(bytes);
    }

    /// Everything written to the terminal, escape sequences included.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock").0).into_owned()
    }

    /// What the terminal shows now, and whether that is the alternate screen.
    fn shown(&self) -> (String, bool) {
        let t = self.0.lock().expect("lock");
        (t.1.screen().contents(), t.1.screen().alternate_screen())
    }

    /// Waits until the terminal shows `needle`; panics after 20 s.
    fn wait_for(&self, needle: &str) {
        let started = std::time::Instant::now();
        while !self.shown().0.contains(needle) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{needle:?} never shown; the screen:\n{}",
                self.shown().0
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// A child process killed if the test fails before it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the live view on a pseudo-terminal (util-linux `script`, 120 x 40) against `a`;
/// `act` gets its stdin (the keyboard), smonctl's pid and the screen once the first frame is
/// drawn. Returns the exit status and the terminal.
fn live(
    a: &crate::support::Daemon,
    act: impl FnOnce(&mut std::process::ChildStdin, u32, &Screen),
) -> (std::process::ExitStatus, Screen) {
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let token = a.dir.path().join("token");
    let cmd = format!(
        "stty cols 120 rows 40; exec {} top --agent 127.0.0.1:{} --token-file {}",
        env!("CARGO_BIN_EXE_smonctl"),
        a.port,
        token.display()
    );
    let mut child = KillOnDrop(
        Command::new("script")
            .args(["-qefc", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux)"),
    );
    let child = &mut child.0;
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let screen = Screen::default();
    let sink = screen.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.feed(&chunk[..n]);
        }
    });
    screen.wait_for("Processes");
    // `script` forks once; the shell then execs smonctl in that child.
    let children = format!("/proc/{0}/task/{0}/children", child.id());
    let pid: u32 = std::fs::read_to_string(&children)
        .expect("children")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("smonctl's pid");
    act(&mut stdin, pid, &screen);
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("smonctl top did not stop: {:?}", screen.text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().expect("reader");
    (status, screen)
}

/// Panics unless the view took the alternate screen and gave it back: the terminal shows
/// the normal screen again, as it was.
fn gave_the_screen_back(screen: &Screen) {
    let out = screen.text();
    let enter = out
        .find("\u{1b}[?1049h")
        .expect("the alternate screen was taken");
    let leave = out
        .rfind("\u{1b}[?1049l")
        .expect("the alternate screen was given back");
    assert!(enter < leave, "{out:?}");
    let (shown, alternate) = screen.shown();
    assert!(!alternate && !shown.contains("Processes"), "{shown}");
}

/// The live view on a real terminal: it takes the alternate screen, draws the agent's data,
/// opens the help on `?`, quits on `q` with status 0 and gives the screen back.
#[test]
fn the_live_view_draws_on_a_terminal_and_gives_it_back_on_q() {
    use std::io::Write as _;
    let a = agent();
    let (status, screen) = live(&a, |keys, _, screen| {
        for want in ["CPU", "MEM", "Processes"] {
            screen.wait_for(want);
        }
        assert!(screen.shown().1, "not on the alternate screen");
        keys.write_all(b"?").expect("key");
        screen.wait_for("Help");
        screen.wait_for("sort by memory");
        keys.write_all(b"q").expect("key");
    });
    assert!(status.success(), "{status:?}\n{}", screen.text());
    gave_the_screen_back(&screen);
}

/// SIGTERM (a closing terminal, `kill`) ends the live view the same way as `q`.
#[test]
fn sigterm_gives_the_terminal_back_too() {
    let a = agent();
    let (status, screen) = live(&a, |_, pid, screen| {
        screen.wait_for("CPU");
        let st = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
    });
    assert!(status.success(), "{status:?}\n{}", screen.text());
    gave_the_screen_back(&screen);
}

/// `--once` into a reader that has gone (`| head -c 0`): status 0, nothing on stderr.
#[test]
fn once_into_a_closed_pipe_stops_quietly() {
    let a = agent();
    let addr = format!("127.0.0.1:{}", a.port);
    let token = a.dir.path().join("token");
    let args = [
        "top",
        "--agent",
        &addr,
        "--token-file",
        token.to_str().expect("utf-8"),
        "--once",
    ];
    until(&args, |o| o.contains("CPU"));
    let (r, w) = std::io::pipe().expect("pipe");
    drop(r);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smonctl"))
        .args(args)
        .stdout(w)
        .output()
        .expect("smonctl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.is_empty(),
        "{:?}: {err}",
        out.status
    );
}
