//! Connection floods and ambiguous credentials against the agent's gRPC port, for real on
//! loopback (issue 18, findings 2 and 10): connections from outside `monitor.allow_from` are
//! closed at accept and an allowed address is held to its limit, while a permitted client with
//! the right token gets its snapshot in time; a TLS handshake that never starts is cut; a
//! call with two `authorization` entries is refused. Limits are configured low.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use smon_proto::GetSnapshotRequest;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::support::{TOKEN, client, settings, start_with};

/// A TCP connection to `to` from the loopback address `from`. `Err` when the server reset it
/// so soon that `connect` saw it (a refusal at accept).
async fn try_connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from.parse().expect("ip"), 0))?;
    s.connect(to).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_refused_and_allowed_addresses_leaves_a_permitted_client_served() {
    let s = settings(&format!(
        r#""interval_ms":100,"token":"{TOKEN}","gpu":"off","allow_from":["127.0.0.1/32","127.0.0.3/32"],"limits":{{"max_connections":8,"max_connections_per_address":2}}"#
    ));
    let agent = start_with(s).await;
    let mut c = client(agent.addr, Some(TOKEN)).await;
    c.get_snapshot(GetSnapshotRequest::default())
        .await
        .expect("a first snapshot");

    // Outside allow_from: every connection is closed at once, before TLS or HTTP/2.
    let mut refused = Vec::new();
    for _ in 0..40 {
        refused.push(try_connect_from("127.0.0.2", agent.addr).await);
    }
    for s in &mut refused {
        assert!(gone(s, Duration::from_secs(2)).await, "refused at accept");
    }
    // An allowed address keeps 2 connections; the rest are closed.
    let mut allowed = Vec::new();
    for _ in 0..10 {
        allowed.push(try_connect_from("127.0.0.3", agent.addr).await);
    }
    let mut closed = 0;
    for s in &mut allowed {
        if gone(s, Duration::from_millis(300)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 8, "2 of 10 kept");

    // The permitted client, on its open channel and on a fresh one, within a deadline.
    let started = Instant::now();
    let mut req = Request::new(GetSnapshotRequest::default());
    req.set_timeout(Duration::from_secs(2));
    c.get_snapshot(req)
        .await
        .expect("snapshot on the open channel");
    let mut fresh = client(agent.addr, Some(TOKEN)).await;
    let mut req = Request::new(GetSnapshotRequest::default());
    req.set_timeout(Duration::from_secs(2));
    fresh
        .get_snapshot(req)
        .await
        .expect("snapshot on a new channel");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop((refused, allowed));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_authorization_entries_are_refused() {
    let agent = start_with(settings(&format!(
        r#""interval_ms":100,"token":"{TOKEN}","gpu":"off""#
    )))
    .await;
    let ch = Channel::from_shared(format!("http://{}", agent.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let right = format!("Bearer {TOKEN}");
    for pair in [
        [right.as_str(), "Bearer wrong-token-000000000000"],
        ["Bearer wrong-token-000000000000", right.as_str()],
        [right.as_str(), right.as_str()],
    ] {
        let mut c = smon_proto::agent_client::AgentClient::new(ch.clone());
        let mut req = Request::new(GetSnapshotRequest::default());
        for v in pair {
            let v: MetadataValue<_> = v.parse().expect("value");
            req.metadata_mut().append("authorization", v);
        }
        let e = c
            .get_snapshot(req)
            .await
            .expect_err("ambiguous credentials");
        assert_eq!(e.code(), Code::Unauthenticated, "{pair:?}: {e:?}");
        assert!(e.message().contains("more than one authorization"), "{e:?}");
    }
    // One entry still works.
    let mut c = smon_proto::agent_client::AgentClient::new(ch);
    let mut req = Request::new(GetSnapshotRequest::default());
    req.metadata_mut()
        .insert("authorization", right.parse().expect("value"));
    c.get_snapshot(req).await.expect("one token");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_starts_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tls/make-certs.sh");
    for args in [&["ca"][..], &["agent", "node", "127.0.0.1"][..]] {
        let out = Command::new("bash")
            .arg(&script)
            .arg("-d")
            .arg(dir.path())
            .args(args)
            .output()
            .expect("make-certs.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let p = |f: &str| dir.path().join(f).display().to_string();
    let agent = start_with(settings(&format!(
        r#""interval_ms":100,"token":"{TOKEN}","gpu":"off","tls":{{"cert":"{}","key":"{}"}},"limits":{{"handshake_timeout_s":1}}"#,
        p("node.pem"),
        p("node.key")
    )))
    .await;
    // Wait until it serves (a TLS client would need the CA; the port answering is enough).
    let started = Instant::now();
    let mut silent = loop {
        if let Ok(s) = TcpStream::connect(agent.addr).await {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let started = Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "the handshake deadline closes a silent connection"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
    agent.shutdown().await;
}
