/**
 * The host page (`#/host/<id>`, room `{room:"host", id}`): header and status, system, CPU and
 * memory cards, live charts of the last 15 minutes (fed by `history`, then one sample per
 * `host_update`), the stored history (`components/history.ts`: ranges, zoom, the processes at
 * a clicked minute, GPU use), GPU cards, disks, network, processes and logged-in users. Every part is built
 * once and updated in place. Above them, the host's firing and pending alerts (`HostAlerts`,
 * from the shared alerts poll), when there are any, and its reachability checks (`HostReach`).
 *
 * The Containers section (`components/containers.ts`) lists the containers and services the
 * agent found by their cgroups, when it reports them; the process list then shows each
 * process's container and can be filtered by one (its select, or a container's name clicked).
 *
 * The process list hides kernel threads by default (a toggle shows them, as htop's `K`), and
 * shows the processes as a tree by parent pid on demand; both choices are remembered in
 * localStorage (`smon.procs`).
 */
import type { Connection } from "../connection";
import { basePath } from "../connection";
import { h, setAttr, setClass, setText, setTitle, show } from "../dom";
import { DASH, age, ago, bytes, bytesOf, celsius, dateTime, duration, freq, load, num, pct, rate } from "../format";
import { LiveChart, type SeriesDef } from "../components/chart";
import { GpuCard } from "../components/gpu";
import { HistoryView } from "../components/history";
import { HostActions } from "../components/actions";
import { HostPrograms, SignalMenu } from "../components/programs";
import { HostAlerts } from "../components/alerts";
import { HostContainers } from "../components/containers";
import { HostReach } from "../components/reach";
import { Meter, setLevel, setVBar } from "../components/meter";
import { setStatus, statusBadge } from "../components/status";
import { DataTable } from "../components/table";
import type { Ack, Disk, Gpu, History, HostFrame, HostInfo, HostRemoved, HostRow, HostUpdate, NetInterface, Process, Room, Session, Snapshot, Temperature } from "../types";

const WINDOW_MS = 15 * 60 * 1000;
const TOP = 50;

/** Process list choices, remembered per browser. */
const procView = { kthreads: false, tree: false };
try {
  const s = JSON.parse(localStorage.getItem("smon.procs") ?? "{}") as { kthreads?: unknown; tree?: unknown };
  if (typeof s.kthreads === "boolean") procView.kthreads = s.kthreads;
  if (typeof s.tree === "boolean") procView.tree = s.tree;
} catch {
  /* defaults */
}
function saveProcView(): void {
  try {
    localStorage.setItem("smon.procs", JSON.stringify(procView));
  } catch {
    /* not remembered */
  }
}

/** A process's CPU: whole percents from 1,000 % up ("1310%"), so that many cores fit the column. */
function procCpu(v: number): string {
  return v >= 999.95 ? `${Math.round(v)}%` : pct(v);
}

/**
 * The processes in tree order: each one after its parent, children in the order of `sorted`
 * (the table's sort), with the depth of each pid in `depth`. A process whose parent is not in
 * the list (filtered out, or gone) is a root; a cycle of pids (a pid reused while its old
 * parent link is read) cannot hide anyone.
 */
export function treeOrder(sorted: Process[], depth: Map<number, number>): Process[] {
  const pids = new Set(sorted.map((p) => p.pid));
  const kids = new Map<number, Process[]>();
  const roots: Process[] = [];
  for (const p of sorted) {
    if (p.ppid !== p.pid && pids.has(p.ppid)) {
      let k = kids.get(p.ppid);
      if (!k) kids.set(p.ppid, (k = []));
      k.push(p);
    } else roots.push(p);
  }
  depth.clear();
  const out: Process[] = [];
  const walk = (root: Process) => {
    const stack: [Process, number][] = [[root, 0]];
    while (stack.length) {
      const [p, d] = stack.pop() as [Process, number];
      if (depth.has(p.pid)) continue;
      depth.set(p.pid, d);
      out.push(p);
      const k = kids.get(p.pid);
      if (k) for (let i = k.length - 1; i >= 0; i--) stack.push([k[i] as Process, d + 1]);
    }
  };
  for (const r of roots) walk(r);
  for (const p of sorted) if (!depth.has(p.pid)) walk(p);
  return out;
}

/** Chart data of the last 15 minutes. */
class HistoryBuf {
  t: number[] = [];
  cpu: (number | null)[] = [];
  mem: (number | null)[] = [];
  rx: (number | null)[] = [];
  tx: (number | null)[] = [];
  gpu: (number | null)[][] = [];
  /** The GPU of each `gpu` series (UUID, or `#index`): a GPU that goes missing never shifts the others. */
  gpuIds: string[] = [];

