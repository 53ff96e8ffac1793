//! What redacting a command line costs: `cargo run --release -p smon-collect --example
//! redact_cost -- [ROUNDS]`.
//!
//! Redacts every command line of this machine's `/proc` plus a set of typical and
//! secret-carrying ones (ASCII and not), ROUNDS times each (2,000 by default), and prints the
//! mean time per command line. The collectors redact a command line once per process and
//! cache it, so this is paid when a process is first seen, not every sample.

use std::time::Instant;

use smon_collect::Redactor;

fn proc_cmdlines() -> Vec<Vec<String>> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|b| !b.is_empty())
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .collect()
}

fn typical() -> Vec<Vec<String>> {
    [
        "/usr/sbin/sshd -D -o AuthorizedKeysCommand=/usr/bin/x",
        "/usr/bin/python3 -m http.server 8000 --bind 127.0.0.1",
        "/usr/lib/jvm/java-17/bin/java -Xmx4g -Djavax.net.ssl.keyStorePassword=hunter2 -jar app.jar",
        "postgres: app appdb 10.0.0.7(51234) idle",
        "mysqld --user=mysql --password=hunter2 --port=3306",
        "curl -u bob:hunter2 -H X-API-Key:\tabc https://api.example/v1?access_token=x&page=2",
        "app --config-json {\"user\":\"bob\",\"password\":\"hunter2\"}",
        "sh -c mysqld --password hunter2 --port 3306",
        "app ＰＡＳＳＷＯＲＤ=hunter2 --name ｃａｆé",
        "/usr/bin/node /srv/app/server.js --port 3000 --host 0.0.0.0 --log-level info",
    ]
    .iter()
    .map(|l| l.split(' ').map(str::to_owned).collect())
    .collect()
}

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let red = Redactor::default();
    for (label, lines) in [
        ("this host's /proc", proc_cmdlines()),
        ("typical + secrets", typical()),
    ] {
        let args: usize = lines.iter().map(Vec::len).sum();
        let mut bytes = 0usize;
        let t = Instant::now();
        for _ in 0..rounds {
            for l in &lines {
                bytes += std::hint::black_box(red.redact_args(l)).len();
            }
        }
        let per_line_ns =
            t.elapsed().as_nanos() as f64 / f64::from(rounds) / lines.len().max(1) as f64;
        println!(
            "{label:>18}: {} command lines ({args} arguments), {per_line_ns:.0} ns per command line ({} bytes out)",
            lines.len(),
            bytes / rounds.max(1) as usize,
        );
    }
}
