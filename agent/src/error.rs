//! What the agent library fails with: one enum, so a caller (the binary, a test) can tell a
//! port already in use from a bad certificate without parsing text.

use std::net::SocketAddr;

/// Why the agent could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({field} in {file})")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The config field that names it.
        field: &'static str,
        /// The config file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A listener's own address could not be read.
    #[error("cannot read a listener's address")]
    LocalAddr(#[from] std::io::Error),
    /// The web view's users could not be loaded or created.
    #[error("{file}: {message}")]
    Security {
        /// The config file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A web view listener was given, but `server.web` is off.
    #[error("a web view listener was given, but server.web is false")]
    WebViewOff,
    /// The web view stopped with an error.
    #[error("the web view failed: {0}")]
    WebView(String),
    /// The web view's history database (`storage.dir`) could not be opened.
    #[cfg(feature = "history")]
    #[error(
        "{file}: the history database cannot be opened (storage.dir; set storage.enabled to false to run without history)"
    )]
    History {
        /// The config file.
        file: String,
        /// Why.
        #[source]
        source: Box<smon_web::database::OpenError>,
    },
    /// The sampler thread could not start.
    #[error("the sampler cannot start")]
    Sampler(#[source] smon_collect::CollectError),
    /// The collector could not be set up (`--once`).
    #[error("cannot start the collector")]
    Collector(#[source] smon_collect::CollectError),
    /// The gRPC listener's TLS settings were refused.
    #[error("monitor.tls")]
    Tls(#[source] tonic::transport::Error),
    /// The gRPC server failed.
    #[error("the gRPC server failed")]
    Grpc(#[source] tonic::transport::Error),
    /// The token file could not be created at start-up.
    #[error(transparent)]
    TokenFile(#[from] crate::config::TokenFileError),
    /// The heartbeat file could not be created.
    #[error("cannot create the heartbeat file")]
    Heartbeat(#[source] std::io::Error),
    /// A sample could not be written as JSON (`--once --json`).
    #[error("cannot write the sample as JSON")]
    Json(#[from] serde_json::Error),
    /// Stdout failed (`--once`), other than its reader leaving, which ends the output quietly.
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
}
