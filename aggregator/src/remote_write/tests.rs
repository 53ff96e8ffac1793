//! The sender against a scripted receiver on a real socket (statuses, headers, bodies), the
//! converter, the stats and the config checks. The real engines are in the integration tests
//! (`tests/it/remote_write.rs`).

use std::path::Path;

use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use smon_proto::{Cpu, Snapshot};

use super::*;

/// A receiver answering with `script` in order, then 204; it records every request.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<Vec<(StatusCode, &'static str)>>>,
    seen: Arc<Mutex<Vec<(HeaderMap, wire::tests::WriteRequest)>>>,
}

async fn receive(
    AxumState(r): AxumState<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    let req = wire::tests::decode(&body);
    r.seen.lock().expect("seen").push((headers, req));
    let mut script = r.script.lock().expect("script");
    if script.is_empty() {
        (StatusCode::NO_CONTENT, "")
    } else {
        script.remove(0)
    }
}

async fn serve(r: Receiver) -> String {
    let app = axum::Router::new()
        .route("/api/v1/write", axum::routing::post(receive))
        .with_state(r);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}/api/v1/write?tenant=secret-in-query")
}

fn target(url: &str) -> Target {
    Target {
        url: url.parse().expect("url"),
        shown: url.split('?').next().unwrap_or(url).to_owned(),
        auth: Some(config::Auth::Bearer("tok-123".into())),
        headers: vec![(
            header::HeaderName::from_static("x-scope-orgid"),
            header::HeaderValue::from_static("lab"),
        )],
        timeout: Duration::from_secs(2),
        max_samples: 10_000,
        per_send: 1_000,
        batch_wait: Duration::from_millis(20),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    }
}

fn shared(t: Target) -> Arc<Shared> {
    Arc::new(Shared {
        state: Mutex::new(State {
            queue: Queue::new(t.max_samples),
            inflight: 0,
            inflight_oldest_ms: None,
            sent: 0,
            dropped: 0,
            failed_requests: 0,
            last_error: None,
            refusals: 0,
        }),
        target: t,
        wake: Notify::new(),
    })
}

fn snap(cpu: f32) -> Snapshot {
    Snapshot {
        cpu: Some(Cpu {
            total_percent: cpu,
            ..Cpu::default()
        }),
        process_count: 7,
        ..Snapshot::default()
    }
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(std::time::Instant::now() < until, "not {what} within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_5xx_is_retried_until_accepted_and_a_400_drops_the_batch() {
    let r = Receiver::default();
    r.script.lock().expect("script").extend([
        (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        (StatusCode::TOO_MANY_REQUESTS, "slow down"),
    ]);
    let url = serve(r.clone()).await;
    let s = shared(target(&url));
    let stop = CancellationToken::new();
    let client = reqwest::Client::new();
    let task = tokio::spawn(send_loop(s.clone(), client, stop.clone()));
    let mut conv = Converter::default();
    let now = now_ms() as i64;
    s.push(
        conv.chunk("lab:n1", now, &snap(12.5), || vec!["gpu".into()])
            .expect("chunk"),
    );
    wait_for("sent", || s.stats(now_ms()).sent == 3).await;
    let st = s.stats(now_ms());
    assert_eq!((st.queued, st.dropped, st.last_error), (0, 0, None));
    assert_eq!(s.failing(), (false, 2));
    {
        let seen = r.seen.lock().expect("seen");
        assert_eq!(seen.len(), 3, "two failures, then accepted");
        assert!(
            seen.windows(2).all(|w| w[0].1 == w[1].1),
            "the same batch each time"
        );
        let (h, req) = &seen[2];
        for (name, want) in [
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            ("x-prometheus-remote-write-version", "0.1.0"),
            ("authorization", "Bearer tok-123"),
            ("x-scope-orgid", "lab"),
        ] {
            assert_eq!(
                h.get(name).and_then(|v| v.to_str().ok()),
                Some(want),
                "{name}"
            );
        }
        let cpu = req
            .timeseries
            .iter()
            .find(|t| t.labels[0].value == "smon_cpu_percent")
            .expect("cpu series");
        let labels: Vec<(&str, &str)> = cpu
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("__name__", "smon_cpu_percent"),
                ("cluster", "lab"),
                ("host", "n1"),
                ("tags", ",gpu,")
            ]
        );
        assert_eq!(
            (cpu.samples[0].timestamp, cpu.samples[0].value),
            (now, 12.5)
        );
    }

    // Refused for good: dropped, counted, the receiver's reason kept; the next batch goes.
    r.script
        .lock()
        .expect("script")
        .push((StatusCode::BAD_REQUEST, "out of order sample"));
    s.push(
        conv.chunk("lab:n1", now + 1000, &snap(1.0), Vec::new)
            .expect("chunk"),
    );
    wait_for("dropped", || s.stats(now_ms()).dropped == 3).await;
    let err = s.stats(now_ms()).last_error.expect("an error");
    assert_eq!(err, "HTTP 400 Bad Request: out of order sample");
    s.push(
        conv.chunk("lab:n1", now + 2000, &snap(2.0), Vec::new)
            .expect("chunk"),
    );
    wait_for("sent again", || s.stats(now_ms()).sent == 6).await;
    assert_eq!(s.stats(now_ms()).last_error, None);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("stops")
        .expect("no panic");
}

