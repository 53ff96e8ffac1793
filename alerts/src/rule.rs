//! Alert rules: the `alerts.rules[]` items as admins write them (config file or rule editor,
//! stored as JSON), the condition language of `when`, and their validation into [`Rule`]s the
//! engine runs. Every problem names its field path (`alerts.rules[2].when`), quotes the bad
//! value and says what is allowed.

use smon_api::alerts::Severity;
use smon_runtime::config::FieldError;

/// The metrics a threshold rule can name: the overview's numbers, under the names the history
/// stores them (`smon-history`'s `series::METRICS`), so a rule, a chart and a query agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// CPU use of all cores, 0-100.
    CpuPercent,
    /// Memory in use (total minus available), 0-100.
    MemPercent,
    /// Swap in use, 0-100 (0 without swap).
    SwapPercent,
    /// 1-minute load average.
    Load1,
    /// 5-minute load average.
    Load5,
    /// 15-minute load average.
    Load15,
    /// A filesystem's use as `df` shows it, 0-100 (one per mount).
    DiskPercent,
    /// A GPU's core temperature (one per GPU).
    GpuTemperatureCelsius,
    /// A GPU's memory in use, 0-100 (one per GPU).
    GpuMemoryPercent,
    /// A GPU's power draw in percent of its enforced limit (one per GPU).
    GpuPowerPercent,
    /// A GPU's use, 0-100 (one per GPU).
    GpuUtilPercent,
    /// A GPU's memory (HBM) temperature, °C (one per GPU).
    GpuMemoryTemperatureCelsius,
    /// A GPU's uncorrected ECC errors since the driver loaded (volatile; one per GPU).
    GpuEccUncorrectedErrors,
    /// A GPU's rows remapped after uncorrectable errors (one per GPU).
    GpuRemappedRowsUncorrectable,
    /// Critical Xid errors of a GPU since the agent began watching (one per GPU).
    GpuXidErrors,
    /// How many throttle reasons a GPU reports now, idle and application clocks left out
    /// (one per GPU; 0 when it runs free).
    GpuThrottleReasons,
    /// The hottest temperature sensor, °C, whole degrees.
    TempMaxCelsius,
    /// Bytes received per second, all interfaces.
    NetRxBytesPerS,
    /// Bytes sent per second, all interfaces.
    NetTxBytesPerS,
    /// Bytes read per second, all filesystems listed.
    DiskReadBytesPerS,
    /// Bytes written per second, all filesystems listed.
    DiskWriteBytesPerS,
    /// A container's memory in use against its limit, 0-100 (one per container that has a
    /// limit; `Container.memory_bytes / memory_limit_bytes`, the page cache left out).
    ContainerMemoryPercent,
}

impl Metric {
    /// Every metric, in the order the docs list them.
    pub const ALL: [Metric; 22] = [
        Self::CpuPercent,
        Self::MemPercent,
        Self::SwapPercent,
        Self::Load1,
        Self::Load5,
        Self::Load15,
        Self::DiskPercent,
        Self::GpuTemperatureCelsius,
        Self::GpuMemoryPercent,
        Self::GpuPowerPercent,
        Self::GpuUtilPercent,
        Self::GpuMemoryTemperatureCelsius,
        Self::GpuEccUncorrectedErrors,
        Self::GpuRemappedRowsUncorrectable,
        Self::GpuXidErrors,
        Self::GpuThrottleReasons,
        Self::TempMaxCelsius,
        Self::NetRxBytesPerS,
        Self::NetTxBytesPerS,
        Self::DiskReadBytesPerS,
        Self::DiskWriteBytesPerS,
        Self::ContainerMemoryPercent,
    ];