  reset(hist: History | null | undefined): void {
    const t = hist?.t ?? [];
    const col = (a: (number | null)[] | undefined) => t.map((_, i) => a?.[i] ?? null);
    this.t = t.slice();
    this.cpu = col(hist?.cpu);
    this.mem = col(hist?.mem);
    this.rx = col(hist?.rx);
    this.tx = col(hist?.tx);
    this.gpu = (hist?.gpu ?? []).map(col);
    this.gpuIds = this.gpu.map((_, k) => hist?.gpu_ids?.[k] ?? `#${k}`);
    this.trim();
  }

  /**
   * Appends one sample at time `t`. `advanceMs` is how far the server saw the host's clock move
   * since the previous sample: if `t` is not after the last point (the history and the sample
   * come from clocks that disagree), the point goes that far after the last one instead, so the
   * chart never stalls.
   */
  push(t: number, advanceMs: number, r: HostRow): void {
    const last = this.t[this.t.length - 1];
    if (last !== undefined && t <= last) t = last + Math.max(1, advanceMs);
    const len = this.t.length;
    this.t.push(t);
    this.cpu.push(r.cpu_percent);
    this.mem.push(r.mem_percent);
    this.rx.push(r.net_rx_bytes_per_s);
    this.tx.push(r.net_tx_bytes_per_s);
    const now = new Map<number, number | null>();
    for (const g of r.gpus ?? []) {
      const id = g.uuid || `#${g.index}`;
      let k = this.gpuIds.indexOf(id);
      if (k < 0) {
        k = this.gpuIds.push(id) - 1;
        this.gpu.push(new Array<number | null>(len).fill(null));
      }
      now.set(k, g.util_percent);
    }
    this.gpu.forEach((g, k) => g.push(now.get(k) ?? null));
    this.trim();
  }

  private trim(): void {
    const last = this.t[this.t.length - 1];
    if (last === undefined) return;
    let k = 0;
    while (k < this.t.length && (this.t[k] as number) < last - WINDOW_MS) k++;
    if (k === 0) return;
    for (const a of [this.t, this.cpu, this.mem, this.rx, this.tx, ...this.gpu]) a.splice(0, k);
  }
}

/** A label / value list whose values are updated in place. */
class Facts {
  readonly el = h("dl", { class: "facts" });
  private readonly vals = new Map<string, HTMLElement>();

  set(label: string, value: string, title = ""): void {
    let v = this.vals.get(label);
    if (!v) {
      v = h("dd");
      this.vals.set(label, v);
      this.el.append(h("div", null, h("dt", null, label), v));
    }
    setText(v, value);
    setTitle(v, title);
  }

  /** Like `set`, with the row hidden while `value` is null. */
  setIf(label: string, value: string | null, title = ""): void {
    this.set(label, value ?? "", title);
    const row = this.vals.get(label)?.parentElement;
    if (row) row.hidden = value === null;
  }
}

function card(title: string, ...body: (Node | string)[]): HTMLElement {
  return h("section", { class: "card" }, h("header", { class: "card-head" }, h("span", { class: "card-title" }, title)), ...body);
}

function section(title: string, extra: Node | null, ...body: Node[]): HTMLElement {
  return h("section", { class: "section" }, h("div", { class: "section-head" }, h("h2", null, title), extra), ...body);
}

export class HostPage {
  readonly el: HTMLElement;
  readonly room: Extract<Room, { room: "host" }>;
  private readonly conn: Connection;
  private row: HostRow | null = null;
  private info: HostInfo | null = null;
  private detail: Snapshot | null = null;
  private readonly hist = new HistoryBuf();
  private infoFetchAt = 0;
  /** Time of the last sample shown (to tell a new sample from a status change). */
  private lastSample: number | null = null;
  private destroyed = false;
  /** The host is unknown to the server, or was removed: no data will come. */
  gone = false;

  // header
  private readonly title = h("h1", { class: "host-name" });
  private readonly status = statusBadge("host-status");
  private readonly since = h("span", { class: "muted" });
  private readonly lastSeen = h("span", { class: "last-seen" });
  private readonly meta = h("span", { class: "host-meta" });
  private readonly tags = h("span", { class: "tags" });
  private readonly alert = h("div", { class: "alert", hidden: true, role: "alert" });
  private readonly errors = h("div", { class: "alert warn", hidden: true });
  private readonly body: HTMLElement;
  private readonly notFound = h("div", { class: "empty-state", id: "host-error", hidden: true });

  // cards
  private readonly sys = new Facts();
  private readonly cpuFacts = new Facts();
  private readonly cpuMeter = new Meter("meter meter-lg");
  private readonly cores = h("div", { class: "cores" });
  private coreBars: HTMLElement[] = [];
  private readonly memMeter = new Meter("meter meter-lg");
  private readonly swapMeter = new Meter("meter meter-lg");
  private readonly memFacts = new Facts();