#[tokio::test]
async fn while_the_receiver_is_away_the_queue_holds_and_lag_grows() {
    // A port nobody listens on: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let s = shared(target(&url));
    let stop = CancellationToken::new();
    let task = tokio::spawn(send_loop(s.clone(), reqwest::Client::new(), stop.clone()));
    let mut conv = Converter::default();
    let t0 = now_ms() as i64 - 5_000;
    for i in 0..5 {
        s.push(
            conv.chunk("lab:n1", t0 + i * 1000, &snap(i as f32), Vec::new)
                .expect("chunk"),
        );
    }
    wait_for("failing", || s.failing().1 >= 3).await;
    let st = s.stats(now_ms());
    assert_eq!((st.queued, st.sent, st.dropped), (15, 0, 0));
    assert!(st.lag_s >= 5.0 && st.lag_s < 30.0, "{st:?}");
    let err = st.last_error.expect("error");
    assert!(err.contains("error sending request"), "{err}");
    assert!(!err.contains("secret"), "{err}");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("stops")
        .expect("no panic");
    // Stopped while retrying: what could not go is counted, not silently forgotten.
    assert_eq!(s.stats(now_ms()).dropped, 15);
}

#[test]
fn a_full_queue_counts_what_it_drops() {
    let mut t = target("http://127.0.0.1:1/w");
    t.max_samples = 3;
    let s = shared(t);
    let mut conv = Converter::default();
    for i in 0..3 {
        s.push(conv.chunk("c:h", i, &snap(1.0), Vec::new).expect("chunk"));
    }
    // cpu_percent, processes, sessions: 3 values per sample; one sample fits.
    let st = s.stats(10);
    assert_eq!((st.queued, st.dropped), (3, 6));
}

#[test]
fn the_converter_keeps_each_hosts_series_and_orders_each_hosts_samples() {
    let mut conv = Converter::default();
    let a = conv.chunk("lab:n1", 1000, &snap(1.0), || vec!["x".into()]);
    let a = a.expect("chunk");
    let b = conv
        .chunk("lab:n1", 2000, &snap(2.0), || panic!("tags asked once"))
        .expect("chunk");
    assert!(
        a.values
            .iter()
            .zip(&b.values)
            .all(|(x, y)| Arc::ptr_eq(&x.0, &y.0)),
        "label sets made once"
    );
    // Published back to back (same or slightly earlier millisecond): moved just after.
    let same = conv
        .chunk("lab:n1", 2000, &snap(3.0), Vec::new)
        .expect("chunk");
    assert_eq!(same.at_ms, 2001);
    let behind = conv
        .chunk("lab:n1", 1500, &snap(3.0), Vec::new)
        .expect("chunk");
    assert_eq!(behind.at_ms, 2002);
    // The clock went back a second or more: left out until it catches up.
    assert!(conv.chunk("lab:n1", 1002, &snap(3.0), Vec::new).is_none());
    assert_eq!(
        conv.chunk("lab:n1", 2500, &snap(3.0), Vec::new)
            .map(|c| c.at_ms),
        Some(2500)
    );
    // Retagged: forgotten, and the tags are asked again.
    conv.forget("lab:n1");
    let c = conv
        .chunk("lab:n1", 3000, &snap(3.0), || vec!["y".into()])
        .expect("chunk");
    let labels = wire::tests::decode_labels(&c.values[0].0.labels);
    assert!(
        labels.contains(&("tags".into(), ",y,".into())),
        "{labels:?}"
    );
}

#[test]
fn backoff_doubles_to_its_cap_with_jitter() {
    use rand::SeedableRng as _;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let (lo, hi) = (Duration::from_millis(100), Duration::from_secs(5));
    let first = backoff(0, lo, hi, &mut rng);
    assert!(first >= lo / 2 && first <= lo, "{first:?}");
    let third = backoff(2, lo, hi, &mut rng);
    assert!(third >= lo * 2 && third <= lo * 4, "{third:?}");
    for n in [10, 40, u32::MAX] {
        let d = backoff(n, lo, hi, &mut rng);
        assert!(d >= hi / 2 && d <= hi, "{n}: {d:?}");
    }
}

