/**
 * The home page: every host, grouped by cluster, one collapsible section per cluster with its
 * totals. Rows are DOM nodes keyed by host id.
 *
 * Live updates are cheap at a thousand hosts:
 * - `overview` (first subscribe, resync) gives every row, in parts gathered in order; each
 *   `overview_delta` carries only the changed fields of the changed rows (short keys, rows by
 *   position; a new sample appends its CPU % to the sparkline). Deltas are numbered: after a gap
 *   (a volatile frame lost) the page resubscribes for the full state.
 * - Hosts added or removed while the server runs come as a layout change in a delta (rows
 *   removed by position, new rows whole), applied before its patches: the page follows without
 *   reloading. The table's `data-layout` is the layout generation the page holds.
 * - Frames update the rows' data at once, and the DOM in one `requestAnimationFrame`: a row
 *   writes only the cells whose fields changed, and only while it is on screen (an
 *   IntersectionObserver); a row that scrolls into view catches up then. The row attributes
 *   (`data-status`, `data-sample-ms`) are kept current on every row.
 * - Sorting moves the fewest rows (those off the longest run already in order); filtering
 *   re-checks only rows whose status or names changed.
 * - Past `LARGE_FLEET` hosts clusters start folded (see there): the browser would otherwise lay
 *   out the whole table on every change.
 * - A column picker ("Columns") shows or hides the optional columns (network and disk I/O
 *   rates, the hottest sensor, the process count, and the default ones); the choice is kept in
 *   localStorage (`smon.home.cols`, with the columns that existed then in `smon.home.cols.known`,
 *   so that a default column added later shows up for those who picked columns before). Cells
 *   carry `data-col`; hidden ones the `hidden` attribute.
 * - On a narrow screen (a phone) the rows become two-line cards (app.css): status and name,
 *   then CPU, memory, disk and GPU with their labels, without sideways scrolling.
 * - Hosts whose agent reports containers show their count and the busiest one by CPU
 *   (`containers`, `container_top_name`, `container_top_cpu_percent`; patch keys `ct`, `ctn`,
 *   `ctc`) in the Containers column (`td[data-col="ctr"]` with `data-containers` and
 *   `data-top`), empty for a host that reports none; a phone's card leaves it out.
 * - Served by an agent (node mode, one host), the page opens that host's page instead.
 * - With alerting, a host's row shows the alerts firing on it (`alerts`, patch key `al`) as a
 *   badge linking to the alerts page filtered on the host (`.alert-badge[data-count]`; the row
 *   keeps `data-alerts` current even off screen), and a cluster's header their sum
 *   (`.cluster-alerts[data-count]`), visible while the cluster is folded in a large fleet.
 */
import { GroupActions } from "../components/actions";
import type { Connection } from "../connection";
import { h, setAttr, setClass, setText, setTitle, show } from "../dom";
import { DASH, age, bytesOf, celsius, duration, level, load, num, pct, rate } from "../format";
import { alertsHref, clusterHref, hostHref } from "../router";
import { GpuGlyphs } from "../components/gpu";
import { Meter, setLevel } from "../components/meter";
import { Sparkline } from "../components/sparkline";
import { STATUS_ORDER, setStatus, statusBadge } from "../components/status";
import { PATCH_FIELDS } from "../types";
import type { Ack, Cluster, GpuSummary, HostRow, HostStatus, LayoutChange, Overview, OverviewDelta, Room, RowPatch } from "../types";

type StatusFilter = "all" | "up" | "stale" | "down";

interface Col {
  key: string;
  label: string;
  /** Row fields the sort key reads: a patch of one of them re-sorts the cluster. */
  fields: string[];
  cls?: string;
  sort: (r: HostRow) => number | string;
  desc?: boolean;
  title?: string;
  /** Shown by default (the optional columns are off until picked). */
  byDefault: boolean;
  /** Label on a phone card, before the value (none: not shown on a phone card). */
  phone?: string;
}

const n = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? -1 : v);
const gpuAvg = (r: HostRow) => {
  const u = (r.gpus ?? []).map((g) => g.util_percent).filter((x): x is number => x !== null);
  return u.length ? u.reduce((a, b) => a + b, 0) / u.length : -1;
};

const sum2 = (a: number | null | undefined, b: number | null | undefined) => (a === null || a === undefined) && (b === null || b === undefined) ? -1 : (a ?? 0) + (b ?? 0);

const COLS: Col[] = [
  { key: "status", label: "Status", fields: ["status"], cls: "col-status", sort: (r) => STATUS_ORDER[r.status] ?? 9, byDefault: true },
  { key: "name", label: "Host", fields: ["name"], cls: "col-name", sort: (r) => r.name.toLowerCase(), byDefault: true },
  { key: "os", label: "OS", fields: ["os"], cls: "col-os", sort: (r) => (r.os ?? "").toLowerCase(), byDefault: true },
  { key: "uptime", label: "Uptime", fields: ["uptime_s"], cls: "num col-uptime", sort: (r) => n(r.uptime_s), desc: true, byDefault: true },
  { key: "cpu", label: "CPU", fields: ["cpu_percent"], cls: "col-cpu", sort: (r) => n(r.cpu_percent), desc: true, byDefault: true, phone: "CPU" },
  { key: "load", label: "Load", fields: ["load"], cls: "num col-load", sort: (r) => n(r.load?.[0]), desc: true, title: "Load average: 1, 5, 15 min", byDefault: true },
  { key: "mem", label: "Memory", fields: ["mem_percent"], cls: "col-meter col-mem", sort: (r) => n(r.mem_percent), desc: true, byDefault: true, phone: "Mem" },
  { key: "swap", label: "Swap", fields: ["swap_percent", "swap_total_bytes"], cls: "col-meter col-swap", sort: (r) => (r.swap_total_bytes === 0 ? -1 : n(r.swap_percent)), desc: true, byDefault: true },
  { key: "disk", label: "Disk", fields: ["disk_max_percent"], cls: "col-meter col-disk", sort: (r) => n(r.disk_max_percent), desc: true, title: "Fullest filesystem", byDefault: true, phone: "Disk" },
  { key: "gpu", label: "GPU", fields: ["gpus", "gpu_util"], cls: "col-gpu", sort: gpuAvg, desc: true, title: "Use and memory of each GPU; average use", byDefault: true, phone: "GPU" },
  { key: "ctr", label: "Containers", fields: ["containers", "container_top_cpu_percent"], cls: "col-ctr", sort: (r) => n(r.containers), desc: true, title: "Containers and services; the busiest by CPU (percent of one core)", byDefault: true },
  { key: "net", label: "Network", fields: ["net_rx_bytes_per_s", "net_tx_bytes_per_s"], cls: "num col-io", sort: (r) => sum2(r.net_rx_bytes_per_s, r.net_tx_bytes_per_s), desc: true, title: "Received (↓) and sent (↑) per second, all interfaces", byDefault: false },
  { key: "dio", label: "Disk I/O", fields: ["disk_read_bytes_per_s", "disk_write_bytes_per_s"], cls: "num col-io", sort: (r) => sum2(r.disk_read_bytes_per_s, r.disk_write_bytes_per_s), desc: true, title: "Read (R) and written (W) per second, all filesystems", byDefault: false },
  { key: "temp", label: "Temp", fields: ["temp_max_celsius"], cls: "num col-temp", sort: (r) => n(r.temp_max_celsius), desc: true, title: "The hottest temperature sensor", byDefault: false },
  { key: "procs", label: "Procs", fields: ["processes"], cls: "num col-procs", sort: (r) => n(r.processes), desc: true, title: "Processes", byDefault: false },
  { key: "users", label: "Users", fields: ["users"], cls: "num col-users", sort: (r) => n(r.users), desc: true, title: "Users logged in", byDefault: true },
];

