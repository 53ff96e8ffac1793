//! Reachability checks end to end: the aggregator in process with its history database and a
//! `service_down` rule, a host whose services are listeners the test binds on loopback.
//!
//! - `POST /api/v1/hosts/{id}/check` as admin answers the result: a listening port is up with
//!   a latency, a closed one down ("connection refused"), the ping of 127.0.0.1 up (when this
//!   machine allows ICMP sockets); viewers get 403, an unknown host 404 with the reason;
//! - a listener the test closes makes a transition on the feed, in the database
//!   (`reach_events`, and `GET .../reach`), on the overview row, and fires the rule;
//! - nobody asking, every host is checked each `reach_interval_s`, hosts added at run time
//!   too;
//! - in a real browser: the overview's mark, the host page's section, Check now for admins;
//! - an address whose packets are dropped (a route into a veth nobody answers on, inside a
//!   network namespace the test makes) is down with "no answer within 2 s" (skipped, saying
//!   why, when namespaces cannot be made: not root, no `ip`);
//! - pings use a raw socket where the namespace's `ping_group_range` leaves the group out, none
//!   without `CAP_NET_RAW` either (every ping then says why), an unprivileged one once the group
//!   is in (also in a namespace of the test's, where the sysctl is the namespace's own).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smon_aggregator::feed::{Body, Kinds};

use crate::support::{
    Agent, BROWSER_LOGIN, InProcess, TOKEN, VIEWER_PASSWORD, free_port, login, origin_of,
};

const ID: &str = "lab:a";

async fn post_check(client: &reqwest::Client, base: &str, id: &str) -> (u16, Value) {
    let r = client
        .post(format!("{base}/api/v1/hosts/{id}/check"))
        .header("origin", origin_of(base))
        .send()
        .await
        .expect("check request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn service<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no service {name} in {result}"))
}

