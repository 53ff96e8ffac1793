/**
 * Types of the JSON the server sends: the Socket.IO frames and REST answers of web/PROTOCOL.md,
 * and the agent's HostInfo / Snapshot messages (proto/smon/v1/snapshot.proto) as JSON, with the
 * field names of the .proto. Optional proto fields, and metrics a host has not reported yet, are
 * `null`. Bytes are bytes, percentages 0-100, times Unix milliseconds, durations seconds.
 */

/** Host status, as the server decides it. */
export type HostStatus = "pending" | "up" | "stale" | "down";

/** One GPU, as summarised in a HostRow. */
export interface GpuSummary {
  index: number;
  /** What identifies the GPU (its index moves when a GPU before it goes missing). */
  uuid: string;
  name: string;
  /** Why the GPU could not be read (in full); absent when it was. */
  error?: string;
  /** MIG instances in use (MIG GPUs report no utilisation); absent without MIG. */
  active_instances?: number;
  util_percent: number | null;
  mem_used_bytes: number | null;
  mem_total_bytes: number | null;
}

/** One row of the home page (PROTOCOL.md "HostRow"). */
export interface HostRow {
  /** `"<cluster>:<host>"`. */
  id: string;
  cluster: string;
  name: string;
  address: string;
  tags: string[];
  status: HostStatus;
  status_since_ms: number;
  /** When the last sample arrived (server clock). */
  last_seen_ms: number | null;
  /** When the agent took the last sample (agent clock); the clock of `History.t`. */
  sample_unix_ms: number | null;
  /** Text of the last failure, if any. */
  last_error: string | null;
  hostname: string | null;
  os: string | null;
  kernel: string | null;
  cpu_cores: number | null;
  uptime_s: number | null;
  /** One decimal. */
  cpu_percent: number | null;
  /** Load average over 1, 5, 15 minutes, two decimals. */
  load: [number, number, number] | number[] | null;
  mem_percent: number | null;
  mem_used_bytes: number | null;
  mem_total_bytes: number | null;
  swap_percent: number | null;
  /** 0: the host has no swap. */
  swap_total_bytes: number | null;
  disk_max_percent: number | null;
  disk_max_mount: string | null;
  net_rx_bytes_per_s: number | null;
  net_tx_bytes_per_s: number | null;
  /** Bytes read and written per second, all filesystems. */
  disk_read_bytes_per_s: number | null;
  disk_write_bytes_per_s: number | null;
  /** The hottest temperature sensor, whole °C (null: no sensors). */
  temp_max_celsius: number | null;
  gpus: GpuSummary[] | null;
  users: number | null;
  processes: number | null;
  /** Last 60 CPU % samples (one decimal), oldest first. */
  spark: number[] | null;
  /** Alerts firing on this host now (the overview's badge; 0 or absent without alert rules). */
  alerts?: number;
  /** The last reachability check's digest (PROTOCOL.md "Reachability"); absent before the first. */
  reach?: ReachBrief | null;
  /** Containers and services the host reports; absent when it reports none (the agent's
   * `monitor.containers` off, or an agent before containers). */
  containers?: number | null;
  /** The busiest of them by CPU: its name, and its CPU in percent of one core. */
  container_top_name?: string | null;
  container_top_cpu_percent?: number | null;
}

/** The overview's digest of a host's last reachability check. */
export interface ReachBrief {
  /** Whether the host answers pings; null: no ping could be sent. */
  ping_up: boolean | null;
  ping_ms?: number;
  /** Services up, of those checked. */
  up: number;
  total: number;
  /** The names of the services down. */
  down?: string[];
}

/** A check of a host (`POST /api/v1/hosts/{id}/check`, and `result` of `GET .../reach`). */
export interface ReachResult {
  checked_ms: number;
  ping: { up: boolean | null; latency_ms?: number; error?: string; address?: string };
  services: { name: string; kind: "tcp" | "icmp"; port?: number; up: boolean | null; latency_ms?: number; error?: string }[];
}

/** `GET /api/v1/hosts/{id}/reach`. */
export interface ReachAnswer {
  result: ReachResult | null;
  transitions: { at_ms: number; host: string; subject: string; kind: string; up: boolean; error?: string }[];
}

