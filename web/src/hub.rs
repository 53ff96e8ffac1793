//! The HTTP side shared by both daemons: the embedded UI, the read-only REST API, the Socket.IO
//! namespace (rooms `overview` and `host:<id>`), and the hub task that turns store changes into
//! room emits once per interval.
//!
//! Who watches which host is counted here ([`Demand`]); pollers read it to ask their agent for
//! the detail parts only while a browser looks at that host. `GET /metrics` serves the
//! Prometheus exposition ([`crate::metrics`]); connected browsers are counted in
//! [`Web::telemetry`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::assets;
use crate::metrics::{self, Metrics, Telemetry};
use crate::store::ClusterStore;
use crate::wire::{Ack, Hello, Subscribe};

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

/// Per host: how many sockets watch it, and the channel pollers read.
type Watchers = HashMap<String, (usize, watch::Sender<bool>)>;

impl Demand {
    fn lock(&self) -> MutexGuard<'_, Watchers> {
        // A poisoned lock only means a panic elsewhere mid-update of a counter; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that is `true` while at least one browser watches `id`.
    pub fn subscribe(&self, id: &str) -> watch::Receiver<bool> {
        self.lock()
            .entry(id.to_owned())
            .or_insert_with(|| (0, watch::channel(false).0))
            .1
            .subscribe()
    }

    /// Whether anyone watches `id`.
    pub fn is_watched(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|(n, _)| *n > 0)
    }

    fn add(&self, id: &str) {
        let mut m = self.lock();
        let e = m
            .entry(id.to_owned())
            .or_insert_with(|| (0, watch::channel(false).0));
        e.0 += 1;
        if e.0 == 1 {
            e.1.send_replace(true);
        }
    }

    fn remove(&self, id: &str) {
        let mut m = self.lock();
        if let Some(e) = m.get_mut(id) {
            e.0 = e.0.saturating_sub(1);
            if e.0 == 0 {
                e.1.send_replace(false);
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
}

impl Web {
    /// Shared state over `store` for a daemon in `mode` (`app` or `node`).
    pub fn new(store: Arc<Mutex<ClusterStore>>, mode: &'static str) -> Self {
        Self {
            store,
            demand: Demand::default(),
            telemetry: Telemetry::default(),
            mode,
            hub_tick_ms: std::sync::atomic::AtomicU64::new(now_ms()),
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

fn room_of(id: &str) -> String {
    format!("host:{id}")
}

fn on_connect(s: SocketRef, web: Arc<Web>) {
    web.telemetry.browser_connected();
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
                w.demand.remove(&id);
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
            let _ = s.emit("overview", &full);
            Ack::ok()
        }
        Ok(Subscribe::Host { id }) => {
            let full = w.store().host_full(&id, now_ms());
            match full {
                None => Ack::err(format!("unknown host '{id}'")),
                Some(full) => {
                    let previous = s.extensions.get::<Watching>();
                    if previous.as_ref().map(|p| p.0.as_str()) != Some(id.as_str()) {
                        if let Some(Watching(old)) = previous {
                            s.leave(room_of(&old));
                            w.demand.remove(&old);
                        }
                        s.join(room_of(&id));
                        w.demand.add(&id);
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
                s.leave(room_of(&id));
                w.demand.remove(&id);
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
        for (id, update) in changes.host_updates {
            if let Err(e) = io
                .to(room_of(&id))
                .volatile()
                .emit("host_update", &update)
                .await
            {
                tracing::debug!(host = %id, error = %e, "Host update not delivered to every socket.");
            }
        }
    }
}

/// A REST error: a status and a reason, as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

type Shared = State<Arc<Web>>;

async fn clusters(State(w): Shared) -> impl IntoResponse {
    Json(w.store().clusters())
}

async fn hosts(State(w): Shared) -> impl IntoResponse {
    Json(w.store().rows())
}

async fn host(State(w): Shared, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let st = w.store();
    let row = st
        .row(&id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("unknown host '{id}'")))?;
    let (info, detail) = st.info_and_latest(&id).unwrap_or((None, None));
    Ok(Json(
        serde_json::json!({ "host": row, "info": info, "detail": detail }),
    ))
}

async fn events(State(w): Shared, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
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

/// `GET /metrics`. Encoded off the async threads: with many hosts it takes a while.
async fn metrics_page(m: Arc<Metrics>) -> Response {
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

async fn index(headers: HeaderMap) -> Response {
    assets::serve("index.html", &headers)
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

/// The HTTP router (UI, REST, Socket.IO, `/metrics`) under `base` (e.g. `""` or `/smon`), and
/// the Socket.IO handle for [`run_hub`].
pub fn router(web: Arc<Web>, base: &str) -> (Router, SocketIo) {
    let base = normalise_base(base);
    let exporter = Arc::new(Metrics::new(web.store.clone(), &web.telemetry, web.mode));
    let (layer, io) = SocketIo::builder()
        .req_path(format!("{base}/socket.io"))
        .max_payload(64 * 1024)
        .build_layer();
    let w = web.clone();
    io.ns("/", move |s: SocketRef| {
        let w = w.clone();
        async move { on_connect(s, w) }
    });
    let p = |s: &str| format!("{base}{s}");
    let mut app: Router<Arc<Web>> = Router::new()
        .route(&p("/"), get(index))
        .route(&p("/assets/{*path}"), get(asset))
        .route(&p("/api/v1/clusters"), get(clusters))
        .route(&p("/api/v1/hosts"), get(hosts))
        .route(&p("/api/v1/hosts/{id}"), get(host))
        .route(&p("/api/v1/hosts/{id}/events"), get(events))
        .route(&p("/api/{*rest}"), get(api_not_found))
        .route(&p("/metrics"), get(move || metrics_page(exporter.clone())))
        .route(&p("/healthz"), get(healthz))
        .route(&p("/readyz"), get(readyz));
    if !base.is_empty() {
        // Relative asset URLs need the trailing slash.
        let to = format!("{base}/");
        app = app.route(&base, get(move || async move { Redirect::permanent(&to) }));
    }
    let app = app
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        )
        .layer(layer)
        // `with_state` after the Socket.IO layer: otherwise the layer is rebuilt per request
        // and long-polling sessions are lost ("Session ID unknown").
        .with_state(web);
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
    let hub = tokio::spawn(run_hub(io.clone(), web, stop.clone()));
    let closer_stop = stop.clone();
    let closer = tokio::spawn(async move {
        closer_stop.cancelled().await;
        io.close().await;
    });
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned())
    .await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = hub.await;
        let _ = closer.await;
    })
    .await;
    served
}
