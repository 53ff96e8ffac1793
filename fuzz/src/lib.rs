//! What the fuzz targets share: the config loaders' contract, taken from the property tests
//! (`tests/props_common.rs`), and the preparation of a config text.

#[cfg(feature = "daemons")]
#[path = "../../tests/props_common.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
pub mod props_common;

/// Config texts for the loaders.
#[cfg(feature = "daemons")]
pub mod config {
    use serde_json::Value;

    /// The token file's content, a secret that no error may show.
    pub const FILE_TOKEN: &str = "Qz7file-token-0123456789";

    /// The text given to a loader, and the secrets it holds. Text that is JSON has its file
    /// paths kept inside the case's directory (the loaders create a missing token file, and a
    /// fuzzer finds `"token_file": "/etc/x"` soon enough); other text goes as it is.
    pub fn prepare(data: &[u8]) -> (String, Vec<String>) {
        let text = String::from_utf8_lossy(data).into_owned();
        let mut secrets = vec![FILE_TOKEN.to_owned()];
        let Ok(mut v) = serde_json::from_str::<Value>(&text) else {
            return (text, secrets);
        };
        let before = v.clone();
        super::props_common::confine_paths(&mut v);
        super::props_common::secrets_in(&v, None, &mut secrets);
        if v == before {
            (text, secrets)
        } else {
            (v.to_string(), secrets)
        }
    }
}
