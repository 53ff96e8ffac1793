//! Config fixtures: every file under `tests/fixtures/invalid/` must be refused with exactly the
//! error lines listed in its `.expected` sibling (the path in the message is written `{file}`, its directory `{dir}`), and
//! every file under `tests/fixtures/valid/` must load.

use std::path::Path;

use smon_agent::config::{self, Env};

use crate::support::fixture;

fn json_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn invalid_fixtures_fail_with_their_expected_errors() {
    let files = json_files(&fixture("invalid"));
    assert!(files.len() >= 8, "fixtures missing");
    for f in files {
        let expected = std::fs::read_to_string(f.with_extension("expected"))
            .expect("a .expected file per fixture");
        let err = config::load_file(&f, &Env::default())
            .expect_err(&format!("{} should be invalid", f.display()))
            .to_string();
        let file = f.display().to_string();
        let dir = f.parent().expect("dir").display().to_string();
        // Every problem, each once, in order: the whole list, not a part of it.
        let want: Vec<String> = expected
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.replace("{file}", &file).replace("{dir}", &dir))
            .collect();
        let got: Vec<&str> = err.lines().collect();
        assert_eq!(got, want, "{}", f.display());
    }
}

#[test]
fn valid_fixtures_load() {
    let files = json_files(&fixture("valid"));
    assert!(!files.is_empty());
    for f in files {
        let env = Env { smon_token: None };
        if let Err(e) = config::load_file(&f, &env) {
            panic!("{} should be valid: {e}", f.display());
        }
    }
}

#[test]
fn the_shipped_example_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("config_node.json");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config_node.json"),
        &copy,
    )
    .expect("copy");
    let s = config::load_file(&copy, &Env::default()).expect("config_node.json is valid");
    // Loading is pure: the missing token file is created at start-up, next to the config.
    let token = dir.path().join("smon-agent.token");
    assert!(!token.exists(), "loading created the token file");
    assert_eq!(s.token_file_to_create.as_deref(), Some(token.as_path()));
}