/** Totals of one cluster (PROTOCOL.md "Cluster"). */
export interface Cluster {
  name: string;
  hosts: number;
  up: number;
  stale: number;
  down: number;
  pending: number;
  cpu_cores: number;
  cpu_cores_used: number;
  mem_used_bytes: number;
  mem_total_bytes: number;
  gpus: number;
  /** GPUs at 10 % use or more. */
  gpus_busy: number;
  users: number;
}

/** The host page's chart data, last 15 minutes (PROTOCOL.md "History"). */
export interface History {
  /** Sample times (the agent's clock, like `Snapshot.sample_unix_ms`). */
  t: number[];
  cpu: (number | null)[];
  mem: (number | null)[];
  rx: (number | null)[];
  tx: (number | null)[];
  /** One array per GPU, each with one value per sample. */
  gpu: (number | null)[][];
  /** The GPU of each `gpu` array: its UUID (`#<index>` when unknown), first seen first. */
  gpu_ids: string[];
}

// ---------------------------------------------------------------------------------------------
// smon.v1 messages (snapshot.proto) as JSON.

export interface HostInfo {
  hostname: string;
  os_name: string;
  os_version: string;
  kernel_version: string;
  arch: string;
  boot_unix_ms: number;
  cpu_brand: string;
  cpu_logical_cores: number;
  cpu_physical_cores: number | null;
  memory_total_bytes: number;
  swap_total_bytes: number;
  gpu_names: string[];
  agent_version: string;
  capabilities: string[];
  sample_interval_ms: number;
  /** "nvml", "fake" or "none". */
  gpu_source: string;
  /** Why GPUs are not reported (empty when the source is open). */
  gpu_status: string;
  /** The NVIDIA driver's version, e.g. "550.54.15" (empty without an open GPU source). */
  gpu_driver_version: string;
  /** The newest CUDA version the driver supports, e.g. "12.4" (empty when unknown). */
  cuda_driver_version: string;
}

export interface LoadAverage {
  one: number;
  five: number;
  fifteen: number;
}

export interface Cpu {
  total_percent: number;
  logical_cores: number;
  /** 0 when unknown. */
  frequency_mhz: number;
  per_core_percent: number[];
  per_core_frequency_mhz: number[];
}

export interface Memory {
  total_bytes: number;
  used_bytes: number;
  available_bytes: number;
  used_percent: number;
  swap_total_bytes: number;
  swap_used_bytes: number;
  swap_used_percent: number;
}

export interface Disk {
  device: string;
  fs_type: string;
  mount_point: string;
  total_bytes: number;
  used_bytes: number;
  available_bytes: number;
  used_percent: number;
  read_bytes_per_s: number | null;
  write_bytes_per_s: number | null;
  unresponsive: boolean;
  read_only: boolean;
}

export interface NetInterface {
  name: string;
  rx_bytes_per_s: number;
  tx_bytes_per_s: number;
  rx_total_bytes: number;
  tx_total_bytes: number;
  mac: string;
  addresses: string[];
}

export interface Process {
  pid: number;
  ppid: number;
  user: string;
  name: string;
  cmdline: string;
  /** Percent of ONE core: can exceed 100. */
  cpu_percent: number;
  memory_bytes: number;
  memory_percent: number;
  start_unix_ms: number;
  run_time_s: number;
  state: string;
  /** A kernel thread (PF_KTHREAD, kthreadd included); hidden by default. */
  kernel_thread: boolean;
  /** The container or service it runs in (`Container.id`); "" or absent when none. */
  container?: string;
}

/** One container or service, found by its cgroup (PROTOCOL.md "Containers"). */
export interface Container {
  /** Full container id, unit name ("cron.service") or LXC name. */
  id: string;
  /** Short name: the runtime's, else the id's first 12 hex digits, the unit or LXC name. */
  name: string;
  /** "docker", "podman", "containerd", "crio", "kubernetes", "systemd" or "lxc". */
  kind: string;
  cgroup: string;
  /** Percent of ONE core: can exceed 100. */
  cpu_percent: number;
  /** In use, the page cache apart. */
  memory_bytes: number;
  /** Null when unlimited. */
  memory_limit_bytes: number | null;
  memory_cache_bytes: number;
  io_read_bytes_per_s: number;
  io_write_bytes_per_s: number;
  /** Tasks (processes and threads). */
  pids: number;
  /** Null when it shares the host's network namespace. */
  net_rx_bytes_per_s: number | null;
  net_tx_bytes_per_s: number | null;
  image: string | null;
  state: string | null;
}

