//! Config fixtures: every file under `tests/fixtures/invalid/` must be refused with exactly the
//! error lines listed in its `.expected` sibling (the path in the message is written `{file}`, its directory `{dir}`),
//! and every file under `tests/fixtures/valid/` must load. Loading reads files only, so
//! `--check-config` says the same.

use std::path::{Path, PathBuf};

use smon_aggregator::config;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
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
    assert!(files.len() >= 2, "fixtures missing");
    for f in files {
        let expected = std::fs::read_to_string(f.with_extension("expected"))
            .expect("a .expected file per fixture");
        let err = config::load_file(&f)
            .expect_err(&format!("{} should be invalid", f.display()))
            .to_string();
        let file = f.display().to_string();
        let dir = f.parent().expect("dir").display().to_string();
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
        if let Err(e) = config::load_file(&f) {
            panic!("{} should be valid: {e}", f.display());
        }
    }
}

#[test]
fn host_network_fields_are_read_and_wol_via_names_a_host_id() {
    let s = config::load_file(&fixture("valid/host_net.json")).expect("valid");
    let t = |id: &str| {
        s.targets
            .iter()
            .find(|t| t.spec.id() == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    let nas = &t("home:nas").net;
    assert_eq!(nas.ip.as_deref(), Some("10.0.0.20"));
    assert_eq!(
        nas.mac.map(|m| m.to_string()).as_deref(),
        Some("52:54:00:ab:cd:ef")
    );
    assert_eq!(nas.wol.broadcast.to_string(), "10.0.0.255");
    assert_eq!(nas.wol.port, 7);
    assert_eq!(nas.wol.via.as_deref(), Some("home:gateway"));
    let kinds: Vec<_> = nas
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.port, s.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("smb", Some(445), config::ServiceKind::Tcp),
            ("ping", None, config::ServiceKind::Icmp)
        ]
    );
    assert_eq!(t("lab:gpu1").net.wol.via.as_deref(), Some("home:gateway"));
    assert_eq!(t("lab:gpu1").net.wol.port, 9);
    assert_eq!(
        t("lab:gpu1").net.wol.broadcast.to_string(),
        "255.255.255.255"
    );
    assert_eq!(
        t("home:gateway").control_token.as_deref(),
        Some("0123456789abcdef0123")
    );
    assert!(!format!("{:?}", t("home:gateway")).contains("0123456789abcdef"));
    // A host without an agent: no address, no poller; its ip and services are kept.
    let printer = t("home:printer");
    assert!(!printer.has_agent() && printer.spec.address.is_empty());
    assert_eq!(printer.net.ip.as_deref(), Some("10.0.0.30"));
    assert!(t("home:nas").has_agent());
}
