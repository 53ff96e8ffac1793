/**
 * The home page: every host, grouped by cluster, one collapsible section per cluster with its
 * totals. Rows are DOM nodes keyed by host id: `overview` (and each resync) and `overview_delta`
 * patch only the rows they carry, and a cell is written only when its text changes. Sorting
 * and filtering move or hide existing rows; nothing is rebuilt per tick.
 */
import type { Connection } from "../connection";
import { h, setAttr, setClass, setText, setTitle, show } from "../dom";
import { DASH, age, bytesOf, duration, load, num, pct } from "../format";
import { hostHref } from "../router";
import { GpuGlyphs } from "../components/gpu";
import { Meter, setLevel } from "../components/meter";
import { Sparkline } from "../components/sparkline";
import { STATUS_ORDER, setStatus, statusBadge } from "../components/status";
import type { Cluster, HostRow, HostStatus, Overview, OverviewDelta, Room } from "../types";

type StatusFilter = "all" | "up" | "stale" | "down";

interface Col {
  key: string;
  label: string;
  cls?: string;
  sort: (r: HostRow) => number | string;
  desc?: boolean;
  title?: string;
}

const n = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? -1 : v);
const gpuAvg = (r: HostRow) => {
  const u = (r.gpus ?? []).map((g) => g.util_percent).filter((x): x is number => x !== null);
  return u.length ? u.reduce((a, b) => a + b, 0) / u.length : -1;
};

const COLS: Col[] = [
  { key: "status", label: "Status", sort: (r) => STATUS_ORDER[r.status] ?? 9 },
  { key: "name", label: "Host", cls: "col-name", sort: (r) => r.name.toLowerCase() },
  { key: "os", label: "OS", cls: "col-os", sort: (r) => (r.os ?? "").toLowerCase() },
  { key: "uptime", label: "Uptime", cls: "num", sort: (r) => n(r.uptime_s), desc: true },
  { key: "cpu", label: "CPU", cls: "col-cpu", sort: (r) => n(r.cpu_percent), desc: true },
  { key: "load", label: "Load", cls: "num col-load", sort: (r) => n(r.load?.[0]), desc: true, title: "Load average: 1, 5, 15 min" },
  { key: "mem", label: "Memory", cls: "col-meter", sort: (r) => n(r.mem_percent), desc: true },
  { key: "swap", label: "Swap", cls: "col-meter", sort: (r) => n(r.swap_percent), desc: true },
  { key: "disk", label: "Disk", cls: "col-meter col-disk", sort: (r) => n(r.disk_max_percent), desc: true, title: "Fullest filesystem" },
  { key: "gpu", label: "GPU", cls: "col-gpu", sort: gpuAvg, desc: true, title: "Use and memory of each GPU; average use" },
  { key: "users", label: "Users", cls: "num", sort: (r) => n(r.users), desc: true, title: "Users logged in" },
];

// View state that survives navigation to a host page and back.
const view = {
  text: "",
  status: "all" as StatusFilter,
  sortKey: "name",
  sortDesc: false,
  collapsed: new Set<string>(),
};
try {
  const s = JSON.parse(localStorage.getItem("smon.home") ?? "{}") as { sortKey?: string; sortDesc?: boolean; collapsed?: string[] };
  if (s.sortKey && COLS.some((c) => c.key === s.sortKey)) view.sortKey = s.sortKey;
  if (typeof s.sortDesc === "boolean") view.sortDesc = s.sortDesc;
  if (Array.isArray(s.collapsed)) view.collapsed = new Set(s.collapsed);
} catch {
  /* defaults */
}
function saveView(): void {
  try {
    localStorage.setItem("smon.home", JSON.stringify({ sortKey: view.sortKey, sortDesc: view.sortDesc, collapsed: [...view.collapsed] }));
  } catch {
    /* not remembered */
  }
}

/** One host row and its cells. */
class RowView {
  readonly tr: HTMLTableRowElement;
  row: HostRow;
  private readonly badge = statusBadge();
  private readonly since = h("span", { class: "since" });
  private readonly link = h("a", { class: "host-link" });
  private readonly tags = h("span", { class: "tags" });
  private readonly dataAge = h("span", { class: "data-age" });
  private readonly os = h("td", { class: "col-os ellipsis" });
  private readonly uptime = h("td", { class: "num" });
  private readonly cpuText = h("span", { class: "cpu-value" });
  private readonly cpuCell = h("td", { class: "col-cpu", "data-field": "cpu" });
  private readonly spark = new Sparkline();
  private readonly load = h("td", { class: "num col-load" });
  private readonly mem = new Meter();
  private readonly swap = new Meter();
  private readonly disk = new Meter();
  private readonly gpus = new GpuGlyphs();
  private readonly users = h("td", { class: "num" });
  private sparkKey = "";
  private lastSeen: number | null = null;
  private tagKey = "";

