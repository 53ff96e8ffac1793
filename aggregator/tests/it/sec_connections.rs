//! Connection floods and slow clients against the dashboard's HTTP listener, for real on
//! loopback (issue 18, finding 2, and hyper's own error replies, finding 10): idle connections
//! from one address past its limit are closed while `/healthz` and other clients answer; a
//! flood past the open-file limit leaves the daemon answering its health probe; slow header
//! lines and silent connections are closed by the timeouts; hyper's 400, 414 and 431 carry
//! the security headers. Limits are configured low to keep the counts small.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::security::Pki;
use crate::support::{Aggregator, free_port};

/// A TCP connection to `to` from the loopback address `from`. `Err` when the server reset it
/// so soon that `connect` saw it (a refusal at accept).
async fn try_connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from.parse().expect("ip"), 0))?;
    s.connect(to).await
}

/// A TCP connection to `to` from the loopback address `from`, which must succeed.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    try_connect_from(from, to).await.expect("connect")
}

/// Whether a flood's connection was refused at connect, or closed within `wait`.
async fn gone(s: &mut std::io::Result<TcpStream>, wait: Duration) -> bool {
    match s {
        Ok(s) => closed_within(s, wait).await,
        Err(_) => true,
    }
}

/// Whether the server closed `s` (end of stream or reset) within `wait`.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 256];
    loop {
        match tokio::time::timeout(wait, s.read(&mut b)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn addr_of(base: &str) -> SocketAddr {
    base.trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()
        .expect("authority")
        .parse()
        .expect("socket address")
}

/// A plain client from the loopback address `from`.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().expect("ip"))
        .timeout(Duration::from_secs(5))
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_from_one_address_is_capped_while_healthz_and_others_answer() {
    let agg = Aggregator::start(
        r#"{"server":{"limits":{"max_connections_per_address":4}},"monitor":{"mode":"app","poll_interval_ms":200}}"#,
    )
    .await;
    let addr = addr_of(&agg.base);
    let mut flood = Vec::new();
    for _ in 0..24 {
        flood.push(try_connect_from("127.0.0.2", addr).await);
    }
    let mut closed = 0;
    for s in &mut flood {
        if gone(s, Duration::from_millis(300)).await {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 20,
        "the address keeps 4 connections, the other 20 are closed"
    );
    for from in ["127.0.0.1", "127.0.0.3"] {
        let r = client_from(from)
            .get(format!("{}/healthz", agg.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("/healthz from {from}: {e}"));
        assert_eq!(r.status(), 200, "from {from}");
    }
    // A logged-in client still works.
    let (status, _) = agg.get("/api/v1/me").await;
    assert_eq!(status, 200);
    // The flood's own address gets room again as its connections close.
    drop(flood);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client_from("127.0.0.2")
        .get(format!("{}/healthz", agg.base))
        .send()
        .await
        .expect("after the flood");
    assert_eq!(r.status(), 200);
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_silent_connections_are_closed_by_the_timeouts() {
    let agg = Aggregator::start(
        r#"{"server":{"limits":{"header_read_timeout_s":1,"idle_timeout_s":1}},"monitor":{"mode":"app","poll_interval_ms":200}}"#,
    )
    .await;
    let addr = addr_of(&agg.base);
    // Slowloris: a header line every 200 ms, never the blank line.
    let mut slow = connect_from("127.0.0.2", addr).await;
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("write");
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
            cut = true;
            break;
        }
        let mut b = [0u8; 64];
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut b)).await
            && matches!(r, Ok(0) | Err(_))
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "a slow head is cut off by the header timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // A connection that never sends a byte.
    let mut silent = connect_from("127.0.0.2", addr).await;
    assert!(closed_within(&mut silent, Duration::from_secs(4)).await);
    // A keep-alive connection is closed once idle, after a request.
    let mut ka = connect_from("127.0.0.2", addr).await;
    ka.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let mut b = [0u8; 1024];
    let n = ka.read(&mut b).await.expect("reply");
    assert!(String::from_utf8_lossy(&b[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut ka, Duration::from_secs(4)).await);
    // Meanwhile the server answers.
    let r = client_from("127.0.0.1")
        .get(format!("{}/healthz", agg.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    agg.shutdown().await;
}

/// The whole reply to `request` on a fresh connection.
async fn raw_reply(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = connect_from("127.0.0.1", addr).await;
    // hyper may answer before it has read everything: ignore a failed write.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hypers_own_error_replies_carry_the_security_headers() {
    let agg = Aggregator::start(r#"{"monitor":{"mode":"app","poll_interval_ms":200}}"#).await;
    let addr = addr_of(&agg.base);
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "a".repeat(70_000)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n",
        "X-Many: 1\r\n".repeat(200)
    );
    for (request, status) in [
        (b"NOT AN HTTP REQUEST LINE\r\n\r\n".to_vec(), "400"),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(), "400"),
        (long_uri.into_bytes(), "414"),
        (many_headers.into_bytes(), "431"),
    ] {
        let reply = raw_reply(addr, &request).await;
        let lower = reply.to_ascii_lowercase();
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {reply}"
        );
        for h in [
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "content-security-policy: ",
            "referrer-policy: same-origin",
        ] {
            assert!(lower.contains(h), "{status} lacks {h}: {reply}");
        }
    }
    // The app's own replies are untouched: one set of security headers.
    let reply = raw_reply(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(
        reply
            .to_ascii_lowercase()
            .matches("x-content-type-options")
            .count(),
        1,
        "{reply}"
    );
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_flood_is_capped_and_a_silent_handshake_is_cut() {
    let pki = Pki::new(&["127.0.0.1"]);
    let config = json!({
        "server": {
            "tls": {"cert": pki.path("node.pem"), "key": pki.path("node.key")},
            "auth": {"public_read_only": true},
            "limits": {"max_connections_per_address": 3, "header_read_timeout_s": 1}
        },
        "monitor": {"mode": "app", "poll_interval_ms": 200}
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = smon_aggregator::config::load_str(&config.to_string(), "test.json", dir.path())
        .expect("valid config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(smon_aggregator::run(settings, listener, stop.clone()));
    let healthz = format!("https://{addr}/healthz");
    let started = Instant::now();
    while !client_from("127.0.0.1")
        .get(&healthz)
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no answer over TLS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut flood = Vec::new();
    for _ in 0..12 {
        flood.push(try_connect_from("127.0.0.2", addr).await);
    }
    let started = Instant::now();
    let mut closed_at_once = 0;
    for s in &mut flood {
        if gone(s, Duration::from_millis(300)).await {
            closed_at_once += 1;
        }
    }
    assert!(closed_at_once >= 9, "{closed_at_once} of 12 closed at once");
    let r = client_from("127.0.0.3")
        .get(&healthz)
        .send()
        .await
        .expect("https healthz from another address");
    assert_eq!(r.status(), 200);
    // The three admitted ones never began the handshake: cut after the header timeout.
    for s in &mut flood {
        assert!(gone(s, Duration::from_secs(4)).await);
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    stop.cancel();
    let r = tokio::time::timeout(Duration::from_secs(3), task).await;
    assert!(matches!(r, Ok(Ok(Ok(())))), "{r:?}");
}

/// The aggregator binary under an open-file limit of 256 (hard and soft, so it cannot raise
/// it), watching one agent address where nothing answers (no own-host sampler, whose open
/// `/proc` files would count too).
#[test]
fn a_flood_past_the_open_file_limit_leaves_the_health_probe_answering() {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::support::write_users(dir.path(), "smon-users.json");
    let port = free_port("127.0.0.1");
    let cfg = dir.path().join("config_app.json");
    let config = json!({
        "server": {"port": port},
        "monitor": {
            "mode": "app",
            "include_self": false,
            "poll_interval_ms": 1000,
            "clusters": [{"name": "c", "hosts": [{"name": "n", "address": format!("127.0.0.1:{}", free_port("127.0.0.1")), "token": crate::support::TOKEN}]}]
        }
    });
    std::fs::write(&cfg, config.to_string()).expect("config");
    let mut child = Command::new("prlimit")
        .arg("--nofile=256:256")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_smon-aggregator"))
        .args([
            "--no-supervise".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit + aggregator");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let healthz = format!("http://{addr}/healthz");
    let outcome = rt.block_on(async {
        let probe = client_from("127.0.0.1");
        let started = Instant::now();
        loop {
            if let Ok(r) = probe.get(&healthz).send().await
                && r.status() == 200
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err("the aggregator never answered".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // 320 idle connections from 8 addresses, 40 each (under the default 64 per address):
        // more than the process has descriptors.
        let mut flood = Vec::new();
        for i in 2..10 {
            for _ in 0..40 {
                flood.push(try_connect_from(&format!("127.0.0.{i}"), addr).await);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut answers = 0;
        for _ in 0..5 {
            let fresh = client_from("127.0.0.1");
            match fresh.get(&healthz).send().await {
                Ok(r) if r.status() == 200 => answers += 1,
                Ok(r) => return Err(format!("/healthz answered {}", r.status())),
                Err(e) => return Err(format!("/healthz failed under the flood: {e}")),
            }
        }
        let mut closed = 0;
        for s in &mut flood {
            if gone(s, Duration::from_millis(20)).await {
                closed += 1;
            }
        }
        Ok((answers, closed))
    });
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&out.stderr);
    let (answers, closed) = outcome.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(answers, 5);
    // The cap is half of 256 (128); the rest of the flood was refused.
    assert!(closed >= 100, "{closed} of 320 refused\n{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("Refused a connection."), "{log}");
}
