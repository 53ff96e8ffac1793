//! Containers end to end with a real cgroup: the test makes a Docker-shaped cgroup
//! (`/docker/<64 hex>`, in every hierarchy the agent's collector reads) with a sleeping
//! process in it, and a real agent reports it to the aggregator in process. The aggregator's
//! `/metrics` exports it, its history stores it, and a `container_down` rule fires when the
//! test kills the process and removes the cgroup, then resolves when it is back. Needs root
//! (or a delegated cgroup tree); skipped with a message otherwise. The cgroup is removed and
//! the process killed even when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smon_collect::containers::Layout;

use crate::support::{Agent, Aggregator, TOKEN};

#[path = "../../../tests/cgroup_common.rs"]
pub(crate) mod cgroup_common;
use cgroup_common::{TestCgroup, hierarchies};

/// Makes `rel` in every hierarchy of `layout` with a fresh `sleep` in it; `Err` says why it
/// cannot.
fn sleeping(layout: &Layout, rel: &str) -> Result<TestCgroup, String> {
    busy_with(layout, rel, Command::new("sleep").arg("300"))
}

/// Like [`sleeping`], with the process `cmd`.
fn busy_with(layout: &Layout, rel: &str, cmd: &mut Command) -> Result<TestCgroup, String> {
    let mut cg = TestCgroup::new(vec![cmd.spawn().map_err(|e| e.to_string())?]);
    cg.make(layout, rel)?;
    Ok(cg)
}

/// The `docker` directories this test made (none was there): removed last, once every
/// container cgroup below is gone.
struct Parents(Vec<PathBuf>);

impl Parents {
    fn new(layout: &Layout) -> Parents {
        Parents(
            hierarchies(layout)
                .into_iter()
                .map(|h| h.join("docker"))
                .filter(|d| !d.exists())
                .collect(),
        )
    }
}