#[test]
fn metrics_name_each_receiver_by_its_url() {
    let s = shared(target("http://127.0.0.1:1/api/v1/write"));
    s.push(
        Converter::default()
            .chunk("c:h", now_ms() as i64 - 2_000, &snap(1.0), Vec::new)
            .expect("chunk"),
    );
    let rw = RemoteWrite {
        targets: Arc::from(vec![s]),
    };
    let mut reg = prometheus_client::registry::Registry::default();
    reg.register_collector(Box::new(rw));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).expect("encode");
    for want in [
        "smon_remote_write_queued_samples{url=\"http://127.0.0.1:1/api/v1/write\"} 3",
        "smon_remote_write_sent_samples_total{url=\"http://127.0.0.1:1/api/v1/write\"} 0",
        "smon_remote_write_dropped_samples_total{url=\"http://127.0.0.1:1/api/v1/write\"} 0",
        "smon_remote_write_failing{url=\"http://127.0.0.1:1/api/v1/write\"} 0",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    let lag = text
        .lines()
        .find(|l| l.starts_with("smon_remote_write_lag_seconds{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("lag line");
    assert!((2.0..10.0).contains(&lag), "{lag}");
}

fn load(text: &str, dir: &Path) -> Result<crate::config::Settings, crate::config::ConfigError> {
    crate::config::load_str(text, "app.json", dir)
}

fn with_rw(rw: &str) -> String {
    format!(r#"{{"monitor":{{"mode":"app"}},"storage":{{"remote_write":{rw}}}}}"#)
}

#[test]
fn config_reads_secrets_from_files_and_never_prints_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("vm.pass"), "hunter2-pass\n").expect("write");
    std::fs::write(dir.path().join("tok"), "tok-abc\n").expect("write");
    let s = load(
        &with_rw(
            r#"[{"url":"https://vm.example:8428/api/v1/write","basic_auth":{"username":"smon","password_file":"vm.pass"},
                 "headers":{"X-Scope-OrgID":"lab"},"timeout_ms":5000,"queue":{"max_samples":50000,"max_samples_per_send":500}},
                {"url":"http://prom:9090/api/v1/write","bearer_token_file":"tok"}]"#,
        ),
        dir.path(),
    )
    .expect("valid");
    assert_eq!(s.remote_write.len(), 2);
    let vm = &s.remote_write[0];
    assert_eq!(
        vm.auth,
        Some(config::Auth::Basic {
            username: "smon".into(),
            password: "hunter2-pass".into()
        })
    );
    assert_eq!((vm.max_samples, vm.per_send), (50_000, 500));
    assert_eq!(vm.timeout, Duration::from_secs(5));
    assert_eq!(
        s.remote_write[1].auth,
        Some(config::Auth::Bearer("tok-abc".into()))
    );
    let shown = format!("{s:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("tok-abc"),
        "{shown}"
    );
    assert!(s.token_files.contains(&dir.path().join("vm.pass")));
    // Defaults.
    let d = &s.remote_write[1];
    assert_eq!(
        (d.max_samples, d.per_send, d.batch_wait, d.timeout),
        (
            1_000_000,
            2_000,
            Duration::from_secs(1),
            Duration::from_secs(30)
        )
    );
}

#[test]
fn config_names_every_bad_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load(
        &with_rw(
            r#"[{"url":"ftp://x/w"},
                {"url":"http://smon:s3cret@vm:8428/api/v1/write"},
                {"url":"not a url"},
                {"url":"http://a/w","bearer_token_file":"t","basic_auth":{"username":"u","password_file":"p"}},
                {"url":"http://b/w","bearer_token_file":"missing.tok","headers":{"Authorization":"Bearer x","X-Ok":"bad\nvalue"}},
                {"url":"http://c/w","timeout_ms":1,"queue":{"max_samples":10,"max_backoff_ms":5}},
                {"url":"http://c/w"}]"#,
        ),
        dir.path(),
    )
    .expect_err("invalid")
    .to_string();
    let missing = dir.path().join("missing.tok");
    for want in [
        "app.json: storage.remote_write[0].url: 'ftp' is not a scheme remote write speaks".to_owned(),
        "app.json: storage.remote_write[1].url: 'http://vm:8428/api/v1/write' must not hold credentials".into(),
        "app.json: storage.remote_write[2].url: 'not a url' is not a URL".into(),
        "app.json: storage.remote_write[3].bearer_token_file: cannot be combined with basic_auth".into(),
        format!("app.json: storage.remote_write[4].bearer_token_file: '{}' cannot be read", missing.display()),
        "app.json: storage.remote_write[4].headers: 'Authorization' is set by smon".into(),
        "app.json: storage.remote_write[4].headers.X-Ok: '<hidden>' is not a valid header value".into(),
        "app.json: storage.remote_write[5].timeout_ms: '1' must be between 100 and 600000".into(),
        "app.json: storage.remote_write[5].queue.max_samples: '10' must be between 1000 and 100000000".into(),
        "app.json: storage.remote_write[5].queue.max_backoff_ms: '5' must be between 10 and 600000".into(),
        "app.json: storage.remote_write[6].url: 'http://c/w' is listed twice".into(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in\n{err}");
    }
    assert!(!err.contains("s3cret"), "password leaked: {err}");
    let unknown = load(
        &with_rw(r#"[{"url":"http://a/w","password":"x"}]"#),
        dir.path(),
    )
    .expect_err("unknown key")
    .to_string();
    assert!(unknown.contains("storage.remote_write[0]"), "{unknown}");
}
