//! Deployment helpers shared by both daemons: `gen-supervisor-conf` writes a Supervisor
//! (`supervisord`) program file for `manager.mode = "supervisor"`.
//!
//! [`render_supervisor_program`] is pure (tested below); [`gen_supervisor_conf`] is the thin
//! command around it that reads the config, picks the defaults and writes the file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::About;
use crate::daemon::EXIT_USAGE;

/// Options of the `gen-supervisor-conf` subcommand (the same for both binaries).
#[derive(Debug, Clone, clap::Args)]
pub struct GenSupervisorConf {
    /// The daemon's config file; written into the program file as an absolute path.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The binary Supervisor runs (default: this executable).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Run the daemon as this user (default: the user supervisord runs as).
    #[arg(long)]
    pub user: Option<String>,
    /// Directory of the stdout and stderr log files (it must exist).
    #[arg(long, default_value = "/var/log/smon")]
    pub log_dir: PathBuf,
    /// Write the program file here instead of to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Everything a Supervisor program section is made of, resolved.
#[derive(Debug, Clone)]
pub struct SupervisorProgram<'a> {
    /// Which daemon.
    pub daemon: &'a About,
    /// Absolute path of the binary.
    pub binary: &'a Path,
    /// Absolute path of the config file.
    pub config: &'a Path,
    /// User to run as, if any.
    pub user: Option<&'a str>,
    /// Directory of the log files.
    pub log_dir: &'a Path,
}

/// Why a program file cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A value cannot be put in a Supervisor file safely.
    #[error("{what}: '{value}' {problem}")]
    Invalid {
        /// Which option.
        what: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The config file cannot be read or is not JSON.
    #[error("{file}: {problem}")]
    Config {
        /// The config file.
        file: String,
        /// What went wrong.
        problem: String,
    },
    /// Another I/O failure (resolving a path, writing the file).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// How many times Supervisor retries a daemon that exits within `startsecs` before it gives
/// up (state FATAL): enough to ride out a port still held by the old process.
const START_RETRIES: u32 = 5;

/// Renders the `[program:NAME]` section. Paths must be absolute; every value is checked for
/// what would break the INI file or the command line Supervisor splits.
pub fn render_supervisor_program(p: &SupervisorProgram<'_>) -> Result<String, DeployError> {
    let name = p.daemon.name;
    let binary = path_value("--binary", p.binary)?;
    let config = path_value("--config", p.config)?;
    let log_dir = path_value("--log-dir", p.log_dir)?;
    if let Some(u) = p.user
        && (u.is_empty()
            || u.starts_with('-')
            || !u
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(DeployError::Invalid {
            what: "--user",
            value: u.to_owned(),
            problem: "is not a user name",
        });
    }
    let log = |stream: &str| format!("{}/{name}.{stream}.log", log_dir.trim_end_matches('/'));

    let mut s = String::new();
    // `writeln!` into a String cannot fail.
    let _ = writeln!(
        s,
        "; Supervisor program for {name} ({}), written by `{name} gen-supervisor-conf`.\n\
         ; Install: copy to /etc/supervisor/conf.d/{name}.conf, create the log directory, then\n\
         ; `supervisorctl reread && supervisorctl update`. The config should say\n\
         ; \"manager\": {{ \"mode\": \"supervisor\" }}.\n\
         [program:{name}]\n\
         command={} --config {}",
        p.daemon.description,
        quote(&binary),
        quote(&config),
    );
    match p.user {
        Some(u) => {
            let _ = writeln!(s, "user={u}");
        }
        None => {
            let _ = writeln!(s, "; user= not set: runs as the user supervisord runs as");
        }
    }
    let _ = write!(
        s,
        "autostart=true\n\
         autorestart=true\n\
         ; Running this long counts as started; an earlier exit is retried, then FATAL.\n\
         startsecs=2\n\
         startretries={START_RETRIES}\n\
         ; The daemon stops cleanly on SIGTERM within 2 s; SIGKILL after 5 s.\n\
         stopsignal=TERM\n\
         stopwaitsecs=5\n\
         stopasgroup=true\n\
         killasgroup=true\n\
         stdout_logfile={}\n\
         stdout_logfile_maxbytes=10MB\n\
         stdout_logfile_backups=5\n\
         stderr_logfile={}\n\
         stderr_logfile_maxbytes=10MB\n\
         stderr_logfile_backups=5\n\
         environment=RUST_LOG=\"info\"\n",
        log("out"),
        log("err"),
    );
    Ok(s)
}

/// A path as a Supervisor value: absolute, no control characters or quotes, and `%` doubled
/// (Supervisor expands `%(name)s` in values).
fn path_value(what: &'static str, p: &Path) -> Result<String, DeployError> {
    let bad = |problem| DeployError::Invalid {
        what,
        value: p.display().to_string(),
        problem,
    };
    let s = p.to_str().ok_or_else(|| bad("is not valid UTF-8"))?;
    if !p.is_absolute() {
        return Err(bad("is not an absolute path"));
    }
    if s.chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\'' | '\\' | ';' | '#'))
    {
        return Err(bad(
            "contains a control character, a quote, a backslash, ';' or '#'",
        ));
    }
    Ok(s.replace('%', "%%"))
}