impl Drop for Parents {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The alerts of rule `rule` on subject `subject` (`pending` or not).
async fn alerts_of(agg: &Aggregator, rule: &str, subject: &str) -> Vec<Value> {
    let (st, list) = agg.get("/api/v1/alerts").await;
    assert_eq!(st, 200, "{list}");
    list["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["rule"] == rule && x["host"]["subject"] == subject)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

async fn metrics(agg: &Aggregator) -> String {
    agg.client
        .get(format!("{}/metrics", agg.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Polls `check` every 100 ms until it gives `Some`; panics with `what` after `limit`.
async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "not {what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_container_is_exported_stored_and_alerted_on_when_it_goes() {
    let Some(layout) = Layout::detect(Path::new("/sys/fs/cgroup")) else {
        eprintln!("SKIPPED: no cgroup filesystem at /sys/fs/cgroup");
        return;
    };
    // A Docker id (cgroupfs driver layout) unique to this test run.
    let id = format!("{:08x}{}", std::process::id(), "5a".repeat(28));
    let name = &id[..12];
    let rel = format!("docker/{id}");
    // Declared first, dropped last.
    let _parents = Parents::new(&layout);
    let mut cg = match sleeping(&layout, &rel) {
        Ok(cg) => cg,
        Err(why) => {
            eprintln!("SKIPPED: cgroups not writable here ({why})");
            return;
        }
    };

    const FOR_S: u64 = 1;
    let agent = Agent::start("127.0.0.1");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = json!({
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
            "clusters": [{"name": "lab", "hosts": [
                {"name": "n1", "address": agent.addr.to_string(), "token": TOKEN}]}]},
        "storage": {"dir": dir.path().join("data")},
        "alerts": {"rules": [{"name": "ctr down", "when": "container_down", "for_s": FOR_S}]},
    });
    let agg = Aggregator::start(&cfg.to_string()).await;
    agg.wait_row("lab:n1", Duration::from_secs(20), "up", |r| {
        r["status"] == "up"
    })
    .await;

    // /metrics: the container's series with bounded labels, and the host's count.
    let series = format!(
        r#"smon_container_pids{{cluster="lab",host="n1",container="{name}",kind="docker"}}"#
    );
    let text = wait_for(Duration::from_secs(15), "exported", || {
        let agg = &agg;
        let series = series.clone();
        async move {
            let t = metrics(agg).await;
            t.lines()
                .any(|l| {
                    l.strip_prefix(&series)
                        .is_some_and(|v| v.trim().parse::<f64>() == Ok(1.0))
                })
                .then_some(t)
        }
    })
    .await;
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"smon_host_containers{cluster="lab",host="n1"} "#)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"smon_container_memory_bytes{{cluster="lab",host="n1",container="{name}",kind="docker"}}"#
        )),
        "{text}"
    );

    // Five busier containers push it out of the summary's top 5 (and out of /metrics): the
    // rule still sees it, because the aggregator asks for every container while a
    // container rule watches the host (`Parts.containers`).
    let mut busy = Vec::new();
    for i in 0..5 {
        let rel = format!(
            "docker/{:08x}{i:02x}{}",
            std::process::id(),
            "b7".repeat(27)
        );
        let mut spin = Command::new("sh");
        spin.args(["-c", "while :; do sleep 0.02; done"]);
        busy.push(busy_with(&layout, &rel, &mut spin).expect("a busy cgroup"));
    }
    wait_for(Duration::from_secs(15), "out of the top 5", || {
        let (agg, name) = (&agg, name);
        async move {
            let t = metrics(agg).await;
            let listed = t
                .lines()
                .filter(|l| l.starts_with("smon_container_cpu_percent{"))
                .count();
            (listed == 5 && !t.contains(&format!("container=\"{name}\""))).then_some(())
        }
    })
    .await;

    // Gone: the process killed, the cgroup removed.
    let gone = Instant::now();
    cg.remove();
    let fired = wait_for(Duration::from_secs(20), "firing", || {
        let agg = &agg;
        async move {
            alerts_of(agg, "ctr down", name)
                .await
                .into_iter()
                .find(|a| a["pending"] != true && a["status"] == "firing")
        }
    })
    .await;
    eprintln!("removed -> firing: {:?}", gone.elapsed());
    assert!(
        gone.elapsed() <= Duration::from_secs(FOR_S + 5),
        "fired {:?} after the container went",
        gone.elapsed()
    );
    assert_eq!(
        fired["host"]["detail"],
        format!("container {name} is gone from the host"),
        "{fired}"
    );
    assert_eq!(fired["host"]["host"], "lab:n1");

    // Back (a new process in a cgroup of the same id): resolved, and the history has both.
    let _back = sleeping(&layout, &rel).expect("the cgroup again");
    wait_for(Duration::from_secs(20), "resolved", || {
        let agg = &agg;
        async move {
            alerts_of(agg, "ctr down", name)
                .await
                .is_empty()
                .then_some(())
        }
    })
    .await;
    // The alert history is written off the engine's thread: wait for both events.
    wait_for(Duration::from_secs(10), "in the alert history", || {
        let agg = &agg;
        async move {
            let (st, h) = agg.get("/api/v1/alerts/history?rule=ctr%20down").await;
            assert_eq!(st, 200, "{h}");
            let statuses: Vec<String> = h["events"]
                .as_array()
                .expect("events")
                .iter()
                .filter(|e| e["alert"]["host"]["subject"] == name)
                .filter_map(|e| e["alert"]["status"].as_str().map(str::to_owned))
                .collect();
            // Newest first.
            (statuses == ["resolved", "firing"]).then_some(())
        }
    })
    .await;

    // The history route answers the container's series under its name.
    let q = format!(
        "/api/v1/hosts/lab:n1/history?metrics=container_memory_bytes{{{name}}},container_cpu_percent"
    );
    let answer = wait_for(Duration::from_secs(10), "in the history", || {
        let (agg, q) = (&agg, q.clone());
        async move {
            let (st, v) = agg.get(&q).await;
            assert_eq!(st, 200, "{v}");
            let has = |metric: &str| {
                v["series"].as_array().is_some_and(|s| {
                    s.iter().any(|x| {
                        x["metric"] == metric
                            && x["label"] == name
                            && x["avg"]
                                .as_array()
                                .is_some_and(|p| p.iter().any(Value::is_number))
                    })
                })
            };
            (has("container_memory_bytes") && has("container_cpu_percent")).then_some(v)
        }
    })
    .await;
    let labels: Vec<&str> = answer["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter(|x| x["metric"] == "container_memory_bytes")
        .filter_map(|x| x["label"].as_str())
        .collect();
    assert_eq!(labels, [name], "only the container asked for: {answer}");
    drop(busy);
    agg.shutdown().await;
}

/// Runs `podman` with `args`; its stdout, or why it failed.
fn podman(args: &[&str]) -> Result<String, String> {
    let out = Command::new("podman")
        .args(args)
        .output()
        .map_err(|e| format!("podman: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A Podman container and the API service the test started; dropping it removes both.
struct Podman {
    name: String,
    service: Child,
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

/// The image the test runs: a rootfs holding Debian's busybox-static, imported locally
/// (nothing is pulled from a registry).
const IMAGE: &str = "localhost/smon-it-busybox:1";

/// Imports [`IMAGE`] unless it is there, starts Podman's API service on `socket` and a
/// container `name` sleeping in it; `Err` says why it cannot run here.
fn start_podman(socket: &Path, name: &str) -> Result<Podman, String> {
    podman(&["--version"])?;
    if podman(&["image", "exists", IMAGE]).is_err() {
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            return Err("no /bin/busybox (apt-get install busybox-static)".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin")).map_err(|e| e.to_string())?;
        std::fs::copy(busybox, root.join("bin/busybox")).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink("busybox", root.join("bin/sleep")).map_err(|e| e.to_string())?;
        let tar = dir.path().join("rootfs.tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("tar failed".into());
        }
        podman(&["import", &tar.to_string_lossy(), IMAGE])?;
    }
    let service = Command::new("podman")
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        .spawn()
        .map_err(|e| format!("podman system service: {e}"))?;
    let p = Podman {
        name: name.to_owned(),
        service,
    };
    // Limits no higher than the test's own (a process without CAP_SYS_RESOURCE cannot raise
    // them, and Podman's defaults would).
    podman(&[
        "run",
        "-d",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--name",
        name,
        IMAGE,
        "/bin/sleep",
        "600",
    ])?;
    Ok(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_podman_container_is_named_from_its_api_and_alerted_on_when_paused_or_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("podman.sock");
    let name = format!("smon-it-{}", std::process::id());
    let pod = match start_podman(&socket, &name) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIPPED: Podman cannot run a container here ({why})");
            return;
        }
    };
    let id = podman(&["inspect", "--format", "{{.Id}}", &name]).expect("inspect");
    let agent = Agent::start_with(
        "127.0.0.1",
        &format!(
            r#","containers":{{"runtime_sockets":["{}"]}}"#,
            socket.display()
        ),
    );
    let cfg = json!({
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
            "clusters": [{"name": "lab", "hosts": [
                {"name": "n1", "address": agent.addr.to_string(), "token": TOKEN}]}]},
        "storage": {"dir": dir.path().join("data")},
        // By id: the rule holds from the first sample, before the API has named it.
        "alerts": {"rules": [{"name": "pod down", "when": format!("container_down{{{id}}}")}]},
    });
    let agg = Aggregator::start(&cfg.to_string()).await;

    // Named, with its kind, from Podman's API (asked every 10 s).
    let series = format!(
        r#"smon_container_pids{{cluster="lab",host="n1",container="{name}",kind="podman"}}"#
    );
    wait_for(Duration::from_secs(30), "named by Podman's API", || {
        let (agg, series) = (&agg, series.clone());
        async move { metrics(agg).await.contains(&series).then_some(()) }
    })
    .await;
    assert!(alerts_of(&agg, "pod down", &id).await.is_empty());

    // Paused: its state from the API says so.
    podman(&["pause", &name]).expect("pause");
    let fired = wait_for(Duration::from_secs(30), "firing on pause", || {
        let (agg, id) = (&agg, id.as_str());
        async move {
            alerts_of(agg, "pod down", id)
                .await
                .into_iter()
                .find(|a| a["pending"] != true)
        }
    })
    .await;
    assert_eq!(
        fired["host"]["detail"],
        format!("container {id} (podman) is paused"),
        "{fired}"
    );
    podman(&["unpause", &name]).expect("unpause");
    wait_for(Duration::from_secs(30), "resolved on unpause", || {
        let (agg, id) = (&agg, id.as_str());
        async move {
            alerts_of(agg, "pod down", id)
                .await
                .is_empty()
                .then_some(())
        }
    })
    .await;

    // Removed: gone from the cgroups.
    podman(&["rm", "-f", "-t", "0", &name]).expect("rm");
    let fired = wait_for(Duration::from_secs(20), "firing on removal", || {
        let (agg, id) = (&agg, id.as_str());
        async move {
            alerts_of(agg, "pod down", id)
                .await
                .into_iter()
                .find(|a| a["pending"] != true)
        }
    })
    .await;
    assert_eq!(
        fired["host"]["detail"],
        format!("no container {id} runs on the host"),
        "{fired}"
    );
    drop(pod);
    agg.shutdown().await;
}