  constructor(row: HostRow) {
    this.row = row;
    this.cpuCell.append(this.spark.el, this.cpuText);
    this.tr = h(
      "tr",
      { class: "host", "data-host-id": row.id },
      h("td", { class: "col-status" }, h("span", { class: "status-cell" }, this.badge, this.since)),
      h("td", { class: "col-name" }, h("span", { class: "name-line" }, this.link, this.tags), this.dataAge),
      this.os,
      this.uptime,
      this.cpuCell,
      this.load,
      h("td", { class: "col-meter" }, this.mem.el),
      h("td", { class: "col-meter" }, this.swap.el),
      h("td", { class: "col-meter col-disk" }, this.disk.el),
      h("td", { class: "col-gpu" }, this.gpus.el),
      this.users,
    );
    this.link.href = hostHref(row.id);
    this.update(row);
  }

  update(r: HostRow): void {
    const prevSeen = this.lastSeen;
    this.row = r;
    this.lastSeen = r.last_seen_ms;
    setAttr(this.tr, "data-status", r.status);
    setAttr(this.tr, "data-sample-ms", r.sample_unix_ms === null || r.sample_unix_ms === undefined ? null : String(r.sample_unix_ms));
    setAttr(this.tr, "data-gpus", String(r.gpus?.length ?? 0));
    setClass(this.tr, "dim", r.status === "stale" || r.status === "down");
    setStatus(this.badge, r.status);
    setText(this.link, r.name);
    setTitle(this.link, [r.hostname && r.hostname !== r.name ? `hostname ${r.hostname}` : "", r.address, r.last_error ? `last error: ${r.last_error}` : ""].filter(Boolean).join("\n"));
    const tagKey = r.tags.join("\u0000");
    if (tagKey !== this.tagKey) {
      this.tagKey = tagKey;
      this.tags.replaceChildren(...r.tags.map((t) => h("span", { class: "tag" }, t)));
    }
    setText(this.os, r.os ?? DASH);
    setTitle(this.os, r.kernel ? `kernel ${r.kernel}` : "");
    setText(this.uptime, duration(r.uptime_s));
    setText(this.cpuText, pct(r.cpu_percent));
    setLevel(this.cpuText, r.cpu_percent);
    setTitle(this.cpuCell, r.cpu_cores !== null ? `${r.cpu_cores} logical cores` : "");
    if (r.spark && r.spark.length > 0) {
      const key = `${r.spark.length}:${r.spark[r.spark.length - 1]}:${r.spark[0]}:${r.last_seen_ms}`;
      if (key !== this.sparkKey) {
        this.sparkKey = key;
        this.spark.set(r.spark);
      }
    } else if (r.last_seen_ms !== null && r.last_seen_ms !== prevSeen) {
      // A row without `spark`: grow the line from the live values.
      this.spark.push(r.cpu_percent);
    }
    setText(this.load, load(r.load));
    this.mem.set(r.mem_percent, "", r.mem_used_bytes !== null ? `${bytesOf(r.mem_used_bytes, r.mem_total_bytes)} in use` : "");
    this.swap.set(r.swap_percent);
    this.disk.set(r.disk_max_percent, r.disk_max_mount ?? "", r.disk_max_mount ? `Fullest filesystem: ${r.disk_max_mount}` : "");
    this.gpus.set(r.gpus);
    setText(this.users, num(r.users));
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
    const r = this.row;
    if (status !== "all" && r.status !== status) return false;
    if (terms.length === 0) return true;
    const hay = [r.id, r.name, r.hostname ?? "", r.os ?? "", ...r.tags].join(" ").toLowerCase();
    return terms.every((t) => hay.includes(t));
  }
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
  dirty = true;