  // charts
  private readonly cpuChart = new LiveChart("CPU", [{ label: "CPU", color: "--chart-1" }], { range: [0, 100], fmt: (v) => pct(v, 0), windowS: 900 });
  private readonly memChart = new LiveChart("Memory", [{ label: "Used", color: "--chart-2" }], { range: [0, 100], fmt: (v) => pct(v, 0), windowS: 900 });
  private readonly netChart = new LiveChart(
    "Network",
    [
      { label: "Rx", color: "--chart-3" },
      { label: "Tx", color: "--chart-4" },
    ],
    { fmt: (v) => (v === null ? DASH : rate(v)), axisFmt: (v) => bytes(v), axisSize: 68, binary: true, windowS: 900 },
  );
  private readonly gpuChart = new LiveChart("GPU use", [], { range: [0, 100], fmt: (v) => pct(v, 0), windowS: 900 });

  /** The stored history (range picker, zoom, processes at a minute, GPU use). */
  private readonly history: HistoryView;
  /** This host's alerts (hidden when none, or without alerting). */
  private readonly alerts: HostAlerts;
  /** Its reachability checks (hidden without a checker, or before the first check). */
  private readonly reach: HostReach;
  /** Wake, reboot and shut down, for admins of the aggregator (none on the agent's view). */
  private readonly actions: HostActions | null;
  /** supervisord's programs (not in the agent's own view). */
  private readonly programs: HostPrograms | null;
  /** The process list's Signal… menu (admins; not in the agent's own view). */
  private readonly signals: SignalMenu | null;
  /** Containers and services, and the process list's filter by container. */
  private readonly containers: HostContainers;
  private readonly procSection: HTMLElement;

  // GPUs
  private readonly gpuSection: HTMLElement;
  private readonly gpuGrid = h("div", { class: "gpu-grid" });
  private readonly gpuCards = new Map<number, GpuCard>();

  // tables
  private readonly disks: DataTable<Disk>;
  private readonly nets: DataTable<NetInterface>;
  private readonly procs: DataTable<Process>;
  private readonly sessions: DataTable<Session>;
  private readonly temps: DataTable<Temperature>;
  private readonly tempSection: HTMLElement;
  private readonly procCount = h("span", { class: "muted" });
  private readonly procMore = h("button", { type: "button", class: "btn" });
  private showAll = false;
  /** Depth of each pid in tree view. */
  private readonly depth = new Map<number, number>();
  /** The search filter of the process list (null: none). */
  private procQuery: ((p: Process) => boolean) | null = null;