    /// The name in rules (and in the history).
    pub fn name(self) -> &'static str {
        match self {
            Self::CpuPercent => "cpu_percent",
            Self::MemPercent => "mem_percent",
            Self::SwapPercent => "swap_percent",
            Self::Load1 => "load1",
            Self::Load5 => "load5",
            Self::Load15 => "load15",
            Self::DiskPercent => "disk_percent",
            Self::GpuTemperatureCelsius => "gpu_temperature_celsius",
            Self::GpuMemoryPercent => "gpu_memory_percent",
            Self::GpuPowerPercent => "gpu_power_percent",
            Self::GpuUtilPercent => "gpu_util_percent",
            Self::GpuMemoryTemperatureCelsius => "gpu_memory_temperature_celsius",
            Self::GpuEccUncorrectedErrors => "gpu_ecc_uncorrected_errors",
            Self::GpuRemappedRowsUncorrectable => "gpu_remapped_rows_uncorrectable",
            Self::GpuXidErrors => "gpu_xid_errors",
            Self::GpuThrottleReasons => "gpu_throttle_reasons",
            Self::TempMaxCelsius => "temp_max_celsius",
            Self::NetRxBytesPerS => "net_rx_bytes_per_s",
            Self::NetTxBytesPerS => "net_tx_bytes_per_s",
            Self::DiskReadBytesPerS => "disk_read_bytes_per_s",
            Self::DiskWriteBytesPerS => "disk_write_bytes_per_s",
            Self::ContainerMemoryPercent => "container_memory_percent",
        }
    }

    /// The metric called `name`.
    pub fn from_name(name: &str) -> Option<Metric> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// What the label of a per-mount, per-GPU or per-container metric names (`mount`, `gpu`,
    /// `container`: its name), `None` for a host-wide one.
    pub fn label_kind(self) -> Option<&'static str> {
        match self {
            Self::DiskPercent => Some("mount"),
            Self::GpuTemperatureCelsius
            | Self::GpuMemoryPercent
            | Self::GpuPowerPercent
            | Self::GpuUtilPercent
            | Self::GpuMemoryTemperatureCelsius
            | Self::GpuEccUncorrectedErrors
            | Self::GpuRemappedRowsUncorrectable
            | Self::GpuXidErrors
            | Self::GpuThrottleReasons => Some("gpu"),
            Self::ContainerMemoryPercent => Some("container"),
            _ => None,
        }
    }

    /// The unit shown after a value in alert details.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Load1 | Self::Load5 | Self::Load15 => "",
            Self::GpuTemperatureCelsius
            | Self::TempMaxCelsius
            | Self::GpuMemoryTemperatureCelsius => " °C",
            Self::GpuEccUncorrectedErrors
            | Self::GpuRemappedRowsUncorrectable
            | Self::GpuXidErrors
            | Self::GpuThrottleReasons => "",
            Self::NetRxBytesPerS
            | Self::NetTxBytesPerS
            | Self::DiskReadBytesPerS
            | Self::DiskWriteBytesPerS => " B/s",
            _ => " %",
        }
    }
}

/// A comparison of a threshold rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl Op {
    /// Whether `v op threshold` holds.
    #[inline]
    pub fn holds(self, v: f64, threshold: f64) -> bool {
        match self {
            Self::Gt => v > threshold,
            Self::Ge => v >= threshold,
            Self::Lt => v < threshold,
            Self::Le => v <= threshold,
        }
    }

    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
        }
    }

    /// True for `>` and `>=` (the clear threshold then lies below the trigger).
    pub fn upward(self) -> bool {
        matches!(self, Self::Gt | Self::Ge)
    }
}

/// What a rule watches: the parsed `when`, with the fields some conditions need.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The host is down (fires when its state is `down`, resolves when it is `up` again).
    HostDown,
    /// `metric op value`, on every mount/GPU or on the one named by the label.
    Threshold {
        /// The metric.
        metric: Metric,
        /// One mount point or GPU index, or every one when `None`.
        label: Option<String>,
        /// The comparison.
        op: Op,
        /// The trigger threshold.
        value: f64,
        /// The clear threshold (hysteresis): a firing alert resolves only when `metric op
        /// clear` stops holding. Equal to `value` unless the rule sets `clear`.
        clear: f64,
    },
    /// No process called `process` on the host (checked on samples that carry the process
    /// list).
    ProcessMissing {
        /// The process name (short name, or the file name of the command).
        process: String,
    },
    /// A filesystem stopped answering (`Disk.unresponsive`), any mount or the one named.
    Unresponsive {
        /// One mount point, or every one when `None`.
        mount: Option<String>,
    },
    /// The agent's version differs from the expected one (the aggregator's setting
    /// `expected_agent_version`, else the version most of the fleet runs).
    VersionMismatch,
    /// A filesystem will be full within `within_h` hours at the rate of the last hours (a
    /// least-squares line over the use points, like Prometheus' `predict_linear`).
    DiskFullWithin {
        /// One mount point, or every one when `None`.
        mount: Option<String>,
        /// The horizon, hours.
        within_h: f64,
    },
    /// A GPU has memory held by processes but has been idle (utilisation <= 1 %) for
    /// `idle_min` minutes; the alert names the users and PIDs holding it.
    GpuIdleWithMemory {
        /// The idle time, minutes (added to `for_s`).
        idle_min: f64,
    },
    /// A service of the host (its configured `services`, checked by the aggregator's
    /// reachability checker) does not answer, or the host does not answer pings (subject
    /// `ping`): one alert per (host, service) while it is down. Every service and the ping,
    /// or only the one named by the label (`service_down{ssh}`, `service_down{ping}`).
    ServiceDown {
        /// One service name (or `ping`), or every one when `None`.
        service: Option<String>,
    },
    /// A supervisord program of the host is not `RUNNING` (stopped, exited, starting, in
    /// backoff, fatal), from the programs each sample carries: one alert per (host,
    /// `group:name`) while it is not running. Every program, or only the one named by the
    /// label (`program_not_running{web:api}`). Samples whose supervisord could not be read
    /// leave the alerts as they are.
    ProgramNotRunning {
        /// One program, `group:name`, or every one when `None`.
        program: Option<String>,
    },
    /// A supervisord program of the host is `FATAL` (it could not be started: it exited too
    /// quickly `startretries` times, or its command is missing); every program or the one
    /// named (`program_fatal{web:api}`).
    ProgramFatal {
        /// One program, `group:name`, or every one when `None`.
        program: Option<String>,
    },
    /// A declared application (`applications[]`) cannot run as declared: no candidate left,
    /// a start failing, its lost host kept (`on_host_down: keep`). One alert per application,
    /// on the pseudo-host `application/<name>`; every application or the one named
    /// (`application_degraded{web}`). Host scope fields (`cluster`, `host`, `tag`) do not
    /// apply to it.
    ApplicationDegraded {
        /// One application, or every one when `None`.
        application: Option<String>,
    },
    /// A container stopped (checked on samples that carry every container of the host).
    /// Named (`container_down{web}`): no running container of that name (or id) is on the
    /// host, whether or not one was ever seen; it resolves when one runs. Unnamed: a
    /// container (not a systemd service) seen running that is gone from the host's cgroups
    /// or whose runtime state is no longer `running`; it resolves when it is back, or once
    /// it has been gone for [`CONTAINER_FORGET_MS`] (taken as removed on purpose).
    ContainerDown {
        /// One container name or id, or every container seen when `None`.
        name: Option<String>,
    },
}

