//! The shared half of the config loaders' property tests: `agent/tests/it/props.rs` and
//! `aggregator/tests/it/props.rs` each include this file with `#[path]` (it is not a crate).
//! It holds the structural mutations of a config, the secret and token strategies, and the
//! contract every load must keep; what differs between the two loaders (the file name, the
//! top-level fields, the real keys, the grammar's words) comes in as a [`Target`].

use proptest::prelude::*;
use serde_json::{Map, Value};
use smon_runtime::config::ConfigError;

/// Cases per property: `PROPTEST_CASES`, 256 when unset.
pub fn config() -> ProptestConfig {
    // Failing cases are kept as named tests, not as regression files in the tree.
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A secret that cannot occur by chance in generated text (which has no `Qz7`).
pub fn secret(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9_.~+/=-]{{{},{}}}", len.start, len.end))
        .expect("regex")
        .prop_map(|s| format!("Qz7{s}"))
}

/// The loader under test, as far as the shared properties need to know it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The file name given to the loader; every error line starts with it.
    pub file: &'static str,
    /// The top-level names a field path in a validation error may start with.
    pub roots: &'static [&'static str],
    /// Real keys of the config, planted in the wrong places by mutations.
    pub keys: &'static [&'static str],
    /// Words of the config's grammar (quoted keys and values) for token soup.
    pub words: &'static [&'static str],
}

impl Target {
    /// One structural mutation, with this config's keys among the new names.
    pub fn mutation(self) -> impl Strategy<Value = Mutation> {
        let keys = self.keys;
        prop_oneof![
            1 => any::<usize>().prop_map(Mutation::Delete),
            3 => (any::<usize>(), repl()).prop_map(|(i, r)| Mutation::Replace(i, r)),
            1 => (any::<usize>(), key(keys)).prop_map(|(i, k)| Mutation::Rename(i, k)),
            1 => (any::<usize>(), key(keys), repl()).prop_map(|(i, k, r)| Mutation::AddKey(i, k, r)),
            1 => (any::<usize>(), 1..300usize, any::<bool>()).prop_map(|(i, d, o)| Mutation::Nest(i, d, o)),
        ]
    }

    /// JSON-like text from tokens of the config's grammar.
    pub fn token_soup(self) -> impl Strategy<Value = String> {
        let fixed: Vec<&'static str> = ["{", "}", "[", "]", ":", ","]
            .into_iter()
            .chain(self.words.iter().copied())
            .chain(["\"\\u", "\""])
            .collect();
        // One arm per fixed token, as many as the two generated ones: every token is as likely
        // as each of the others.
        let weight = u32::try_from(fixed.len()).expect("few tokens");
        let tok = prop_oneof![
            weight => proptest::sample::select(fixed).prop_map(str::to_owned),
            1 => "-?[0-9]{1,25}(\\.[0-9]{0,3})?(e[+-]?[0-9]{1,4})?",
            1 => "\\PC{0,4}",
        ];
        proptest::collection::vec(tok, 0..60).prop_map(|v| v.concat())
    }