  constructor(conn: Connection, id: string) {
    this.conn = conn;
    this.room = { room: "host", id };
    setText(this.title, id.replace(/^[^:]*:/, ""));
    setTitle(this.title, id);
    this.containers = new HostContainers((scroll) => {
      this.applyProcFilter();
      if (scroll) this.procSection.scrollIntoView({ block: "start" });
    });

    this.disks = new DataTable<Disk>(
      [
        { key: "device", label: "Device", cls: "ellipsis mono", text: (d) => d.device, title: (d) => d.device, sort: (d) => d.device },
        { key: "fs", label: "FS", text: (d) => d.fs_type, sort: (d) => d.fs_type },
        {
          key: "mount",
          label: "Mount",
          cls: "mono",
          sort: (d) => d.mount_point,
          render: (td, d) => {
            if (!td.firstChild) td.append(h("span", { class: "mount" }), h("span", { class: "badge-sm warn", hidden: true }, "unresponsive"), h("span", { class: "badge-sm", hidden: true }, "ro"));
            const [m, un, ro] = Array.from(td.children) as HTMLElement[];
            if (m) setText(m, d.mount_point);
            if (un) show(un, d.unresponsive);
            if (ro) show(ro, d.read_only);
            setTitle(td, d.unresponsive ? "The filesystem did not answer in time; sizes are the last known values" : "");
          },
        },
        { key: "size", label: "Size", cls: "num", text: (d) => bytes(d.total_bytes), sort: (d) => d.total_bytes, desc: true },
        { key: "used", label: "Used", cls: "num", text: (d) => bytes(d.used_bytes), sort: (d) => d.used_bytes, desc: true },
        { key: "avail", label: "Avail", cls: "num", text: (d) => bytes(d.available_bytes), sort: (d) => d.available_bytes, desc: true },
        { key: "pct", label: "Use", cls: "col-meter", render: (td, d) => meterCell(td, d.used_percent), sort: (d) => d.used_percent, desc: true },
        { key: "read", label: "Read", cls: "num", text: (d) => rate(d.read_bytes_per_s), sort: (d) => d.read_bytes_per_s ?? -1, desc: true },
        { key: "write", label: "Write", cls: "num", text: (d) => rate(d.write_bytes_per_s), sort: (d) => d.write_bytes_per_s ?? -1, desc: true },
      ],
      { id: "disks", sortKey: "mount", empty: "No filesystems", rowAttrs: (tr, d) => setClass(tr, "warn-row", d.unresponsive) },
    );
    this.nets = new DataTable<NetInterface>(
      [
        { key: "name", label: "Interface", cls: "mono", text: (n) => n.name, sort: (n) => n.name },
        { key: "rx", label: "Rx", cls: "num", text: (n) => rate(n.rx_bytes_per_s), sort: (n) => n.rx_bytes_per_s, desc: true },
        { key: "tx", label: "Tx", cls: "num", text: (n) => rate(n.tx_bytes_per_s), sort: (n) => n.tx_bytes_per_s, desc: true },
        { key: "rxt", label: "Rx total", cls: "num", text: (n) => bytes(n.rx_total_bytes), sort: (n) => n.rx_total_bytes, desc: true },
        { key: "txt", label: "Tx total", cls: "num", text: (n) => bytes(n.tx_total_bytes), sort: (n) => n.tx_total_bytes, desc: true },
        { key: "addr", label: "Addresses", cls: "mono wrap", text: (n) => (n.addresses.length ? n.addresses.join(", ") : DASH) },
        { key: "mac", label: "MAC", cls: "mono", text: (n) => n.mac || DASH },
      ],
      { id: "networks", sortKey: "name", empty: "No interfaces" },
    );
    this.procs = new DataTable<Process>(
      [
        { key: "pid", label: "PID", cls: "num", text: (p) => String(p.pid), sort: (p) => p.pid },
        { key: "user", label: "User", cls: "ellipsis col-user", text: (p) => p.user, title: (p) => p.user, sort: (p) => p.user },
        {
          key: "name",
          label: "Name",
          cls: "ellipsis col-pname",
          render: (td, p) => {
            const d = procView.tree ? (this.depth.get(p.pid) ?? 0) : 0;
            setText(td, d > 0 ? `└ ${p.name}` : p.name);
            const pad = d > 0 ? `${8 + 14 * Math.min(d, 12)}px` : "";
            if (td.style.paddingLeft !== pad) td.style.paddingLeft = pad;
          },
          title: (p) => (p.kernel_thread ? `${p.name} (kernel thread)` : p.name),
          sort: (p) => p.name.toLowerCase(),
        },
        { key: "cpu", label: "CPU", cls: "num", text: (p) => procCpu(p.cpu_percent), title: (p) => pct(p.cpu_percent), sort: (p) => p.cpu_percent, desc: true, headTitle: "Percent of one core (a process on many cores goes past 100 %)" },
        { key: "mem", label: "Memory", cls: "num", text: (p) => bytes(p.memory_bytes), title: (p) => pct(p.memory_percent), sort: (p) => p.memory_bytes, desc: true },
        { key: "time", label: "Time", cls: "num", text: (p) => duration(p.run_time_s), title: (p) => `started ${dateTime(p.start_unix_ms)}`, sort: (p) => p.run_time_s, desc: true },
        { key: "state", label: "State", text: (p) => p.state, sort: (p) => p.state },
        {
          key: "ctr",
          label: "Container",
          cls: "ellipsis col-ctr",
          text: (p) => (p.container ? this.containers.nameOf(p.container) : ""),
          title: (p) => p.container ?? "",
          sort: (p) => (p.container ? this.containers.nameOf(p.container).toLowerCase() : ""),
        },
        { key: "cmd", label: "Command", cls: "cmd mono", text: (p) => p.cmdline || `[${p.name}]`, title: (p) => p.cmdline },
        { key: "sig", label: "", cls: "proc-signal", render: (td, p) => this.signalCell(td, p) },
      ],
      {
        id: "processes",
        sortKey: "cpu",
        sortDesc: true,
        empty: "No processes",
        rowAttrs: (tr, p) => {
          setAttr(tr, "data-pid", String(p.pid));
          setAttr(tr, "data-kthread", p.kernel_thread ? "true" : null);
          setAttr(tr, "data-container", p.container || null);
          setAttr(tr, "data-depth", procView.tree ? String(this.depth.get(p.pid) ?? 0) : null);
          setClass(tr, "kthread", p.kernel_thread);
        },
        onSort: () => this.renderProcCount(),
        widths: { pid: "76px", user: "104px", name: "170px", cpu: "84px", mem: "88px", time: "76px", state: "84px", ctr: "150px", cmd: "auto", sig: "72px" },
        virtualAbove: 120,
      },
    );
    this.procs.setLimit(TOP);
    this.sessions = new DataTable<Session>(
      [
        { key: "user", label: "User", text: (s) => s.user, sort: (s) => s.user },
        { key: "tty", label: "Terminal", cls: "mono", text: (s) => s.terminal, sort: (s) => s.terminal },
        { key: "from", label: "From", cls: "mono", text: (s) => s.from || "local", sort: (s) => s.from },
        { key: "login", label: "Login", text: (s) => dateTime(s.login_unix_ms), title: (s) => ago(this.conn.serverNow() - s.login_unix_ms), sort: (s) => s.login_unix_ms },
        { key: "pid", label: "PID", cls: "num", text: (s) => String(s.pid), sort: (s) => s.pid },
      ],
      { id: "sessions", sortKey: "login", empty: "Nobody is logged in" },
    );
    this.temps = new DataTable<Temperature>(
      [
        { key: "label", label: "Sensor", text: (t) => t.label, sort: (t) => t.label },
        {
          key: "c",
          label: "Now",
          cls: "num",
          text: (t) => celsius(t.celsius),
          title: (t) => (t.critical_celsius !== null ? `critical at ${celsius(t.critical_celsius)}` : ""),
          sort: (t) => t.celsius ?? -1,
          desc: true,
        },
        { key: "max", label: "Max", cls: "num", text: (t) => celsius(t.max_celsius), headTitle: "Highest since the agent started" },
      ],
      { id: "temperatures", sortKey: "label", cls: "compact", empty: "No sensors" },
    );

    const procSearch = h("input", { type: "search", class: "search", placeholder: "Search pid, user, name, command, container…", "aria-label": "Search processes", spellcheck: "false", autocomplete: "off" });
    procSearch.addEventListener("input", () => {
      const q = procSearch.value.trim().toLowerCase();
      this.procQuery = q ? (p) => String(p.pid) === q || p.name.toLowerCase().includes(q) || p.user.toLowerCase().includes(q) || p.cmdline.toLowerCase().includes(q) || (!!p.container && this.containers.nameOf(p.container).toLowerCase().includes(q)) : null;
      this.applyProcFilter();
    });
    const toggle = (id: string, label: string, title: string, on: boolean, set: (v: boolean) => void) => {
      const box = h("input", { type: "checkbox", id });
      box.checked = on;
      box.addEventListener("change", () => set(box.checked));
      return h("label", { class: "toggle", title }, box, label);
    };
    const kthreads = toggle("proc-kthreads", "Kernel threads", "Show kernel threads (kworker, ksoftirqd…), hidden by default as in htop", procView.kthreads, (v) => {
      procView.kthreads = v;
      saveProcView();
      this.applyProcFilter();
    });
    const tree = toggle("proc-tree", "Tree", "Show processes as a tree by parent", procView.tree, (v) => {
      procView.tree = v;
      saveProcView();
      this.applyProcTree();
    });
    this.procMore.addEventListener("click", () => {
      this.showAll = !this.showAll;
      this.procs.setLimit(this.showAll ? Infinity : TOP);
      setClass(this.procs.el, "tall", this.showAll);
      this.renderProcCount();
    });

    this.gpuSection = section("GPUs", null, this.gpuGrid);
    this.history = new HistoryView({ kind: "host", id });
    this.alerts = new HostAlerts(id);
    this.reach = new HostReach(id);
    this.actions = conn.hello?.mode === "node" ? null : new HostActions(id);
    this.programs = conn.hello?.mode === "node" ? null : new HostPrograms(id);
    this.signals = conn.hello?.mode === "node" ? null : new SignalMenu(id, () => this.renderTables());
    this.tempSection = card("Temperatures", this.temps.el);

    const back = h("a", { href: "#/", class: "back" }, "← All hosts");
    // The agent's own view has one host: no list to go back to.
    show(back, conn.hello?.mode !== "node");
    this.body = h(
      "div",
      { class: "host-body" },
      this.errors,
      this.alerts.el,
      this.reach.el,
      h(
        "div",
        { class: "cards" },
        card("System", this.sys.el),
        card("CPU", h("div", { class: "big-meter" }, this.cpuMeter.el), this.cpuFacts.el, this.cores),
        card("Memory", h("span", { class: "label" }, "RAM"), this.memMeter.el, h("span", { class: "label" }, "Swap"), this.swapMeter.el, this.memFacts.el),
        this.tempSection,
      ),
      h("div", { class: "charts" }, this.cpuChart.el, this.memChart.el, this.netChart.el, this.gpuChart.el),
      this.history.el,
      this.gpuSection,
      h("div", { class: "two-col" }, section("Disks", null, this.disks.el), section("Network", null, this.nets.el)),
      this.containers.el,
      ...(this.programs ? [this.programs.el] : []),
      (this.procSection = section("Processes", h("div", { class: "section-tools" }, this.procCount, kthreads, tree, this.containers.procFilter, procSearch, this.procMore), ...(this.signals ? [this.signals.el] : []), this.procs.el)),
      section("Logged-in users", null, this.sessions.el),
    );
    this.el = h(
      "div",
      { class: "page host-page" },
      h("div", { class: "host-head" }, back, h("div", { class: "host-title" }, this.title, this.status, this.since), h("div", { class: "host-sub" }, this.lastSeen, this.meta, this.tags), this.actions?.el),
      this.alert,
      this.notFound,
      this.body,
    );
    this.procSection.id = "processes-section";
    show(this.gpuSection, false);
    show(this.gpuChart.el, false);
    show(this.tempSection, false);
    this.applyProcTree();
    this.applyProcFilter();
  }

