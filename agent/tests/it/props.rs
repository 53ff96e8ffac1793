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

const FILE: &str = "fuzz/config_node.json";

fn config() -> ProptestConfig {
    // Failing cases are kept as named tests below, not as regression files in the tree.
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

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

/// A secret that cannot occur by chance in generated text (which has no `Qz7`).
fn secret(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9_.~+/=-]{{{},{}}}", len.start, len.end))
        .expect("regex")
        .prop_map(|s| format!("Qz7{s}"))
}

/// What a value is replaced with.
#[derive(Debug, Clone)]
enum Repl {
    Json(Value),
    /// Raw JSON text, for what `Value` cannot hold: `1e400`, `-0`, 2^64, lone surrogates.
    Raw(&'static str),
}

fn repl() -> impl Strategy<Value = Repl> {
    prop_oneof![
        Just(Repl::Json(Value::Null)),
        any::<bool>().prop_map(|b| Repl::Json(Value::Bool(b))),
        any::<i64>().prop_map(|n| Repl::Json(n.into())),
        any::<u64>().prop_map(|n| Repl::Json(n.into())),
        prop_oneof![Just(-1i64), Just(0), Just(65_536), Just(i64::MIN)]
            .prop_map(|n| Repl::Json(n.into())),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Repl::Json(f.into())),
        "\\PC{0,16}".prop_map(|s| Repl::Json(Value::String(s))),
        "[\\x00-\\x1f\\x7f\\u{85}\\u{202e}\\u{feff}a-z:/\\[\\]{}]{0,12}"
            .prop_map(|s| Repl::Json(Value::String(s))),
        prop_oneof![
            Just("1e400"),
            Just("-1e400"),
            Just("-0"),
            Just("18446744073709551616"),
            Just("-9223372036854775809"),
            Just("1.5"),
            Just("0.0"),
            Just("\"\\ud800\""),
            Just("\"\\u0000\""),
            Just("[]"),
            Just("{}"),
            Just("[[]]"),
            Just("\"\""),
        ]
        .prop_map(Repl::Raw),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Replace(usize, Repl),
    Rename(usize, String),
    AddKey(usize, String, Repl),
    Nest(usize, usize, bool),
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        // Real keys in the wrong place make duplicate and misplaced fields.
        prop_oneof![
            Just("monitor"),
            Just("server"),
            Just("mode"),
            Just("token"),
            Just("token_file"),
            Just("auth"),
            Just("users"),
            Just("tls"),
            Just("interval_ms"),
        ]
        .prop_map(str::to_owned),
        "\\PC{0,10}",
        "[a-z_\\n\\x1b\\u{202e}.\\[\\]]{1,10}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<usize>().prop_map(Mutation::Delete),
        3 => (any::<usize>(), repl()).prop_map(|(i, r)| Mutation::Replace(i, r)),
        1 => (any::<usize>(), key()).prop_map(|(i, k)| Mutation::Rename(i, k)),
        1 => (any::<usize>(), key(), repl()).prop_map(|(i, k, r)| Mutation::AddKey(i, k, r)),
        1 => (any::<usize>(), 1..300usize, any::<bool>()).prop_map(|(i, d, o)| Mutation::Nest(i, d, o)),
    ]
}

/// One step into a JSON value.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, here: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(Seg::Key(k.clone()));
                paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(Seg::Index(i));
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, s| match s {
        Seg::Key(k) => v.get_mut(k.as_str()),
        Seg::Index(i) => v.get_mut(*i),
    })
}