/** Columns always shown (not in the picker). */
const FIXED_COLS = new Set(["status", "name"]);

// View state that survives navigation to a host page and back.
const view = {
  text: "",
  status: "all" as StatusFilter,
  sortKey: "name",
  sortDesc: false,
  /** Clusters the user folded. */
  collapsed: new Set<string>(),
  /** Clusters the user opened in a large fleet, where clusters start folded. */
  expanded: new Set<string>(),
  /** The columns shown. */
  cols: new Set(COLS.filter((c) => c.byDefault).map((c) => c.key)),
};
try {
  const s = JSON.parse(localStorage.getItem("smon.home") ?? "{}") as { sortKey?: string; sortDesc?: boolean; collapsed?: string[]; expanded?: string[] };
  if (s.sortKey && COLS.some((c) => c.key === s.sortKey)) view.sortKey = s.sortKey;
  if (typeof s.sortDesc === "boolean") view.sortDesc = s.sortDesc;
  if (Array.isArray(s.collapsed)) view.collapsed = new Set(s.collapsed);
  if (Array.isArray(s.expanded)) view.expanded = new Set(s.expanded);
} catch {
  /* defaults */
}
try {
  const c = JSON.parse(localStorage.getItem("smon.home.cols") ?? "null") as unknown;
  const k = JSON.parse(localStorage.getItem("smon.home.cols.known") ?? "null") as unknown;
  // A choice saved before the known list was: every column but those added since ("ctr").
  const known = Array.isArray(k) ? k : COLS.map((col) => col.key).filter((key) => key !== "ctr");
  const added = COLS.filter((col) => col.byDefault && !known.includes(col.key)).map((col) => col.key);
  if (Array.isArray(c)) view.cols = new Set([...FIXED_COLS, ...c.filter((key): key is string => typeof key === "string" && COLS.some((col) => col.key === key)), ...added]);
} catch {
  /* defaults */
}
function saveCols(): void {
  try {
    localStorage.setItem("smon.home.cols", JSON.stringify(COLS.filter((c) => view.cols.has(c.key)).map((c) => c.key)));
    localStorage.setItem("smon.home.cols.known", JSON.stringify(COLS.map((c) => c.key)));
  } catch {
    /* not remembered */
  }
}
function saveView(): void {
  try {
    localStorage.setItem("smon.home", JSON.stringify({ sortKey: view.sortKey, sortDesc: view.sortDesc, collapsed: [...view.collapsed], expanded: [...view.expanded] }));
  } catch {
    /* not remembered */
  }
}

/**
 * Past this many hosts, clusters start folded: a browser lays out the whole table whenever a
 * cell changes, and at 10,000 open rows that alone took most of the main thread (the page
 * answered in 0.6 s or worse). A folded cluster still shows its summary; open it with a click,
 * or type in the filter: matches open when there are at most `FILTER_OPENS_AT_MOST` of them.
 */
const LARGE_FLEET = 2000;
const FILTER_OPENS_AT_MOST = 500;

/** Folding state of the page (set by `HomePage`): whether the fleet is large, and whether a
 * filter narrows it to few enough rows to show them all. */
const fold = { large: false, narrowed: false };

/** Whether a cluster's rows are hidden. */
function folded(name: string): boolean {
  if (view.collapsed.has(name)) return true;
  return fold.large && !fold.narrowed && !view.expanded.has(name);
}

/** What a changed field makes a row rewrite (bits of `RowView.dirty`). */
const D_STATUS = 1;
const D_LINK = 2;
const D_OS = 4;
const D_UPTIME = 8;
const D_CPU = 16;
const D_SPARK = 32;
const D_LOAD = 64;
const D_MEM = 128;
const D_SWAP = 256;
const D_DISK = 512;
const D_GPU = 1024;
const D_USERS = 2048;
const D_TAGS = 4096;
const D_NET = 8192;
const D_DIO = 16384;
const D_TEMP = 32768;
const D_PROCS = 65536;
const D_ALERTS = 131072;
const D_REACH = 262144;
const D_CTR = 524288;
const D_ALL = 1048575;

const FIELD_DIRTY: Record<string, number> = {
  address: D_LINK,
  tags: D_TAGS,
  status: D_STATUS,
  status_since_ms: D_STATUS,
  last_error: D_LINK,
  hostname: D_LINK,
  os: D_OS,
  kernel: D_OS,
  uptime_s: D_UPTIME,
  cpu_percent: D_CPU,
  cpu_cores: D_CPU,
  load: D_LOAD,
  mem_percent: D_MEM,
  mem_used_bytes: D_MEM,
  mem_total_bytes: D_MEM,
  swap_percent: D_SWAP,
  swap_total_bytes: D_SWAP,
  net_rx_bytes_per_s: D_NET,
  net_tx_bytes_per_s: D_NET,
  disk_read_bytes_per_s: D_DIO,
  disk_write_bytes_per_s: D_DIO,
  temp_max_celsius: D_TEMP,
  processes: D_PROCS,
  disk_max_percent: D_DISK,
  disk_max_mount: D_DISK,
  gpus: D_GPU,
  users: D_USERS,
  alerts: D_ALERTS,
  reach: D_REACH,
  containers: D_CTR,
  container_top_name: D_CTR,
  container_top_cpu_percent: D_CTR,
};

/** What each column's cells are rewritten for (D_* bits). */
const COL_DIRTY: Record<string, number> = {
  os: D_OS,
  uptime: D_UPTIME,
  cpu: D_CPU | D_SPARK,
  load: D_LOAD,
  mem: D_MEM,
  swap: D_SWAP,
  disk: D_DISK,
  gpu: D_GPU,
  ctr: D_CTR,
  net: D_NET,
  dio: D_DIO,
  temp: D_TEMP,
  procs: D_PROCS,
  users: D_USERS,
};