  /** The Signal… button of a process row, for admins (empty otherwise). */
  private signalCell(td: HTMLTableCellElement, p: Process): void {
    const menu = this.signals;
    if (!menu?.admin || p.kernel_thread) {
      if (td.firstChild) td.replaceChildren();
      return;
    }
    let b = td.firstElementChild as HTMLButtonElement | null;
    if (!b) {
      b = h("button", { type: "button", class: "text-btn proc-signal-open", title: "Send a signal to this process" }, "Signal…");
      const btn = b;
      btn.addEventListener("click", (e) => {
        e.stopPropagation();
        menu.open(Number(btn.dataset.pid), btn.dataset.name ?? "");
      });
      td.append(b);
    }
    b.dataset.pid = String(p.pid);
    b.dataset.name = p.name;
  }

  /** The process list's filter: kernel threads unless shown, the container, and the search. */
  private applyProcFilter(): void {
    const q = this.procQuery;
    const k = procView.kthreads;
    const c = this.containers.filter();
    this.procs.setFilter(k && !q && !c ? null : (p) => (k || !p.kernel_thread) && (!c || c(p)) && (!q || q(p)));
    this.renderProcCount();
  }

  private applyProcTree(): void {
    this.procs.setArrange(procView.tree ? (list) => treeOrder(list, this.depth) : null);
    setClass(this.procs.el, "tree", procView.tree);
  }

