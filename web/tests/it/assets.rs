//! The UI's files precompressed (`web/ui/build.mjs` writes `NAME.br` and `NAME.gz`, the server
//! picks one by `Accept-Encoding`): a real dashboard in-process on port 0, asked over HTTP
//! with and without `Accept-Encoding`. The decoded bytes must equal the plain file, each
//! representation must carry its own ETag and `Vary: Accept-Encoding`, a 304 must follow the
//! representation asked for, and the `.br`/`.gz` files must not be served under their names.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};

use crate::fleet::{serve_public, ui_dir};

async fn get(
    c: &reqwest::Client,
    url: &str,
    accept: Option<&str>,
    etag: Option<&str>,
) -> reqwest::Response {
    let mut r = c.get(url);
    if let Some(a) = accept {
        r = r.header(ACCEPT_ENCODING, a);
    }
    if let Some(e) = etag {
        r = r.header(IF_NONE_MATCH, e);
    }
    r.send().await.expect("request")
}

fn header(r: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii").to_owned())
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli_decompressor::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .expect("brotli");
    out
}

#[tokio::test]
async fn ui_files_are_sent_precompressed_to_browsers_that_accept_it() {
    let dist = ui_dir().join("dist").join("assets");
    for f in ["app.js.br", "app.js.gz"] {
        assert!(
            dist.join(f).is_file(),
            "{}: missing; build the UI with `node build.mjs` in web/ui",
            dist.join(f).display()
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve_public(dir.path(), Vec::new()).await;
    // No automatic decoding: reqwest is built without it, so the bytes are as sent.
    let c = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("http://{}/assets/app.js", s.addr);

    // Without Accept-Encoding: the plain file, as before.
    let plain = get(&c, &url, None, None).await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(header(&plain, CONTENT_ENCODING), None);
    assert_eq!(
        header(&plain, VARY).as_deref(),
        Some("accept-encoding"),
        "a cache must not give the plain file to a browser that asked for brotli, or back"
    );
    assert!(
        header(&plain, CONTENT_TYPE)
            .as_deref()
            .is_some_and(|t| t.contains("javascript"))
    );
    let plain_tag = header(&plain, ETAG).expect("etag");
    let plain = plain.bytes().await.expect("body").to_vec();
    let on_disk = std::fs::read(dist.join("app.js")).expect("app.js");
    assert_eq!(plain, on_disk);

    // A browser's Accept-Encoding: brotli, decoded to the same bytes.
    let br = get(&c, &url, Some("gzip, deflate, br, zstd"), None).await;
    assert_eq!(br.status(), StatusCode::OK);
    assert_eq!(header(&br, CONTENT_ENCODING).as_deref(), Some("br"));
    assert_eq!(header(&br, VARY).as_deref(), Some("accept-encoding"));
    assert!(
        header(&br, CONTENT_TYPE)
            .as_deref()
            .is_some_and(|t| t.contains("javascript")),
        "the type of the file, not of its encoding"
    );
    let br_tag = header(&br, ETAG).expect("etag");
    let br = br.bytes().await.expect("body");
    assert!(
        br.len() * 2 < plain.len(),
        "{} of {}",
        br.len(),
        plain.len()
    );
    assert_eq!(unbrotli(&br), plain);

    // gzip only (and brotli refused).
    let gz = get(&c, &url, Some("br;q=0, gzip"), None).await;
    assert_eq!(header(&gz, CONTENT_ENCODING).as_deref(), Some("gzip"));
    let gz_tag = header(&gz, ETAG).expect("etag");
    let gz = gz.bytes().await.expect("body");
    assert!(gz.len() * 2 < plain.len());
    assert_eq!(gunzip(&gz), plain);

    // Every representation its own ETag, and a 304 only for the one held.
    assert!(plain_tag != br_tag && br_tag != gz_tag && plain_tag != gz_tag);
    let r = get(&c, &url, Some("br"), Some(&br_tag)).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&r, VARY).as_deref(), Some("accept-encoding"));
    assert_eq!(header(&r, ETAG).as_deref(), Some(br_tag.as_str()));
    let r = get(&c, &url, None, Some(&br_tag)).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the brotli ETag does not validate the plain file"
    );
    assert_eq!(r.bytes().await.expect("body").to_vec(), plain);
    let r = get(&c, &url, None, Some(&plain_tag)).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // The precompressed files are not routes of their own; a file without them (too small)
    // is sent plain, with no Vary.
    let r = get(&c, &format!("{url}.br"), None, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = get(
        &c,
        &format!("http://{}/assets/favicon.svg", s.addr),
        Some("br"),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, CONTENT_ENCODING), None);
    assert_eq!(header(&r, VARY), None);

    // The dashboard's page itself, for a browser (public read-only here).
    let r = get(
        &c,
        &format!("http://{}/assets/app.css", s.addr),
        Some("gzip"),
        None,
    )
    .await;
    assert_eq!(header(&r, CONTENT_ENCODING).as_deref(), Some("gzip"));
    let css = gunzip(&r.bytes().await.expect("body"));
    assert_eq!(css, std::fs::read(dist.join("app.css")).expect("app.css"));
    s.stop.cancel();
}

