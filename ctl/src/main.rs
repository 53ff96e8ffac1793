//! The `smonctl` binary: parses arguments, reads the secret files, fetches the first answer
//! (so that a wrong address, token or password is one sentence on stderr, exit status 1), then
//! either prints one frame as text (`--once`) or runs the live view on the terminal; or runs
//! one of the REST commands ([`smonctl::rest`]: `hosts`, `status`, `wake`, `reboot`,
//! `shutdown`, `check`, `audit`, `programs`, `start`, `stop`, `restart`, `tail`, `signal`, `app`), which exit 0 ok, 1 some hosts failed, 2 usage, 3 auth,
//! 4 unreachable.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use smon_api::Client;
use smon_api::programs::ProgramVerb;
use smon_runtime::cli::{self, Output};
use smonctl::agent::{Agent, Target, Tls};
use smonctl::app::{App, Mode, Sort, Update};
use smonctl::fleet::{Fleet, Login};
use smonctl::rest::{self, Exit, Failure, Targets};
use smonctl::term::{self, Source};
use smonctl::view;

/// smon's command-line client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// A top-like view, redrawn in place: one agent over gRPC (--agent), or the fleet through
    /// an aggregator's REST API (--server). Keys: q quit, ? help, c/m sort by CPU/memory,
    /// arrows and Enter to open a host, Esc back.
    Top(Top),
    /// The hosts: id, status, CPU, memory, address.
    Hosts(Plain),
    /// One host in detail.
    Status {
        /// The host: `cluster:name`, or a name one cluster has.
        host: String,
        #[command(flatten)]
        plain: Plain,
    },
    /// Wake hosts with a Wake-on-LAN magic packet (admin token).
    Wake(Act),
    /// Reboot hosts (admin token).
    Reboot(Act),
    /// Shut hosts down (admin token).
    Shutdown(Act),
    /// Check hosts now: reach their agents and report (admin token).
    Check(Act),
    /// A host's supervisord programs: state, pid, uptime, CPU, memory.
    Programs {
        /// The host: `cluster:name`, or a name one cluster has.
        host: String,
        #[command(flatten)]
        plain: Plain,
    },
    /// Start a supervisord program of a host (`group:name`, or `group:*`; admin token).
    Start(ProgramArgs),
    /// Stop a supervisord program of a host (admin token).
    Stop(ProgramArgs),
    /// Restart a supervisord program of a host (admin token).
    Restart(ProgramArgs),
    /// The end of a program's log (admin token).
    Tail {
        /// The host: `cluster:name`, or a name one cluster has.
        host: String,
        /// The program: `group:name` (or `name` outside any group).
        program: String,
        /// Its stderr log instead of its stdout.
        #[arg(long)]
        stderr: bool,
        /// How many bytes of the end (default 16384, at most 65536).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65536))]
        bytes: Option<u32>,
        #[command(flatten)]
        plain: Plain,
    },
    /// Send a signal (TERM, INT, KILL or HUP) to a process of a host (admin token).
    Signal {
        /// The host: `cluster:name`, or a name one cluster has.
        host: String,
        /// The process id.
        pid: u32,
        /// TERM, INT, KILL or HUP.
        signal: String,
        #[command(flatten)]
        plain: Plain,
    },
    /// Declared applications (`applications[]` of the aggregator's config): list them,
    /// or start, stop or restart one or all (admin token; all: in start_after order).
    #[command(subcommand)]
    App(AppCommand),
    /// The audit log, newest first (admin token).
    Audit {
        /// At most this many records.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Only this action (e.g. wake, add_user, token.create).
        #[arg(long)]
        action: Option<String>,
        /// Only records naming this host id.
        #[arg(long)]
        host: Option<String>,
        #[command(flatten)]
        plain: Plain,
    },
}