  constructor(
    readonly name: string,
    onToggle: () => void,
  ) {
    this.toggle = h("button", { type: "button", class: "cluster-toggle", "aria-expanded": "true" }, h("i", { class: "chevron", "aria-hidden": "true" }), h("span", { class: "cluster-name" }, name));
    this.toggle.addEventListener("click", () => {
      if (view.collapsed.has(name)) view.collapsed.delete(name);
      else view.collapsed.add(name);
      saveView();
      this.applyCollapsed();
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
    this.chips = h("span", { class: "cluster-chips" }, ...Object.values(this.chipEls));
    this.head = h(
      "tbody",
      { class: "cluster-head", "data-cluster": name },
      h("tr", null, h("th", { colspan: COLS.length, scope: "rowgroup" }, h("div", { class: "cluster-summary" }, this.toggle, this.chips, this.shownCount))),
    );
    this.body = h("tbody", { class: "cluster-body", "data-cluster": name });
    this.applyCollapsed();
  }

  applyCollapsed(): void {
    const c = view.collapsed.has(this.name);
    setAttr(this.toggle, "aria-expanded", String(!c));
    show(this.body, !c);
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

  /** Puts the rows in the given order, moving nodes only when the order differs. */
  order(sorted: RowView[]): void {
    const kids = this.body.children;
    let same = kids.length === sorted.length;
    for (let i = 0; same && i < sorted.length; i++) same = kids[i] === sorted[i]?.tr;
    if (!same) this.body.append(...sorted.map((r) => r.tr));
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
  private readonly clusters = new Map<string, ClusterView>();
  private readonly table: HTMLTableElement;
  private readonly heads = new Map<string, HTMLTableCellElement>();
  private readonly statusButtons = new Map<StatusFilter, { btn: HTMLButtonElement; count: HTMLElement }>();
  private readonly empty: HTMLElement;
  private readonly loading: HTMLElement;
  private loaded = false;

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
      const th = h("th", { scope: "col", class: c.cls ?? null, title: c.title ?? null }, btn);
      this.heads.set(c.key, th);
      headRow.append(th);
    }
    this.table = h("table", { class: "data hosts", id: "hosts" }, h("thead", null, headRow));
    this.empty = h("p", { class: "empty-state", hidden: true });
    this.loading = h("p", { class: "empty-state" }, "Waiting for the server…");
    this.el = h(
      "div",
      { class: "page home" },
      h("div", { class: "toolbar" }, search, seg),
      h("div", { class: "table-wrap hosts-wrap" }, this.table),
      this.empty,
      this.loading,
    );
    this.markSort();
  }

  /** Full state (first subscribe and every resync): patch everything, drop rows not listed. */
  onOverview(m: Overview): void {
    const keep = new Set(m.hosts.map((r) => r.id));
    const removed = [...this.rows.keys()].filter((id) => !keep.has(id));
    this.apply(m.clusters, m.hosts, removed, true);
  }

  onDelta(m: OverviewDelta): void {
    if (!this.loaded) return; // a delta before the full state: wait for the resync
    this.apply(m.clusters, m.hosts, m.removed ?? [], false);
  }

  private apply(clusters: Cluster[], hosts: HostRow[], removed: string[], full: boolean): void {
    this.loaded = true;
    show(this.loading, false);
    for (const c of clusters) this.cluster(c.name).setCluster(c);
    // Clusters that disappeared from the list and hold no row any more go away.
    const names = new Set(clusters.map((c) => c.name));
    for (const id of removed) {
      const rv = this.rows.get(id);
      if (!rv) continue;
      this.rows.delete(id);
      rv.tr.remove();
      const cv = this.clusters.get(rv.row.cluster);
      cv?.rows.delete(rv);
    }
    for (const r of hosts) {
      let rv = this.rows.get(r.id);
      if (rv) rv.update(r);
      else {
        rv = new RowView(r);
        this.rows.set(r.id, rv);
        const cv = this.cluster(r.cluster);
        cv.rows.add(rv);
      }
      const cv = this.clusters.get(r.cluster);
      if (cv) cv.dirty = true;
    }
    for (const [name, cv] of this.clusters) {
      if (!names.has(name) && cv.rows.size === 0 && (full || clusters.length > 0)) {
        cv.head.remove();
        cv.body.remove();
        this.clusters.delete(name);
      }
    }
    this.orderClusters(clusters);
    this.resort(false);
    this.applyFilter();
    this.tick();
  }

  private cluster(name: string): ClusterView {
    let cv = this.clusters.get(name);
    if (!cv) {
      cv = new ClusterView(name, () => this.applyFilter());
      this.clusters.set(name, cv);
      this.table.append(cv.head, cv.body);
    }
    return cv;
  }

  /** Clusters in the server's order (the configuration's); unknown ones after, by name. */
  private orderClusters(clusters: Cluster[]): void {
    const idx = new Map(clusters.map((c, i) => [c.name, i]));
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
        return c !== 0 ? c * dir : a.name.localeCompare(b.name);
      });
      cv.order(list.map((x) => x.r));
    }
  }

  private applyFilter(): void {
    const terms = view.text.toLowerCase().split(/\s+/).filter(Boolean);
    const filtering = terms.length > 0 || view.status !== "all";
    const counts: Record<StatusFilter, number> = { all: 0, up: 0, stale: 0, down: 0 };
    let shownTotal = 0;
    for (const cv of this.clusters.values()) {
      let shown = 0;
      for (const rv of cv.rows) {
        const st: HostStatus = rv.row.status;
        counts.all++;
        if (st === "up" || st === "stale" || st === "down") counts[st]++;
        const ok = rv.matches(terms, view.status);
        show(rv.tr, ok);
        if (ok) shown++;
      }
      shownTotal += shown;
      cv.setShown(shown, filtering);
      const visible = !filtering || shown > 0;
      show(cv.head, visible);
      cv.body.hidden = !visible || view.collapsed.has(cv.name);
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

  /** Every second: ages against the server clock. */
  tick(): void {
    const now = this.conn.serverNow();
    for (const rv of this.rows.values()) rv.tick(now);
  }

  destroy(): void {
    /* nothing global to release */
  }
}