/// How long an unnamed `container_down` remembers a container that is gone: after this its
/// alert resolves (the container is taken as removed on purpose) and it is forgotten. A
/// container that must run is named in the rule (`container_down{web}`), which never forgets.
pub const CONTAINER_FORGET_MS: u64 = 3_600_000;

impl Condition {
    /// Whether this condition reads the host state rather than samples.
    pub fn is_host_down(&self) -> bool {
        matches!(self, Self::HostDown)
    }

    /// Whether a pending alert of this condition fires when its `for_s` has passed, with no
    /// new observation (host state and reachability change rarely; samples come each
    /// interval).
    pub fn fires_on_clock(&self) -> bool {
        matches!(
            self,
            Self::HostDown | Self::ServiceDown { .. } | Self::ApplicationDegraded { .. }
        )
    }
}

/// One item of `alerts.rules[]`, as written in `config_app.json` or sent by the rule editor
/// (and stored as JSON): the API's [`RuleSpec`](smon_api::alerts::RuleSpec), one type for
/// the config, the REST API and the database.
pub use smon_api::alerts::RuleSpec as RuleConfig;

/// A validated rule, ready for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// What was written.
    pub config: RuleConfig,
    /// The parsed condition.
    pub condition: Condition,
}

impl Rule {
    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The channels this rule notifies: the caller checks that each exists.
    pub fn notify(&self) -> &[String] {
        &self.config.notify
    }

    /// How long the condition must hold before firing, ms (`idle_min` included).
    pub fn for_ms(&self) -> u64 {
        let idle = match self.condition {
            Condition::GpuIdleWithMemory { idle_min } => (idle_min * 60_000.0) as u64,
            _ => 0,
        };
        self.config.for_s.saturating_mul(1000).saturating_add(idle)
    }

    /// Whether the host with this id, cluster and tags is in the rule's scope.
    pub fn in_scope(&self, id: &str, cluster: &str, tags: &[String]) -> bool {
        let c = &self.config;
        if c.cluster.as_deref().is_some_and(|want| want != cluster) {
            return false;
        }
        if let Some(want) = c.host.as_deref() {
            let name = id.split_once(':').map_or(id, |(_, n)| n);
            if want != id && want != name {
                return false;
            }
        }
        if let Some(want) = c.tag.as_deref()
            && !tags.iter().any(|t| t == want)
        {
            return false;
        }
        true
    }

    /// Whether the condition, state and scope are those of `other` (then an edit keeps the
    /// alerts' state: only severity, notify, repeat or grouping changed).
    pub fn same_condition(&self, other: &Rule) -> bool {
        let (a, b) = (&self.config, &other.config);
        self.condition == other.condition
            && a.name == b.name
            && a.for_s == b.for_s
            && a.cluster == b.cluster
            && a.host == b.host
            && a.tag == b.tag
    }

