//! The HTTP side shared by both daemons: the embedded UI, the read-only REST API, the Socket.IO
//! namespace (rooms `overview` and `host:<id>`), and the hub task that turns store changes into
//! room emits once per interval.
//!
//! Who watches which host is counted here ([`Demand`]); pollers read it to ask their agent for
//! the detail parts only while a browser looks at that host. `GET /metrics` serves the
//! Prometheus exposition ([`crate::metrics`]); connected browsers are counted in
//! [`Web::telemetry`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::assets;
use crate::metrics::{self, Metrics, Telemetry};
use crate::security::login::{self, Reader};
use crate::security::net::Client;
use crate::security::{Class, Principal, Security, layers};
use crate::store::ClusterStore;
use crate::wire::{Ack, Hello, HostRemoved, Subscribe};

/// Milliseconds since the Unix epoch, server clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How many browsers watch each host, and a channel per host that says whether anyone does.
#[derive(Clone, Default)]
pub struct Demand {
    inner: Arc<Mutex<Watchers>>,
}

/// Per host: how many sockets watch it, how many of each [`Class`], and the channel pollers
/// read.
type Watchers = HashMap<String, (usize, [usize; 3], watch::Sender<bool>)>;

impl Demand {
    fn lock(&self) -> MutexGuard<'_, Watchers> {
        // A poisoned lock only means a panic elsewhere mid-update of a counter; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that is `true` while at least one browser watches `id`.
    pub fn subscribe(&self, id: &str) -> watch::Receiver<bool> {
        self.lock()
            .entry(id.to_owned())
            .or_insert_with(|| (0, [0; 3], watch::channel(false).0))
            .2
            .subscribe()
    }

    /// Whether anyone watches `id`.
    pub fn is_watched(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|(n, _, _)| *n > 0)
    }

    /// Which classes of visitor watch `id`.
    pub fn classes(&self, id: &str) -> Vec<Class> {
        self.lock()
            .get(id)
            .map(|(_, per, _)| {
                Class::ALL
                    .into_iter()
                    .filter(|c| per[c.index()] > 0)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn add(&self, id: &str, class: Class) {
        let mut m = self.lock();
        let e = m
            .entry(id.to_owned())
            .or_insert_with(|| (0, [0; 3], watch::channel(false).0));
        e.0 += 1;
        e.1[class.index()] += 1;
        if e.0 == 1 {
            e.2.send_replace(true);
        }
    }

    fn remove(&self, id: &str, class: Class) {
        let mut m = self.lock();
        if let Some(e) = m.get_mut(id) {
            e.0 = e.0.saturating_sub(1);
            e.1[class.index()] = e.1[class.index()].saturating_sub(1);
            if e.0 == 0 {
                e.2.send_replace(false);
            }
        }
    }
}

/// Everything the HTTP side shares.
pub struct Web {
    /// The store the pollers feed.
    pub store: Arc<Mutex<ClusterStore>>,
    /// Who watches which host.
    pub demand: Demand,
    /// Health counters for `/metrics` (connected browsers here; poll errors and latency in the
    /// aggregator's pollers).
    pub telemetry: Telemetry,
    /// `app` or `node`.
    pub mode: &'static str,
    /// When the hub last ran (ms since the epoch), for `/healthz`: a frozen hub means a frozen
    /// live view, which the manager must see.
    pub hub_tick_ms: std::sync::atomic::AtomicU64,
    /// Users, sessions, allow-lists.
    pub security: Arc<Security>,
    /// The Socket.IO handle, once the router is built (to close a session's sockets).
    io: OnceLock<SocketIo>,
}

impl Web {
    /// Shared state over `store` for a daemon in `mode` (`app` or `node`), guarded by
    /// `security`.
    pub fn new(
        store: Arc<Mutex<ClusterStore>>,
        mode: &'static str,
        security: Arc<Security>,
    ) -> Self {
        Self {
            store,
            demand: Demand::default(),
            telemetry: Telemetry::default(),
            mode,
            hub_tick_ms: std::sync::atomic::AtomicU64::new(now_ms()),
            security,
            io: OnceLock::new(),
        }
    }

    /// Closes every live socket of the session `id` (at logout).
    pub fn disconnect_session(&self, id: &str) {
        let Some(io) = self.io.get() else { return };
        for s in io.sockets() {
            let mine = s
                .extensions
                .get::<Principal>()
                .is_some_and(|p| matches!(&p, Principal::User { session, .. } if session == id));
            if mine {
                let _ = s.disconnect();
            }
        }
    }

    /// Locks the store. Never held across an `.await`.
    pub fn store(&self) -> MutexGuard<'_, ClusterStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn interval_ms(&self) -> u64 {
        self.store().config().interval_ms
    }
}

/// The host a socket watches, kept in its extensions.
#[derive(Clone)]
struct Watching(String);

/// The room of a host page, per class of visitor: each gets the sample filtered for it.
fn room_of(id: &str, class: Class) -> String {
    format!("host:{id}:{}", class.as_str())
}

fn class_of(s: &SocketRef) -> Class {
    s.extensions
        .get::<Principal>()
        .map(|p| p.class())
        .unwrap_or(Class::Public)
}

/// Why a Socket.IO connection was refused (sent to the client as `connect_error`).
#[derive(Debug)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The connect middleware: a socket needs the principal the HTTP layers found for its
/// handshake request (a live session, or anybody on a public dashboard).
async fn require_principal(s: SocketRef) -> Result<(), Refused> {
    match s.req_parts().extensions.get::<Principal>().cloned() {
        Some(p) => {
            s.extensions.insert(p);
            Ok(())
        }
        None => Err(Refused("login required")),
    }
}

fn on_connect(s: SocketRef, web: Arc<Web>) {
    web.telemetry.browser_connected();
    // A socket outlives the request that opened it: close it when its session would end.
    if let Some(Principal::User { expires_ms, .. }) = s.extensions.get::<Principal>() {
        let sock = s.clone();
        let wait = Duration::from_millis(expires_ms.saturating_sub(now_ms()));
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if sock.connected() {
                let _ = sock.disconnect();
            }
        });
    }
    let hello = Hello {
        mode: web.mode.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        interval_ms: web.interval_ms(),
        server_time_ms: now_ms(),
    };
    let _ = s.emit("hello", &hello);

    let w = web.clone();
    s.on(
        "subscribe",
        move |s: SocketRef, TryData(req): TryData<Subscribe>, ack: AckSender| {
            let w = w.clone();
            async move { on_subscribe(&s, req, ack, &w) }
        },
    );

    let w = web.clone();
    s.on(
        "unsubscribe",
        move |s: SocketRef, TryData(req): TryData<Subscribe>, ack: AckSender| {
            let w = w.clone();
            async move { on_unsubscribe(&s, req, ack, &w) }
        },
    );

    let w = web;
    s.on_disconnect(move |s: SocketRef| {
        w.telemetry.browser_disconnected();
        let w = w.clone();
        async move {
            if let Some(Watching(id)) = s.extensions.remove::<Watching>() {
                w.demand.remove(&id, class_of(&s));
            }
        }
    });
}