/** The D_* bits of the hidden columns: their cells are not written until shown. */
let hiddenDirty = 0;
function updateHiddenDirty(): void {
  hiddenDirty = 0;
  for (const [key, bits] of Object.entries(COL_DIRTY)) if (!view.cols.has(key)) hiddenDirty |= bits;
}
updateHiddenDirty();

/** Fields the text filter and the status filter read. */
const FILTER_FIELDS = new Set(["status", "hostname", "os", "tags"]);

/** Sparkline points a row keeps (as the server). */
const SPARK_POINTS = 60;

/** One host row and its cells. */
class RowView {
  readonly tr: HTMLTableRowElement;
  row: HostRow;
  /** On screen (or near): cells are written; otherwise they wait in `dirty`. */
  visible = false;
  /** Shown by the filter. */
  shown = true;
  /** The alert count its cluster's header last summed (`HomePage.flush`). */
  alertsCounted = 0;
  /** Cells to rewrite (D_* bits). */
  dirty = D_ALL;
  /** The filter's haystack, lowercase. */
  private hay = "";
  /** `data-sample-ms` as last written. */
  private sampleAttr: string | null = null;
  private readonly badge = statusBadge();
  private readonly since = h("span", { class: "since" });
  private readonly link = h("a", { class: "host-link" });
  private readonly tags = h("span", { class: "tags" });
  private readonly dataAge = h("span", { class: "data-age" });
  /** Alerts firing on the host (`alerts`, patch key `al`): a link to them, hidden at 0. */
  private readonly alertBadge = h("a", { class: "alert-badge", hidden: true });
  /** The last reachability check (`reach`, patch key `rc`): services down in red, the ping's time. */
  private readonly reachDown = h("span", { class: "reach-mark", hidden: true });
  private readonly pingTime = h("span", { class: "ping-time", hidden: true });
  private readonly os: HTMLTableCellElement;
  private readonly uptime: HTMLTableCellElement;
  private readonly cpuText = h("span", { class: "cpu-value" });
  private readonly cpuCell: HTMLTableCellElement;
  private readonly spark = new Sparkline();
  private readonly load: HTMLTableCellElement;
  private readonly mem = new Meter();
  private readonly swap = new Meter();
  private readonly disk = new Meter();
  private readonly gpus = new GpuGlyphs();
  private readonly users: HTMLTableCellElement;
  private readonly net = twoLines("↓", "↑");
  private readonly dio = twoLines("R", "W");
  private readonly temp: HTMLTableCellElement;
  private readonly procs: HTMLTableCellElement;
  /** Containers: the count over the busiest one's name and CPU. */
  private readonly ctrCell: HTMLTableCellElement;
  private readonly ctrCount = h("span", { class: "ctr-count" });
  private readonly ctrName = h("span", { class: "ctr-name" });
  private readonly ctrCpu = h("span", { class: "ctr-cpu" });
  /** The cells by column key, in the order of `COLS`. */
  readonly cells = new Map<string, HTMLTableCellElement>();

  constructor(row: HostRow) {
    this.row = { ...row, spark: row.spark ? row.spark.slice(-SPARK_POINTS) : [] };
    const cell = (key: string, ...kids: Node[]) => {
      const c = COLS.find((x) => x.key === key) as Col;
      const td = h("td", { class: c.cls ?? null, "data-col": key, "data-label": c.phone ?? null }, ...kids);
      td.hidden = !view.cols.has(key);
      this.cells.set(key, td);
      return td;
    };
    cell("status", h("span", { class: "status-cell" }, this.badge, this.since));
    cell("name", h("span", { class: "name-line" }, this.link, this.alertBadge, this.reachDown, this.pingTime, this.tags), this.dataAge);
    this.os = cell("os");
    this.os.classList.add("ellipsis");
    this.uptime = cell("uptime");
    this.cpuCell = cell("cpu", this.spark.el, this.cpuText);
    setAttr(this.cpuCell, "data-field", "cpu");
    this.load = cell("load");
    cell("mem", this.mem.el);
    cell("swap", this.swap.el);
    cell("disk", this.disk.el);
    cell("gpu", this.gpus.el);
    this.ctrCell = cell("ctr", h("span", { class: "ctr2" }, this.ctrCount, h("span", { class: "ctr-top" }, this.ctrName, this.ctrCpu)));
    cell("net", this.net.el);
    cell("dio", this.dio.el);
    this.temp = cell("temp");
    this.procs = cell("procs");
    this.users = cell("users");
    this.tr = h("tr", { class: "host", "data-host-id": row.id }, ...COLS.map((c) => this.cells.get(c.key) as HTMLTableCellElement));
    this.link.href = hostHref(row.id);
    this.alertBadge.href = alertsHref({ host: row.id });
    this.updateHay();
    // The first paint writes every cell; later ones only what changed, on screen.
    this.attrs();
    this.render();
  }

  private updateHay(): void {
    const r = this.row;
    this.hay = [r.id, r.name, r.hostname ?? "", r.os ?? "", ...r.tags].join(" ").toLowerCase();
  }

  /** Replaces the whole row (full state). Returns whether filter fields changed. */
  set(r: HostRow): boolean {
    const old = this.row;
    const refilter = old.status !== r.status || old.hostname !== r.hostname || old.os !== r.os || (old.tags ?? []).join("\n") !== (r.tags ?? []).join("\n");
    this.row = { ...r, spark: r.spark ? r.spark.slice(-SPARK_POINTS) : [] };
    this.dirty = D_ALL;
    if (refilter) this.updateHay();
    return refilter;
  }