/** A host's containers and services: all of them in a detail, the top 5 in a summary. */
export interface Containers {
  count: number;
  /** Busiest first. */
  items: Container[];
  /** Why the cgroups could not be read. */
  error: string | null;
}

export interface Session {
  user: string;
  terminal: string;
  from: string;
  login_unix_ms: number;
  pid: number;
}

export interface GpuProcess {
  pid: number;
  name: string;
  user: string;
  memory_used_bytes: number | null;
  kind: string;
}

export interface Gpu {
  index: number;
  uuid: string;
  name: string;
  utilization_percent: number | null;
  memory_utilization_percent: number | null;
  memory_used_bytes: number | null;
  memory_total_bytes: number | null;
  fan_percent: number | null;
  temperature_celsius: number | null;
  power_mw: number | null;
  power_limit_mw: number | null;
  /** 0 (P0, highest) to 15. */
  performance_state: number | null;
  processes: GpuProcess[];
  /** Why this GPU could not be read (in full); empty otherwise. */
  error: string;
  pci_bus_id: string;
  persistence_mode: boolean | null;
  mig_mode: boolean | null;
  mig_instances: MigInstance[];
  sm_clock_mhz: number | null;
  memory_temperature_celsius: number | null;
  ecc_corrected_errors: number | null;
  ecc_uncorrected_errors: number | null;
  remapped_rows_correctable: number | null;
  remapped_rows_uncorrectable: number | null;
  remapping_pending: boolean | null;
  remapping_failed: boolean | null;
  throttle_reasons: string[];
  /** Why `processes` is left out although asked for; empty otherwise. */
  processes_error: string;
  active_instances: number | null;
  /** Critical Xid errors since the agent began watching; null when not watched. */
  xid_errors: number | null;
  /** The last Xid code, and when the agent saw it (ms since the epoch). */
  last_xid: number | null;
  last_xid_unix_ms: number | null;
}

export interface MigInstance {
  index: number;
  uuid: string;
  name: string;
  memory_used_bytes: number | null;
  memory_total_bytes: number | null;
  utilization_percent: number | null;
  processes: GpuProcess[];
  error: string;
}

export interface Temperature {
  label: string;
  celsius: number | null;
  max_celsius: number | null;
  critical_celsius: number | null;
}

export interface Parts {
  processes: boolean;
  per_core: boolean;
  gpu_processes: boolean;
}

export interface Snapshot {
  seq: number;
  sample_unix_ms: number;
  collect_us: number;
  hostname: string;
  boot_unix_ms: number;
  uptime_s: number;
  load: LoadAverage | null;
  cpu: Cpu | null;
  memory: Memory | null;
  disks: Disk[];
  networks: NetInterface[];
  process_count: number;
  processes: Process[];
  sessions: Session[];
  gpus: Gpu[];
  temperatures: Temperature[];
  parts: Parts | null;
  errors: string[];
  /** When HostInfo last changed (0: not since the agent started). */
  info_unix_ms: number;
  /** When the GPU readings were taken (0 without GPUs). */
  gpus_unix_ms: number;
  /** Containers and services; absent when the agent does not report them. */
  containers?: Containers | null;
}

// ---------------------------------------------------------------------------------------------
// Socket.IO frames.

export interface Hello {
  mode: "app" | "node";
  version: string;
  interval_ms: number;
  server_time_ms: number;
}

/** The full overview, or one part of it: a large fleet's comes in several frames, in order. */
export interface Overview {
  server_time_ms: number;
  /** The last delta this state includes: the next one is `seq + 1`. */
  seq: number;
  /** The layout generation: rows are at the positions of this layout. */
  layout: number;
  /** Every cluster (in the first part). */
  clusters: Cluster[];
  /** Position of this part's first row among all rows. */
  offset: number;
  /** All rows, over every part. */
  total: number;
  hosts: HostRow[];
}

/**
 * Where each field of a row patch goes in `HostRow` (PROTOCOL.md "Overview deltas"): deltas use
 * short keys, the bulk of what every browser on the overview receives each interval. `i` (the
 * row's position in the full overview), `t` (the sample time relative to the delta's
 * `server_time_ms`), `gu`/`gm` (GPU use and memory by list position) and `s` (sparkline points)
 * are handled apart.
 */
