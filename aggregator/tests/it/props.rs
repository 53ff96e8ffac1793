//! Property tests ("fuzzing") of the aggregator's config loader, `config::load_str`:
//! arbitrary text, JSON-like token soup, and the shipped configs plus a fleet config mutated
//! structurally (fields deleted, renamed or added, values swapped for other types, numbers past
//! every range, unicode, deep nesting). Every case must end in `Ok` or in an error that names
//! the file and a field path, and no error may contain a secret (an agent's token, a token
//! file's content, a password hash).
//!
//! Cases per property: `PROPTEST_CASES`, 256 when unset (a few seconds; what CI runs). A long
//! session: `PROPTEST_CASES=100000 cargo test -p smon-aggregator --test it props`.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value};
use smon_aggregator::config;
use smon_runtime::config::ConfigError;

#[path = "../../../tests/props_common.rs"]
mod props_common;
use props_common::{
    Target, config, confine_paths, drop_secrets_shown_openly, mutate, render, secret, secrets_in,
};

const FILE: &str = "fuzz/config_app.json";

/// The aggregator's config, for the shared mutations and checks.
const TARGET: Target = Target {
    file: FILE,
    roots: &["server", "manager", "monitor", "log", "storage", "alerts"],
    keys: &[
        "monitor",
        "server",
        "mode",
        "token",
        "token_file",
        "clusters",
        "hosts",
        "address",
        "users",
        "tls",
        "poll_interval_ms",
        "retention",
    ],
    words: &[
        "\"monitor\"",
        "\"mode\"",
        "\"app\"",
        "\"clusters\"",
        "\"hosts\"",
        "\"address\"",
        "\"server\"",
        "\"token\"",
        "\"name\"",
        "\"include_self\"",
        "false",
        "\"127.0.0.1:1\"",
    ],
};

/// A fleet: clusters, hosts with inline tokens, token files and tags.
const FLEET: &str = r#"{"server":{"base_path":"/smon/"},"monitor":{"mode":"app","include_self":false,
  "self_name":"agg","clusters":[
  {"name":"lab","hosts":[
    {"name":"gpu-01","address":"gpu-01.lab.example:50051","token":"Qz7inline-token-0123456789","tags":["gpu","rack 3"]},
    {"name":"gpu-02","address":"10.0.0.2:50051","token_file":"agent.token"}]},
  {"name":"edge","hosts":[{"name":"e1","address":"[::1]:50051"}]}]}}"#;

/// The shipped example, the Debian one and a fleet, parsed.
fn seeds() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds: Vec<Value> = [
        root.join("../config_app.json"),
        root.join("../deploy/debian/config_app.json"),
    ]
    .iter()
    .filter_map(|f| std::fs::read_to_string(f).ok())
    .filter_map(|t| serde_json::from_str(&t).ok())
    .collect();
    seeds.push(serde_json::from_str(FLEET).expect("fleet seed"));
    assert!(seeds.len() >= 2, "seed configs missing");
    seeds
}

/// Everything one case needs: a directory for relative files, the secrets.
struct Case {
    dir: tempfile::TempDir,
    secrets: Vec<String>,
}

fn case(file_token: String) -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    // The fleet's token file: its content is a secret too.
    std::fs::write(dir.path().join("agent.token"), &file_token).expect("token file");
    let secrets = vec![file_token.trim().to_owned()];
    Case { dir, secrets }
}

fn load(c: &Case, text: &str) -> Result<config::Settings, ConfigError> {
    config::load_str(text, FILE, c.dir.path())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_is_refused_cleanly(text in "\\PC{0,300}|\\PC{0,10}") {
        let c = case("Qz7file-token-0123456789".into());
        TARGET.check(load(&c, &text), &c.secrets).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn arbitrary_bytes_are_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let c = case("Qz7file-token-0123456789".into());
        let text = String::from_utf8_lossy(&bytes);
        TARGET.check(load(&c, &text), &c.secrets).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn token_soup_is_refused_cleanly(text in TARGET.token_soup()) {
        let c = case("Qz7file-token-0123456789".into());
        TARGET.check(load(&c, &text), &c.secrets).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn mutated_configs_load_or_name_the_field(
        seed in any::<prop::sample::Index>(),
        inline_token in proptest::option::of(secret(0..30)),
        hash in proptest::option::of(secret(0..40)),
        file_token in secret(0..40),
        muts in proptest::collection::vec(TARGET.mutation(), 0..6),
    ) {
        let seeds = seeds();
        let mut v = seeds[seed.index(seeds.len())].clone();
        if let Some(t) = &inline_token
            && let Some(Value::Object(h)) = v.pointer_mut("/monitor/clusters/0/hosts/0")
        {
            h.insert("token".into(), Value::String(t.clone()));
        }
        if let Some(h) = &hash
            && let Some(o) = v.as_object_mut()
        {
            let server = o.entry("server").or_insert_with(|| Value::Object(Map::new()));
            if let Some(s) = server.as_object_mut() {
                s.insert(
                    "auth".into(),
                    serde_json::json!({"users": [{"name": "ops", "password_hash": h, "role": "admin"}]}),
                );
            }
        }
        let mut raws = Vec::new();
        let mut v = mutate(v, &muts, &mut raws);
        confine_paths(&mut v);
        let c = case(file_token);
        let mut secrets = c.secrets.clone();
        secrets_in(&v, None, &mut secrets);
        drop_secrets_shown_openly(&v, &mut secrets);
        let text = render(&v, &raws);
        TARGET.check(load(&c, &text), &secrets).map_err(|e| TestCaseError::fail(format!("{e}\nconfig: {text}")))?;
    }
}

/// Error text is meant for a terminal and a log: one problem per line, each line starting with
/// the file name. A key or value with a newline, an escape sequence or a bidi override breaks
/// that: it forges extra lines or rewrites the operator's screen. Found by the property tests
/// above; the loader echoes keys and values as written.
#[test]
fn error_text_has_no_control_characters() {
    let c = case("Qz7file-token-0123456789".into());
    for text in [
        // An unknown key (serde's message and the field path).
        "{\"monitor\":{\"mode\":\"app\",\"x\\nfuzz/config_app.json: monitor.mode: ok\\u001b[2J\":1}}",
        // A value in a FieldError: a host name.
        "{\"monitor\":{\"mode\":\"app\",\"clusters\":[{\"name\":\"lab\",\"hosts\":[{\"name\":\"n\\r\\u001b]0;owned\\u0007\",\"address\":\"10.0.0.1:1\"}]}]}}",
        // A tag with a bidi override.
        "{\"monitor\":{\"mode\":\"\\u202eppa\"}}",
    ] {
        let err = load(&c, text).expect_err("invalid").to_string();
        TARGET.assert_clean_lines(&err);
    }
}

/// The fuzzing corpus (`fuzz/corpus/config_app`, grown by `scripts/fuzz.sh`, crashes fixed and
/// kept there) replayed through the loader on every test run, with the same contract: each
/// file loads or fails naming the file and a field, without a secret or a control character.
#[test]
fn fuzz_corpus_loads_or_names_the_field() {
    TARGET.replay_corpus("config_app", |text| {
        let c = case("Qz7file-token-0123456789".into());
        (load(&c, text), c.secrets.clone())
    });
}