  /** The server's answer to our subscribe. */
  onAck(a: Ack): void {
    if (a.ok) {
      if (!this.gone) show(this.notFound, false);
      return;
    }
    this.showGone("unknown", a.error ?? "This host is not known to the server.");
  }

  /** The server says this host was removed from the fleet (a configuration change). */
  onRemoved(m: HostRemoved): void {
    if (m.id !== this.room.id) return;
    this.showGone("removed", `${m.id} was removed from the configuration: it is no longer monitored.`);
  }

  /** No data will come for this host: say why instead of the host's data (`#host-error`, with
   * `data-reason` "unknown" or "removed"). */
  private showGone(reason: string, text: string): void {
    this.gone = true;
    this.notFound.replaceChildren(h("p", null, text), h("a", { href: "#/" }, "Back to all hosts"));
    setAttr(this.notFound, "data-reason", reason);
    show(this.notFound, true);
    show(this.body, false);
    show(this.status, false);
    show(this.alert, false);
    setText(this.title, this.room.id);
  }

  onHost(m: HostFrame): void {
    if (m.host.id !== this.room.id) return;
    this.gone = false;
    setAttr(this.notFound, "data-reason", null);
    show(this.body, true);
    show(this.status, true);
    show(this.notFound, false);
    this.info = m.info;
    this.hist.reset(m.history);
    if (m.detail) this.detail = m.detail;
    this.apply(m.host, m.detail, false);
  }

  onUpdate(m: HostUpdate): void {
    if (m.host.id !== this.room.id || !this.row || this.gone) return;
    this.apply(m.host, m.detail, true);
  }

  private apply(row: HostRow, detail: Snapshot | null, live: boolean): void {
    const prev = this.row;
    this.row = row;
    if (detail) this.detail = detail;
    // A new sample (not a status change alone) adds a point to the charts, at the sample's time
    // (the agent's clock, like the history's).
    const seen = row.last_seen_ms;
    const sample = row.sample_unix_ms ?? detail?.sample_unix_ms ?? seen;
    const isNew = sample !== this.lastSample;
    this.lastSample = sample;
    if (live && isNew && row.status === "up" && sample !== null) {
      const prevSeen = prev?.last_seen_ms ?? null;
      this.hist.push(sample, prevSeen === null || seen === null ? this.conn.intervalMs() : seen - prevSeen, row);
    }
    this.renderHeader();
    this.renderCards();
    this.renderCharts();
    this.renderGpus();
    this.renderTables();
    this.tick();
    // The stored GPU series are per UUID: named after the host's GPUs now.
    if (row.gpus) this.history.setGpus(row.gpus);
    if (!this.info && row.status === "up") this.fetchInfo();
  }

  /** `info` comes only with the full `host` frame: if the host was not reached then, ask REST. */
  private fetchInfo(): void {
    const now = Date.now();
    if (now - this.infoFetchAt < 10_000) return;
    this.infoFetchAt = now;
    fetch(`${basePath()}api/v1/hosts/${encodeURIComponent(this.room.id)}`, { credentials: "same-origin", headers: { accept: "application/json" } })
      .then((r) => (r.ok ? (r.json() as Promise<{ info: HostInfo | null }>) : null))
      .then((j) => {
        if (j?.info && !this.destroyed) {
          this.info = j.info;
          this.renderCards();
        }
      })
      .catch(() => undefined);
  }