export const PATCH_FIELDS = {
  a: "address",
  tg: "tags",
  st: "status",
  ss: "status_since_ms",
  ls: "last_seen_ms",
  er: "last_error",
  hn: "hostname",
  os: "os",
  kn: "kernel",
  cc: "cpu_cores",
  up: "uptime_s",
  c: "cpu_percent",
  l: "load",
  m: "mem_percent",
  mu: "mem_used_bytes",
  mt: "mem_total_bytes",
  sw: "swap_percent",
  swt: "swap_total_bytes",
  d: "disk_max_percent",
  dm: "disk_max_mount",
  rx: "net_rx_bytes_per_s",
  tx: "net_tx_bytes_per_s",
  dr: "disk_read_bytes_per_s",
  dw: "disk_write_bytes_per_s",
  tm: "temp_max_celsius",
  g: "gpus",
  u: "users",
  p: "processes",
  al: "alerts",
  rc: "reach",
  ct: "containers",
  ctn: "container_top_name",
  ctc: "container_top_cpu_percent",
} as const satisfies Record<string, keyof HostRow>;

/**
 * The changed fields of one row: absent means unchanged, `null` means now unknown. A new sample
 * (`t`) appends the row's `cpu_percent` to the sparkline, unless `s` lists the points instead.
 */
export type RowPatch = {
  /** The row's position in the full overview's `hosts`. */
  i: number;
  /** Sample time minus the delta's `server_time_ms`, in ms. */
  t?: number | null;
  /** Sparkline points to append, when not just the new `cpu_percent`. */
  s?: number[];
  /** The use of every GPU (list order), when the list itself did not change. */
  gu?: (number | null)[];
  /** The memory in use of every GPU (list order), likewise. */
  gm?: (number | null)[];
} & { [K in keyof typeof PATCH_FIELDS]?: HostRow[(typeof PATCH_FIELDS)[K]] };

/**
 * Rows added to and removed from the overview (hosts added or removed while the server runs),
 * applied before the rest of the delta: remove the rows at `removed` (positions in the old
 * layout), then insert each of `added` at its position (in the new layout), in order.
 */
export interface LayoutChange {
  /** The layout this makes: one more than the page's, else the page resubscribes. */
  gen: number;
  /** Positions of the rows removed, ascending. */
  removed: number[];
  /** The new rows, whole, by position, ascending. */
  added: { i: number; row: HostRow }[];
  /** Every cluster's name, in order, when the set of clusters changed. */
  clusters?: string[];
}

export interface OverviewDelta {
  server_time_ms: number;
  /** Consecutive: a gap means a delta was missed, and the page resubscribes. */
  seq: number;
  /** Rows added or removed; absent when the layout did not change. */
  layout?: LayoutChange;
  /** The clusters whose totals changed, new ones included. */
  clusters: Cluster[];
  /** Changed rows: the position (after `layout`) and the fields that changed. */
  hosts: RowPatch[];
}

/** A host page's host was removed from the fleet. */
export interface HostRemoved {
  server_time_ms: number;
  id: string;
}

export interface HostFrame {
  server_time_ms: number;
  host: HostRow;
  info: HostInfo | null;
  detail: Snapshot | null;
  history: History;
}

export interface HostUpdate {
  server_time_ms: number;
  host: HostRow;
  detail: Snapshot | null;
}

/** Payload of `subscribe` / `unsubscribe`. */
export type Room = { room: "overview" } | { room: "host"; id: string };

/** Answer to `subscribe` / `unsubscribe`. */
export interface Ack {
  ok: boolean;
  error?: string;
}

/** Server -> client events. */
export interface ServerEvents {
  hello: (m: Hello) => void;
  overview: (m: Overview) => void;
  overview_delta: (m: OverviewDelta) => void;
  host: (m: HostFrame) => void;
  host_update: (m: HostUpdate) => void;
  host_removed: (m: HostRemoved) => void;
}

/** Client -> server events. */
export interface ClientEvents {
  subscribe: (room: Room, ack: (a: Ack) => void) => void;
  unsubscribe: (room: Room, ack: (a: Ack) => void) => void;
}

// ---- History (PROTOCOL.md "History"; api/src/history.rs) ----