/// Where the aggregator is and the token to use; the output format.
#[derive(Debug, clap::Args)]
struct Plain {
    /// The aggregator's dashboard URL (default: $SMON_URL, else http://127.0.0.1:8080/).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// An API token (default: $SMON_TOKEN). Prefer --token-file or SMON_TOKEN: a command
    /// line is visible to other users of the machine.
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    token: Option<String>,
    /// A file holding the API token (first line).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) of the dashboard's HTTPS.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The hosts an action is for.
#[derive(Debug, clap::Args)]
struct Act {
    /// Hosts: `cluster:name`, or names one cluster has.
    #[arg(required_unless_present_any = ["tag", "cluster"], conflicts_with_all = ["tag", "cluster"])]
    hosts: Vec<String>,
    /// Every host with this tag instead.
    #[arg(long, conflicts_with = "cluster")]
    tag: Option<String>,
    /// Every host of this cluster instead.
    #[arg(long)]
    cluster: Option<String>,
    #[command(flatten)]
    plain: Plain,
}

/// `smonctl app ...`.
#[derive(Debug, clap::Subcommand)]
enum AppCommand {
    /// The declared applications: state, instances running, where, problem.
    #[command(alias = "status")]
    List(Plain),
    /// Start one application, or every one in start_after order (admin token).
    Start(AppArgs),
    /// Stop one application, or every one in reverse order (admin token).
    Stop(AppArgs),
    /// Stop, then start, one application or every one (admin token).
    Restart(AppArgs),
}

/// The application an action is for.
#[derive(Debug, clap::Args)]
struct AppArgs {
    /// The application's name; every application when absent.
    name: Option<String>,
    #[command(flatten)]
    plain: Plain,
}

/// A program of a host.
#[derive(Debug, clap::Args)]
struct ProgramArgs {
    /// The host: `cluster:name`, or a name one cluster has.
    host: String,
    /// The program: `group:name`, `group:*` for a whole group, or `name` outside any group.
    program: String,
    #[command(flatten)]
    plain: Plain,
}

#[derive(Debug, clap::Args)]
struct Top {
    /// An agent's gRPC address, watched directly (default 127.0.0.1:50051 when --server is
    /// not given).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "server")]
    agent: Option<String>,
    /// File holding the agent's bearer token (default: $SMON_TOKEN, else no token).
    #[arg(long, value_name = "FILE", conflicts_with = "server")]
    token_file: Option<PathBuf>,
    /// The dashboard's URL (aggregator, or an agent's web view), e.g. http://127.0.0.1:8080/.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Log in to the dashboard as this user (without it: a public read-only dashboard).
    #[arg(long, requires = "server")]
    user: Option<String>,
    /// File holding the user's password (first line). Without it the password is asked on
    /// the terminal.
    #[arg(long, value_name = "FILE", requires = "user")]
    password_file: Option<PathBuf>,
    /// Open this host (`cluster:host`) instead of the list.
    #[arg(long, value_name = "ID", requires = "server")]
    host: Option<String>,
    /// CA certificate (PEM) of the agent's TLS, or of the dashboard's HTTPS.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// The name in the agent's certificate, when not the address's host.
    #[arg(
        long,
        value_name = "NAME",
        requires = "tls_ca",
        conflicts_with = "server"
    )]
    tls_domain: Option<String>,
    /// Client certificate (PEM) for an agent with mutual TLS.
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"], conflicts_with = "server")]
    tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Print one frame as text and exit (for a pipe, a file or a script).
    #[arg(long)]
    once: bool,
    /// With --once: the width of the text.
    #[arg(long, default_value_t = 120, requires = "once", value_parser = clap::value_parser!(u16).range(20..=1000))]
    width: u16,
    /// Sort processes (and the fleet list) by cpu, memory or name.
    #[arg(long, value_parser = ["cpu", "memory", "name"])]
    sort: Option<String>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// The first line of a secret file, without its line ending.
