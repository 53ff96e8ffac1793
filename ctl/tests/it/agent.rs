//! `smonctl top --agent`: one frame of a real agent, and the sentences for what goes wrong.

use crate::support::{agent, fails_with, free_port, smonctl, texts, until};

#[test]
fn once_draws_a_real_agent_with_human_sizes_processes_and_its_gpu() {
    let a = agent();
    let addr = format!("127.0.0.1:{}", a.port);
    let token = a.dir.path().join("token");
    let args = [
        "top",
        "--agent",
        &addr,
        "--token-file",
        token.to_str().expect("utf-8"),
        "--once",
        "--width",
        "140",
    ];
    // The first sample with processes takes an interval or two.
    let out = until(&args, |o| o.contains("Processes: ") && o.contains("by CPU"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    for want in [
        hostname.trim(),
        "CPU  [",
        "MEM  [",
        "GiB",
        "PID",
        "COMMAND",
        "GPUs",
        "UTIL",
        &format!("agent {addr}"),
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    // Sizes for people: never a count of MiB in the tens of thousands.
    assert!(
        !out.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[1].starts_with("MiB") && w[0].len() >= 5),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "--once prints text, not escape sequences"
    );
    let by_mem = until(&[&args[..], &["--sort", "memory"]].concat(), |o| {
        o.contains("by memory")
    });
    assert!(by_mem.contains("PID"), "{by_mem}");
}

#[test]
fn a_wrong_token_a_closed_port_and_no_terminal_are_one_sentence_each() {
    let a = agent();
    let addr = format!("127.0.0.1:{}", a.port);
    let wrong = a.dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token-0123456789abcdef").expect("file");
    let o = smonctl(&[
        "top",
        "--agent",
        &addr,
        "--token-file",
        wrong.to_str().expect("utf-8"),
        "--once",
    ]);
    fails_with(&o, &format!("the agent at {addr} refused the token"));
    let closed = format!("127.0.0.1:{}", free_port());
    let o = smonctl(&["top", "--agent", &closed, "--once"]);
    fails_with(
        &o,
        &format!("cannot connect to {closed}: connection refused. Is the agent running"),
    );
    let o = smonctl(&[
        "top",
        "--agent",
        &addr,
        "--token-file",
        "/nonexistent/token",
        "--once",
    ]);
    fails_with(&o, "cannot read the token file /nonexistent/token");
    // Without --once the view needs a terminal: stdout is a pipe here.
    let o = smonctl(&["top", "--agent", &addr]);
    fails_with(&o, "stdout is not a terminal");
    let (_, err) = texts(&smonctl(&[
        "top",
        "--agent",
        &addr,
        "--server",
        "http://x/",
    ]));
    assert!(err.contains("cannot be used with"), "{err}");
}