  private renderHeader(): void {
    const r = this.row;
    if (!r) return;
    document.title = `${r.name} · smon`;
    setText(this.title, r.name);
    setStatus(this.status, r.status);
    setText(this.meta, [r.cluster, r.address, r.hostname && r.hostname !== r.name ? r.hostname : ""].filter(Boolean).join(" · "));
    const tagKey = r.tags.join("\u0000");
    if (this.tags.dataset.key !== tagKey) {
      this.tags.dataset.key = tagKey;
      this.tags.replaceChildren(...r.tags.map((t) => h("span", { class: "tag" }, t)));
    }
    const bad = r.status !== "up";
    setClass(this.el, "not-live", bad);
    if (bad) {
      const what = r.status === "pending" ? "This host has not been reached yet." : r.status === "stale" ? "This host stopped sending fresh data: what you see is its last known state." : "This host is down: what you see is its last known state.";
      setText(this.alert, r.last_error ? `${what} Last error: ${r.last_error}` : what);
      setAttr(this.alert, "data-level", r.status);
    }
    show(this.alert, bad);
    const errs = this.detail?.errors ?? [];
    setText(this.errors, errs.length ? `Some collectors failed: ${errs.join("; ")}` : "");
    show(this.errors, errs.length > 0);
  }

  private renderCards(): void {
    const r = this.row;
    if (!r) return;
    const i = this.info;
    const d = this.detail;
    this.sys.set("OS", i ? `${i.os_name} ${i.os_version}`.trim() || DASH : (r.os ?? DASH));
    this.sys.set("Kernel", i?.kernel_version || r.kernel || DASH);
    this.sys.set("Arch", i?.arch || DASH);
    const boot = d?.boot_unix_ms ?? i?.boot_unix_ms ?? null;
    this.sys.set("Booted", dateTime(boot));
    this.sys.set("Uptime", duration(d?.uptime_s ?? r.uptime_s));
    this.sys.set("Processes", num(d?.process_count ?? r.processes));
    this.sys.set("Users", num(r.users));
    this.sys.set("Agent", i ? `${i.agent_version} · ${i.sample_interval_ms / 1000} s` : DASH, i ? `collects: ${i.capabilities.join(", ")}; GPU source: ${i.gpu_source}` : "");
    const driver = i?.gpu_driver_version ? `${i.gpu_driver_version}${i.cuda_driver_version ? ` · CUDA ${i.cuda_driver_version}` : ""}` : null;
    this.sys.setIf("GPU driver", driver, "The NVIDIA driver's version, and the newest CUDA version it supports");

    const cpu = d?.cpu ?? null;
    this.cpuMeter.set(cpu?.total_percent ?? r.cpu_percent, "", "All logical CPUs");
    this.cpuFacts.set("Model", i?.cpu_brand || DASH);
    const logical = i?.cpu_logical_cores ?? cpu?.logical_cores ?? r.cpu_cores;
    this.cpuFacts.set("Cores", logical === null ? DASH : i?.cpu_physical_cores ? `${logical} logical / ${i.cpu_physical_cores} physical` : `${logical} logical`);
    this.cpuFacts.set("Frequency", freq(cpu?.frequency_mhz));
    this.cpuFacts.set("Load", d?.load ? load([d.load.one, d.load.five, d.load.fifteen]) : load(r.load), "1, 5 and 15 minutes");
    this.renderCores(cpu?.per_core_percent ?? []);

    const m = d?.memory ?? null;
    this.memMeter.set(m?.used_percent ?? r.mem_percent, bytesOf(m?.used_bytes ?? r.mem_used_bytes, m?.total_bytes ?? r.mem_total_bytes));
    const swapTotal = m?.swap_total_bytes ?? r.swap_total_bytes ?? i?.swap_total_bytes ?? null;
    if (swapTotal === 0) this.swapMeter.none("no swap", "This host has no swap space");
    else this.swapMeter.set(m?.swap_used_percent ?? r.swap_percent, bytesOf(m?.swap_used_bytes, swapTotal));
    this.memFacts.set("Available", bytes(m?.available_bytes));
  }

  private renderCores(per: number[]): void {
    while (this.coreBars.length < per.length) {
      const fill = h("i");
      const bar = h("span", { class: "core" }, fill, h("b", { class: "core-label" }));
      this.coreBars.push(fill);
      this.cores.append(bar);
    }
    while (this.coreBars.length > per.length) this.coreBars.pop()?.parentElement?.remove();
    const few = per.length <= 8;
    per.forEach((v, k) => {
      const fill = this.coreBars[k];
      if (!fill) return;
      setVBar(fill, v);
      setLevel(fill, v);
      const bar = fill.parentElement;
      if (bar) {
        setTitle(bar, `CPU ${k}: ${pct(v)}`);
        const label = bar.lastElementChild;
        if (label) setText(label, few ? `CPU ${k} · ${pct(v, 0)}` : "");
      }
    });
    setClass(this.cores, "many", per.length > 64);
    // Few cores get wide bars with their number and use written under them.
    setClass(this.cores, "few", per.length > 0 && per.length <= 8);
    setAttr(this.cores, "data-cores", String(per.length));
  }

