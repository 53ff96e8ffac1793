//! The aggregator config that matches a fleet (`--write-config`): the same schema as
//! `config_app.json`, one cluster per `--hosts-per-cluster` hosts, polled at the simulator's
//! interval, so that `smon-aggregator --config PATH` takes it as it is.

use std::path::Path;

use serde_json::{Value, json};

use crate::fleet::Fleet;

/// The config as JSON. `token_file` is written as given, made absolute (the aggregator reads
/// relative paths against the config file's folder, which may be elsewhere).
pub fn aggregator_config(fleet: &Fleet, token_file: Option<&Path>) -> std::io::Result<Value> {
    let token_file = token_file.map(std::path::absolute).transpose()?;
    let mut clusters: Vec<Value> = Vec::new();
    let mut current: Option<(String, Vec<Value>)> = None;
    for p in fleet.profiles() {
        let mut host = json!({
            "name": p.name,
            "address": p.addr.to_string(),
            "tags": [p.role.tag(), "sim"],
        });
        if let Some(t) = &token_file {
            host["token_file"] = json!(t);
        }
        match &mut current {
            Some((name, hosts)) if *name == p.cluster => hosts.push(host),
            _ => {
                if let Some((name, hosts)) = current.take() {
                    clusters.push(json!({ "name": name, "hosts": hosts }));
                }
                current = Some((p.cluster.clone(), vec![host]));
            }
        }
    }
    if let Some((name, hosts)) = current {
        clusters.push(json!({ "name": name, "hosts": hosts }));
    }
    Ok(json!({
        "server": {
            "host": "127.0.0.1",
            "port": 8080,
            "behind_proxy": false,
            "base_path": "/",
            // The hosts are fake and the server is on loopback: anonymous read-only access
            // lets tests and benchmarks read the REST API without logging in.
            "auth": { "public_read_only": true }
        },
        // Whoever starts the aggregator next to the simulator (a benchmark, a test) keeps it
        // alive: no self-supervising parent process to measure around.
        "manager": { "mode": "supervisor" },
        "monitor": {
            "mode": "app",
            "poll_interval_ms": fleet.config().interval_ms(),
            "stale_after_intervals": 3,
            "down_after_intervals": 10,
            "include_self": false,
            "clusters": clusters
        },
        "log": { "level": "info", "format": "human" }
    }))
}

/// Writes the config to `path`.
pub fn write(fleet: &Fleet, path: &Path, token_file: Option<&Path>) -> std::io::Result<()> {
    let cfg = aggregator_config(fleet, token_file)?;
    let mut text = serde_json::to_string_pretty(&cfg).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SimConfig, tests::sample};

    #[test]
    fn one_cluster_per_block_of_hosts() {
        let fleet = Fleet::new(SimConfig {
            agents: 250,
            hosts_per_cluster: 100,
            interval: std::time::Duration::from_millis(500),
            ..sample()
        });
        let v = aggregator_config(&fleet, Some(Path::new("tok"))).expect("config");
        let clusters = v["monitor"]["clusters"].as_array().expect("clusters");
        assert_eq!(clusters.len(), 3);
        assert_eq!(clusters[0]["hosts"].as_array().map(Vec::len), Some(100));
        assert_eq!(clusters[2]["hosts"].as_array().map(Vec::len), Some(50));
        assert_eq!(clusters[2]["hosts"][49]["address"], "127.1.0.250:50051");
        assert_eq!(v["monitor"]["poll_interval_ms"], 500);
        assert_eq!(v["monitor"]["include_self"], false);
        assert_eq!(v["server"]["auth"]["public_read_only"], true);
        let tf = clusters[0]["hosts"][0]["token_file"]
            .as_str()
            .expect("token_file");
        assert!(Path::new(tf).is_absolute(), "{tf}");
    }
}