fn first_line(path: &Path, what: &str) -> anyhow::Result<String> {
    let text = String::from_utf8(read(path, what)?)
        .map_err(|_| anyhow::anyhow!("the {what} {} is not UTF-8 text", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    anyhow::ensure!(!line.is_empty(), "the {what} {} is empty", path.display());
    Ok(line)
}

async fn source(t: &Top) -> anyhow::Result<(Mode, Source)> {
    if let Some(url) = &t.server {
        let login = match &t.user {
            None => None,
            Some(user) => {
                let password = match &t.password_file {
                    Some(p) => first_line(p, "password file")?,
                    None if std::io::stdin().is_terminal() => {
                        rpassword::prompt_password(format!("Password for {user} at {url}: "))
                            .context("cannot read the password")?
                    }
                    None => {
                        anyhow::bail!("--user needs --password-file when stdin is not a terminal")
                    }
                };
                Some(Login {
                    user: user.clone(),
                    password,
                })
            }
        };
        let ca = t
            .tls_ca
            .as_deref()
            .map(|p| read(p, "CA file"))
            .transpose()?;
        let f = Fleet::connect(url, login, ca).await?;
        return Ok((Mode::Fleet(f.url().to_owned()), Source::Fleet(f)));
    }
    let address = t
        .agent
        .clone()
        .unwrap_or_else(|| "127.0.0.1:50051".to_owned());
    let token = match &t.token_file {
        Some(p) => Some(first_line(p, "token file")?),
        None => std::env::var("SMON_TOKEN").ok().filter(|t| !t.is_empty()),
    };
    let tls = match &t.tls_ca {
        None => None,
        Some(ca) => Some(Tls {
            ca: read(ca, "CA file")?,
            domain: t.tls_domain.clone(),
            identity: match (&t.tls_cert, &t.tls_key) {
                (Some(c), Some(k)) => Some((read(c, "certificate")?, read(k, "key")?)),
                _ => None,
            },
        }),
    };
    let a = Agent::new(Target {
        address: address.clone(),
        token,
        tls,
    })?;
    Ok((Mode::Agent(address), Source::Agent(a)))
}

async fn top(t: Top) -> anyhow::Result<()> {
    if !t.once && !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "stdout is not a terminal, and this full-screen view needs one: add --once to print one frame as text"
        );
    }
    let (mode, mut source) = source(&t).await?;
    let mut app = App::new(mode);
    match t.sort.as_deref() {
        Some("cpu") => app.sort = Sort::Cpu,
        Some("memory") => app.sort = Sort::Memory,
        Some(_) => app.sort = Sort::Name,
        None => {}
    }
    app.open = t.host.clone();
    app.interactive = !t.once;
    match source.poll(app.open.as_deref()).await {
        Update::Error(e) => anyhow::bail!(e),
        u => app.apply(u),
    }
    if t.once {
        let h = view::natural_height(&app, t.width, 30);
        let area = Rect::new(0, 0, t.width, h);
        let mut buf = Buffer::empty(area);
        view::draw(&app, area, &mut buf);
        // A reader that leaves (`| head`) ends the output quietly.
        let _: Output = cli::print(&view::text(&buf)).context("cannot write to stdout")?;
        return Ok(());
    }
    term::run(app, source).await.context("the terminal failed")
}

/// The client of `p` and whether it sends a token.
fn rest_client(p: &Plain) -> Result<(Client, String, bool), Failure> {
    let usage = |m: String| Failure {
        exit: Exit::Usage,
        message: m,
    };
    let url = p
        .url
        .clone()
        .or_else(|| std::env::var("SMON_URL").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "http://127.0.0.1:8080/".to_owned());
    let token = match (&p.token, &p.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(f)) => Some(first_line(f, "token file").map_err(|e| usage(format!("{e:#}")))?),
        (None, None) => std::env::var("SMON_TOKEN").ok().filter(|t| !t.is_empty()),
    };
    let ca_pem = p
        .tls_ca
        .as_deref()
        .map(|f| read(f, "CA file"))
        .transpose()
        .map_err(|e| usage(format!("{e:#}")))?;
    let opts = smon_api::client::Options {
        ca_pem,
        ..Default::default()
    };
    let mut c = Client::with_options(&url, opts).map_err(|e| usage(e.to_string()))?;
    let with_token = token.is_some();
    if let Some(t) = token {
        c = c.with_token(t);
    }
    Ok((c, url, with_token))
}