  /**
   * Applies the changed fields of a delta sent at `base` (its `server_time_ms`); the DOM waits
   * for `flush`. Returns whether the row must be filtered again, and whether a field of
   * `sortFields` changed.
   */
  patch(p: RowPatch, base: number, sortFields: readonly string[]): { refilter: boolean; resort: boolean } {
    const r = this.row as unknown as Record<string, unknown>;
    const src = p as unknown as Record<string, unknown>;
    let refilter = false;
    let resort = false;
    for (const k in p) {
      if (k === "i" || k === "s") continue;
      if (k === "t") {
        this.row.sample_unix_ms = typeof p.t === "number" ? base + p.t : null;
        continue;
      }
      if (k === "gu" || k === "gm") {
        const vals = p[k] ?? [];
        const gpus = this.row.gpus ?? [];
        for (let i = 0; i < gpus.length && i < vals.length; i++) {
          const g = gpus[i] as GpuSummary;
          if (k === "gu") g.util_percent = vals[i] ?? null;
          else g.mem_used_bytes = vals[i] ?? null;
        }
        this.dirty |= D_GPU;
        if (sortFields.includes("gpu_util")) resort = true;
        continue;
      }
      const f: string | undefined = PATCH_FIELDS[k as keyof typeof PATCH_FIELDS];
      if (f === undefined) continue; // a field this page does not know
      r[f] = src[k];
      this.dirty |= FIELD_DIRTY[f] ?? 0;
      if (FILTER_FIELDS.has(f)) refilter = true;
      if (sortFields.includes(f)) resort = true;
    }
    // The sparkline: the points listed, or else a new sample's CPU %.
    const cpu = this.row.cpu_percent;
    const add = p.s ?? ("t" in p && cpu !== null && cpu !== undefined ? [cpu] : []);
    if (add.length) {
      const s = this.row.spark ?? (this.row.spark = []);
      for (const v of add) s.push(v);
      if (s.length > SPARK_POINTS) s.splice(0, s.length - SPARK_POINTS);
      this.dirty |= D_SPARK;
    }
    if (refilter) this.updateHay();
    return { refilter, resort };
  }

  /**
   * The row's attributes, kept current on every row, on screen or not (tests and benchmarks
   * read them): the sample time always, the others when their fields changed.
   */
  attrs(): void {
    const r = this.row;
    const sample = r.sample_unix_ms === null || r.sample_unix_ms === undefined ? null : String(r.sample_unix_ms);
    if (sample !== this.sampleAttr) {
      this.sampleAttr = sample;
      setAttr(this.tr, "data-sample-ms", sample);
    }
    if (this.dirty & (D_STATUS | D_GPU)) {
      setAttr(this.tr, "data-status", r.status);
      setAttr(this.tr, "data-gpus", String(r.gpus?.length ?? 0));
      setClass(this.tr, "dim", r.status === "stale" || r.status === "down");
    }
    if (this.dirty & D_ALERTS) setAttr(this.tr, "data-alerts", r.alerts ? String(r.alerts) : null);
  }

  /** Writes the cells whose fields changed (the ages too, at `now`, when the status did). */
  render(now?: number): void {
    // Hidden columns keep their bits until they are shown.
    const d = this.dirty & ~hiddenDirty;
    if (d === 0) return;
    this.dirty &= hiddenDirty;
    const r = this.row;
    if (d & D_STATUS) {
      setStatus(this.badge, r.status);
      // A host without an agent (a printer, a switch) is never polled: not "pending" forever.
      if (r.status === "pending" && r.address === "") setText(this.badge, "no agent");
      setAttr(this.tr, "data-agent", r.address === "" ? "false" : null);
      if (now !== undefined) this.tick(now);
    }
    if (d & D_LINK) {
      setText(this.link, r.name);
      setTitle(this.link, [r.hostname && r.hostname !== r.name ? `hostname ${r.hostname}` : "", r.address, r.last_error ? `last error: ${r.last_error}` : ""].filter(Boolean).join("\n"));
    }
    if (d & D_OS) {
      setText(this.os, r.os ?? DASH);
      setTitle(this.os, r.kernel ? `kernel ${r.kernel}` : "");
    }
    if (d & D_UPTIME) setText(this.uptime, duration(r.uptime_s));
    if (d & D_CPU) {
      setText(this.cpuText, pct(r.cpu_percent));
      setLevel(this.cpuText, r.cpu_percent);
      setTitle(this.cpuCell, r.cpu_cores !== null ? `${r.cpu_cores} logical cores` : "");
    }
    if (d & D_SPARK) this.spark.set(r.spark ?? []);
    if (d & D_LOAD) setText(this.load, load(r.load));
    if (d & D_MEM) this.mem.set(r.mem_percent, "", r.mem_used_bytes !== null ? `${bytesOf(r.mem_used_bytes, r.mem_total_bytes)} in use` : "");
    if (d & D_SWAP) {
      if (r.swap_total_bytes === 0) this.swap.none("no swap", "This host has no swap space");
      else this.swap.set(r.swap_percent);
    }
    if (d & D_NET) this.net.set(rate(r.net_rx_bytes_per_s), rate(r.net_tx_bytes_per_s), "Received / sent per second, all interfaces");
    if (d & D_DIO) this.dio.set(rate(r.disk_read_bytes_per_s), rate(r.disk_write_bytes_per_s), "Read / written per second, all filesystems");
    if (d & D_TEMP) {
      const t = r.temp_max_celsius;
      setText(this.temp, celsius(t));
      const l = level(t, 80, 95);
      setClass(this.temp, "lvl-warn", l === "warn");
      setClass(this.temp, "lvl-crit", l === "crit");
    }
    if (d & D_PROCS) setText(this.procs, num(r.processes));
    if (d & D_DISK) this.disk.set(r.disk_max_percent, r.disk_max_mount ?? "", r.disk_max_mount ? `Fullest filesystem: ${r.disk_max_mount}` : "");
    if (d & D_GPU) this.gpus.set(r.gpus);
    if (d & D_USERS) setText(this.users, num(r.users));
    if (d & D_CTR) {
      const count = r.containers;
      const has = count !== null && count !== undefined;
      const top = has ? (r.container_top_name ?? null) : null;
      const cpu = r.container_top_cpu_percent;
      setText(this.ctrCount, has ? `${count}` : "");
      setText(this.ctrName, top ?? "");
      setText(this.ctrCpu, top !== null ? pct(cpu) : "");
      setAttr(this.ctrCell, "data-containers", has ? String(count) : null);
      setAttr(this.ctrCell, "data-top", top);
      setTitle(this.ctrCell, has ? `${count} container${count === 1 ? "" : "s"} or service${count === 1 ? "" : "s"}${top !== null ? `; the busiest: ${top} at ${pct(cpu)} of one core` : ""}` : "");
    }
    if (d & D_ALERTS) {
      const count = r.alerts ?? 0;
      show(this.alertBadge, count > 0);
      setAttr(this.alertBadge, "data-count", count > 0 ? String(count) : null);
      setText(this.alertBadge, count > 0 ? String(count) : "");
      setTitle(this.alertBadge, count > 0 ? `${count} alert${count === 1 ? "" : "s"} firing on this host` : "");
      setAttr(this.alertBadge, "aria-label", count > 0 ? `${count} alert${count === 1 ? "" : "s"} firing` : null);
    }
    if (d & D_REACH) {
      const rc = r.reach;
      const down = rc?.down ?? [];
      const noPing = rc?.ping_up === false;
      show(this.reachDown, down.length > 0 || noPing);
      const parts = [down.length > 0 ? `${down.length} of ${rc?.total ?? 0} services down` : "", noPing ? "no ping" : ""];
      setText(this.reachDown, parts.filter(Boolean).join(", "));
      setTitle(this.reachDown, down.length > 0 ? `Down: ${down.join(", ")}` : noPing ? "The host does not answer pings" : "");
      const ms = rc?.ping_up ? rc.ping_ms : undefined;
      show(this.pingTime, ms !== undefined);
      setText(this.pingTime, ms !== undefined ? `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms` : "");
      setTitle(this.pingTime, ms !== undefined ? "Ping round trip" : "");
    }
    if (d & D_TAGS) this.tags.replaceChildren(...(r.tags ?? []).map((t) => h("span", { class: "tag" }, t)));
  }