/// The next reachability event of the feed (within 10 s).
async fn next_reach(
    sub: &mut smon_aggregator::feed::Subscription,
) -> (String, Vec<smon_api::reach::ReachTransition>) {
    let e = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("a reachability event within 10 s")
        .expect("the feed");
    match &e.body {
        Body::Reach { host, changes, .. } => (host.clone(), changes.clone()),
        other => panic!("not a reachability event: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_answer_on_demand_and_a_closed_service_makes_a_transition_and_fires_service_down() {
    let web = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the service");
    let web_port = web.local_addr().expect("addr").port();
    let closed_port = free_port("127.0.0.1");
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = json!({
        "monitor": {"mode": "app", "include_self": false, "reach_interval_s": 3600,
            "clusters": [{"name": "lab", "hosts": [{
                "name": "a", "address": format!("127.0.0.1:{}", free_port("127.0.0.1")),
                "token": TOKEN,
                "services": [
                    {"name": "web", "port": web_port},
                    {"name": "closed", "port": closed_port},
                    {"name": "echo", "type": "icmp"}
                ]}]}]},
        "storage": {"dir": data.path()},
        "alerts": {"rules": [{"name": "svc", "when": "service_down{web}"}]},
    });
    let agg = InProcess::start(&cfg).await;
    let mut sub = agg.feed.subscribe("test", Kinds::REACH, 64);

    // The first check: web up, closed down; not a transition.
    let (status, r) = post_check(&agg.client, &agg.base, ID).await;
    assert_eq!(status, 200, "{r}");
    let web_r = service(&r, "web");
    assert_eq!(web_r["up"], true, "{r}");
    assert_eq!(web_r["kind"], "tcp");
    assert!(
        web_r["latency_ms"].as_f64().is_some_and(|l| l >= 0.0),
        "{r}"
    );
    let closed = service(&r, "closed");
    assert_eq!(closed["up"], false, "{r}");
    assert_eq!(closed["error"], "connection refused", "{r}");
    assert!(r["checked_ms"].as_u64().is_some_and(|t| t > 0), "{r}");
    // The ping of 127.0.0.1, and the icmp service that is that ping.
    let pinged = !r["ping"]["up"].is_null();
    let icmp = service(&r, "echo");
    assert_eq!(icmp["up"], r["ping"]["up"], "{r}");
    if r["ping"]["up"].is_null() {
        let why = r["ping"]["error"].as_str().unwrap_or_default();
        assert!(
            why.contains("ping_group_range") && why.contains("CAP_NET_RAW"),
            "{r}"
        );
        eprintln!("skipping the ping check: ICMP sockets are not allowed here ({why})");
    } else {
        assert_eq!(r["ping"]["up"], true, "127.0.0.1 answers pings: {r}");
        assert!(r["ping"]["latency_ms"].as_f64().is_some(), "{r}");
        assert_eq!(r["ping"]["address"], "127.0.0.1");
    }
    let (host, changes) = next_reach(&mut sub).await;
    assert_eq!(host, ID);
    assert!(
        changes.is_empty(),
        "a first result is no transition: {changes:?}"
    );

    // Viewers may not check; unknown hosts are 404 with the reason.
    let viewer = login(&agg.base, "viewer", VIEWER_PASSWORD).await;
    let (status, _) = post_check(&viewer, &agg.base, ID).await;
    assert_eq!(status, 403);
    let (status, body) = post_check(&agg.client, &agg.base, "lab:nobody").await;
    assert_eq!(status, 404);
    assert!(
        body.to_string().contains("unknown host 'lab:nobody'"),
        "{body}"
    );
    let r = viewer
        .get(format!("{}/api/v1/hosts/{ID}/reach", agg.base))
        .send()
        .await
        .expect("reach");
    assert_eq!(r.status(), 200, "viewers read the last result");

    // The overview row's digest (the icmp service counts when the ping could be sent).
    let row = agg.row(ID).await;
    let icmp = u64::from(pinged);
    assert_eq!(row["reach"]["total"], 2 + icmp, "{row}");
    assert_eq!(row["reach"]["up"], 1 + icmp, "{row}");
    assert_eq!(row["reach"]["down"], json!(["closed"]), "{row}");

    // The service goes away: a transition.
    drop(web);
    let (status, r) = post_check(&agg.client, &agg.base, ID).await;
    assert_eq!(status, 200);
    assert_eq!(service(&r, "web")["up"], false, "{r}");
    assert_eq!(service(&r, "web")["error"], "connection refused", "{r}");
    let (_, changes) = next_reach(&mut sub).await;
    let got: Vec<(&str, bool, Option<&str>)> = changes
        .iter()
        .map(|c| (c.subject.as_str(), c.up, c.error.as_deref()))
        .collect();
    assert_eq!(got, [("web", false, Some("connection refused"))]);

    // Stored, and listed for the host page.
    let r: Value = agg
        .client
        .get(format!("{}/api/v1/hosts/{ID}/reach", agg.base))
        .send()
        .await
        .expect("reach")
        .json()
        .await
        .expect("json");
    assert_eq!(r["transitions"][0]["subject"], "web", "{r}");
    assert_eq!(r["transitions"][0]["up"], false, "{r}");
    assert_eq!(service(&r["result"], "web")["up"], false, "{r}");
    let db = rusqlite::Connection::open(data.path().join("smon.sqlite3")).expect("db");
    let rows: Vec<(String, String, bool)> = db
        .prepare("SELECT host, subject, up FROM reach_events ORDER BY seq")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows, [(ID.to_owned(), "web".to_owned(), false)]);

    // The rule fires for web (and only web: it names it).
    let start = Instant::now();
    loop {
        let a: Value = agg
            .client
            .get(format!("{}/api/v1/alerts", agg.base))
            .send()
            .await
            .expect("alerts")
            .json()
            .await
            .expect("json");
        let firing: Vec<(String, String, bool)> = a["alerts"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|x| {
                        (
                            x["host"]["host"].as_str().unwrap_or_default().to_owned(),
                            x["host"]["subject"].as_str().unwrap_or_default().to_owned(),
                            x["pending"] == true,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !firing.is_empty() {
            assert_eq!(firing, [(ID.to_owned(), "web".to_owned(), false)], "{a}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "service_down did not fire: {a}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_is_checked_each_interval_and_hosts_added_at_run_time_too() {
    let web = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the service");
    let port = web.local_addr().expect("addr").port();
    let host = |name: &str| {
        json!({"name": name, "address": format!("127.0.0.1:{}", free_port("127.0.0.1")),
            "token": TOKEN, "services": [{"name": "web", "port": port}]})
    };
    let cfg = |hosts: Vec<Value>| {
        json!({"monitor": {"mode": "app", "include_self": false, "reach_interval_s": 5,
            "clusters": [{"name": "lab", "hosts": hosts}]}})
    };
    let agg = InProcess::start(&cfg(vec![host("a")])).await;
    // Nobody asks: the first round checks it, within 90 % of the interval.
    let up = |r: &Value| r["reach"]["up"] == 1 && r["reach"]["total"] == 1;
    agg.wait_row(ID, Duration::from_secs(8), "checked", up)
        .await;
    // A host added at run time is checked at the next round.
    let targets = agg.targets(&cfg(vec![host("a"), host("b")]));
    assert_eq!(agg.registry.apply(targets).added, ["lab:b".to_owned()]);
    agg.wait_row("lab:b", Duration::from_secs(12), "checked", up)
        .await;
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reachability_in_a_real_browser() {
    const IP: &str = "127.0.0.141";
    let agent = Agent::start(IP);
    let web = tokio::net::TcpListener::bind((IP, 0))
        .await
        .expect("bind the service");
    let cfg = json!({
        "monitor": {"mode": "app", "include_self": false, "reach_interval_s": 3600,
            "clusters": [{"name": "lab", "hosts": [{
                "name": "n1", "address": agent.addr.to_string(), "token": TOKEN, "ip": IP,
                "services": [
                    {"name": "web", "port": web.local_addr().expect("addr").port()},
                    {"name": "db", "port": free_port(IP)}
                ]}]}]},
    });
    let agg = InProcess::start(&cfg).await;
    agg.wait_row("lab:n1", Duration::from_secs(20), "up", |r| {
        r["status"] == "up"
    })
    .await;
    // The first round may come late in the hour: ask.
    let (status, r) = post_check(&agg.client, &agg.base, "lab:n1").await;
    assert_eq!(status, 200, "{r}");
    let url = format!("{}/", agg.base);
    let viewer = format!("viewer:{VIEWER_PASSWORD}");
    tokio::task::spawn_blocking(move || {
        crate::browser::browser_with(
            &[("SMON_LOGIN", BROWSER_LOGIN)],
            &["reach", &url, "lab:n1", "admin", "db"],
        );
        crate::browser::browser_with(
            &[("SMON_LOGIN", &viewer)],
            &["reach", &url, "lab:n1", "viewer", "db"],
        );
    })
    .await
    .expect("reach scenarios");
    drop(web);
    agg.shutdown().await;
}

/// A network namespace made (and removed) by the test.
struct Netns(String);

impl Netns {
    /// A namespace whose route to 192.0.2.0/24 leads into a veth nobody answers on: packets
    /// to 192.0.2.1 are dropped without a word. `Err` says why it could not be made.
    fn make() -> Result<Self, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not root".into());
        }
        // Tests run in parallel in one process: a name per namespace.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("smon-reach-{}-{n}", std::process::id());
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        ip(&["netns", "add", &name])?;
        let ns = Self(name.clone());
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["link", "set", "lo", "up"])?;
        inside(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"])?;
        inside(&["link", "set", "v0", "up"])?;
        inside(&["link", "set", "v1", "up"])?;
        inside(&["addr", "add", "10.254.0.1/24", "dev", "v0"])?;
        inside(&["route", "add", "192.0.2.0/24", "dev", "v0"])?;
        // No ARP either: the packets go out and vanish.
        inside(&[
            "neigh",
            "add",
            "192.0.2.1",
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            "v0",
        ])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Runs `f` on a thread of its own inside the namespace, on a runtime made there (the sockets
/// it makes are the namespace's).
fn inside<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    let path = format!("/var/run/netns/{}", ns.0);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("namespace file");
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f())
    })
    .join()
    .expect("the namespace thread")
}

#[test]
fn pings_use_unprivileged_sockets_else_raw_else_say_why() {
    use smon_aggregator::reach::{Pingers, no_ping_message};
    let ns = match Netns::make() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipping: cannot make a network namespace ({why})");
            return;
        }
    };
    let name = ns.0.clone();
    let (raw, none, dgram) = inside(&ns, move || {
        Box::pin(async move {
            let lo: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
            // A new namespace lets no group ping unprivileged ("1 0"): root pings raw.
            let p = Pingers::open();
            let raw = (
                p.unprivileged_v4(),
                p.ping(lo).await.up,
                p.ping("192.0.2.1".parse().expect("ip")).await,
            );
            // Without CAP_NET_RAW (this thread only), no socket at all: every ping says why.
            let mut caps = rustix::thread::capabilities(None).expect("capget");
            caps.effective -= rustix::thread::CapabilitySet::NET_RAW;
            rustix::thread::set_capabilities(None, caps).expect("capset");
            let p = Pingers::open();
            let none = (p.unprivileged_v4(), p.ping(lo).await);
            // The group allowed: unprivileged sockets, still without the capability.
            let out = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &name,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ping_group_range=0 2147483647",
                ])
                .output()
                .expect("sysctl");
            assert!(out.status.success(), "{out:?}");
            let p = Pingers::open();
            let dgram = (p.unprivileged_v4(), p.ping(lo).await.up);
            (raw, none, dgram)
        })
    });
    let (kind, up, dropped) = raw;
    assert_eq!(
        (kind, up),
        (Some(false), Some(true)),
        "raw socket, 127.0.0.1 answers"
    );
    assert_eq!(dropped.up, Some(false));
    assert_eq!(dropped.error.as_deref(), Some("no answer within 2 s"));
    let (kind, r) = none;
    assert_eq!(kind, None);
    assert_eq!(r.up, None, "not pinged: {r:?}");
    assert_eq!(r.error, Some(no_ping_message(Some(0))));
    assert_eq!(
        dgram,
        (Some(true), Some(true)),
        "unprivileged socket, 127.0.0.1 answers"
    );
}

#[test]
fn an_address_that_drops_packets_is_down_with_no_answer_within_2_s() {
    let ns = match Netns::make() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipping: cannot make a network namespace ({why})");
            return;
        }
    };
    let (r, took) = inside(&ns, || {
        Box::pin(async {
            let start = Instant::now();
            let r = smon_aggregator::reach::connect("192.0.2.1:80".parse().expect("addr")).await;
            (r, start.elapsed())
        })
    });
    assert_eq!(r, Err("no answer within 2 s".to_owned()));
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
}
