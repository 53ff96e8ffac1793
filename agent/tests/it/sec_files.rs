//! Secret files (issue 18 item 9): the agent's `--check-config` warns about a
//! `monitor.token_file` its group or others can read, and says how to fix it; a private one
//! gets no warning. A warning, not a refusal: the exit status stays 0.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_smon-agent");

#[test]
fn check_config_warns_about_a_token_file_others_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("agent.token");
    std::fs::write(&token, "agent-test-token-0123456789").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let cfg = dir.path().join("config_node.json");
    std::fs::write(
        &cfg,
        r#"{"monitor":{"mode":"node","grpc_listen":"127.0.0.1:1","gpu":"fake","token_file":"agent.token"}}"#,
    )
    .expect("config");
    let check = || {
        let out = Command::new(BIN)
            .args([
                "--check-config".as_ref(),
                "--config".as_ref(),
                cfg.as_os_str(),
            ])
            .env_remove("SMON_TOKEN")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{err}");
        err
    };
    let err = check();
    assert!(
        err.contains("agent.token: mode 0644 lets group and others read")
            && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = check();
    assert!(!err.contains("warning"), "{err}");
}