  /** Refreshes the ages (status since, data age) against the server's clock. */
  tick(now: number): void {
    const r = this.row;
    setText(this.since, r.status_since_ms > 0 ? `for ${age(now - r.status_since_ms)}` : "");
    setTitle(this.since, r.status_since_ms > 0 ? `${r.status} since ${new Date(r.status_since_ms).toLocaleString()}` : "");
    const old = r.status === "stale" || r.status === "down";
    setText(this.dataAge, old ? (r.last_seen_ms ? `data ${age(now - r.last_seen_ms)} old` : "no data yet") : "");
  }

  matches(terms: string[], status: StatusFilter): boolean {
    if (status !== "all" && this.row.status !== status) return false;
    return terms.every((t) => this.hay.includes(t));
  }
}

/** Two values on two short lines, each after a mark (e.g. "↓ 1.2 MiB/s" over "↑ 30 KiB/s"). */
function twoLines(markA: string, markB: string) {
  const a = h("span");
  const b = h("span");
  const el = h("span", { class: "io2" }, h("span", null, h("i", null, markA), a), h("span", null, h("i", null, markB), b));
  return {
    el,
    set(va: string, vb: string, title: string): void {
      setText(a, va);
      setText(b, vb);
      setTitle(el, title);
    },
  };
}

/**
 * Indices (into `a`) of a longest strictly increasing subsequence of `a`: the rows that can
 * stay where they are while the others move.
 */
function longestIncreasing(a: number[]): Set<number> {
  const tails: number[] = []; // index into `a` of the smallest tail of each length
  const prev = new Array<number>(a.length).fill(-1);
  for (let i = 0; i < a.length; i++) {
    const v = a[i] as number;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((a[tails[mid] as number] as number) < v) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1] as number;
    tails[lo] = i;
  }
  const keep = new Set<number>();
  for (let i = tails.length ? (tails[tails.length - 1] as number) : -1; i >= 0; i = prev[i] as number) keep.add(i);
  return keep;
}

/** One cluster: its header (totals) and the tbody of its rows. */
class ClusterView {
  readonly head: HTMLTableSectionElement;
  readonly body: HTMLTableSectionElement;
  readonly rows = new Set<RowView>();
  private readonly toggle: HTMLButtonElement;
  private readonly chips: HTMLElement;
  private readonly chipEls: Record<"hosts" | "up" | "stale" | "down" | "pending" | "cpu" | "mem" | "gpu" | "users", HTMLElement>;
  private readonly shownCount = h("span", { class: "muted" });
  /** Alerts firing on the cluster's hosts (the sum of the rows' badges): seen when folded too. */
  private readonly alertChip = h("a", { class: "chip st-down cluster-alerts", href: alertsHref(), title: "Alerts firing on this cluster's hosts", hidden: true });
  dirty = true;

  constructor(
    readonly name: string,
    onToggle: () => void,
  ) {
    this.toggle = h("button", { type: "button", class: "cluster-toggle", "aria-expanded": "true" }, h("i", { class: "chevron", "aria-hidden": "true" }), h("span", { class: "cluster-name" }, name));
    this.toggle.addEventListener("click", () => {
      if (folded(name)) {
        view.collapsed.delete(name);
        view.expanded.add(name);
      } else {
        view.collapsed.add(name);
        view.expanded.delete(name);
      }
      saveView();
      onToggle();
    });
    const chip = (cls: string, title?: string) => h("span", { class: `chip ${cls}`.trim(), title: title ?? null });
    this.chipEls = {
      hosts: chip(""),
      up: chip("st-up"),
      stale: chip("st-stale"),
      down: chip("st-down"),
      pending: chip("st-pending"),
      cpu: chip("", "Cores in use / logical cores"),
      mem: chip("", "Memory in use / total"),
      gpu: chip("", "GPUs at 10 % use or more / all GPUs"),
      users: chip("", "Distinct users logged in"),
    };
    this.chips = h("span", { class: "cluster-chips" }, ...Object.values(this.chipEls), this.alertChip);
    this.head = h(
      "tbody",
      { class: "cluster-head", "data-cluster": name },
      h("tr", null, h("th", { colspan: COLS.length, scope: "rowgroup" }, h("div", { class: "cluster-summary" }, this.toggle, h("a", { class: "cluster-history", href: clusterHref(name), "data-cluster": name, title: `The stored history of cluster ${name}` }, "History"), this.chips, this.shownCount))),
    );
    this.body = h("tbody", { class: "cluster-body", "data-cluster": name });
    this.applyCollapsed();
  }

  /** Folds or opens the rows; `filteredOut`: the filter matches none of them. */
  applyCollapsed(filteredOut = false): void {
    const c = folded(this.name);
    setAttr(this.toggle, "aria-expanded", String(!c));
    show(this.body, !c && !filteredOut);
  }

  setCluster(c: Cluster): void {
    const ch = this.chipEls;
    setText(ch.hosts, `${c.hosts} host${c.hosts === 1 ? "" : "s"}`);
    setText(ch.up, `${c.up} up`);
    setText(ch.stale, `${c.stale} stale`);
    show(ch.stale, c.stale > 0);
    setText(ch.down, `${c.down} down`);
    show(ch.down, c.down > 0);
    setText(ch.pending, `${c.pending} pending`);
    show(ch.pending, c.pending > 0);
    setText(ch.cpu, `CPU ${num(c.cpu_cores_used, c.cpu_cores_used < 10 ? 1 : 0)} / ${c.cpu_cores} cores`);
    setText(ch.mem, `Mem ${bytesOf(c.mem_used_bytes, c.mem_total_bytes)}`);
    setText(ch.gpu, `GPU ${c.gpus_busy} / ${c.gpus} busy`);
    show(ch.gpu, c.gpus > 0);
    setText(ch.users, `${c.users} user${c.users === 1 ? "" : "s"}`);
  }

