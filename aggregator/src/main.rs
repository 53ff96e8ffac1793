//! The `smon-aggregator` binary: parses arguments, runs a subcommand, or hands over to
//! smon-runtime's start-up sequence with the aggregator's part
//! ([`smon_aggregator::start::Aggregator`]).

use std::process::ExitCode;

use clap::Parser;
use smon_aggregator::start::{ABOUT, Aggregator};
use smon_runtime::{daemon, deploy, manager, start};

/// mimalloc instead of glibc's malloc: at 10,000 hosts glibc's malloc, free, realloc and
/// their arena locks were about 40 % of the aggregator's CPU (every poll decodes a snapshot
/// into many small strings and vectors and drops the previous one on another thread;
/// BENCHMARKS.md "History").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// smon aggregator: polls agents and serves the live dashboard.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    daemon: daemon::DaemonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a Supervisor program file ([program:smon-aggregator]) for manager.mode =
    /// "supervisor".
    GenSupervisorConf(deploy::GenSupervisorConf),
    /// Hash a password for `server.auth.users` or the users file (read without echo; one line
    /// from a pipe).
    HashPassword(daemon::HashPasswordArgs),
    /// Copy the history database to a file while the aggregator runs (an online, consistent
    /// copy). Restore: stop the aggregator, put the copy in place of `smon.sqlite3` in
    /// `storage.dir` (removing `smon.sqlite3-wal` and `-shm`), start it.
    Backup(BackupArgs),
    /// Make, list or revoke API tokens (for scripts and smonctl: `Authorization: Bearer`).
    /// Run it as the aggregator's user; the running aggregator sees the change at once.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Make a token and print it (only this once: only its hash is kept).
    Create {
        /// The token's name (1-64 letters, digits, '.', '_', '-').
        #[arg(long)]
        name: String,
        /// What it may do: `viewer` (read only) or `admin` (everything).
        #[arg(long, value_parser = ["viewer", "admin"])]
        role: String,
        /// The aggregator's config, for `storage.dir` (default: the top-level --config,
        /// else the embedded default).
        #[arg(long, short)]
        config: Option<std::path::PathBuf>,
    },
    /// List the tokens: name, role, when made, when last used (never the secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The aggregator's config (as for `create`).
        #[arg(long, short)]
        config: Option<std::path::PathBuf>,
    },
    /// Revoke a token: the running aggregator refuses it from its next request.
    Revoke {
        /// The token's name.
        #[arg(long)]
        name: String,
        /// The aggregator's config (as for `create`).
        #[arg(long, short)]
        config: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct BackupArgs {
    /// Where to write the copy (refused when it exists).
    #[arg(long)]
    out: std::path::PathBuf,
    /// The aggregator's config, for `storage.dir` (default: the top-level --config, else the
    /// embedded default).
    #[arg(long, short)]
    config: Option<std::path::PathBuf>,
}

/// The settings of `config`, else of the top-level `--config`, else the embedded ones; a
/// bad config is said and is `Err(64)`.
fn settings_of(
    daemon: &daemon::DaemonArgs,
    config: Option<&std::path::PathBuf>,
) -> Result<smon_aggregator::config::Settings, ExitCode> {
    let settings = match config.or(daemon.config.as_ref()) {
        Some(p) => smon_aggregator::config::load_file(p),
        None => smon_aggregator::config::load_embedded(),
    };
    settings.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(daemon::EXIT_USAGE)
    })
}

/// `token ...`: exit 0 done, 64 for a bad config, 1 when it failed.
fn token(daemon: &daemon::DaemonArgs, t: &TokenCommand) -> ExitCode {
    use smon_aggregator::access::Access;
    let config = match t {
        TokenCommand::Create { config, .. }
        | TokenCommand::List { config, .. }
        | TokenCommand::Revoke { config, .. } => config.as_ref(),
    };
    let settings = match settings_of(daemon, config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = smon_web::hub::now_ms();
    let failed = |e: &dyn std::fmt::Display| {
        eprintln!("smon-aggregator: {e}");
        ExitCode::FAILURE
    };
    let access = match Access::open_for_cli(&settings) {
        Ok(a) => a,
        Err(e) => return failed(&e),
    };
    match t {
        TokenCommand::Create { name, role, .. } => {
            let role =
                smon_web::security::Role::parse(role).unwrap_or(smon_web::security::Role::Viewer);
            match access.create(name, role, now, "cli") {
                Ok(token) => {
                    println!("{token}");
                    eprintln!(
                        "smon-aggregator: made the {} token '{name}'; it is shown only this once                          (send it as `Authorization: Bearer <token>`, or SMON_TOKEN for smonctl)",
                        role.as_str()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => failed(&e),
            }
        }
        TokenCommand::List { json, .. } => match access.list() {
            Ok(rows) if *json => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Ok(rows) => {
                let utc = |ms| format!("{} UTC", smon_runtime::cli::utc_time(ms));
                println!("{:<24} {:<7} {:<24} LAST USED", "NAME", "ROLE", "CREATED");
                for r in rows {
                    println!(
                        "{:<24} {:<7} {:<24} {}",
                        r.name,
                        r.role,
                        utc(r.created_ms),
                        r.last_used_ms.map(utc).unwrap_or_else(|| "never".into())
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(&e),
        },
        TokenCommand::Revoke { name, .. } => match access.revoke(name, now, "cli") {
            Ok(()) => {
                eprintln!("smon-aggregator: revoked the token '{name}'");
                ExitCode::SUCCESS
            }
            Err(e) => failed(&e),
        },
    }
}

/// `backup`: exit 0 with the copy made, 64 for a bad config, 1 when the copy failed.
fn backup(daemon: &daemon::DaemonArgs, b: &BackupArgs) -> ExitCode {
    let settings = match b.config.as_ref().or(daemon.config.as_ref()) {
        Some(p) => smon_aggregator::config::load_file(p),
        None => smon_aggregator::config::load_embedded(),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(daemon::EXIT_USAGE);
        }
    };
    match smon_aggregator::history::backup(&settings, &b.out) {
        Ok(db) => {
            eprintln!(
                "smon-aggregator: copied {} to {}",
                db.display(),
                b.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut text = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                text.push_str(": ");
                text.push_str(&s.to_string());
                src = s.source();
            }
            eprintln!("smon-aggregator: {text}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    manager::die_with_manager();
    let args = Args::parse();
    if args.command.is_some() {
        // A command-line call: warnings only (RUST_LOG still wins).
        daemon::init_logging(ABOUT.name, args.daemon.json_logs().unwrap_or(false), "warn");
    }
    match &args.command {
        Some(Command::GenSupervisorConf(g)) => deploy::gen_supervisor_conf(&ABOUT, g),
        Some(Command::HashPassword(h)) => daemon::hash_password(h, ABOUT.name, |user, role| {
            use smon_web::security::Role;
            let role = Role::parse(role).unwrap_or(Role::Viewer);
            smon_web::security::users::hash_password_command(user, role)
        }),
        Some(Command::Backup(b)) => backup(&args.daemon, b),
        Some(Command::Token(t)) => token(&args.daemon, t),
        None => start::run(&args.daemon, Aggregator::load),
    }
}
