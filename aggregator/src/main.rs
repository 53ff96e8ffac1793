//! The `smon-aggregator` binary: parses arguments, runs a subcommand, or hands over to
//! smon-runtime's start-up sequence with the aggregator's part
//! ([`smon_aggregator::start::Aggregator`]).

use std::process::ExitCode;

use clap::Parser;
use smon_aggregator::start::{ABOUT, Aggregator};
use smon_runtime::{daemon, deploy, manager, start};

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
        None => start::run(&args.daemon, Aggregator::load),
    }
}