    /// A short digest of what [`Self::same_condition`] compares: saved with exported alerts,
    /// so that an import after the rule changed (config edited while the aggregator was
    /// stopped) knows their state belongs to another condition.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut c = self.config.clone();
        c.severity = Severity::Warning;
        c.notify.clear();
        c.repeat_s = 0;
        c.group_wait_s = None;
        let json = serde_json::to_string(&c).unwrap_or_default();
        let d = Sha256::digest(json.as_bytes());
        d[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether the rule needs the full process list of the hosts in scope.
    pub fn needs_processes(&self) -> bool {
        matches!(self.condition, Condition::ProcessMissing { .. })
    }

    /// Whether the rule needs every container of the hosts in scope (a summary carries only
    /// the top 5 by CPU).
    pub fn needs_containers(&self) -> bool {
        matches!(
            self.condition,
            Condition::ContainerDown { .. }
                | Condition::Threshold {
                    metric: Metric::ContainerMemoryPercent,
                    ..
                }
        )
    }

    /// Whether the rule needs the processes on each GPU of the hosts in scope.
    pub fn needs_gpu_processes(&self) -> bool {
        matches!(self.condition, Condition::GpuIdleWithMemory { .. })
    }
}

const CONDITIONS: &str = "host_down, METRIC OP VALUE (e.g. 'cpu_percent > 90', \
'disk_percent{/var} >= 95'), process_missing, unresponsive, version_mismatch, disk_full_within, \
gpu_idle_with_memory, service_down, program_not_running, program_fatal, \
application_degraded or container_down";

/// Validates `alerts.rules[]` (`path` is the array's field path, e.g. `alerts.rules`): every
/// problem of every rule, or the rules.
pub fn compile_rules(configs: &[RuleConfig], path: &str) -> Result<Vec<Rule>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut rules = Vec::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if let Some(j) = configs[..i].iter().position(|o| o.name == c.name) {
            errors.push(err(
                &at,
                "name",
                &c.name,
                &format!("is the name of {path}[{j}] already; rule names must be unique"),
            ));
        }
        match compile_rule(c, &at) {
            Ok(r) => rules.push(r),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// Checks that every `notify` entry names one of `channels` (`alerts.channels[].name`):
/// the problems, with their field paths (`path` as for [`compile_rules`]).
pub fn check_notify(configs: &[RuleConfig], channels: &[&str], path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        for (j, n) in c.notify.iter().enumerate() {
            if !channels.contains(&n.as_str()) {
                let known = if channels.is_empty() {
                    "none is configured".to_owned()
                } else {
                    channels.join(", ")
                };
                errors.push(err(
                    &format!("{path}[{i}]"),
                    &format!("notify[{j}]"),
                    n,
                    &format!("is not a channel (alerts.channels[].name); channels: {known}"),
                ));
            }
        }
    }
    errors
}

fn err(at: &str, field: &str, value: &str, problem: &str) -> FieldError {
    FieldError {
        field: format!("{at}.{field}"),
        value: value.to_owned(),
        problem: problem.to_owned(),
    }
}

fn missing(at: &str, field: &str, problem: &str) -> FieldError {
    FieldError {
        field: format!("{at}.{field}"),
        value: String::new(),
        problem: problem.to_owned(),
    }
}

/// Validates one rule (`at` is its field path, e.g. `alerts.rules[2]`).
pub fn compile_rule(c: &RuleConfig, at: &str) -> Result<Rule, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name_ok =
        !c.name.trim().is_empty() && c.name.len() <= 100 && !c.name.chars().any(char::is_control);
    if !name_ok {
        errors.push(err(
            at,
            "name",
            &c.name,
            "is not a rule name: 1 to 100 characters, no control characters",
        ));
    }
    for (field, v) in [("cluster", &c.cluster), ("host", &c.host), ("tag", &c.tag)] {
        if let Some(v) = v
            && v.trim().is_empty()
        {
            errors.push(err(
                at,
                field,
                v,
                "is empty; leave the field out to match every host",
            ));
        }
    }
    for (i, n) in c.notify.iter().enumerate() {
        if n.trim().is_empty() {
            errors.push(err(
                at,
                &format!("notify[{i}]"),
                n,
                "is not a channel name (alerts.channels[].name)",
            ));
        }
    }
    if c.for_s > 30 * 86_400 {
        errors.push(err(
            at,
            "for_s",
            &c.for_s.to_string(),
            "is more than 30 days (2592000 s)",
        ));
    }
    let condition = parse_when(c, at, &mut errors);
    // Fields that only some conditions read: a stray one is a mistake worth saying.
    let kind = condition.as_ref();
    let stray = |field: &str, wanted: bool, v: Option<String>, for_what: &str| {
        // Without a condition (`when` is wrong) nothing can be said about the others.
        (!wanted && kind.is_some())
            .then_some(v)
            .flatten()
            .map(|v| err(at, field, &v, &format!("is only read by {for_what} rules")))
    };
    let is = |f: fn(&Condition) -> bool| kind.is_some_and(f);
    errors.extend(stray(
        "clear",
        is(|k| matches!(k, Condition::Threshold { .. })),
        c.clear.map(|v| v.to_string()),
        "threshold (METRIC OP VALUE)",
    ));
    errors.extend(stray(
        "within_h",
        is(|k| matches!(k, Condition::DiskFullWithin { .. })),
        c.within_h.map(|v| v.to_string()),
        "disk_full_within",
    ));
    errors.extend(stray(
        "idle_min",
        is(|k| matches!(k, Condition::GpuIdleWithMemory { .. })),
        c.idle_min.map(|v| v.to_string()),
        "gpu_idle_with_memory",
    ));
    errors.extend(stray(
        "process",
        is(|k| matches!(k, Condition::ProcessMissing { .. })),
        c.process.clone(),
        "process_missing",
    ));
    if let Some(g) = c.group_wait_s
        && g > 3600
    {
        errors.push(err(
            at,
            "group_wait_s",
            &g.to_string(),
            "is more than an hour (3600 s)",
        ));
    }
    match (condition, errors.is_empty()) {
        (Some(condition), true) => Ok(Rule {
            config: c.clone(),
            condition,
        }),
        _ => Err(errors),
    }
}

