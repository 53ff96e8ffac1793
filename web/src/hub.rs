//! The HTTP side shared by both daemons: the embedded UI, the read-only REST API, the Socket.IO
//! namespace (rooms `overview`, `overview:public` for anonymous visitors whose rows hide
//! addresses and errors, and `host:<id>:<class>`), and the hub task that turns store changes
//! into room emits once per interval.
//!
//! The routes are in [`crate::routes`], the security policy in [`crate::security`], the shared
//! state in [`crate::state`] ([`Web`], and [`Demand`]: who watches which host, which this
//! hub counts). `GET /metrics` serves the Prometheus exposition ([`crate::metrics`]);
//! connected browsers are counted in [`Web::telemetry`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Extension;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Redirect;
use axum::routing::{delete, get, post, put};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::routes::{accounts, api, auth, history};
use crate::security::handshake::Handshakes;
use crate::security::net::Client;
use crate::security::visibility::Visibility;
use crate::security::{Class, Principal, layers};
use crate::wire::{Ack, Hello, HostRemoved, Subscribe};

// Re-exported where they were before the split, for the daemons.
pub use crate::clock::now_ms;
pub use crate::error::ApiError;
pub use crate::state::{Demand, Web};

/// The host a socket watches, kept in its extensions.
#[derive(Clone)]
struct Watching(String);

/// The room of a host page, per class of visitor: each gets the sample filtered for it.
fn room_of(id: &str, class: Class) -> String {
    format!("host:{id}:{}", class.as_str())
}

/// The overview room of visitors who see `vis`: those whose rows are filtered get frames of
/// their own.
fn overview_room(vis: Visibility) -> &'static str {
    if vis.filters_rows() {
        "overview:public"
    } else {
        "overview"
    }
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
            let vis = w.security.http.auth.visibility(class_of(s));
            s.join(overview_room(vis));
            let full = w.store().overview(now_ms());
            let mut parts = full.into_parts();
            if vis.filters_rows() {
                for r in parts.iter_mut().flat_map(|p| p.hosts.iter_mut()) {
                    vis.apply_row(r);
                }
            }
            match parts.iter().try_for_each(|part| s.emit("overview", part)) {
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
                    let vis = w.security.http.auth.visibility(class);
                    if let Some(d) = full.detail.as_mut() {
                        vis.apply(d);
                    }
                    vis.apply_row(&mut full.host);
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
            s.leave("overview:public");
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
        let auth = &web.security.http.auth;
        let public = auth.visibility(Class::Public);
        if let Some(delta) = changes.delta.as_ref()
            && auth.public_read_only
            && public.filters_rows()
        {
            let mut d = delta.clone();
            public.apply_delta(&mut d);
            if let Err(e) = io
                .to(overview_room(public))
                .volatile()
                .emit("overview_delta", &d)
                .await
            {
                tracing::debug!(error = %e, "Overview delta not delivered to every public socket.");
            }
        }
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
                let vis = auth.visibility(class);
                if let Some(d) = u.detail.as_mut() {
                    vis.apply(d);
                }
                vis.apply_row(&mut u.host);
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

/// Whether `base` is an acceptable path prefix: a clean absolute path (no empty, `.` or `..`
/// segments, no percent-encoding, URL-safe). The reason when not:
/// [`crate::security::config::base_path_problem`].
pub fn valid_base_path(base: &str) -> bool {
    crate::security::config::base_path_problem(base).is_none()
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
/// Layers, outermost first: security headers; the client's address and `allow_from`; the host
/// name (`allowed_hosts`); the session; the [`Principal`]; the Engine.IO handshake gate (no
/// session is allocated for a visitor who may not have one); then Socket.IO (its connect
/// middleware needs the principal) and, for the routes, CSRF, a body limit and a timeout.
/// Routes check their role themselves.
pub fn router(web: Arc<Web>, base: &str) -> (Router, SocketIo) {
    let base = normalise_base(base);
    let exporter = Arc::new(Metrics::new(web.store.clone(), &web.telemetry, web.mode));
    let (layer, io) = SocketIo::builder()
        .req_path(format!("{base}/socket.io"))
        .max_payload(64 * 1024)
        // A browser joins the namespace at once; a session that does not holds its memory
        // (and, for an anonymous visitor, a place) no longer than this.
        .connect_timeout(Duration::from_secs(10))
        .build_layer();
    let auth = &web.security.http.auth;
    let gate = Handshakes::new(&base, auth.public_sockets_per_address, auth.public_sockets);
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
        .route(&p("/"), get(api::index))
        .route(&p("/login"), get(api::login_page))
        .route(&p("/assets/{*path}"), get(api::asset))
        .route(&p("/api/v1/login"), post(auth::login))
        .route(&p("/api/v1/logout"), post(auth::logout))
        .route(&p("/api/v1/me"), get(auth::me))
        .route(
            &p("/api/v1/me/password"),
            post(accounts::change_own_password),
        )
        .route(
            &p("/api/v1/admin/users"),
            get(accounts::list).post(accounts::add),
        )
        .route(&p("/api/v1/admin/users/{name}"), delete(accounts::remove))
        .route(
            &p("/api/v1/admin/users/{name}/role"),
            put(accounts::set_role),
        )
        .route(
            &p("/api/v1/admin/users/{name}/password"),
            put(accounts::reset_password),
        )
        .route(&p("/api/v1/audit"), get(crate::routes::audit::list))
        .route(&p("/api/v1/clusters"), get(api::clusters))
        .route(&p("/api/v1/hosts"), get(api::hosts))
        .route(&p("/api/v1/hosts/{id}"), get(api::host))
        .route(&p("/api/v1/hosts/{id}/events"), get(api::events))
        .route(
            &p("/api/{*rest}"),
            get(api::api_not_found).post(api::api_not_found),
        )
        .route(
            &p("/metrics"),
            get(
                move |pr: Option<Extension<Principal>>, c: Option<Extension<Client>>| {
                    api::metrics_page(exporter.clone(), w.clone(), pr, c)
                },
            ),
        )
        .route(&p("/healthz"), get(api::healthz))
        .route(&p("/readyz"), get(api::readyz));
    app = history::routes(app, &base);
    app = crate::routes::alerts::routes(app, &base);
    app = crate::routes::reach::routes(app, &base);
    app = crate::routes::actions::routes(app, &base);
    app = crate::routes::programs::routes(app, &base);
    app = crate::routes::applications::routes(app, &base);
    app = crate::routes::applications_act::routes(app, &base);
    app = crate::routes::inventory::routes(app, &base);
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
            web.security.clone(),
            layers::csrf,
        ))
        .layer(layer)
        .layer(axum::middleware::from_fn_with_state(
            gate,
            layers::engine_gate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            web.security.clone(),
            layers::principal,
        ))
        .layer(layers::session_layer(&web.security, &base))
        .layer(axum::middleware::from_fn_with_state(
            web.security.clone(),
            layers::allowed_host,
        ))
        .layer(axum::middleware::from_fn_with_state(
            web.security.clone(),
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
