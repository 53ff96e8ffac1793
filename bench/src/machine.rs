//! The machine a benchmark ran on, described from `/proc` and `/etc/os-release`, so a table of
//! figures always carries what it was measured on.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the figures were measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model name, e.g. "AMD EPYC 7B13".
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Kernel release, e.g. "6.1.0-18-amd64".
    pub kernel: String,
    /// Distribution, e.g. "Debian GNU/Linux 12 (bookworm)".
    pub os: String,
    /// When the run started, "YYYY-MM-DD HH:MM UTC".
    pub date: String,
}

impl Machine {
    /// "DATE on CPU, N logical cores, X GiB memory, OS, kernel K": the machine line of every
    /// benchmark's section.
    pub fn summary(&self) -> String {
        format!(
            "{} on {}, {} logical cores, {:.1} GiB memory, {}, kernel {}",
            self.date,
            self.cpu,
            self.cores,
            self.memory_bytes as f64 / 1_073_741_824.0,
            self.os,
            self.kernel
        )
    }

    /// Describes this machine; unknown values read "unknown".
    pub fn describe() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let cores = if cores > 0 {
            cores
        } else {
            std::thread::available_parallelism().map_or(0, usize::from)
        };
        let memory_bytes = field(&read("/proc/meminfo"), "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        let os =
            field(&read("/etc/os-release"), "PRETTY_NAME").map(|v| v.trim_matches('"').to_owned());
        Self {
            cpu: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            cores,
            memory_bytes,
            kernel: non_empty(read("/proc/sys/kernel/osrelease").trim()),
            os: non_empty(os.as_deref().unwrap_or_default()),
            date: utc_minute(SystemTime::now()),
        }
    }
}

fn non_empty(s: &str) -> String {
    if s.is_empty() {
        "unknown".into()
    } else {
        s.to_owned()
    }
}

/// The value after `key` and a separator (`:` in /proc files, `=` in os-release).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?;
        let rest = rest.trim_start_matches([' ', '\t']);
        rest.strip_prefix(':')
            .or_else(|| rest.strip_prefix('='))
            .map(str::trim)
    })
}

/// The CPU model from `/proc/cpuinfo` (x86 `model name`, else the ARM/RISC-V spellings).
fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware", "cpu model", "uarch"]
        .iter()
        .find_map(|k| field(cpuinfo, k).filter(|v| !v.is_empty()))
        .map(str::to_owned)
}

/// `t` as "YYYY-MM-DD HH:MM UTC".
pub fn utc_minute(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A short description of `bin`'s version: the first line `--version` prints.
pub fn version_of(bin: &Path) -> Option<String> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(
            utc_minute(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14 22:13 UTC"
        );
    }

    #[test]
    fn fields() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            field(os, "PRETTY_NAME"),
            Some("\"Debian GNU/Linux 12 (bookworm)\"")
        );
        assert_eq!(
            field("MemTotal:  24684092 kB\n", "MemTotal"),
            Some("24684092 kB")
        );
    }
}