  private renderCharts(): void {
    const hb = this.hist;
    this.cpuChart.setData(hb.t, [hb.cpu]);
    this.memChart.setData(hb.t, [hb.mem]);
    this.netChart.setData(hb.t, [hb.rx, hb.tx]);
    const n = hb.gpu.length;
    show(this.gpuChart.el, n > 0 || (this.row?.gpus?.length ?? 0) > 0);
    if (n > 0) {
      const live = this.row?.gpus ?? [];
      const label = (id: string) => {
        const g = live.find((x) => (x.uuid || `#${x.index}`) === id);
        return g ? `GPU ${g.index}` : `${id.slice(0, 12)} (gone)`;
      };
      const series: SeriesDef[] = hb.gpuIds.map((id, k) => ({ label: label(id), color: `--chart-${(k % 8) + 1}` }));
      this.gpuChart.setSeries(series);
      this.gpuChart.setData(hb.t, hb.gpu);
    }
  }

  private renderGpus(): void {
    const gpus: Gpu[] = this.detail?.gpus ?? [];
    const withProcs = this.detail?.parts?.gpu_processes ?? true;
    const seen = new Set<number>();
    for (const g of gpus) {
      seen.add(g.index);
      let c = this.gpuCards.get(g.index);
      if (!c) {
        c = new GpuCard(g.index);
        this.gpuCards.set(g.index, c);
        this.gpuGrid.append(c.el);
      }
      c.update(g, withProcs);
    }
    for (const [k, c] of this.gpuCards) {
      if (!seen.has(k)) {
        c.el.remove();
        this.gpuCards.delete(k);
      }
    }
    show(this.gpuSection, gpus.length > 0);
  }

  private renderTables(): void {
    const d = this.detail;
    this.disks.setData(d?.disks ?? []);
    this.nets.setData(d?.networks ?? []);
    const had = this.containers.present;
    this.containers.update(d?.containers);
    setClass(this.procs.table, "no-ctr", !this.containers.present);
    if (had !== this.containers.present) this.applyProcFilter();
    this.procs.setData(d?.processes ?? []);
    this.sessions.setData(d?.sessions ?? []);
    const temps = d?.temperatures ?? [];
    this.temps.setData(temps);
    show(this.tempSection, temps.length > 0);
    this.renderProcCount();
  }

  private renderProcCount(): void {
    const d = this.detail;
    const all = d?.processes ?? [];
    const kernel = procView.kthreads ? 0 : all.reduce((n, p) => n + (p.kernel_thread ? 1 : 0), 0);
    const total = all.length - kernel;
    const matched = this.procs.matched;
    const shown = Math.min(matched, this.showAll ? Infinity : TOP);
    const collected = d?.parts ? d.parts.processes : true;
    const hidden = kernel > 0 ? ` · ${kernel} kernel threads hidden` : "";
    setText(this.procCount, !collected ? "not collected" : matched === total ? `${shown} of ${total}${hidden}` : `${shown} of ${matched} matching (${total} in all)${hidden}`);
    setText(this.procMore, this.showAll ? `Top ${TOP}` : `Show all ${matched}`);
    show(this.procMore, this.showAll || matched > TOP);
  }

  /** Age of the data on screen (the host's last sample), against the server's clock. */
  dataAgeMs(): number | null {
    const seen = this.row?.last_seen_ms;
    return seen ? Math.max(0, this.conn.serverNow() - seen) : null;
  }

  /** Every second: ages against the server's clock. */
  tick(): void {
    const r = this.row;
    if (!r) return;
    const now = this.conn.serverNow();
    setText(this.since, r.status_since_ms > 0 ? `for ${age(now - r.status_since_ms)}` : "");
    setText(this.lastSeen, r.last_seen_ms ? `last seen ${ago(now - r.last_seen_ms)}` : "never seen");
    setTitle(this.lastSeen, dateTime(r.last_seen_ms));
  }

  destroy(): void {
    this.destroyed = true;
    this.history.destroy();
    this.alerts.destroy();
    this.reach.destroy();
    this.actions?.destroy();
    this.programs?.destroy();
    this.procs.destroy();
    this.containers.destroy();
    this.cpuChart.destroy();
    this.memChart.destroy();
    this.netChart.destroy();
    this.gpuChart.destroy();
  }
}

function meterCell(td: HTMLTableCellElement, v: number): void {
  let m = (td as HTMLTableCellElement & { meter?: Meter }).meter;
  if (!m) {
    m = new Meter();
    (td as HTMLTableCellElement & { meter?: Meter }).meter = m;
    td.append(m.el);
  }
  m.set(v);
}