/// Quotes a word for the shell-like split Supervisor applies to `command=`.
fn quote(s: &str) -> String {
    if s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s.to_owned()
    }
}

/// Why `manager.mode` could not be read from a config file.
#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    /// The file is not JSON.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// The mode is not a string.
    #[error("manager.mode: '{0}' is not a string")]
    NotString(String),
}

/// The `manager.mode` a config file asks for (`self` when absent), without validating the
/// rest: the file may be meant for another machine (paths, users and certificates there).
pub fn manager_mode(text: &str) -> Result<String, ModeError> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    match v.get("manager").and_then(|m| m.get("mode")) {
        None => Ok("self".to_owned()),
        Some(serde_json::Value::String(m)) => Ok(m.clone()),
        Some(other) => Err(ModeError::NotString(other.to_string())),
    }
}

/// `gen-supervisor-conf`: resolves the defaults, renders the program file and writes it.
/// Returns the text written and warnings for stderr.
pub fn write_supervisor_conf(
    daemon: &About,
    args: &GenSupervisorConf,
) -> Result<(String, Vec<String>), DeployError> {
    let io = |what: String| move |source| DeployError::Io { what, source };
    let file = args.config.display().to_string();
    let text = std::fs::read_to_string(&args.config).map_err(|e| DeployError::Config {
        file: file.clone(),
        problem: format!("cannot read the file: {e}"),
    })?;
    let mode = manager_mode(&text).map_err(|e| DeployError::Config {
        file: file.clone(),
        problem: e.to_string(),
    })?;
    let mut warnings = Vec::new();
    if mode != "supervisor" {
        let why = if mode == "self" {
            "with 'self' the daemon runs its own manager and a child process under Supervisor"
        } else {
            "the mode documents who keeps the daemon alive"
        };
        warnings.push(format!(
            "{file}: manager.mode is '{mode}', not 'supervisor' ({why}); set \
             \"manager\": {{ \"mode\": \"supervisor\" }}"
        ));
    }
    let config = std::fs::canonicalize(&args.config)
        .map_err(io(format!("cannot resolve {}", args.config.display())))?;
    let binary = match &args.binary {
        Some(b) => std::path::absolute(b).map_err(io(format!("cannot resolve {}", b.display())))?,
        None => std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .map_err(io("cannot find this executable".into()))?,
    };
    let log_dir = std::path::absolute(&args.log_dir)
        .map_err(io(format!("cannot resolve {}", args.log_dir.display())))?;
    let text = render_supervisor_program(&SupervisorProgram {
        daemon,
        binary: &binary,
        config: &config,
        user: args.user.as_deref(),
        log_dir: &log_dir,
    })?;
    if let Some(out) = &args.out {
        std::fs::write(out, &text).map_err(io(format!("cannot write {}", out.display())))?;
    }
    Ok((text, warnings))
}

