//! The browser UI (`web/ui/dist`, built by `build.rs` from the TypeScript sources), embedded in
//! the binary with rust-embed and served with an ETag (the file's SHA-256) so browsers
//! revalidate cheaply. Debug builds read the files from disk, so a UI rebuild needs no Rust one.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "ui/dist"]
struct Ui;

/// Serves one embedded file, or 404.
pub fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Ui::get(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let hash = file.metadata.sha256_hash();
    let etag = format!(
        "\"{}\"",
        hash.iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mime = file.metadata.mimetype().to_owned();
    let mut resp = file.data.into_owned().into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Names are not content-hashed: always revalidate (a 304 costs one round trip).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Whether the UI was embedded (false only if `ui/dist` was empty at build time).
pub fn present() -> bool {
    Ui::get("index.html").is_some()
}
