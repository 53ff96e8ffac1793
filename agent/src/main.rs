//! The `smon-agent` binary: parses arguments, runs a subcommand, or hands over to
//! smon-runtime's start-up sequence with the agent's part ([`smon_agent::start::Agent`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use smon_agent::config;
use smon_agent::start::{ABOUT, Agent};
use smon_runtime::{daemon, deploy, manager, start};

/// smon node agent: collects this host's metrics and serves them over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    daemon: daemon::DaemonArgs,
    /// Take one full sample, print it and exit (no server).
    #[arg(long)]
    once: bool,
    /// With --once: print JSON (the gRPC Snapshot message, field names as in the .proto).
    #[arg(long, requires = "once")]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Ask a running agent for a snapshot (or a live stream) over gRPC and print it. With
    /// --watch on a terminal the text redraws in place; into a pipe every sample is appended.
    ///
    /// For a full-screen, top-like view (gauges, sortable processes, GPUs, the whole fleet):
    /// `smonctl top --agent HOST:PORT --token-file F` (package smonctl).
    Query {
        /// Agent address.
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        /// File holding the bearer token (default: $SMON_TOKEN, else ./smon-agent.token if
        /// present, else no token).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Keep printing every sample until interrupted (redrawn in place on a terminal).
        #[arg(long)]
        watch: bool,
        /// Include the process list, per-core use and GPU processes.
        #[arg(long)]
        detail: bool,
        /// Print JSON, one snapshot per line.
        #[arg(long)]
        json: bool,
    },
    /// Write a Supervisor program file ([program:smon-agent]) for manager.mode = "supervisor".
    GenSupervisorConf(deploy::GenSupervisorConf),
    /// Hash a password for the web view's users (read without echo; one line from a pipe).
    #[cfg(feature = "web")]
    HashPassword(daemon::HashPasswordArgs),
}

fn query_token(token_file: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    if let Some(p) = token_file {
        let t =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        return Ok(Some(t.trim().to_owned()));
    }
    if let Some(t) = config::Env::from_process().smon_token {
        return Ok(Some(t));
    }
    Ok(std::fs::read_to_string("smon-agent.token")
        .ok()
        .map(|t| t.trim().to_owned()))
}

fn query(q: smon_agent::query::Query, token_file: Option<&PathBuf>) -> anyhow::Result<()> {
    let q = smon_agent::query::Query {
        token: query_token(token_file)?,
        ..q
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        tokio::select! {
            r = smon_agent::query::run(q) => r.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

fn main() -> ExitCode {
    manager::die_with_manager();
    let args = Args::parse();
    if args.command.is_some() {
        // A command-line call: warnings only (RUST_LOG still wins).
        daemon::init_logging(ABOUT.name, args.daemon.json_logs().unwrap_or(false), "warn");
    }
    match args.command {
        Some(Command::GenSupervisorConf(g)) => deploy::gen_supervisor_conf(&ABOUT, &g),
        #[cfg(feature = "web")]
        Some(Command::HashPassword(h)) => daemon::hash_password(&h, ABOUT.name, |user, role| {
            use smon_web::security::Role;
            let role = Role::parse(role).unwrap_or(Role::Viewer);
            smon_web::security::users::hash_password_command(user, role)
        }),
        Some(Command::Query {
            addr,
            token_file,
            watch,
            detail,
            json,
        }) => {
            let q = smon_agent::query::Query {
                addr,
                token: None,
                watch,
                detail,
                json,
            };
            match query(q, token_file.as_ref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("smon-agent query: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        None => start::run(&args.daemon, |d| {
            Agent::load(d, args.once.then_some(args.json))
        }),
    }
}