/// The whole subcommand for a binary's `main`: writes the file (or prints it), prints warnings
/// to stderr, and returns the exit status (64 for a bad argument or config).
pub fn gen_supervisor_conf(daemon: &About, args: &GenSupervisorConf) -> ExitCode {
    match write_supervisor_conf(daemon, args) {
        Ok((text, warnings)) => {
            for w in warnings {
                eprintln!("{} gen-supervisor-conf: warning: {w}", daemon.name);
            }
            match &args.out {
                Some(out) => eprintln!("{}: written", out.display()),
                None => {
                    // A closed pipe (`| head`) ends the output quietly (see `crate::cli`).
                    if let Err(e) = crate::cli::print(&text) {
                        eprintln!(
                            "{} gen-supervisor-conf: cannot write to stdout: {e}",
                            daemon.name
                        );
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{} gen-supervisor-conf: {e}", daemon.name);
            match e {
                DeployError::Io { .. } => ExitCode::FAILURE,
                _ => ExitCode::from(EXIT_USAGE),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: About = About {
        name: "smon-agent",
        description: "the node agent",
        reloads_on_sighup: false,
        shutdown_grace: std::time::Duration::from_millis(1500),
    };

    const OTHER: About = About {
        name: "smon-other",
        description: "another daemon",
        reloads_on_sighup: true,
        shutdown_grace: std::time::Duration::from_millis(1500),
    };

    fn program<'a>(user: Option<&'a str>, binary: &'a Path) -> SupervisorProgram<'a> {
        SupervisorProgram {
            daemon: &AGENT,
            binary,
            config: Path::new("/etc/smon/config_node.json"),
            user,
            log_dir: Path::new("/var/log/smon/"),
        }
    }

    /// The `key=value` lines of the section, comments left out.
    fn keys(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.starts_with(';') && !l.starts_with('['))
            .map(|l| {
                let (k, v) = l.split_once('=').expect("key=value");
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    fn get(text: &str, key: &str) -> Option<String> {
        keys(text)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn renders_a_complete_program_section() {
        let t = render_supervisor_program(&program(Some("smon"), Path::new("/usr/bin/smon-agent")))
            .expect("renders");
        assert!(t.contains("\n[program:smon-agent]\n"), "{t}");
        let want = [
            (
                "command",
                "/usr/bin/smon-agent --config /etc/smon/config_node.json",
            ),
            ("user", "smon"),
            ("autostart", "true"),
            ("autorestart", "true"),
            ("startsecs", "2"),
            ("startretries", "5"),
            ("stopsignal", "TERM"),
            ("stopwaitsecs", "5"),
            ("stdout_logfile", "/var/log/smon/smon-agent.out.log"),
            ("stderr_logfile", "/var/log/smon/smon-agent.err.log"),
            ("stdout_logfile_maxbytes", "10MB"),
            ("stderr_logfile_backups", "5"),
            ("environment", "RUST_LOG=\"info\""),
        ];
        for (k, v) in want {
            assert_eq!(get(&t, k).as_deref(), Some(v), "{k} in\n{t}");
        }
        // Every key once.
        let ks = keys(&t);
        let mut names: Vec<_> = ks.iter().map(|(k, _)| k.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ks.len(), "{t}");
    }

    #[test]
    fn another_daemon_gets_its_own_program_and_logs() {
        let mut p = program(None, Path::new("/usr/bin/smon-other"));
        p.daemon = &OTHER;
        p.config = Path::new("/etc/smon/config_other.json");
        let t = render_supervisor_program(&p).expect("renders");
        assert!(t.contains("[program:smon-other]"), "{t}");
        assert!(
            t.starts_with("; Supervisor program for smon-other (another daemon)"),
            "{t}"
        );
        assert_eq!(
            get(&t, "stderr_logfile").as_deref(),
            Some("/var/log/smon/smon-other.err.log")
        );
        assert_eq!(get(&t, "user"), None, "no user unless asked: {t}");
    }

    #[test]
    fn paths_with_spaces_are_quoted_and_percent_escaped() {
        let t =
            render_supervisor_program(&program(None, Path::new("/opt/my smon/100%/smon-agent")))
                .expect("renders");
        assert_eq!(
            get(&t, "command").as_deref(),
            Some("\"/opt/my smon/100%%/smon-agent\" --config /etc/smon/config_node.json")
        );
    }

    #[test]
    fn refuses_what_would_break_the_file() {
        for (binary, user, what) in [
            ("smon-agent", None, "--binary"),
            ("/usr/bin/smon\nagent", None, "--binary"),
            ("/usr/bin/smon;agent", None, "--binary"),
            ("/usr/bin/smon-agent", Some("root\nuser=x"), "--user"),
            ("/usr/bin/smon-agent", Some(""), "--user"),
            ("/usr/bin/smon-agent", Some("-u"), "--user"),
        ] {
            let e =
                render_supervisor_program(&program(user, Path::new(binary))).expect_err("refused");
            assert!(e.to_string().starts_with(what), "{e}");
        }
    }

    #[test]
    fn reads_the_manager_mode_without_validating_the_rest() {
        assert_eq!(
            manager_mode(r#"{"manager":{"mode":"supervisor"},"monitor":{}}"#).expect("mode"),
            "supervisor"
        );
        assert_eq!(manager_mode(r#"{"monitor":{}}"#).expect("mode"), "self");
        assert!(manager_mode(r#"{"manager":{"mode":3}}"#).is_err());
        assert!(manager_mode("{").is_err());
    }

    #[test]
    fn warns_when_the_config_does_not_say_supervisor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("c.json");
        std::fs::write(
            &cfg,
            r#"{"manager":{"mode":"self"},"monitor":{"mode":"node"}}"#,
        )
        .expect("write");
        let out = dir.path().join("p.conf");
        let args = GenSupervisorConf {
            config: cfg.clone(),
            binary: Some("/usr/bin/smon-agent".into()),
            user: None,
            log_dir: "/var/log/smon".into(),
            out: Some(out.clone()),
        };
        let (text, warnings) = write_supervisor_conf(&AGENT, &args).expect("written");
        assert_eq!(std::fs::read_to_string(&out).expect("read"), text);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("manager.mode is 'self'"),
            "{warnings:?}"
        );
        let canon = std::fs::canonicalize(&cfg).expect("canon");
        assert!(
            text.contains(&format!("--config {}", canon.display())),
            "{text}"
        );
        // No token file appeared next to the config: only manager.mode was read.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 2);
    }
}
