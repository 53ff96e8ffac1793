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
        None => start::run(&args.daemon, Aggregator::load),
    }
}
