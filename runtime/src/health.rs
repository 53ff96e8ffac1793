//! Health: what a probe of a daemon reports ([`Unhealthy`]), the boxed probe both the self
//! manager and the systemd watchdog run ([`Probe`]), where a local probe reaches a listener,
//! and the heartbeat file (for a daemon a local probe cannot speak to, such as an agent whose
//! gRPC needs a client certificate: the server touches the file after each sample, and the
//! probe checks its age).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// Why a daemon is not healthy, in words for the log and `systemctl status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unhealthy(pub String);

impl From<String> for Unhealthy {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Unhealthy {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// One health probe's answer, to be awaited (the probe applies its own deadline).
pub type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), Unhealthy>> + Send>>;

/// A daemon's health probe: a fresh future per call.
pub type Probe = Box<dyn Fn() -> ProbeFuture + Send + Sync>;

/// Boxes a probe closure as a [`Probe`].
pub fn probe<F, Fut>(f: F) -> Probe
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Unhealthy>> + Send + 'static,
{
    Box::new(move || Box::pin(f()))
}

/// Where a local probe reaches a listener: its own address, or loopback for a wildcard one.
pub fn probe_address(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    let mut a = listen;
    if a.ip().is_unspecified() {
        a.set_ip(match a.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

/// The heartbeat file of the process `pid` of daemon `name`: its server (the process itself,
/// or its child under the self manager) touches it after every sample.
pub fn heartbeat_path(name: &str, pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("{name}-{pid}.alive"))
}

/// This process's heartbeat file, removed when dropped.
#[derive(Debug)]
pub struct Heartbeat {
    path: PathBuf,
}

impl Heartbeat {
    /// Creates this process's heartbeat file for daemon `name`.
    pub fn create(name: &str) -> std::io::Result<Self> {
        let path = heartbeat_path(name, std::process::id());
        std::fs::write(&path, b"")?;
        Ok(Self { path })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The heartbeat file this process's manager created, if it has one.
#[cfg(target_os = "linux")]
pub fn parent_heartbeat(name: &str) -> Option<PathBuf> {
    let ppid = std::os::unix::process::parent_id();
    let p = heartbeat_path(name, ppid);
    p.is_file().then_some(p)
}

/// No heartbeat elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn parent_heartbeat(_name: &str) -> Option<PathBuf> {
    None
}

/// Marks the heartbeat file as touched now.
pub fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_modified(std::time::SystemTime::now())
}

/// The heartbeat probe: the file was touched within `max_age`.
pub async fn probe_heartbeat(path: PathBuf, max_age: Duration) -> Result<(), Unhealthy> {
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .map_err(|e| Unhealthy(format!("{}: {e}", path.display())))?;
    let age = modified.elapsed().unwrap_or_default();
    if age <= max_age {
        Ok(())
    } else {
        Err(Unhealthy(format!(
            "no sample for {:.1} s (heartbeat {})",
            age.as_secs_f64(),
            path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_probed_on_loopback() {
        let a = |s: &str| s.parse::<std::net::SocketAddr>().expect("addr");
        assert_eq!(probe_address(a("0.0.0.0:1")), a("127.0.0.1:1"));
        assert_eq!(probe_address(a("[::]:2")), a("[::1]:2"));
        assert_eq!(probe_address(a("10.0.0.1:3")), a("10.0.0.1:3"));
    }

    #[tokio::test]
    async fn a_heartbeat_is_fresh_after_a_touch_and_gone_when_dropped() {
        let name = format!("smon-runtime-test-{}", std::process::id());
        let hb = Heartbeat::create(&name).expect("create");
        let path = hb.path().to_path_buf();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
            .expect("age it");
        let stale = probe_heartbeat(path.clone(), Duration::from_secs(5))
            .await
            .expect_err("stale");
        assert!(stale.0.starts_with("no sample for 60."), "{stale}");
        touch(&path).expect("touch");
        probe_heartbeat(path.clone(), Duration::from_secs(5))
            .await
            .expect("fresh");
        drop(hb);
        assert!(!path.exists());
    }
}
