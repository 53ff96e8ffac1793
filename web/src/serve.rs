//! Serving the dashboard: the HTTP server loop over the router of [`crate::hub`], plain or
//! HTTPS, until the daemon stops.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::hub::{router, run_hub};
use crate::state::Web;

/// Serves the dashboard on `listener` under `base` until `stop`: the router, the hub task, and
/// closing open Socket.IO connections on stop so graceful shutdown does not wait for them.
pub async fn serve(
    web: Arc<Web>,
    base: &str,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let (app, io) = router(web.clone(), base);
    let tls = web.security.http.tls.clone();
    let hub = tokio::spawn(run_hub(io.clone(), web, stop.clone()));
    let closer_stop = stop.clone();
    let closer = tokio::spawn(async move {
        closer_stop.cancelled().await;
        io.close().await;
    });
    let served = serve_app(app, listener, tls, stop.clone()).await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = hub.await;
        let _ = closer.await;
    })
    .await;
    served
}

/// Serves `app` on `listener` until `stop`, over HTTPS when `tls` names a certificate chain and
/// key (PEM), else plain HTTP. Connections carry their peer address (for the allow-list).
pub async fn serve_app(
    app: Router,
    listener: tokio::net::TcpListener,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let make = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let Some((cert, key)) = tls else {
        return axum::serve(listener, make)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    };
    // One process-wide provider (aws-lc-rs, as tonic and reqwest use); already set is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
        .await
        .map_err(|e| {
            std::io::Error::other(format!(
                "server.tls: cannot use {} and {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        h.graceful_shutdown(Some(Duration::from_secs(1)));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, config)
        .handle(handle)
        .serve(make)
        .await
}
