//! Property tests ("fuzzing") of the agent's config loader, `config::load_str` (and through it
//! the shared `config::parse_json`): arbitrary text, JSON-like token soup, and the shipped
//! configs and fixtures mutated structurally (fields deleted, renamed or added, values swapped
//! for other types, numbers past every range, unicode, deep nesting). Every case must end in
//! `Ok` or in an error that names the file and a field path, and no error may contain a secret
//! (the token, the token file's content, `SMON_TOKEN`, a password hash).
//!
//! Cases per property: `PROPTEST_CASES`, 256 when unset (a few seconds; what CI runs). A long
//! session: `PROPTEST_CASES=100000 cargo test -p smon-agent --test it props`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{Map, Value};
use smon_agent::config::{self, ConfigError, Env};

#[path = "../../../tests/props_common.rs"]
mod props_common;
use props_common::{
    Target, config, confine_paths, drop_secrets_shown_openly, mutate, render, secret, secrets_in,
};

const FILE: &str = "fuzz/config_node.json";

/// The agent's config, for the shared mutations and checks.
const TARGET: Target = Target {
    file: FILE,
    roots: &[
        "server",
        "manager",
        "monitor",
        "log",
        "storage",
        "control",
        "SMON_TOKEN",
    ],
    keys: &[
        "monitor",
        "server",
        "mode",
        "token",
        "token_file",
        "auth",
        "users",
        "tls",
        "interval_ms",
        "control",
        "power",
        "reboot",
    ],
    words: &[
        "\"monitor\"",
        "\"mode\"",
        "\"node\"",
        "\"server\"",
        "\"token\"",
        "\"auth\"",
        "\"none\"",
        "\"grpc_listen\"",
        "\"127.0.0.1:1\"",
    ],
};

/// The shipped example, the Debian one and every JSON fixture, parsed.
fn seeds() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = vec![
        root.join("../config_node.json"),
        root.join("../deploy/debian/config_node.json"),
    ];
    for dir in ["tests/fixtures/valid", "tests/fixtures/invalid"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            files.extend(
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "json")),
            );
        }
    }
    files.sort();
    let seeds: Vec<Value> = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    assert!(seeds.len() >= 3, "seed configs missing");
    seeds
}

/// Everything one case needs: a directory for relative files, the env, the secrets.
struct Case {
    dir: tempfile::TempDir,
    env: Env,
    secrets: Vec<String>,
}

fn case(env_token: Option<String>, file_token: String) -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    // The example's token file, already there: its content is a secret too.
    std::fs::write(dir.path().join("smon-agent.token"), &file_token).expect("token file");
    let mut secrets = vec![file_token.trim().to_owned()];
    secrets.extend(env_token.iter().map(|t| t.trim().to_owned()));
    Case {
        dir,
        env: Env {
            smon_token: env_token,
        },
        secrets,
    }
}

fn load(c: &Case, text: &str) -> Result<config::Settings, ConfigError> {
    config::load_str(text, FILE, c.dir.path(), &c.env)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_is_refused_cleanly(text in "\\PC{0,300}|\\PC{0,10}") {
        let c = case(None, "Qz7file-token-0123456789".into());
        TARGET.check(load(&c, &text), &c.secrets).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn arbitrary_bytes_are_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let c = case(None, "Qz7file-token-0123456789".into());
        let text = String::from_utf8_lossy(&bytes);
        TARGET.check(load(&c, &text), &c.secrets).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn token_soup_is_refused_cleanly(text in TARGET.token_soup()) {
        let c = case(None, "Qz7file-token-0123456789".into());
        TARGET.check(load(&c, &text), &c.secrets).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn mutated_configs_load_or_name_the_field(
        seed in any::<prop::sample::Index>(),
        inline_token in proptest::option::of(secret(0..30)),
        hash in proptest::option::of(secret(0..40)),
        env_token in proptest::option::weighted(0.2, secret(10..30)),
        control_token in proptest::option::weighted(0.3, secret(0..30)),
        control_is_read in proptest::bool::weighted(0.2),
        file_token in secret(0..40),
        muts in proptest::collection::vec(TARGET.mutation(), 0..6),
    ) {
        let seeds = seeds();
        let mut v = seeds[seed.index(seeds.len())].clone();
        if let Some(Value::Object(m)) = v.get_mut("monitor")
            && let Some(t) = &inline_token
        {
            m.remove("token_file");
            m.insert("token".into(), Value::String(t.clone()));
        }
        // A control token, now and then the read token again (refused, and not shown).
        if let Some(t) = &control_token
            && let Some(o) = v.as_object_mut()
        {
            let control = o.entry("control").or_insert_with(|| Value::Object(Map::new()));
            if let Some(c) = control.as_object_mut() {
                let t = match (&inline_token, control_is_read) {
                    (Some(read), true) => read.clone(),
                    _ => t.clone(),
                };
                c.remove("token_file");
                c.insert("token".into(), Value::String(t));
            }
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
        let c = case(env_token, file_token);
        let mut secrets = c.secrets.clone();
        secrets_in(&v, None, &mut secrets);
        drop_secrets_shown_openly(&v, &mut secrets);
        let text = render(&v, &raws);
        TARGET.check(load(&c, &text), &secrets).map_err(|e| TestCaseError::fail(format!("{e}\nconfig: {text}")))?;
    }
}

/// Error text is meant for a terminal and a log: one problem per line, each line starting with
/// the file name. A key or value with a newline, an escape sequence or a bidi override breaks
/// that: it forges extra lines (`fuzz.json: monitor.token: ...`) or rewrites the operator's
/// screen. Found by the property tests above; the loader echoes keys and values as written.
#[test]
fn error_text_has_no_control_characters() {
    let c = case(None, "Qz7file-token-0123456789".into());
    for text in [
        // An unknown key (serde's message and the field path).
        "{\"monitor\":{\"mode\":\"node\",\"x\\nfuzz/config_node.json: monitor.auth: ok\\u001b[2J\":1}}",
        // A value in a FieldError.
        "{\"monitor\":{\"mode\":\"node\\u001b]0;owned\\u0007\\r\",\"auth\":\"none\"}}",
        // A string in serde's "invalid value" message.
        "{\"manager\":{\"mode\":\"\\u202eflesym\"},\"monitor\":{\"mode\":\"node\",\"auth\":\"none\"}}",
    ] {
        let err = load(&c, text).expect_err("invalid").to_string();
        TARGET.assert_clean_lines(&err);
    }
}

/// The fuzzing corpus (`fuzz/corpus/config_node`, grown by `scripts/fuzz.sh`, crashes fixed and
/// kept there) replayed through the loader on every test run, with the same contract: each
/// file loads or fails naming the file and a field, without a secret or a control character.
#[test]
fn fuzz_corpus_loads_or_names_the_field() {
    TARGET.replay_corpus("config_node", |text| {
        let c = case(None, "Qz7file-token-0123456789".into());
        (load(&c, text), c.secrets.clone())
    });
}
