//! Fuzzing the REST path and query parsing from outside: arbitrary request targets (tricky
//! bytes, percent-encodings, traversal, odd ids, long and repeated segments, queries) are
//! written raw over TCP to the real server, in-process on port 0 (a public read-only
//! dashboard, so every reading route answers an anonymous client; the history routes read a
//! recording store, `history::Recorded`). Every answer must be a
//! well-formed HTTP status below 500, and the server must still answer `/healthz` afterwards:
//! no panic, no hang, no 5xx from any route's parsing. `PROPTEST_CASES` sets how many targets
//! (256 by default); a failing one is shrunk to the smallest target that fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use proptest::prelude::*;

use crate::fleet::{PublicServer, serve_public_with, spec};

/// Writes one GET of `target` and returns the answer's status code (0 when the server closed
/// without an answer, which hyper does only for a request line it cannot read at all).
fn status_of(addr: SocketAddr, target: &[u8]) -> Result<u16, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(&req).map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                if head.len() >= 12 {
                    break;
                }
            }
            // A reset after an answer it did not want to finish reading is fine; a timeout is not.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    if head.is_empty() {
        return Ok(0);
    }
    let line = String::from_utf8_lossy(&head);
    line.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
}

/// The routes and prefixes whose parameters are parsed.
const PREFIXES: &[&str] = &[
    "/",
    "/api/v1/hosts/",
    "/api/v1/hosts/lab:a1/",
    "/api/v1/hosts/lab:a1/events?",
    "/api/v1/hosts/lab:a1/history?metrics=",
    "/api/v1/hosts/lab:a1/history?metrics=cpu_percent&from=",
    "/api/v1/hosts/lab:a1/processes?at=",
    "/api/v1/clusters/lab/history?metrics=disk_percent{",
    "/api/v1/gpus/usage?by=",
    "/api/v1/gpus/usage?from=1&to=",
    "/api/v1/admin/storage?",
    "/api/v1/",
    "/api/v1/me?",
    "/assets/",
    "/metrics?",
    "/healthz?",
    "/login?next=",
    "/socket.io/?EIO=4&transport=polling&sid=",
];

/// Pieces that parsers trip over.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%2F".to_owned()),
        Just("%00".to_owned()),
        Just("%ff%fe".to_owned()),
        Just("%".to_owned()),
        Just("%%".to_owned()),
        Just("//".to_owned()),
        Just(":".to_owned()),
        Just("::".to_owned()),
        Just("?".to_owned()),
        Just("&".to_owned()),
        Just("=".to_owned()),
        Just("#".to_owned()),
        Just(";".to_owned()),
        Just("\\".to_owned()),
        Just("lab:a1".to_owned()),
        Just("index.html".to_owned()),
        "[a-zA-Z0-9._~-]{1,12}",
        "\\PC{1,4}",
        ("[a-z]{1,3}", 1usize..300).prop_map(|(s, n)| s.repeat(n)),
    ]
}

fn target() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(PREFIXES),
        proptest::collection::vec(piece(), 0..8),
    )
        .prop_map(|(prefix, pieces)| {
            let mut t = prefix.as_bytes().to_vec();
            for p in pieces {
                // Raw non-ASCII and spaces would end the request line: percent-encode them
                // as a browser does (hyper refuses raw ones itself, with 400).
                for b in p.bytes() {
                    if b.is_ascii_graphic() {
                        t.push(b);
                    } else {
                        t.extend_from_slice(format!("%{b:02X}").as_bytes());
                    }
                }
            }
            t
        })
}

#[test]
fn any_request_target_gets_an_answer_below_500() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let PublicServer {
        addr,
        web,
        stop,
        server,
    } = rt.block_on(serve_public_with(
        dir.path(),
        vec![spec("lab", "a1"), spec("lab", "a2")],
        Some(std::sync::Arc::new(crate::history::Recorded::default())),
    ));
    // The server answers before the fuzzing starts.
    let mut up = false;
    for _ in 0..100 {
        if status_of(addr, b"/healthz") == Ok(200) {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "the server never answered /healthz");

    proptest!(ProptestConfig::default(), |(t in target())| {
        let code = status_of(addr, &t).map_err(TestCaseError::fail)?;
        prop_assert!(
            code < 500,
            "{} answered {code}",
            String::from_utf8_lossy(&t)
        );
        // Each answer also leaves the server serving.
        prop_assert_eq!(status_of(addr, b"/healthz"), Ok(200));
    });
    // Traversal never reaches a file outside the embedded assets.
    for t in [
        &b"/assets/../../../../etc/passwd"[..],
        b"/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        b"/assets/..%2F..%2F..%2Fetc%2Fpasswd",
    ] {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(t);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(&req).expect("write");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 4") && !answer.contains("root:"),
            "{}: {answer}",
            String::from_utf8_lossy(t)
        );
    }
    drop(web);
    stop.cancel();
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    });
}