  /**
   * Puts the rows in the given order, moving only the rows off the longest run already in
   * order (one move when one row's CPU overtook another's, not the whole cluster).
   */
  order(sorted: RowView[]): void {
    const kids = this.body.children;
    let same = kids.length === sorted.length;
    for (let i = 0; same && i < sorted.length; i++) same = kids[i] === sorted[i]?.tr;
    if (same) return;
    const pos = new Map<Element, number>();
    for (let i = 0; i < kids.length; i++) pos.set(kids[i] as Element, i);
    const at = sorted.map((r) => pos.get(r.tr) ?? -1);
    const keep = longestIncreasing(at);
    // From the end: each row that moves goes just before its successor, already in place.
    let next: Element | null = null;
    for (let i = sorted.length - 1; i >= 0; i--) {
      const tr = (sorted[i] as RowView).tr;
      if (!keep.has(i) || (at[i] as number) < 0) this.body.insertBefore(tr, next);
      next = tr;
    }
  }

  /** Sums the alerts of the rows again (a row's count changed, or a row came or went). */
  countAlerts(): void {
    let n = 0;
    for (const rv of this.rows) n += rv.alertsCounted;
    setAttr(this.alertChip, "data-count", n > 0 ? String(n) : null);
    setText(this.alertChip, n > 0 ? `${n} alert${n === 1 ? "" : "s"}` : "");
    show(this.alertChip, n > 0);
  }

  setShown(shown: number, filtering: boolean): void {
    setText(this.shownCount, filtering ? `${shown} shown` : "");
  }
}

export class HomePage {
  readonly el: HTMLElement;
  readonly room: Room = { room: "overview" };
  private readonly conn: Connection;
  private readonly rows = new Map<string, RowView>();
  /** Rows by their position in the overview's layout: deltas name rows so. */
  private byIx: RowView[] = [];
  private destroyed = false;
  /** The parts of a full state gathered so far. */
  private parts: Overview | null = null;
  private readonly byTr = new Map<Element, RowView>();
  private readonly clusters = new Map<string, ClusterView>();
  private readonly table: HTMLTableElement;
  /** Says why clusters are folded in a large fleet. */
  private readonly foldHint: HTMLElement;
  private readonly heads = new Map<string, HTMLTableCellElement>();
  private readonly statusButtons = new Map<StatusFilter, { btn: HTMLButtonElement; count: HTMLElement }>();
  private readonly empty: HTMLElement;
  private readonly loading: HTMLElement;
  private readonly observer: IntersectionObserver | null;
  private loaded = false;
  /** Number of the last delta applied. */
  private seq = 0;
  /** The layout generation the rows' positions belong to. */
  private layout = 0;
  /** Cluster names in the server's order. */
  private clusterOrder: string[] = [];
  /** Deltas that came before the full state they follow (kept a few). */
  private early: OverviewDelta[] = [];
  /** When a resubscribe after a missed delta was asked (0: none pending). */
  private resyncAt = 0;
  /** Rows with cells or attributes to write at the next frame. */
  private readonly dirtyRows = new Set<RowView>();
  private readonly dirtyClusters = new Map<string, Cluster>();
  private refilter = false;
  private frame = 0;
  private picker: HTMLDetailsElement | null = null;
  /** Closes the column picker on a click outside it, or on Escape. */
  private readonly closePicker = (ev: Event) => {
    const p = this.picker;
    if (!p?.open) return;
    if (ev instanceof KeyboardEvent ? ev.key === "Escape" : !(ev.target instanceof Node && p.contains(ev.target))) p.open = false;
  };

  constructor(conn: Connection) {
    this.conn = conn;
    const search = h("input", { type: "search", class: "search", placeholder: "Filter: name, OS, tag…", "aria-label": "Filter hosts", spellcheck: "false", autocomplete: "off" });
    search.value = view.text;
    search.addEventListener("input", () => {
      view.text = search.value;
      this.applyFilter();
    });
    const seg = h("div", { class: "segmented", role: "group", "aria-label": "Status filter" });
    for (const s of ["all", "up", "stale", "down"] as StatusFilter[]) {
      const count = h("span", { class: "count" });
      const btn = h("button", { type: "button", class: `seg st-${s}`, "aria-pressed": String(view.status === s) }, s === "all" ? "All" : s[0]?.toUpperCase() + s.slice(1), count);
      btn.addEventListener("click", () => {
        view.status = s;
        for (const [k, b] of this.statusButtons) setAttr(b.btn, "aria-pressed", String(k === s));
        this.applyFilter();
      });
      this.statusButtons.set(s, { btn, count });
      seg.append(btn);
    }
    const headRow = h("tr");
    for (const c of COLS) {
      const btn = h("button", { type: "button", class: "sort" }, c.label);
      btn.addEventListener("click", () => this.sortBy(c.key));
      const th = h("th", { scope: "col", class: c.cls ?? null, title: c.title ?? null, "data-col": c.key }, btn);
      th.hidden = !view.cols.has(c.key);
      this.heads.set(c.key, th);
      headRow.append(th);
    }
    // The column picker: a <details> menu of checkboxes (no script needed to open it).
    const menu = h("div", { class: "col-menu", role: "group", "aria-label": "Columns shown" });
    for (const c of COLS) {
      if (FIXED_COLS.has(c.key)) continue;
      const box = h("input", { type: "checkbox", "data-col": c.key });
      box.checked = view.cols.has(c.key);
      box.addEventListener("change", () => {
        if (box.checked) view.cols.add(c.key);
        else view.cols.delete(c.key);
        saveCols();
        this.applyCols();
      });
      menu.append(h("label", { class: "col-choice", title: c.title ?? null }, box, c.label));
    }
    const picker = h("details", { class: "col-picker", id: "col-picker" }, h("summary", { class: "btn" }, "Columns"), menu);
    this.picker = picker;
    document.addEventListener("click", this.closePicker);
    document.addEventListener("keydown", this.closePicker);
    this.table = h("table", { class: "data hosts", id: "hosts" }, h("thead", null, headRow));
    this.empty = h("p", { class: "empty-state", hidden: true });
    this.foldHint = h("p", { class: "fold-hint muted", hidden: true });
    this.loading = h("p", { class: "empty-state" }, "Waiting for the server…");
    // Wake, reboot or shut down a cluster or a tag: admins of the aggregator only.
    const group =
      conn.hello?.mode === "node"
        ? null
        : new GroupActions(() => [...this.rows.values()].map((v) => ({ id: v.row.id, cluster: v.row.cluster, tags: v.row.tags ?? [], shown: v.shown })));
    this.el = h(
      "div",
      { class: "page home" },
      h("div", { class: "toolbar" }, search, seg, picker, group?.el),
      this.foldHint,
      h("div", { class: "table-wrap hosts-wrap" }, this.table),
      this.empty,
      this.loading,
    );
    // Rows off screen (a margin aside) skip their cell writes until they come into view.
    this.observer =
      typeof IntersectionObserver === "function"
        ? new IntersectionObserver((entries) => this.onVisibility(entries), { rootMargin: "400px 0px" })
        : null;
    this.markSort();
  }

