//! The agent's config loader (`smon_agent::config::load_str`: JSON parsing and validation) on
//! any text: it loads or fails with an error naming the file and a field path, never panics,
//! and no error shows a secret or a control character.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use smon_agent::config::{Env, load_str};
use smon_fuzz::config::{FILE_TOKEN, prepare};
use smon_fuzz::props_common::Target;

const FILE: &str = "fuzz/config_node.json";
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
    keys: &[],
    words: &[],
};

#[allow(clippy::expect_used)]
static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("smon-agent.token"), FILE_TOKEN).expect("token file");
    d
});

fuzz_target!(|data: &[u8]| {
    let (text, secrets) = prepare(data);
    let result = load_str(&text, FILE, DIR.path(), &Env::default());
    if let Err(e) = &result {
        TARGET.assert_clean_lines(&e.to_string());
    }
    if let Err(problem) = TARGET.check(result, &secrets) {
        panic!("{problem}\nconfig: {text}");
    }
});
