//! The browser UI (`web/ui/dist`, built by `build.rs` from the TypeScript sources), embedded in
//! the binary with rust-embed and served with an ETag (the file's SHA-256) so browsers
//! revalidate cheaply. Debug builds read the files from disk, so a UI rebuild needs no Rust one.
//!
//! The UI build writes each text file precompressed beside it (`NAME.br`, `NAME.gz`, see
//! `ui/build.mjs`); a browser whose `Accept-Encoding` takes brotli or gzip gets that
//! representation with `Content-Encoding`, its own ETag (that of the compressed bytes: a strong
//! ETag names one representation) and `Vary: Accept-Encoding`, so nothing is compressed per
//! request. These are public, static files without secrets: compressing them gives BREACH
//! nothing to work on. The `.br` and `.gz` files are not served under their own names.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "ui/dist"]
struct Ui;

/// A content coding the UI build precompresses in, with the suffix of its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Brotli, `NAME.br`.
    Brotli,
    /// gzip, `NAME.gz`.
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Gzip => "gzip",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Brotli => ".br",
            Self::Gzip => ".gz",
        }
    }
}

/// The codings `Accept-Encoding` accepts, best first: brotli before gzip at equal weight, a
/// coding with `q=0` refused, `*` standing for those not named. Malformed weights count as
/// refusals.
pub fn accepted(headers: &HeaderMap) -> Vec<Coding> {
    let mut weights: Vec<(Coding, f32)> = Vec::new();
    let mut star: Option<f32> = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            for p in parts {
                if let Some((k, v)) = p.split_once('=')
                    && k.trim().eq_ignore_ascii_case("q")
                {
                    q = v
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))
                        .unwrap_or(0.0);
                }
            }
            let coding = match name.as_str() {
                "br" => Coding::Brotli,
                "gzip" | "x-gzip" => Coding::Gzip,
                "*" => {
                    star = Some(q);
                    continue;
                }
                _ => continue,
            };
            weights.retain(|(c, _)| *c != coding);
            weights.push((coding, q));
        }
    }
    let mut out: Vec<(Coding, f32)> = [Coding::Brotli, Coding::Gzip]
        .into_iter()
        .filter_map(|c| {
            let q = weights
                .iter()
                .find(|(x, _)| *x == c)
                .map(|(_, q)| *q)
                .or(star)?;
            (q > 0.0).then_some((c, q))
        })
        .collect();
    // Stable: brotli stays first at equal weight.
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.into_iter().map(|(c, _)| c).collect()
}

fn etag_of(file: &rust_embed::EmbeddedFile) -> String {
    format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Whether `If-None-Match` names `etag` (a list, `*`, or weak forms of it).
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// Serves one embedded file, or 404: precompressed when the browser accepts it and the build
/// made it.
pub fn serve(path: &str, headers: &HeaderMap) -> Response {
    if path.ends_with(".br") || path.ends_with(".gz") {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let Some(plain) = Ui::get(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = plain.metadata.mimetype().to_owned();
    let has_variants = [Coding::Brotli, Coding::Gzip]
        .iter()
        .any(|c| Ui::get(&format!("{path}{}", c.suffix())).is_some());
    let (file, coding) = accepted(headers)
        .into_iter()
        .find_map(|c| Ui::get(&format!("{path}{}", c.suffix())).map(|f| (f, Some(c))))
        .unwrap_or((plain, None));
    let etag = etag_of(&file);
    let mut resp = if matches(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = file.data.into_owned().into_response();
        if let Ok(v) = HeaderValue::from_str(&mime) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        if let Some(c) = coding {
            r.headers_mut().insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(c.token()),
            );
        }
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if has_variants {
        // Caches must key this answer by the request's Accept-Encoding.
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    // Names are not content-hashed: always revalidate (a 304 costs one round trip).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Whether the UI was embedded (false only if `ui/dist` was empty at build time).
pub fn present() -> bool {
    Ui::get("index.html").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ae(values: &[&str]) -> Vec<Coding> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("a header value"),
            );
        }
        accepted(&h)
    }

    #[test]
    fn accept_encoding_is_read_with_weights() {
        use Coding::{Brotli, Gzip};
        assert_eq!(ae(&[]), []);
        assert_eq!(ae(&["identity"]), []);
        assert_eq!(ae(&["gzip, deflate, br, zstd"]), [Brotli, Gzip]);
        assert_eq!(ae(&["gzip, deflate"]), [Gzip]);
        assert_eq!(ae(&["br;q=0.5, gzip"]), [Gzip, Brotli]);
        assert_eq!(ae(&["br;q=0, gzip;q=0.1"]), [Gzip]);
        assert_eq!(ae(&["*"]), [Brotli, Gzip]);
        assert_eq!(ae(&["*;q=0, gzip"]), [Gzip]);
        assert_eq!(ae(&["GZIP;Q=1"]), [Gzip]);
        assert_eq!(ae(&["br;q=nonsense, x-gzip"]), [Gzip]);
        assert_eq!(ae(&["gzip", "br"]), [Brotli, Gzip]);
    }

    #[test]
    fn if_none_match_lists_and_weak_forms() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(matches(&h, "\"a\"") && matches(&h, "\"b\""));
        assert!(!matches(&h, "\"c\""));
        assert!(!matches(&HeaderMap::new(), "\"a\""));
    }
}