  /** Shows the picked columns, hides the others (header and every row). */
  private applyCols(): void {
    updateHiddenDirty();
    for (const [key, th] of this.heads) th.hidden = !view.cols.has(key);
    for (const rv of this.rows.values()) {
      for (const [key, td] of rv.cells) {
        const hide = !view.cols.has(key);
        if (td.hidden !== hide) td.hidden = hide;
      }
      // Cells shown now catch up with what they skipped while hidden.
      if (rv.dirty & ~hiddenDirty) this.dirtyRows.add(rv);
    }
    this.flush();
  }

  private onVisibility(entries: IntersectionObserverEntry[]): void {
    const now = this.conn.serverNow();
    for (const e of entries) {
      const rv = this.byTr.get(e.target);
      if (!rv) continue;
      rv.visible = e.isIntersecting;
      if (rv.visible) {
        rv.render();
        rv.tick(now);
      }
    }
  }

  /**
   * A part of the full state (first subscribe and every resync): parts are gathered, in order,
   * until they hold every row. A part that does not follow (another state began, or one was
   * lost) drops what was gathered.
   */
  onOverview(m: Overview): void {
    const offset = m.offset ?? 0;
    const total = m.total ?? m.hosts.length;
    if (offset === 0) this.parts = { ...m, hosts: [...m.hosts] };
    else if (this.parts && this.parts.seq === m.seq && this.parts.hosts.length === offset) {
      for (const r of m.hosts) this.parts.hosts.push(r);
    } else {
      this.parts = null;
      return;
    }
    if (this.parts.hosts.length < total) return;
    const whole = this.parts;
    this.parts = null;
    this.applyOverview(whole);
  }

  /** The whole state: patch everything, drop rows not listed. */
  private applyOverview(m: Overview): void {
    const keep = new Set(m.hosts.map((r) => r.id));
    for (const [id, rv] of this.rows) if (!keep.has(id)) this.dropRow(rv);
    this.byIx = [];
    for (const r of m.hosts) {
      let rv = this.rows.get(r.id);
      if (rv) {
        if (rv.set(r)) this.refilter = true;
        this.dirtyRows.add(rv);
      } else rv = this.add(r);
      this.byIx.push(rv);
      const cv = this.clusters.get(r.cluster);
      if (cv) cv.dirty = true;
    }
    for (const c of m.clusters) this.dirtyClusters.set(c.name, c);
    this.clusterOrder = m.clusters.map((c) => c.name);
    this.dropEmptyClusters();
    this.orderClusters();
    this.seq = m.seq;
    this.setLayout(m.layout ?? 0);
    this.loaded = true;
    this.resyncAt = 0;
    this.refilter = true;
    show(this.loading, false);
    // The agent's single-host view: its one host's page is the page to open.
    const only = m.hosts.length === 1 ? m.hosts[0] : undefined;
    if (this.conn.hello?.mode === "node" && only) {
      location.replace(hostHref(only.id));
      return;
    }
    // Deltas that overtook this state.
    const early = this.early.filter((d) => d.seq > m.seq).sort((a, b) => a.seq - b.seq);
    this.early = [];
    for (const d of early) this.onDelta(d);
    this.flush();
    this.tick();
  }

  onDelta(m: OverviewDelta): void {
    if (!this.loaded || this.resyncAt) {
      // Before the full state (or while a resync is on its way): keep it for after.
      this.early.push(m);
      if (this.early.length > 8) this.early.shift();
      if (this.resyncAt && performance.now() - this.resyncAt > 10_000) this.resync();
      return;
    }
    if (typeof m.seq === "number") {
      if (m.seq <= this.seq) return; // already in the full state
      if (m.seq !== this.seq + 1) {
        this.resync();
        this.early.push(m);
        return;
      }
      this.seq = m.seq;
    }
    if (m.layout && !this.applyLayout(m.layout)) return;
    const sortFields = (COLS.find((c) => c.key === view.sortKey) ?? (COLS[1] as Col)).fields;
    for (const c of m.clusters) this.dirtyClusters.set(c.name, c);
    for (const p of m.hosts) {
      const rv = this.byIx[p.i];
      if (!rv) {
        // A row this page never had in full: only a resync can say what it is.
        this.resync();
        return;
      }
      const { refilter, resort } = rv.patch(p, m.server_time_ms, sortFields);
      if (refilter) this.refilter = true;
      if (resort) {
        const cv = this.clusters.get(rv.row.cluster);
        if (cv) cv.dirty = true;
      }
      this.dirtyRows.add(rv);
    }
    this.schedule();
  }

  /**
   * Rows added and removed: the rows at `removed` go, then each added row goes in at its
   * position. A change that does not follow the page's layout means a state was missed:
   * resubscribe (false then).
   */
  private applyLayout(l: LayoutChange): boolean {
    if (l.gen !== this.layout + 1) {
      this.resync();
      return false;
    }
    for (let k = l.removed.length - 1; k >= 0; k--) {
      const i = l.removed[k] as number;
      const rv = this.byIx[i];
      if (!rv) {
        this.resync();
        return false;
      }
      this.byIx.splice(i, 1);
      this.dropRow(rv);
    }
    for (const a of l.added) {
      const old = this.rows.get(a.row.id);
      if (old) this.dropRow(old);
      if (a.i > this.byIx.length) {
        this.resync();
        return false;
      }
      this.byIx.splice(a.i, 0, this.add(a.row));
    }
    if (l.clusters) {
      this.clusterOrder = l.clusters;
      this.dropEmptyClusters();
      this.orderClusters();
    }
    this.setLayout(l.gen);
    this.refilter = true;
    return true;
  }

  private setLayout(gen: number): void {
    this.layout = gen;
    setAttr(this.table, "data-layout", String(gen));
  }

  /** Takes a row off the page. */
  private dropRow(rv: RowView): void {
    this.rows.delete(rv.row.id);
    this.byTr.delete(rv.tr);
    this.observer?.unobserve(rv.tr);
    this.dirtyRows.delete(rv);
    rv.tr.remove();
    const cv = this.clusters.get(rv.row.cluster);
    if (cv) {
      cv.rows.delete(rv);
      cv.dirty = true;
      if (rv.alertsCounted) cv.countAlerts();
    }
    this.refilter = true;
  }

  /** Clusters the server no longer lists and without rows go away. */
  private dropEmptyClusters(): void {
    const names = new Set(this.clusterOrder);
    for (const [name, cv] of this.clusters) {
      if (!names.has(name) && cv.rows.size === 0) {
        cv.head.remove();
        cv.body.remove();
        this.clusters.delete(name);
        this.dirtyClusters.delete(name);
      }
    }
  }

