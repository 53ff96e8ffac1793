//! The public deployment, end to end: Debian's real `nginx` runs the shipped
//! `deploy/nginx/smon.conf` (and `smon-prefix.conf`) with a certificate made by the shipped
//! `deploy/tls/make-certs.sh`, in front of a real aggregator and real agents; a real browser
//! logs in through it and sees live updates over WebSocket, at `/` and under `/smon/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::browser::browser_with;
use crate::support::{ADMIN_PASSWORD, Agent, Aggregator, BROWSER_LOGIN, free_port, hosts_json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// nginx with one shipped site file, on loopback ports of its own; stopped on drop.
struct Nginx {
    child: Child,
    https: u16,
    http: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Runs `deploy/nginx/<site>` with its ports, certificate paths and upstream rewritten
    /// for this test (nothing else is changed).
    fn start(site: &str, upstream: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let script = repo().join("deploy/tls/make-certs.sh");
        for args in [vec!["ca"], vec!["server", "site", "localhost", "127.0.0.1"]] {
            let out = Command::new("bash")
                .arg(&script)
                .arg("-d")
                .arg(d)
                .args(&args)
                .output()
                .expect("make-certs.sh");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (http, https) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
        let shipped =
            std::fs::read_to_string(repo().join("deploy/nginx").join(site)).expect("site file");
        let conf = shipped
            .replace("listen 80;", &format!("listen 127.0.0.1:{http};"))
            .replace("listen [::]:80;\n", "")
            .replace(
                "listen 443 ssl http2;",
                &format!("listen 127.0.0.1:{https} ssl http2;"),
            )
            .replace("listen [::]:443 ssl http2;\n", "")
            .replace(
                "/etc/ssl/smon/fullchain.pem",
                &d.join("site.pem").display().to_string(),
            )
            .replace(
                "/etc/ssl/smon/privkey.pem",
                &d.join("site.key").display().to_string(),
            )
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{upstream}"));
        assert_ne!(conf, shipped);
        std::fs::write(d.join("site.conf"), conf).expect("site");
        let p = |n: &str| d.join(n).display().to_string();
        std::fs::write(
            d.join("nginx.conf"),
            format!(
                "daemon off;\nuser root;\nworker_processes 1;\npid {};\nerror_log {} warn;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {};\n  client_body_temp_path {};\n  proxy_temp_path {};\n  \
                 fastcgi_temp_path {};\n  uwsgi_temp_path {};\n  scgi_temp_path {};\n  include {};\n}}\n",
                p("nginx.pid"),
                p("error.log"),
                p("access.log"),
                p("body"),
                p("proxy"),
                p("fastcgi"),
                p("uwsgi"),
                p("scgi"),
                p("site.conf")
            ),
        )
        .expect("nginx.conf");
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is installed (scripts/test.sh installs it)");
        let test = Command::new(nginx)
            .args(["-t", "-c"])
            .arg(d.join("nginx.conf"))
            .output()
            .expect("nginx -t");
        assert!(
            test.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = Command::new(nginx)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", https)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            https,
            http,
            dir,
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn insecure_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client")
}

async fn through_nginx(site: &str, base_path: &str) {
    let a1 = Agent::start("127.0.0.31");
    let a2 = Agent::start("127.0.0.32");
    let agg = Aggregator::start(&format!(
        r#"{{"server":{{"base_path":"{base_path}","behind_proxy":true,"trusted_proxies":["127.0.0.1/32"]}},"monitor":{{"mode":"app","poll_interval_ms":500,"include_self":false,"clusters":[{{"name":"lab","hosts":[{}]}}]}}}}"#,
        hosts_json(&[&a1, &a2])
    ))
    .await;
    for id in ["lab:n1", "lab:n2"] {
        agg.wait_row(id, Duration::from_secs(10), "up", |r| r["status"] == "up")
            .await;
    }
    let port: u16 = agg
        .base
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("aggregator port");
    let nginx = Nginx::start(site, port);
    let prefix = base_path.trim_end_matches('/');
    let url = format!("https://127.0.0.1:{}{prefix}/", nginx.https);

    // HTTP is redirected to HTTPS.
    let c = insecure_client();
    let r = c
        .get(format!("http://127.0.0.1:{}{prefix}/", nginx.http))
        .send()
        .await
        .expect("http");
    assert_eq!(r.status(), 301);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap_or("")
            .starts_with("https://")
    );
    // Login through nginx: the cookie is Secure (behind_proxy), HttpOnly, SameSite=Strict.
    let r = c
        .post(format!("{url}api/v1/login"))
        .header("origin", format!("https://127.0.0.1:{}", nginx.https))
        .json(&serde_json::json!({"user": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200, "{}", nginx.error_log());
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(r.headers().get("strict-transport-security").is_some());
    let r = c
        .get(format!("{url}metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(
        r.status(),
        404,
        "metrics are not published through the site"
    );

    let (url2, ids) = (url.clone(), "lab:n1,lab:n2".to_owned());
    let result = tokio::task::spawn_blocking(move || {
        let env = [("SMON_IGNORE_HTTPS_ERRORS", "1")];
        browser_with(&env, &["login", &url2, "admin", ADMIN_PASSWORD]);
        let env = [
            ("SMON_IGNORE_HTTPS_ERRORS", "1"),
            ("SMON_LOGIN", BROWSER_LOGIN),
        ];
        browser_with(&env, &["home", &url2, &ids]);
        browser_with(&env, &["transport", &url2, "websocket"]);
    })
    .await;
    if result.is_err() {
        eprintln!("nginx error log:\n{}", nginx.error_log());
    }
    result.expect("browser through nginx");
    drop(nginx);
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_through_nginx_at_the_root() {
    through_nginx("smon.conf", "/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_through_nginx_under_a_prefix() {
    through_nginx("smon-prefix.conf", "/smon").await;
}