/** The stored resolution that answered a series query. */
export type Tier = "raw" | "minute" | "hour";

/** One stored series, aligned with `SeriesAnswer.t`; `null` where nothing was stored. */
export interface StoredSeries {
  metric: string;
  /** Mount, interface, sensor or GPU index; absent when the metric has none. */
  label?: string;
  avg: (number | null)[];
  min: (number | null)[];
  max: (number | null)[];
}

/** `GET /api/v1/hosts/{id}/history` and `/api/v1/clusters/{name}/history`. */
export interface SeriesAnswer {
  of: string;
  from: number;
  to: number;
  tier: Tier;
  step_ms: number;
  t: number[];
  series: StoredSeries[];
}

/** A stored process (top by CPU or memory at a minute). */
export interface ProcessAt {
  pid: number;
  name: string;
  /** Empty when hidden from the caller. */
  user: string;
  /** Empty when hidden from the caller. */
  cmdline: string;
  cpu_percent: number;
  memory_bytes: number;
}

/** A stored process on a GPU. */
export interface GpuProcessAt {
  /** The GPU's index at that minute. */
  gpu: number;
  /** The GPU's UUID (a MIG instance's, for a process on one). */
  gpu_uuid: string;
  /** The physical GPU's UUID (the MIG instance's parent); empty for rows stored before UUIDs. */
  parent_uuid: string;
  pid: number;
  name: string;
  user: string;
  memory_bytes: number | null;
}

/** `GET /api/v1/hosts/{id}/processes?at=`. */
export interface ProcessesAnswer {
  host: string;
  /** The minute answered; null when nothing is stored near. */
  at: number | null;
  top_cpu: ProcessAt[];
  top_memory: ProcessAt[];
  gpu: GpuProcessAt[];
}

export type UsageBy = "user" | "host" | "gpu";

/** `GET /api/v1/gpus/usage`. */
export interface GpuUsageAnswer {
  from: number;
  to: number;
  by: UsageBy;
  rows: { key: string; gpu_hours: number; gpu_memory_gib_hours: number; processes: number }[];
}

/** `GET /api/v1/admin/storage`. */
export interface StorageAnswer {
  path: string;
  bytes: number;
  tiers: { name: string; retention_s: number; bytes: number; oldest_ms: number | null }[];
  write_error: string | null;
  queued: number;
  remote_write: { url: string; queued: number; lag_s: number; sent: number; dropped: number; last_error: string | null }[];
}

// ---- Alerts (PROTOCOL.md "Alerts"; api/src/alerts.rs) ----

export type Severity = "info" | "warning" | "critical";
export type AlertStatus = "firing" | "resolved";

/** The host an alert is about, and what on it. */
export interface AlertHost {
  /** Host id (`cluster:name`). */
  host: string;
  cluster: string;
  /** A mount point, GPU index or process name; absent when the rule looked at the host. */
  subject?: string;
  /** The value that fired (or cleared) the rule; absent for `host_down`. */
  value?: number;
  /** A sentence about it. */
  detail?: string;
}

/** An alert: one rule on one host and subject. */
export interface Alert {
  id: string;
  rule: string;
  severity: Severity;
  status: AlertStatus;
  host: AlertHost;
  /** When the condition began to hold. */
  started_ms: number;
  /** When it fired (0 while pending). */
  fired_ms: number;
  resolved_ms?: number;
  /** Only present when true. */
  flapping?: boolean;
}

/** Who acknowledged an alert, and when. */
export interface AckInfo {
  by: string;
  at_ms: number;
}

/** An alert firing or pending now (`GET /api/v1/alerts`). */
export interface ActiveAlert extends Alert {
  pending: boolean;
  silenced: boolean;
  ack?: AckInfo;
  /** Since `fired_ms` (since `started_ms` when pending), seconds. */
  duration_s: number;
}

/** `GET /api/v1/alerts`. */
export interface AlertsAnswer {
  server_time_ms: number;
  alerts: ActiveAlert[];
}

/** One firing or resolution of the alert history. */
export interface AlertEvent {
  seq: number;
  at_ms: number;
  alert: Alert;
}

/** `GET /api/v1/alerts/history`. */
export interface AlertHistoryAnswer {
  from: number;
  to: number;
  events: AlertEvent[];
  truncated: boolean;
}