    /// The contract of every load: `Ok`, or an error naming the file and a field path, with
    /// no secret in it (in `Display` or `Debug`).
    pub fn check<T>(
        self,
        result: Result<T, ConfigError>,
        secrets: &[String],
    ) -> Result<(), String> {
        let Err(e) = result else { return Ok(()) };
        let file = self.file;
        let text = e.to_string();
        let debug = format!("{e:?}");
        if !text.starts_with(&format!("{file}: ")) {
            return Err(format!("error does not start with the file name: {text:?}"));
        }
        match &e {
            ConfigError::Parse { file: f, field, .. } => {
                if f != file || field.is_empty() {
                    return Err(format!("parse error without file or field: {e:?}"));
                }
            }
            ConfigError::Invalid { file: f, errors } => {
                if f != file || errors.is_empty() {
                    return Err(format!("invalid without file or problems: {e:?}"));
                }
                for fe in errors {
                    // A known block, or a key the file added (named as written, which may
                    // be any text, "." included).
                    let top_level_unknown =
                        fe.problem.contains("is not a known key") && !fe.field.is_empty();
                    if !top_level_unknown && !self.roots.iter().any(|r| fe.field.starts_with(r)) {
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

    /// Replays the fuzzing corpus `fuzz/corpus/<corpus>` (inputs found by `scripts/fuzz.sh`)
    /// through a loader, with the contract of [`Target::check`] and clean error lines. For each
    /// file, `load(text)` loads it in a fresh case and returns the result with that case's
    /// secrets; the secrets inside the file are added here. Paths in the file are kept inside
    /// the case's directory (as the fuzz targets do).
    pub fn replay_corpus<T>(
        self,
        corpus: &str,
        mut load: impl FnMut(&str) -> (Result<T, ConfigError>, Vec<String>),
    ) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(corpus);
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .expect("the fuzzing corpus")
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(files.len() >= 2, "corpus missing in {}", dir.display());
        for f in &files {
            let bytes = std::fs::read(f).expect("corpus file");
            let mut v = serde_json::from_slice::<Value>(&bytes).ok();
            let raw = String::from_utf8_lossy(&bytes).into_owned();
            let text = match v.as_mut() {
                Some(v) => {
                    let before = v.clone();
                    confine_paths(v);
                    if *v == before { raw } else { v.to_string() }
                }
                None => raw,
            };
            let (result, mut secrets) = load(&text);
            if let Some(v) = &v {
                secrets_in(v, None, &mut secrets);
            }
            if let Err(e) = &result {
                self.assert_clean_lines(&e.to_string());
            }
            if let Err(problem) = self.check(result, &secrets) {
                panic!("{}: {problem}", f.display());
            }
        }
    }

    /// Error text is meant for a terminal and a log: one problem per line, each line starting
    /// with the file name, and no control character or bidi override that could forge a line
    /// or rewrite the operator's screen.
    pub fn assert_clean_lines(self, err: &str) {
        for line in err.lines() {
            assert!(
                line.starts_with(&format!("{}: ", self.file)),
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

/// What a value is replaced with.
#[derive(Debug, Clone)]
pub enum Repl {
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

/// One change to a config; the `usize` picks a node (modulo the number of nodes).
#[derive(Debug, Clone)]
pub enum Mutation {
    Delete(usize),
    Replace(usize, Repl),
    Rename(usize, String),
    AddKey(usize, String, Repl),
    /// Wraps the node `depth` times in objects (`true`) or arrays.
    Nest(usize, usize, bool),
}

fn key(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        // Real keys in the wrong place make duplicate and misplaced fields.
        proptest::sample::select(keys).prop_map(str::to_owned),
        "\\PC{0,10}",
        "[a-z_\\n\\x1b\\u{202e}.\\[\\]]{1,10}",
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
pub fn mutate(mut v: Value, muts: &[Mutation], raws: &mut Vec<&'static str>) -> Value {
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

/// The config's text, with the raw replacements of [`mutate`] in place.
pub fn render(v: &Value, raws: &[&str]) -> String {
    let mut text = serde_json::to_string_pretty(v).expect("serialise");
    for (i, r) in raws.iter().enumerate() {
        text = text.replace(&format!("\"\\u0001RAW{i}\\u0001\""), r);
    }
    text
}

/// Keeps file names inside the case's directory: the loader creates a missing token file.
pub fn confine_paths(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, c) in o.iter_mut() {
                let path_key = matches!(
                    k.as_str(),
                    "token_file"
                        | "control_token_file"
                        | "users_file"
                        | "cert"
                        | "key"
                        | "client_ca"
                        | "ca"
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
pub fn secrets_in(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
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

/// Drops from `secrets` each one that `v` also holds as the value of an ordinary key: a
/// mutation may copy a planted secret's text (a short one such as "Qz7") under a key that is
/// not secret, and an error may quote that key's value.
pub fn drop_secrets_shown_openly(v: &Value, secrets: &mut Vec<String>) {
    fn plain(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
        match v {
            Value::String(s) if !matches!(key, Some("token" | "password_hash")) => {
                out.push(s.clone())
            }
            Value::Object(o) => o.iter().for_each(|(k, c)| plain(c, Some(k), out)),
            Value::Array(a) => a.iter().for_each(|c| plain(c, key, out)),
            _ => {}
        }
    }
    let mut open = Vec::new();
    plain(v, None, &mut open);
    secrets.retain(|s| !open.iter().any(|o| o.contains(s.as_str())));
}
