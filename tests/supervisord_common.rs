//! A real `supervisord` (Debian package `supervisor`) for the tests of two crates: the
//! agent's `Control` RPCs and its supervisor manager mode (`agent/tests/it/supervisor_control.rs`
//! includes this file with `#[path]`, `supervisor.rs` uses it from there) and the aggregator's
//! program, program event and application tests (`aggregator/tests/it/programs.rs` includes it). supervisord runs in the foreground with its config, unix socket (with
//! [`USER`] / [`PASSWORD`]) and logs in a temp dir, and the programs the test gives; dropping
//! it stops supervisord, which stops its programs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUPERVISORD: &str = "/usr/bin/supervisord";
pub const SUPERVISORCTL: &str = "/usr/bin/supervisorctl";

/// supervisord's credentials.
pub const USER: &str = "smon";
pub const PASSWORD: &str = "supervisor-test-password";

/// A running supervisord.
pub struct Supervisord {
    child: Child,
    conf: PathBuf,
    sock: PathBuf,
    dir: PathBuf,
}

impl Supervisord {
    /// Starts one in `dir` with `programs`: `[program:...]` / `[group:...]` sections, where
    /// `{d}` stands for `dir`.
    pub fn start(dir: &Path, programs: &str) -> Self {
        assert!(
            Path::new(SUPERVISORD).exists() && Path::new(SUPERVISORCTL).exists(),
            "{SUPERVISORD} is missing: install the Debian package `supervisor`"
        );
        let d = dir.display();
        let conf = dir.join("supervisord.conf");
        let text = format!(
            "[unix_http_server]\n\
             file={d}/s.sock\n\
             chmod=0700\n\
             username={USER}\n\
             password={PASSWORD}\n\
             \n\
             [supervisord]\n\
             logfile={d}/supervisord.log\n\
             pidfile={d}/supervisord.pid\n\
             childlogdir={d}\n\
             loglevel=info\n\
             \n\
             [rpcinterface:supervisor]\n\
             supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\
             \n\
             [supervisorctl]\n\
             serverurl=unix://{d}/s.sock\n\
             username={USER}\n\
             password={PASSWORD}\n\
             \n\
             {}",
            programs.replace("{d}", &d.to_string())
        );
        std::fs::write(&conf, text).expect("write supervisord.conf");
        let child = Command::new(SUPERVISORD)
            .arg("-n")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn supervisord");
        Self {
            child,
            conf,
            sock: dir.join("s.sock"),
            dir: dir.to_owned(),
        }
    }

    /// `unix://<socket>`: what `control.supervisor.url` names.
    pub fn url(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// `supervisorctl status <name>`'s output.
    pub fn status(&self, name: &str) -> String {
        let out = Command::new(SUPERVISORCTL)
            .arg("-c")
            .arg(&self.conf)
            .args(["status", name])
            .output()
            .expect("run supervisorctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// supervisord's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("supervisord.log")).unwrap_or_default()
    }

    /// Waits until `supervisorctl status <name>` says `word` on every line; returns it.
    pub fn says(&self, name: &str, word: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.status(name);
            let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
            if !lines.is_empty() && lines.iter().all(|l| l.contains(word)) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "supervisorctl status {name} never said {word}: {out}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM (supervisord stops its programs first), then waits for it to end.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Supervisord {
    /// Runs `supervisorctl <args>` (e.g. `["stop", "web:api"]`); returns its output.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(SUPERVISORCTL)
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .expect("run supervisorctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
