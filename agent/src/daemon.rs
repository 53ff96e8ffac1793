//! What every smon daemon binary does the same way: logging set-up and stopping on signals.

use tokio_util::sync::CancellationToken;

/// Exit status for a bad config or bad arguments (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// Logs to stderr, human-readable (colours on a terminal) or JSON; level from `RUST_LOG`
/// (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// Cancels `stop` on the first SIGTERM or SIGINT (Ctrl-C elsewhere).
pub async fn stop_on_signal(stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("Cannot install signal handlers.");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "Shutting down."),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "Shutting down."),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    stop.cancel();
}