/** A rule, as `alerts.rules[]` items and the rule editor write it. */
export interface RuleSpec {
  name: string;
  when: string;
  for_s?: number;
  cluster?: string;
  host?: string;
  tag?: string;
  severity?: Severity;
  clear?: number;
  repeat_s?: number;
  notify?: string[];
  within_h?: number;
  idle_min?: number;
  process?: string;
  group_wait_s?: number;
}

/** Where a rule or silence comes from: the config (read-only) or the UI. */
export type Source = "config" | "ui";

/** `GET /api/v1/alerts/rules` item. */
export interface RuleEntry {
  source: Source;
  rule: RuleSpec;
  updated_by?: string;
  updated_ms?: number;
  /** Alerts of this rule firing now. */
  firing: number;
}

/** A recurring maintenance window. */
export interface WindowSpec {
  /** `mon` ... `sun`; every day when empty. */
  days: string[];
  start: string;
  end: string;
  timezone?: string;
}

/** `POST /api/v1/alerts/silences` body. */
export interface NewSilence {
  rule?: string;
  host?: string;
  cluster?: string;
  tag?: string;
  starts_ms?: number;
  duration_s?: number;
  ends_ms?: number;
  window?: WindowSpec;
  comment: string;
}

/** `GET /api/v1/alerts/silences` item. */
export interface SilenceEntry {
  id: string;
  source: Source;
  rule?: string;
  host?: string;
  cluster?: string;
  tag?: string;
  starts_ms?: number;
  ends_ms?: number;
  window?: WindowSpec;
  created_by: string;
  comment: string;
  /** In force now. */
  active: boolean;
}

/** `GET /api/v1/alerts/channels` item: never a secret. */
export interface ChannelEntry {
  name: string;
  type: string;
  /** `config`: `alerts.channels` of config_app.json (read-only); `ui`: made by an admin here. */
  source: Source;
  /** Who made or last changed a UI channel (absent for config channels). */
  updated_by?: string;
  updated_ms?: number;
  /** Where it sends, without secrets. */
  target: string;
  secret_set: boolean;
  rate_limit: { max: number; per_s: number };
  max_age_s: number;
  custom_templates: boolean;
  sent: number;
  failed: number;
  dropped: number;
  queued: number;
  last_error?: string;
  last_error_ms?: number;
  last_success_ms?: number;
}

/**
 * `POST /api/v1/alerts/channels` body (a channel as an `alerts.channels[]` item, secrets
 * inline), or `PUT /api/v1/alerts/channels/{name}` body (only the keys to change; `null`
 * removes one).
 */
export type ChannelSpec = Record<string, unknown>;

/** One record of `GET /api/v1/audit` (`smon_api::audit::AuditEntry`). */
export interface AuditEntry {
  id: number;
  at_ms: number;
  actor: string;
  client?: string;
  action: string;
  target?: string;
  role?: string;
  hosts?: string[];
  outcome: string;
  results?: unknown;
}

/** Wake-on-LAN settings of an inventory host (`wol` in `config_app.json`). */
export interface WolSpec {
  broadcast?: string;
  port?: number;
  via?: string;
}

/** A checked service of an inventory host. */
export interface ServiceSpec {
  name: string;
  port?: number;
  type?: "tcp" | "icmp";
}

/** `GET /api/v1/inventory/hosts` item (docs/protocol-inventory.md): never a token. */
export interface InventoryHost {
  id: string;
  cluster: string;
  name: string;
  source: Source;
  agent: boolean;
  address: string | null;
  has_token: boolean;
  has_control_token: boolean;
  ip: string | null;
  mac: string | null;
  wol: WolSpec | null;
  tags: string[];
  services: ServiceSpec[];
  created_by?: string;
  created_ms?: number;
  updated_by?: string;
  updated_ms?: number;
}

/** `POST /api/v1/inventory/hosts` and `PUT .../{id}` body. */
export interface HostInput {
  cluster: string;
  name: string;
  address?: string;
  token?: string;
  ip?: string;
  mac?: string;
  wol?: WolSpec;
  tags: string[];
  services: ServiceSpec[];
  control_token?: string;
}

/** `GET /api/v1/inventory/clusters` item. */
export interface InventoryCluster {
  name: string;
  source: Source;
  hosts: number;
  created_by?: string;
  created_ms?: number;
}