/// Applies mutations; raw replacements become markers, swapped back in by [`render`].
fn mutate(mut v: Value, muts: &[Mutation], raws: &mut Vec<&'static str>) -> Value {
    let mut value_of = |r: &Repl| match r {
        Repl::Json(j) => j.clone(),
        Repl::Raw(t) => {
            raws.push(t);
            Value::String(format!("\u{1}RAW{}\u{1}", raws.len() - 1))
        }
    };
    for m in muts {
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        let pick = |i: usize| all[i % all.len()].clone();
        match m {
            Mutation::Delete(i) => {
                let p = pick(*i);
                if let Some((last, parent)) = p.split_last()
                    && let Some(parent) = get_mut(&mut v, parent)
                {
                    match (parent, last) {
                        (Value::Object(o), Seg::Key(k)) => {
                            o.remove(k);
                        }
                        (Value::Array(a), Seg::Index(i)) => {
                            a.remove(*i);
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Replace(i, r) => {
                if let Some(slot) = get_mut(&mut v, &pick(*i)) {
                    *slot = value_of(r);
                }
            }
            Mutation::Rename(i, new) => {
                let p = pick(*i);
                if let Some((Seg::Key(k), parent)) = p.split_last()
                    && let Some(Value::Object(o)) = get_mut(&mut v, parent)
                    && let Some(old) = o.remove(k)
                {
                    o.insert(new.clone(), old);
                }
            }
            Mutation::AddKey(i, k, r) => {
                if let Some(Value::Object(o)) = get_mut(&mut v, &pick(*i)) {
                    o.insert(k.clone(), value_of(r));
                }
            }
            Mutation::Nest(i, depth, object) => {
                if let Some(slot) = get_mut(&mut v, &pick(*i)) {
                    let mut inner = slot.take();
                    for _ in 0..*depth {
                        inner = if *object {
                            Value::Object(Map::from_iter([("monitor".to_owned(), inner)]))
                        } else {
                            Value::Array(vec![inner])
                        };
                    }
                    *slot = inner;
                }
            }
        }
    }
    v
}

fn render(v: &Value, raws: &[&str]) -> String {
    let mut text = serde_json::to_string_pretty(v).expect("serialise");
    for (i, r) in raws.iter().enumerate() {
        text = text.replace(&format!("\"\\u0001RAW{i}\\u0001\""), r);
    }
    text
}

/// Keeps file names inside the case's directory: the loader creates a missing token file.
fn confine_paths(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, c) in o.iter_mut() {
                let path_key = matches!(
                    k.as_str(),
                    "token_file" | "users_file" | "cert" | "key" | "client_ca" | "ca"
                );
                match c {
                    Value::String(s) if path_key && (s.starts_with('/') || s.contains("..")) => {
                        *s = "confined.file".to_owned();
                    }
                    c => confine_paths(c),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(confine_paths),
        _ => {}
    }
}

/// Strings at secret positions of the final config.
fn secrets_in(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
    match v {
        // Only planted secrets: a mutation may move an ordinary value (say "node") under a
        // secret key, and that value legitimately appears elsewhere in an error.
        Value::String(s) if matches!(key, Some("token" | "password_hash")) && s.contains("Qz7") => {
            out.push(s.clone())
        }
        Value::Object(o) => o.iter().for_each(|(k, c)| secrets_in(c, Some(k), out)),
        Value::Array(a) => a.iter().for_each(|c| secrets_in(c, key, out)),
        _ => {}
    }
}

const ROOTS: &[&str] = &["server", "manager", "monitor", "log", "SMON_TOKEN"];

/// The contract of every load: `Ok`, or an error naming the file and a field path, with no
/// secret in it (in `Display` or `Debug`).
fn check(result: Result<config::Settings, ConfigError>, secrets: &[String]) -> Result<(), String> {
    let Err(e) = result else { return Ok(()) };
    let text = e.to_string();
    let debug = format!("{e:?}");
    if !text.starts_with(&format!("{FILE}: ")) {
        return Err(format!("error does not start with the file name: {text:?}"));
    }
    match &e {
        ConfigError::Parse { file, field, .. } => {
            if file != FILE || field.is_empty() {
                return Err(format!("parse error without file or field: {e:?}"));
            }
        }
        ConfigError::Invalid { file, errors } => {
            if file != FILE || errors.is_empty() {
                return Err(format!("invalid without file or problems: {e:?}"));
            }
            for fe in errors {
                if !ROOTS.iter().any(|r| fe.field.starts_with(r)) {
                    return Err(format!("field {:?} is not a path: {text}", fe.field));
                }
            }
        }
        other => return Err(format!("unexpected error kind: {other:?}")),
    }
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(s.as_str()) || debug.contains(s.as_str()) {
            return Err(format!("secret {s:?} in the error: {debug}"));
        }
    }
    Ok(())
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

/// JSON-like text from tokens of the config's grammar.
fn token_soup() -> impl Strategy<Value = String> {
    let tok = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(":".to_owned()),
        Just(",".to_owned()),
        Just("\"monitor\"".to_owned()),
        Just("\"mode\"".to_owned()),
        Just("\"node\"".to_owned()),
        Just("\"server\"".to_owned()),
        Just("\"token\"".to_owned()),
        Just("\"auth\"".to_owned()),
        Just("\"none\"".to_owned()),
        Just("\"grpc_listen\"".to_owned()),
        Just("\"127.0.0.1:1\"".to_owned()),
        Just("\"\\u".to_owned()),
        Just("\"".to_owned()),
        "-?[0-9]{1,25}(\\.[0-9]{0,3})?(e[+-]?[0-9]{1,4})?",
        "\\PC{0,4}",
    ];
    proptest::collection::vec(tok, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_is_refused_cleanly(text in "\\PC{0,300}|\\PC{0,10}") {
        let c = case(None, "Qz7file-token-0123456789".into());
        check(load(&c, &text), &c.secrets).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn arbitrary_bytes_are_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let c = case(None, "Qz7file-token-0123456789".into());
        let text = String::from_utf8_lossy(&bytes);
        check(load(&c, &text), &c.secrets).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn token_soup_is_refused_cleanly(text in token_soup()) {
        let c = case(None, "Qz7file-token-0123456789".into());
        check(load(&c, &text), &c.secrets).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn mutated_configs_load_or_name_the_field(
        seed in any::<prop::sample::Index>(),
        inline_token in proptest::option::of(secret(0..30)),
        hash in proptest::option::of(secret(0..40)),
        env_token in proptest::option::weighted(0.2, secret(10..30)),
        file_token in secret(0..40),
        muts in proptest::collection::vec(mutation(), 0..6),
    ) {
        let seeds = seeds();
        let mut v = seeds[seed.index(seeds.len())].clone();
        if let Some(Value::Object(m)) = v.get_mut("monitor")
            && let Some(t) = &inline_token
        {
            m.remove("token_file");
            m.insert("token".into(), Value::String(t.clone()));
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
        let text = render(&v, &raws);
        check(load(&c, &text), &secrets).map_err(|e| TestCaseError::fail(format!("{e}\nconfig: {text}")))?;
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
        for line in err.lines() {
            assert!(
                line.starts_with(&format!("{FILE}: ")),
                "forged line {line:?} in {err:?}"
            );
        }
        assert!(
            !err.chars().any(
                |ch| ch != '\n' && (ch.is_control() || ('\u{202a}'..='\u{202e}').contains(&ch))
            ),
            "{err:?}"
        );
    }
}