fn parse_when(c: &RuleConfig, at: &str, errors: &mut Vec<FieldError>) -> Option<Condition> {
    let when = c.when.trim();
    let bad = |problem: String| err(at, "when", &c.when, &problem);
    // A bare word, possibly with a mount label (`unresponsive{/mnt/nfs}`).
    let (word, label) = match split_label(when) {
        Ok(x) => x,
        Err(p) => {
            errors.push(bad(p));
            return None;
        }
    };
    let no_label = |errors: &mut Vec<FieldError>| {
        if label.is_some() {
            errors.push(bad(format!("'{word}' takes no {{label}}")));
        }
    };
    match word {
        "host_down" => {
            no_label(errors);
            Some(Condition::HostDown)
        }
        "version_mismatch" => {
            no_label(errors);
            Some(Condition::VersionMismatch)
        }
        "unresponsive" => Some(Condition::Unresponsive { mount: label }),
        "service_down" => Some(Condition::ServiceDown { service: label }),
        "application_degraded" => Some(Condition::ApplicationDegraded { application: label }),
        "program_not_running" | "program_fatal" => {
            if let Some(l) = &label
                && !l.contains(':')
            {
                errors.push(bad(format!(
                    "names the program '{l}': write it as group:name (supervisorctl status \
                     shows it, e.g. web:api; a program outside a group is name:name)"
                )));
                return None;
            }
            Some(if word == "program_fatal" {
                Condition::ProgramFatal { program: label }
            } else {
                Condition::ProgramNotRunning { program: label }
            })
        }
        "container_down" => Some(Condition::ContainerDown { name: label }),
        "process_missing" => {
            no_label(errors);
            match c.process.as_deref().map(str::trim) {
                Some(p) if !p.is_empty() && !p.contains('/') => Some(Condition::ProcessMissing {
                    process: p.to_owned(),
                }),
                Some(p) => {
                    errors.push(err(
                        at,
                        "process",
                        p,
                        "is not a process name (the short name as `ps -o comm` shows it, no '/')",
                    ));
                    None
                }
                None => {
                    errors.push(missing(
                        at,
                        "process",
                        "is missing: process_missing needs the name of the process that must run",
                    ));
                    None
                }
            }
        }
        "disk_full_within" => match c.within_h {
            Some(h) if h.is_finite() && h > 0.0 && h <= 24.0 * 365.0 => {
                Some(Condition::DiskFullWithin {
                    mount: label,
                    within_h: h,
                })
            }
            Some(h) => {
                errors.push(err(
                    at,
                    "within_h",
                    &h.to_string(),
                    "is not a horizon in hours: more than 0, at most 8760",
                ));
                None
            }
            None => {
                errors.push(missing(
                    at,
                    "within_h",
                    "is missing: disk_full_within needs the horizon in hours",
                ));
                None
            }
        },
        "gpu_idle_with_memory" => {
            no_label(errors);
            match c.idle_min {
                Some(m) if m.is_finite() && m > 0.0 && m <= 7.0 * 1440.0 => {
                    Some(Condition::GpuIdleWithMemory { idle_min: m })
                }
                Some(m) => {
                    errors.push(err(
                        at,
                        "idle_min",
                        &m.to_string(),
                        "is not an idle time in minutes: more than 0, at most 10080 (a week)",
                    ));
                    None
                }
                None => {
                    errors.push(missing(
                        at,
                        "idle_min",
                        "is missing: gpu_idle_with_memory needs the idle time in minutes",
                    ));
                    None
                }
            }
        }
        _ => parse_threshold(c, at, errors),
    }
}