fn on_subscribe(
    s: &SocketRef,
    req: Result<Subscribe, socketioxide::ParserError>,
    ack: AckSender,
    w: &Web,
) {
    let reply = match req {
        Err(e) => Ack::err(format!("bad subscribe request: {e}")),
        Ok(Subscribe::Overview) => {
            s.join("overview");
            let full = w.store().overview(now_ms());
            match full
                .into_parts()
                .iter()
                .try_for_each(|part| s.emit("overview", part))
            {
                Ok(()) => Ack::ok(),
                Err(e) => Ack::err(format!("the overview could not be sent: {e}")),
            }
        }
        Ok(Subscribe::Host { id }) => {
            let full = w.store().host_full(&id, now_ms());
            let class = class_of(s);
            match full {
                None => Ack::err(format!("unknown host '{id}'")),
                Some(mut full) => {
                    if let Some(d) = full.detail.as_mut() {
                        class.visibility(w.security.http.auth.viewer).apply(d);
                    }
                    let previous = s.extensions.get::<Watching>();
                    if previous.as_ref().map(|p| p.0.as_str()) != Some(id.as_str()) {
                        if let Some(Watching(old)) = previous {
                            s.leave(room_of(&old, class));
                            w.demand.remove(&old, class);
                        }
                        s.join(room_of(&id, class));
                        w.demand.add(&id, class);
                        s.extensions.insert(Watching(id));
                    }
                    let _ = s.emit("host", &full);
                    Ack::ok()
                }
            }
        }
    };
    let _ = ack.send(&reply);
}

fn on_unsubscribe(
    s: &SocketRef,
    req: Result<Subscribe, socketioxide::ParserError>,
    ack: AckSender,
    w: &Web,
) {
    let reply = match req {
        Err(e) => Ack::err(format!("bad unsubscribe request: {e}")),
        Ok(Subscribe::Overview) => {
            s.leave("overview");
            Ack::ok()
        }
        Ok(Subscribe::Host { id }) => {
            if s.extensions
                .get::<Watching>()
                .is_some_and(|Watching(cur)| cur == id)
            {
                s.extensions.remove::<Watching>();
                let class = class_of(s);
                s.leave(room_of(&id, class));
                w.demand.remove(&id, class);
            }
            Ack::ok()
        }
    };
    let _ = ack.send(&reply);
}