/// Prints `text` (a reader that leaves ends it quietly).
fn out(text: &str) -> Result<(), Failure> {
    cli::print(text).map(drop).map_err(|e| Failure {
        exit: Exit::Failed,
        message: format!("cannot write to stdout: {e}"),
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
}

/// `smonctl hosts`.
async fn hosts(p: Plain) -> Result<Exit, Failure> {
    let (c, url, with_token) = rest_client(&p)?;
    let rows = rest::hosts(&c)
        .await
        .map_err(|e| rest::failure(&e, &url, with_token))?;
    out(&if p.json {
        json(&rows)
    } else {
        rest::hosts_table(&rows)
    })?;
    Ok(Exit::Ok)
}

/// `smonctl status HOST`.
async fn status(host: String, p: Plain) -> Result<Exit, Failure> {
    let (c, url, with_token) = rest_client(&p)?;
    let fail = |e: smon_api::ClientError| rest::failure(&e, &url, with_token);
    let rows = rest::hosts(&c).await.map_err(fail)?;
    let id = rest::resolve(&[host], &rows)?.remove(0);
    let d = rest::status(&c, &id).await.map_err(fail)?;
    out(&if p.json {
        json(&d)
    } else {
        rest::status_text(&d)
    })?;
    Ok(Exit::Ok)
}

/// `smonctl audit`.
async fn audit(
    limit: u32,
    action: Option<String>,
    host: Option<String>,
    p: Plain,
) -> Result<Exit, Failure> {
    let (c, url, with_token) = rest_client(&p)?;
    let entries = c
        .audit(limit, None, action.as_deref(), host.as_deref())
        .await
        .map_err(|e| rest::failure(&e, &url, with_token))?;
    out(&if p.json {
        json(&entries)
    } else {
        rest::audit_table(&entries)
    })?;
    Ok(Exit::Ok)
}

/// Runs a host action (`wake`, `reboot`, `shutdown`, `check`).
async fn act(action: &str, a: Act) -> Result<Exit, Failure> {
    let (c, url, with_token) = rest_client(&a.plain)?;
    let fail = |e: smon_api::ClientError| rest::failure(&e, &url, with_token);
    let targets = match (a.tag, a.cluster) {
        (Some(t), _) => Targets::Tag(t),
        (None, Some(cl)) => Targets::Cluster(cl),
        (None, None) => {
            let rows = rest::hosts(&c).await.map_err(fail)?;
            Targets::Hosts(rest::resolve(&a.hosts, &rows)?)
        }
    };
    let answer = rest::act(&c, action, &targets).await.map_err(fail)?;
    let (text, exit) = rest::action_lines(&answer);
    out(&if a.plain.json { json(&answer) } else { text })?;
    Ok(exit)
}

/// The id of the one host `host` names.
async fn one_host(
    c: &Client,
    host: String,
    url: &str,
    with_token: bool,
) -> Result<String, Failure> {
    let rows = rest::hosts(c)
        .await
        .map_err(|e| rest::failure(&e, url, with_token))?;
    Ok(rest::resolve(&[host], &rows)?.remove(0))
}

/// `smonctl programs HOST`.
async fn programs(host: String, p: Plain) -> Result<Exit, Failure> {
    let (c, url, with_token) = rest_client(&p)?;
    let id = one_host(&c, host, &url, with_token).await?;
    let a = rest::programs(&c, &id)
        .await
        .map_err(|e| rest::failure(&e, &url, with_token))?;
    out(&if p.json {
        json(&a)
    } else {
        rest::programs_table(&a)
    })?;
    Ok(Exit::Ok)
}

/// `smonctl start | stop | restart HOST PROGRAM`.
async fn program(verb: ProgramVerb, a: ProgramArgs) -> Result<Exit, Failure> {
    let (c, url, with_token) = rest_client(&a.plain)?;
    let id = one_host(&c, a.host, &url, with_token).await?;
    let r = rest::program(&c, &id, &a.program, verb)
        .await
        .map_err(|e| rest::failure(&e, &url, with_token))?;
    out(&if a.plain.json {
        json(&r)
    } else {
        rest::program_lines(&r)
    })?;
    Ok(Exit::Ok)
}

/// `smonctl app list`.
async fn app_list(p: Plain) -> Result<Exit, Failure> {
    let (c, url, with_token) = rest_client(&p)?;
    let a = c
        .applications()
        .await
        .map_err(|e| rest::failure(&e, &url, with_token))?;
    out(&if p.json {
        json(&a.declared)
    } else {
        rest::apps_table(&a.declared)
    })?;
    Ok(Exit::Ok)
}

/// `smonctl app start | stop | restart [NAME]`: exit 1 when a decision was not carried out.
async fn app_act(verb: smon_api::applications::AppVerb, a: AppArgs) -> Result<Exit, Failure> {
    let (c, url, with_token) = rest_client(&a.plain)?;
    let r = c
        .application_action(a.name.as_deref(), verb)
        .await
        .map_err(|e| rest::failure(&e, &url, with_token))?;
    out(&if a.plain.json {
        json(&r)
    } else {
        rest::app_action_lines(&r)
    })?;
    Ok(if r.ok { Exit::Ok } else { Exit::Failed })
}

/// `smonctl tail HOST PROGRAM`.
async fn tail(
    host: String,
    name: String,
    stderr: bool,
    bytes: Option<u32>,
    p: Plain,
) -> Result<Exit, Failure> {
    let (c, url, with_token) = rest_client(&p)?;
    let id = one_host(&c, host, &url, with_token).await?;
    let text = rest::tail(&c, &id, &name, stderr, bytes)
        .await
        .map_err(|e| rest::failure(&e, &url, with_token))?;
    out(&if p.json {
        json(&serde_json::json!({
            "host": id, "program": name,
            "stream": if stderr { "stderr" } else { "stdout" }, "text": text,
        }))
    } else {
        text
    })?;
    Ok(Exit::Ok)
}

/// `smonctl signal HOST PID SIG`.
async fn signal(host: String, pid: u32, sig: String, p: Plain) -> Result<Exit, Failure> {
    let sig = rest::signal_kind(&sig)?;
    let (c, url, with_token) = rest_client(&p)?;
    let id = one_host(&c, host, &url, with_token).await?;
    let r = rest::signal(&c, &id, pid, sig)
        .await
        .map_err(|e| rest::failure(&e, &url, with_token))?;
    out(&if p.json {
        json(&r)
    } else {
        format!("{}\n", smonctl::fmt::terminal_safe(&r.message))
    })?;
    Ok(Exit::Ok)
}

/// The exit status of a REST command; a failure is one line on stderr.
fn finish(r: Result<Exit, Failure>) -> ExitCode {
    match r {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(f) => {
            eprintln!("smonctl: {}", f.message);
            ExitCode::from(f.exit as u8)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smonctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = match cli.command {
        Command::Top(t) => rt.block_on(top(t)),
        Command::Hosts(p) => return finish(rt.block_on(hosts(p))),
        Command::Status { host, plain } => return finish(rt.block_on(status(host, plain))),
        Command::Audit {
            limit,
            action,
            host,
            plain,
        } => return finish(rt.block_on(audit(limit, action, host, plain))),
        Command::Programs { host, plain } => return finish(rt.block_on(programs(host, plain))),
        Command::App(cmd) => {
            use smon_api::applications::AppVerb;
            return finish(rt.block_on(async move {
                match cmd {
                    AppCommand::List(p) => app_list(p).await,
                    AppCommand::Start(a) => app_act(AppVerb::Start, a).await,
                    AppCommand::Stop(a) => app_act(AppVerb::Stop, a).await,
                    AppCommand::Restart(a) => app_act(AppVerb::Restart, a).await,
                }
            }));
        }
        Command::Start(a) => return finish(rt.block_on(program(ProgramVerb::Start, a))),
        Command::Stop(a) => return finish(rt.block_on(program(ProgramVerb::Stop, a))),
        Command::Restart(a) => return finish(rt.block_on(program(ProgramVerb::Restart, a))),
        Command::Tail {
            host,
            program,
            stderr,
            bytes,
            plain,
        } => return finish(rt.block_on(tail(host, program, stderr, bytes, plain))),
        Command::Signal {
            host,
            pid,
            signal: sig,
            plain,
        } => return finish(rt.block_on(signal(host, pid, sig, plain))),
        Command::Wake(a) => return finish(rt.block_on(act("wake", a))),
        Command::Reboot(a) => return finish(rt.block_on(act("reboot", a))),
        Command::Shutdown(a) => return finish(rt.block_on(act("shutdown", a))),
        Command::Check(a) => return finish(rt.block_on(act("check", a))),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smonctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