/// `name` or `name{label}` / `name{mount="/var"}`; the rest of the text is left to the caller
/// when it is not a bare word.
fn split_label(s: &str) -> Result<(&str, Option<String>), String> {
    let Some(open) = s.find('{') else {
        return Ok((s, None));
    };
    let Some(close) = s.rfind('}') else {
        return Err("has a '{' without a closing '}'".into());
    };
    if close != s.len() - 1 {
        // Something follows the label (a threshold): not a bare word.
        return Ok((s, None));
    }
    let label = parse_label(&s[open + 1..close])?;
    Ok((s[..open].trim(), Some(label)))
}

/// The inside of `{...}`: `/var`, `"/var"`, `mount="/var"`, `gpu="0"` or `container="web"`.
fn parse_label(inner: &str) -> Result<String, String> {
    let mut v = inner.trim();
    if let Some((k, rest)) = v.split_once('=')
        && matches!(k.trim(), "mount" | "gpu" | "container" | "name")
    {
        v = rest.trim();
    }
    let v = v
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v);
    if v.is_empty() {
        return Err(
            "has an empty {label}: write a mount point ({/var}) or a GPU index ({0})".into(),
        );
    }
    Ok(v.to_owned())
}

fn parse_threshold(c: &RuleConfig, at: &str, errors: &mut Vec<FieldError>) -> Option<Condition> {
    let when = c.when.trim();
    let bad = |problem: String| err(at, "when", &c.when, &problem);
    // The operator: the first of <, >, and an optional '='.
    let Some(pos) = when.find(['<', '>']) else {
        errors.push(bad(format!("is not a condition; one of: {CONDITIONS}")));
        return None;
    };
    let (lhs, rest) = when.split_at(pos);
    let (op, rhs) = if let Some(r) = rest.strip_prefix(">=") {
        (Op::Ge, r)
    } else if let Some(r) = rest.strip_prefix("<=") {
        (Op::Le, r)
    } else if let Some(r) = rest.strip_prefix('>') {
        (Op::Gt, r)
    } else {
        (Op::Lt, &rest[1..])
    };
    let lhs = lhs.trim();
    let (name, label) = match lhs.find('{') {
        Some(i) => {
            let Some(inner) = lhs[i + 1..].strip_suffix('}') else {
                errors.push(bad(
                    "has a '{' without a closing '}' after the metric".into()
                ));
                return None;
            };
            match parse_label(inner) {
                Ok(l) => (lhs[..i].trim(), Some(l)),
                Err(p) => {
                    errors.push(bad(p));
                    return None;
                }
            }
        }
        None => (lhs, None),
    };
    let Some(metric) = Metric::from_name(name) else {
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        errors.push(bad(format!(
            "names no metric '{name}'; metrics: {}",
            names.join(", ")
        )));
        return None;
    };
    if label.is_some() && metric.label_kind().is_none() {
        errors.push(bad(format!(
            "'{name}' is one value per host and takes no {{label}}"
        )));
        return None;
    }
    if let (Some(l), Some("gpu")) = (&label, metric.label_kind())
        && l.parse::<u32>().is_err()
    {
        errors.push(bad(format!("'{l}' is not a GPU index (0, 1, ...)")));
        return None;
    }
    let rhs = rhs.trim();
    let value = match rhs.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        _ => {
            errors.push(bad(format!(
                "'{rhs}' is not a number; write METRIC OP VALUE with OP one of > >= < <="
            )));
            return None;
        }
    };
    let clear = c.clear.unwrap_or(value);
    if !clear.is_finite() {
        errors.push(err(at, "clear", &clear.to_string(), "is not a number"));
        return None;
    }
    if (op.upward() && clear > value) || (!op.upward() && clear < value) {
        let side = if op.upward() { "at most" } else { "at least" };
        errors.push(err(
            at,
            "clear",
            &clear.to_string(),
            &format!(
                "is on the wrong side of the threshold: with '{}' it must be {side} {value}",
                op.as_str()
            ),
        ));
        return None;
    }
    Some(Condition::Threshold {
        metric,
        label,
        op,
        value,
        clear,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cfg(name: &str, when: &str) -> RuleConfig {
        serde_json::from_value(serde_json::json!({"name": name, "when": when})).expect("rule")
    }

    fn one_error(c: &RuleConfig) -> String {
        let e = compile_rules(std::slice::from_ref(c), "alerts.rules").expect_err("invalid");
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].to_string()
    }

    #[test]
    fn program_conditions_parse_with_or_without_a_program() {
        let r = compile_rule(&cfg("p", "program_not_running"), "r").expect("ok");
        assert_eq!(r.condition, Condition::ProgramNotRunning { program: None });
        let r = compile_rule(&cfg("p", "program_fatal{web:api}"), "r").expect("ok");
        assert_eq!(
            r.condition,
            Condition::ProgramFatal {
                program: Some("web:api".into())
            }
        );
        let r = compile_rule(&cfg("a", "application_degraded{web}"), "r").expect("ok");
        assert_eq!(
            r.condition,
            Condition::ApplicationDegraded {
                application: Some("web".into())
            }
        );
        let e = one_error(&cfg("p", "program_fatal{api}"));
        assert!(e.contains("group:name") && e.contains("'api'"), "{e}");
        assert!(one_error(&cfg("p", "program_dead")).contains("program_fatal"));
    }

    #[test]
    fn service_down_parses_with_or_without_a_service() {
        let r = compile_rule(&cfg("s", "service_down"), "r").expect("ok");
        assert_eq!(r.condition, Condition::ServiceDown { service: None });
        let r = compile_rule(&cfg("s", "service_down{ssh}"), "r").expect("ok");
        assert_eq!(
            r.condition,
            Condition::ServiceDown {
                service: Some("ssh".into())
            }
        );
        assert!(one_error(&cfg("s", "service_dwn")).contains("service_down"));
    }

    #[test]
    fn container_conditions_parse_with_or_without_a_name() {
        let r = compile_rule(&cfg("c", "container_down"), "r").expect("ok");
        assert_eq!(r.condition, Condition::ContainerDown { name: None });
        assert!(r.needs_containers() && !r.needs_processes());
        let r = compile_rule(&cfg("c", "container_down{container=\"web\"}"), "r").expect("ok");
        assert_eq!(
            r.condition,
            Condition::ContainerDown {
                name: Some("web".into())
            }
        );
        let r = compile_rule(&cfg("m", "container_memory_percent{db} > 90"), "r").expect("ok");
        assert!(r.needs_containers());
        assert_eq!(
            r.condition,
            Condition::Threshold {
                metric: Metric::ContainerMemoryPercent,
                label: Some("db".into()),
                op: Op::Gt,
                value: 90.0,
                clear: 90.0
            }
        );
        assert!(
            !compile_rule(&cfg("c", "cpu_percent > 9"), "r")
                .expect("ok")
                .needs_containers()
        );
        assert!(one_error(&cfg("c", "container_dwn")).contains("container_down"));
    }

    #[test]
    fn conditions_parse_with_labels_and_defaults() {
        let r = compile_rule(&cfg("d", "disk_percent{mount=\"/var\"} > 90"), "r").expect("ok");
        assert_eq!(
            r.condition,
            Condition::Threshold {
                metric: Metric::DiskPercent,
                label: Some("/var".into()),
                op: Op::Gt,
                value: 90.0,
                clear: 90.0
            }
        );
        assert_eq!(r.config.severity, Severity::Warning);
        let r = compile_rule(&cfg("d", "disk_percent{/home}>=95.5"), "r").expect("ok");
        assert!(
            matches!(r.condition, Condition::Threshold { op: Op::Ge, value, ref label, .. } if value == 95.5 && label.as_deref() == Some("/home"))
        );
        let r = compile_rule(&cfg("l", "load1 < 0.5"), "r").expect("ok");
        assert!(matches!(
            r.condition,
            Condition::Threshold {
                metric: Metric::Load1,
                op: Op::Lt,
                ..
            }
        ));
        let r =
            compile_rule(&cfg("g", "gpu_temperature_celsius{gpu=\"1\"} <= 20"), "r").expect("ok");
        assert!(
            matches!(r.condition, Condition::Threshold { ref label, op: Op::Le, .. } if label.as_deref() == Some("1"))
        );
        assert_eq!(
            compile_rule(&cfg("u", "unresponsive{/mnt/nfs}"), "r")
                .expect("ok")
                .condition,
            Condition::Unresponsive {
                mount: Some("/mnt/nfs".into())
            }
        );
        assert_eq!(
            compile_rule(&cfg("h", " host_down "), "r")
                .expect("ok")
                .condition,
            Condition::HostDown
        );
    }

    #[test]
    fn a_rule_round_trips_through_json_as_the_ui_stores_it() {
        let mut c = cfg("cpu", "cpu_percent > 90");
        c.clear = Some(80.0);
        c.notify = vec!["ops".into()];
        c.severity = Severity::Critical;
        let v = serde_json::to_value(&c).expect("json");
        assert_eq!(v["severity"], "critical");
        assert!(v.get("within_h").is_none());
        let back: RuleConfig = serde_json::from_value(v).expect("back");
        assert_eq!(back, c);
        let e = serde_json::from_value::<RuleConfig>(
            serde_json::json!({"name": "x", "when": "host_down", "for": 3}),
        )
        .expect_err("unknown field");
        assert!(e.to_string().contains("unknown field `for`"), "{e}");
    }

    #[test]
    fn validation_errors_name_the_field_path_and_quote_the_value() {
        let rules = vec![
            cfg("ok", "host_down"),
            cfg("ok", "cpu_percent > 90"),
            cfg("bad", "cpu_prcent > 90"),
        ];
        let e = compile_rules(&rules, "alerts.rules").expect_err("invalid");
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text[0],
            "alerts.rules[1].name: 'ok' is the name of alerts.rules[0] already; rule names must be unique"
        );
        assert!(
            text[1].starts_with(
                "alerts.rules[2].when: 'cpu_prcent > 90' names no metric 'cpu_prcent'; metrics: cpu_percent, mem_percent"
            ),
            "{}",
            text[1]
        );
        assert_eq!(text.len(), 2);

        assert!(
            one_error(&cfg("x", "cpu_percent > lots"))
                .starts_with("alerts.rules[0].when: 'cpu_percent > lots' 'lots' is not a number"),
        );
        assert!(one_error(&cfg("x", "reboot_needed")).starts_with(
            "alerts.rules[0].when: 'reboot_needed' is not a condition; one of: host_down"
        ),);
        assert_eq!(
            one_error(&cfg("x", "cpu_percent{0} > 5")),
            "alerts.rules[0].when: 'cpu_percent{0} > 5' 'cpu_percent' is one value per host and takes no {label}"
        );
        assert_eq!(
            one_error(&cfg("x", "gpu_power_percent{a} > 5")),
            "alerts.rules[0].when: 'gpu_power_percent{a} > 5' 'a' is not a GPU index (0, 1, ...)"
        );
        let mut c = cfg("x", "cpu_percent > 90");
        c.clear = Some(95.0);
        assert_eq!(
            one_error(&c),
            "alerts.rules[0].clear: '95' is on the wrong side of the threshold: with '>' it must be at most 90"
        );
        let mut c = cfg("x", "host_down");
        c.within_h = Some(3.0);
        assert_eq!(
            one_error(&c),
            "alerts.rules[0].within_h: '3' is only read by disk_full_within rules"
        );
        assert_eq!(
            one_error(&cfg("x", "disk_full_within")),
            "alerts.rules[0].within_h: is missing: disk_full_within needs the horizon in hours"
        );
        let mut c = cfg("x", "process_missing");
        c.process = Some("/usr/sbin/nginx".into());
        assert_eq!(
            one_error(&c),
            "alerts.rules[0].process: '/usr/sbin/nginx' is not a process name (the short name as `ps -o comm` shows it, no '/')"
        );
        let mut c = cfg("x", "gpu_idle_with_memory");
        c.idle_min = Some(-1.0);
        assert_eq!(
            one_error(&c),
            "alerts.rules[0].idle_min: '-1' is not an idle time in minutes: more than 0, at most 10080 (a week)"
        );
        let mut c = cfg("x", "host_down");
        c.tag = Some(" ".into());
        assert_eq!(
            one_error(&c),
            "alerts.rules[0].tag: ' ' is empty; leave the field out to match every host"
        );
        // Control characters are escaped when the error is printed.
        assert_eq!(
            one_error(&cfg("x", "load1 >\u{1b}[2J")),
            "alerts.rules[0].when: 'load1 >\\u{1b}[2J' '\\u{1b}[2J' is not a number; write METRIC OP VALUE with OP one of > >= < <="
        );
    }

    #[test]
    fn notify_must_name_configured_channels() {
        let mut a = cfg("a", "host_down");
        a.notify = vec!["ops".into(), "opz".into()];
        let e = check_notify(
            &[cfg("b", "host_down"), a],
            &["ops", "mail"],
            "alerts.rules",
        );
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].to_string(),
            "alerts.rules[1].notify[1]: 'opz' is not a channel (alerts.channels[].name); channels: ops, mail"
        );
    }

    #[test]
    fn scope_matches_cluster_host_and_tag_together() {
        let mut c = cfg("x", "host_down");
        c.cluster = Some("lab".into());
        c.tag = Some("gpu".into());
        let r = compile_rule(&c, "r").expect("ok");
        let tags = vec!["gpu".to_string()];
        assert!(r.in_scope("lab:n1", "lab", &tags));
        assert!(!r.in_scope("web:n1", "web", &tags));
        assert!(!r.in_scope("lab:n1", "lab", &[]));
        let mut c = cfg("x", "host_down");
        c.host = Some("n1".into());
        let r = compile_rule(&c, "r").expect("ok");
        assert!(r.in_scope("lab:n1", "lab", &[]));
        assert!(!r.in_scope("lab:n2", "lab", &[]));
        c.host = Some("web:n1".into());
        let r = compile_rule(&c, "r").expect("ok");
        assert!(!r.in_scope("lab:n1", "lab", &[]));
        assert!(r.in_scope("web:n1", "web", &[]));
    }
}