/// Sends store changes to the rooms once per interval until `stop`. Periodic frames are
/// volatile: a tab whose buffer is full misses one instead of holding the others back.
pub async fn run_hub(io: SocketIo, web: Arc<Web>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(web.interval_ms()));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = now_ms();
        web.hub_tick_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
        let changes = {
            let mut st = web.store();
            st.tick(now);
            st.take_changes(now, |id| web.demand.is_watched(id))
        };
        if let Some(delta) = changes.delta
            && let Err(e) = io
                .to("overview")
                .volatile()
                .emit("overview_delta", &delta)
                .await
        {
            tracing::debug!(error = %e, "Overview delta not delivered to every socket.");
        }
        for id in changes.removed {
            // Every class's room: a page of a removed host must say so, not wait for data.
            let gone = HostRemoved {
                server_time_ms: now,
                id,
            };
            for class in Class::ALL {
                if let Err(e) = io
                    .to(room_of(&gone.id, class))
                    .emit("host_removed", &gone)
                    .await
                {
                    tracing::debug!(host = %gone.id, error = %e, "Host removal not delivered to every socket.");
                }
            }
        }
        for (id, update) in changes.host_updates {
            for class in web.demand.classes(&id) {
                let mut u = update.clone();
                if let Some(d) = u.detail.as_mut() {
                    class.visibility(web.security.http.auth.viewer).apply(d);
                }
                if let Err(e) = io
                    .to(room_of(&id, class))
                    .volatile()
                    .emit("host_update", &u)
                    .await
                {
                    tracing::debug!(host = %id, error = %e, "Host update not delivered to every socket.");
                }
            }
        }
    }
}

/// A REST error: a status and a reason, as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    /// An error with `status` and the reason `why`.
    pub fn new(status: StatusCode, why: String) -> Self {
        Self(status, why)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

type Shared = State<Arc<Web>>;

async fn clusters(State(w): Shared, _: Reader) -> impl IntoResponse {
    Json(w.store().clusters())
}

async fn hosts(State(w): Shared, _: Reader) -> impl IntoResponse {
    Json(w.store().rows())
}

async fn host(
    State(w): Shared,
    Reader(p): Reader,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (row, info, mut detail) = {
        let st = w.store();
        let row = st
            .row(&id)
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("unknown host '{id}'")))?;
        let (info, detail) = st.info_and_latest(&id).unwrap_or((None, None));
        (row, info, detail)
    };
    if let Some(d) = detail.as_mut() {
        p.class().visibility(w.security.http.auth.viewer).apply(d);
    }
    Ok(Json(
        serde_json::json!({ "host": row, "info": info, "detail": detail }),
    ))
}

async fn events(
    State(w): Shared,
    _: Reader,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let ev = w
        .store()
        .events(&id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("unknown host '{id}'")))?;
    Ok(Json(ev))
}

/// 200 while the live view works: the hub has run within three intervals (at least 5 s) and
/// the store answers. A frozen process does not answer at all; a stuck hub gets a 503.
async fn healthz(State(w): Shared) -> Response {
    let interval = w.interval_ms();
    let age = now_ms().saturating_sub(w.hub_tick_ms.load(std::sync::atomic::Ordering::Relaxed));
    if age > (3 * interval).max(5000) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the hub has not run for {} s", age / 1000),
        )
            .into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

async fn readyz(State(w): Shared) -> Response {
    if w.store().ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not every host has been tried yet",
        )
            .into_response()
    }
}

/// `GET /metrics` for anyone with a session (or on a public dashboard), and without one from
/// `metrics_allow_from` (a Prometheus on this host, by default).
async fn metrics_page(
    m: Arc<Metrics>,
    w: Arc<Web>,
    p: Option<Extension<Principal>>,
    c: Option<Extension<Client>>,
) -> Response {
    let allowed = p.is_some()
        || c.is_some_and(|Extension(c)| w.security.http.metrics_allow_from.contains(c.ip));
    if !allowed {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "login required (or scrape from an address in server.metrics_allow_from)".into(),
        )
        .into_response();
    }
    encode_metrics(m).await
}

/// Encodes the exposition off the async threads: with many hosts it takes a while.
async fn encode_metrics(m: Arc<Metrics>) -> Response {
    match tokio::task::spawn_blocking(move || m.render()).await {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Ok(Err(e)) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {e}"),
        )
        .into_response(),
        Err(e) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the metrics encoder failed: {e}"),
        )
        .into_response(),
    }
}

async fn api_not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such API route".into())
}