  /**
   * The server's answer to `subscribe`. A refusal here means the full state could not be sent
   * (the socket's queue was full): ask again a little later.
   */
  onAck(a: Ack): void {
    if (a.ok) return;
    window.setTimeout(() => {
      if (!this.destroyed && this.conn.socket.connected) this.resync();
    }, 2000);
  }

  /** Asks for the full state again after a missed delta. */
  private resync(): void {
    this.resyncAt = performance.now();
    this.early = [];
    this.conn.socket.emit("subscribe", this.room, () => undefined);
  }

  private add(r: HostRow): RowView {
    const rv = new RowView(r);
    this.rows.set(r.id, rv);
    this.byTr.set(rv.tr, rv);
    const cv = this.cluster(r.cluster);
    cv.rows.add(rv);
    cv.dirty = true;
    rv.alertsCounted = r.alerts ?? 0;
    if (rv.alertsCounted) cv.countAlerts();
    this.refilter = true;
    this.observer?.observe(rv.tr);
    return rv;
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Writes what the frames changed, once per animation frame. */
  private flush(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    for (const [name, c] of this.dirtyClusters) this.clusters.get(name)?.setCluster(c);
    this.dirtyClusters.clear();
    const visibility = this.observer !== null;
    const now = this.conn.serverNow();
    const recount = new Set<ClusterView>();
    for (const rv of this.dirtyRows) {
      rv.attrs();
      if (rv.visible || !visibility) rv.render(now);
      const alerts = rv.row.alerts ?? 0;
      if (alerts !== rv.alertsCounted) {
        rv.alertsCounted = alerts;
        const cv = this.clusters.get(rv.row.cluster);
        if (cv) recount.add(cv);
      }
    }
    this.dirtyRows.clear();
    for (const cv of recount) cv.countAlerts();
    this.resort(false);
    if (this.refilter) this.applyFilter();
  }

  private cluster(name: string): ClusterView {
    let cv = this.clusters.get(name);
    if (!cv) {
      cv = new ClusterView(name, () => this.applyFilter());
      this.clusters.set(name, cv);
      this.table.append(cv.head, cv.body);
      if (this.loaded) this.orderClusters();
    }
    return cv;
  }

  /** Clusters in the server's order (the configuration's); unknown ones after, by name. */
  private orderClusters(): void {
    const idx = new Map(this.clusterOrder.map((name, i) => [name, i]));
    const list = [...this.clusters.values()].sort((a, b) => (idx.get(a.name) ?? 1e9) - (idx.get(b.name) ?? 1e9) || a.name.localeCompare(b.name));
    const want = list.flatMap((c) => [c.head, c.body]);
    const have = Array.from(this.table.tBodies);
    if (want.length !== have.length || want.some((el, i) => el !== have[i])) this.table.append(...want);
  }

  private sortBy(key: string): void {
    const col = COLS.find((c) => c.key === key);
    if (!col) return;
    if (view.sortKey === key) view.sortDesc = !view.sortDesc;
    else {
      view.sortKey = key;
      view.sortDesc = col.desc ?? false;
    }
    saveView();
    this.markSort();
    this.resort(true);
  }

  private markSort(): void {
    for (const [key, th] of this.heads) setAttr(th, "aria-sort", key === view.sortKey ? (view.sortDesc ? "descending" : "ascending") : null);
  }

  /** Re-sorts the clusters whose rows changed (all of them when `all`). */
  private resort(all: boolean): void {
    const col = COLS.find((c) => c.key === view.sortKey) ?? (COLS[1] as Col);
    const dir = view.sortDesc ? -1 : 1;
    for (const cv of this.clusters.values()) {
      if (!all && !cv.dirty) continue;
      cv.dirty = false;
      const list = [...cv.rows].map((r) => ({ r, k: col.sort(r.row), name: r.row.name }));
      list.sort((a, b) => {
        const c = a.k < b.k ? -1 : a.k > b.k ? 1 : 0;
        // Ties by name; a plain comparison (localeCompare is slow over a thousand rows).
        return c !== 0 ? c * dir : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
      });
      cv.order(list.map((x) => x.r));
    }
  }

  private applyFilter(): void {
    this.refilter = false;
    const terms = view.text.toLowerCase().split(/\s+/).filter(Boolean);
    const filtering = terms.length > 0 || view.status !== "all";
    const counts: Record<StatusFilter, number> = { all: 0, up: 0, stale: 0, down: 0 };
    let shownTotal = 0;
    const shownBy = new Map<ClusterView, number>();
    for (const cv of this.clusters.values()) {
      let shown = 0;
      for (const rv of cv.rows) {
        const st: HostStatus = rv.row.status;
        counts.all++;
        if (st === "up" || st === "stale" || st === "down") counts[st]++;
        const ok = rv.matches(terms, view.status);
        if (ok !== rv.shown) {
          rv.shown = ok;
          show(rv.tr, ok);
        }
        if (ok) shown++;
      }
      shownTotal += shown;
      cv.setShown(shown, filtering);
      shownBy.set(cv, shown);
    }
    // A large fleet folds its clusters, unless the filter leaves few rows.
    fold.large = this.rows.size > LARGE_FLEET;
    fold.narrowed = filtering && shownTotal <= FILTER_OPENS_AT_MOST;
    setText(this.foldHint, fold.large ? `${this.rows.size} hosts: clusters start folded. Open one, or filter to ${FILTER_OPENS_AT_MOST} hosts or fewer to see them all.` : "");
    show(this.foldHint, fold.large && !fold.narrowed);
    for (const [cv, shown] of shownBy) {
      const visible = !filtering || shown > 0;
      show(cv.head, visible);
      cv.applyCollapsed(!visible);
    }
    for (const [k, b] of this.statusButtons) setText(b.count, String(counts[k]));
    if (this.loaded && this.rows.size === 0) {
      setText(this.empty, "No hosts yet. Hosts appear here once they are configured.");
      show(this.empty, true);
    } else if (this.loaded && shownTotal === 0) {
      setText(this.empty, "No host matches the filter.");
      show(this.empty, true);
    } else show(this.empty, false);
  }

  /** Age of the data on screen: that of the last frame (see Connection). */
  dataAgeMs(): number | null {
    return null;
  }

  /** Every second: ages against the server clock (rows on screen; others when they come). */
  tick(): void {
    const now = this.conn.serverNow();
    const all = this.observer === null;
    for (const rv of this.rows.values()) if (rv.visible || all) rv.tick(now);
  }

  destroy(): void {
    this.destroyed = true;
    document.removeEventListener("click", this.closePicker);
    document.removeEventListener("keydown", this.closePicker);
    this.observer?.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
  }
}