/// `GET /api/v1/applications` (large, read every 3 s, no secret in it) is gzip-compressed for
/// a client that accepts it; `GET /api/v1/me` and the other API routes are not.
#[tokio::test]
async fn the_applications_list_alone_of_the_api_is_compressed() {
    use smon_proto::{Process, Program, Programs, Snapshot};
    use smon_web::clock::now_ms;

    let dir = tempfile::tempdir().expect("tempdir");
    let hosts: Vec<_> = (0..20)
        .map(|i| crate::fleet::spec("lab", &format!("n{i}")))
        .collect();
    let s = serve_public(dir.path(), hosts).await;
    {
        let mut st = s.web.store();
        for i in 0..20 {
            let programs: Vec<Program> = (0..20)
                .map(|j| Program {
                    group: "web".into(),
                    name: format!("worker-{j}"),
                    state: "RUNNING".into(),
                    pid: 1000 + j,
                    description: format!("pid {}, uptime 1:00:00", 1000 + j),
                    ..Program::default()
                })
                .collect();
            let processes = (0..20)
                .map(|j| Process {
                    pid: 1000 + j,
                    cpu_percent: 1.5,
                    memory_bytes: 1 << 20,
                    program: format!("web:worker-{j}"),
                    ..Process::default()
                })
                .collect();
            let snap = Snapshot {
                seq: 1,
                sample_unix_ms: now_ms(),
                programs: Some(Programs {
                    programs,
                    ..Programs::default()
                }),
                processes,
                ..Snapshot::default()
            };
            st.apply(&format!("lab:n{i}"), snap, now_ms());
        }
    }
    let c = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("http://{}/api/v1/applications", s.addr);
    let plain = get(&c, &url, None, None).await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(header(&plain, CONTENT_ENCODING), None);
    let plain: serde_json::Value = plain.json().await.expect("json");
    assert_eq!(plain["programs"].as_array().map(Vec::len), Some(20));
    assert_eq!(
        plain["programs"][0]["hosts"].as_array().map(Vec::len),
        Some(20)
    );
    assert_eq!(plain["programs"][0]["memory_bytes"], 20 << 20);

    let gz = get(&c, &url, Some("gzip, deflate, br"), None).await;
    assert_eq!(gz.status(), StatusCode::OK);
    assert_eq!(header(&gz, CONTENT_ENCODING).as_deref(), Some("gzip"));
    assert!(header(&gz, VARY).is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    let body = gz.bytes().await.expect("body");
    let decoded = gunzip(&body);
    assert!(
        body.len() * 4 < decoded.len(),
        "{} of {}",
        body.len(),
        decoded.len()
    );
    let v: serde_json::Value = serde_json::from_slice(&decoded).expect("json");
    assert_eq!(v, plain);

    for route in ["/api/v1/me", "/api/v1/hosts", "/api/v1/clusters"] {
        let r = get(
            &c,
            &format!("http://{}{route}", s.addr),
            Some("gzip, br"),
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{route}");
        assert_eq!(header(&r, CONTENT_ENCODING), None, "{route} compressed");
    }
    s.stop.cancel();
}