/// The dashboard for a reader; everyone else goes to the login page.
async fn index(p: Option<Extension<Principal>>, headers: HeaderMap) -> Response {
    if p.is_none() {
        return Redirect::to("login").into_response();
    }
    assets::serve("index.html", &headers)
}

async fn login_page(headers: HeaderMap) -> Response {
    assets::serve("login.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    assets::serve(&format!("assets/{path}"), &headers)
}

/// Whether `base` is an acceptable path prefix: absolute, no empty segments, URL-safe.
pub fn valid_base_path(base: &str) -> bool {
    base.starts_with('/')
        && !base.contains("//")
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
}

/// Normalises a base path: `""` or `/` -> `""`, `smon/` -> `/smon`.
pub fn normalise_base(base: &str) -> String {
    let t = base.trim_matches('/');
    if t.is_empty() {
        String::new()
    } else {
        format!("/{t}")
    }
}

/// The HTTP router (UI, login, REST, Socket.IO, `/metrics`) under `base` (e.g. `""` or
/// `/smon`), and the Socket.IO handle for [`run_hub`].
///
/// Layers, outermost first: security headers; the client's address and `allow_from`; the
/// session; the [`Principal`]; then Socket.IO (its connect middleware needs the principal) and,
/// for the routes, CSRF, a body limit and a timeout. Routes check their role themselves.
pub fn router(web: Arc<Web>, base: &str) -> (Router, SocketIo) {
    let base = normalise_base(base);
    let exporter = Arc::new(Metrics::new(web.store.clone(), &web.telemetry, web.mode));
    let (layer, io) = SocketIo::builder()
        .req_path(format!("{base}/socket.io"))
        .max_payload(64 * 1024)
        .build_layer();
    let _ = web.io.set(io.clone());
    let w = web.clone();
    io.ns(
        "/",
        (move |s: SocketRef| {
            let w = w.clone();
            async move { on_connect(s, w) }
        })
        .with(require_principal),
    );
    let p = |s: &str| format!("{base}{s}");
    let w = web.clone();
    let mut app: Router<Arc<Web>> = Router::new()
        .route(&p("/"), get(index))
        .route(&p("/login"), get(login_page))
        .route(&p("/assets/{*path}"), get(asset))
        .route(&p("/api/v1/login"), post(login::login))
        .route(&p("/api/v1/logout"), post(login::logout))
        .route(&p("/api/v1/me"), get(login::me))
        .route(&p("/api/v1/admin/users"), get(login::users))
        .route(&p("/api/v1/clusters"), get(clusters))
        .route(&p("/api/v1/hosts"), get(hosts))
        .route(&p("/api/v1/hosts/{id}"), get(host))
        .route(&p("/api/v1/hosts/{id}/events"), get(events))
        .route(&p("/api/{*rest}"), get(api_not_found).post(api_not_found))
        .route(
            &p("/metrics"),
            get(
                move |pr: Option<Extension<Principal>>, c: Option<Extension<Client>>| {
                    metrics_page(exporter.clone(), w.clone(), pr, c)
                },
            ),
        )
        .route(&p("/healthz"), get(healthz))
        .route(&p("/readyz"), get(readyz));
    if !base.is_empty() {
        // Relative asset URLs need the trailing slash.
        let to = format!("{base}/");
        app = app.route(&base, get(move || async move { Redirect::permanent(&to) }));
    }
    let mut app = app
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(15),
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(16 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            layers::csrf,
        ))
        .layer(layer)
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            layers::principal,
        ))
        .layer(layers::session_layer(&web, &base))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            layers::client_and_allow,
        ));
    for (name, value) in layers::security_headers() {
        app = app.layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                name,
                HeaderValue::from_static(value),
            ),
        );
    }
    // `with_state` after the Socket.IO layer: otherwise the layer is rebuilt per request
    // and long-polling sessions are lost ("Session ID unknown").
    let app = app.with_state(web);
    (app, io)
}

/// Feeds the store from an in-process source (the agent's own sampler, or the aggregator's own
/// host): on every change of `rx`, `view(value, detail)` gives the snapshot to record, with the
/// detail parts while someone watches `id`. Ends at `stop` or when the source goes away.
pub async fn feed_local<T, F>(
    mut rx: watch::Receiver<T>,
    id: String,
    web: Arc<Web>,
    view: F,
    stop: CancellationToken,
) where
    T: Send + Sync,
    F: Fn(&T, bool) -> Option<smon_proto::Snapshot> + Send,
{
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
        let detail = web.demand.is_watched(&id);
        let snap = view(&rx.borrow_and_update(), detail);
        if let Some(s) = snap {
            web.store().apply(&id, s, now_ms());
        }
    }
}

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
