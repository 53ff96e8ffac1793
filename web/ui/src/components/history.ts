/**
 * The stored history of a host or a cluster (PROTOCOL.md "History"), as the host and cluster
 * pages show it: a range picker (15 m to 1 y, or a custom from/to), charts that zoom when
 * dragged across, and, for a host, the top processes at a clicked minute and a GPU tab with
 * who used each GPU over the range. A range that ends now is a live one: it moves with the
 * clock and is fetched again every few seconds.
 *
 * Test hooks: `#history[data-state=loading|ready|off|error]` (`data-live` while the range ends
 * now), `#range-picker button[data-range]` (`aria-pressed`), `#range-from`, `#range-to`,
 * `#range-apply`, `#history-status`, `.hchart[data-metric]` (see `history-chart.ts`),
 * `#history-procs[data-at]` with `tr[data-pid]` (cells `td[data-col]`), the tabs
 * `#history-tabs button[data-tab=charts|gpus]`, `#gpu-usage-gpu`, `#gpu-usage-user` and
 * `#gpu-usage-sampled` (`#<gpu>/<user>`) with `tr[data-key]`; the GPU chart
 * (`.hchart[data-metric="gpu"]`, `data-gpu-metric` the stored metric it shows) and its picker
 * `#gpu-metric` (use, memory, temperatures, power, SM clock and the health signals).
 *
 * GPU series are stored per GPU UUID (an index moves when a GPU before it falls off the bus):
 * they are named from the host's GPUs now (`setGpus`), "GPU <index> · <name>", and a UUID no
 * longer present as "GPU-1a2b3c4d… (gone)" (`gpuLabel`).
 */
import { basePath } from "../connection";
import { h, setAttr, setText, show } from "../dom";
import { DASH, bytes, dateTime, num, pct, rate } from "../format";
import type { SeriesDef } from "./chart";
import { HistoryChart, type HistoryChartEvents } from "./history-chart";
import type { GpuUsageAnswer, ProcessAt, ProcessesAnswer, SeriesAnswer, StoredSeries } from "../types";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** The ranges of the picker, ending now. */
export const RANGES: readonly (readonly [string, string, number])[] = [
  ["15m", "15 m", 15 * MIN],
  ["1h", "1 h", HOUR],
  ["6h", "6 h", 6 * HOUR],
  ["24h", "24 h", DAY],
  ["7d", "7 d", 7 * DAY],
  ["30d", "30 d", 30 * DAY],
  ["1y", "1 y", 365 * DAY],
];

/** Minutes sampled for the GPU tab's table per GPU and user. */
const GPU_SAMPLES = 24;
/** Points asked for per chart. */
const POINTS = 600;
/** The metrics of the charts (and the GPU chart's, `GPU_METRICS`). */
const METRICS = ["cpu_percent", "mem_percent", "load1", "net_rx_bytes_per_s", "net_tx_bytes_per_s"];

/** What the GPU chart can show: a stored per-GPU metric, its title and how its values read. */
interface GpuMetric {
  metric: string;
  title: string;
  fmt: (v: number | null) => string;
  range?: [number, number];
  /** A count that only rises: drawn by each point's max (its last value), not its mean. */
  counter?: boolean;
}

const unit = (u: string, digits = 0) => (v: number | null) => (v === null ? DASH : `${num(v, digits)} ${u}`);
const count = (v: number | null) => num(v, 0);
const share = (v: number | null) => pct(v, 0);

/** The GPU chart's choices (PROTOCOL.md "History" names them), GPU use first. */
export const GPU_METRICS: readonly GpuMetric[] = [
  { metric: "gpu_utilization_percent", title: "GPU use", fmt: share, range: [0, 100] },
  { metric: "gpu_memory_percent", title: "GPU memory used", fmt: share, range: [0, 100] },
  { metric: "gpu_temperature_celsius", title: "GPU temperature", fmt: unit("°C") },
  { metric: "gpu_memory_temperature_celsius", title: "GPU memory temperature", fmt: unit("°C") },
  { metric: "gpu_power_watts", title: "GPU power", fmt: unit("W") },
  { metric: "gpu_sm_clock_mhz", title: "SM clock", fmt: unit("MHz") },
  { metric: "gpu_throttle_power_percent", title: "Time held by the power cap", fmt: share, range: [0, 100] },
  { metric: "gpu_throttle_thermal_percent", title: "Time held by heat", fmt: share, range: [0, 100] },
  { metric: "gpu_throttle_reasons", title: "Throttle reasons", fmt: (v) => num(v, 1) },
  { metric: "gpu_ecc_corrected_errors", title: "Corrected ECC errors", fmt: count, counter: true },
  { metric: "gpu_ecc_uncorrected_errors", title: "Uncorrected ECC errors", fmt: count, counter: true },
  { metric: "gpu_remapped_rows_correctable", title: "Rows remapped (correctable)", fmt: count, counter: true },
  { metric: "gpu_remapped_rows_uncorrectable", title: "Rows remapped (uncorrectable)", fmt: count, counter: true },
  { metric: "gpu_xid_errors", title: "Xid errors", fmt: count, counter: true },
];

/** A GPU of the host now (its live summary): what a stored UUID is named after. */
export interface GpuId {
  index: number;
  uuid: string;
  name: string;
}

/**
 * How the GPU a stored label names reads: "GPU <index> · <name>" for a UUID among the host's
 * GPUs now, "GPU-1a2b3c4d… (gone)" for one no longer there, "GPU <n>" for an index (rows
 * stored before GPUs were keyed by UUID: `n` in series, `#n` in GPU use), and "All GPUs" for a
 * cluster's series over every GPU (`all`).
 */
export function gpuLabel(label: string, gpus: readonly GpuId[]): string {
  if (label === "all") return "All GPUs";
  const g = gpus.find((x) => x.uuid !== "" && x.uuid === label);
  if (g) return g.name ? `GPU ${g.index} · ${g.name}` : `GPU ${g.index}`;
  const n = label.replace(/^#/, "");
  if (/^\d+$/.test(n)) return `GPU ${n}`;
  return `${label.slice(0, 12)}… (gone)`;
}

/** Orders stored GPU labels: the host's GPUs by their index now, then indexes, then the gone. */
function gpuOrder(label: string, gpus: readonly GpuId[]): [number, string] {
  const g = gpus.find((x) => x.uuid !== "" && x.uuid === label);
  if (g) return [g.index, ""];
  const n = label.replace(/^#/, "");
  if (/^\d+$/.test(n)) return [100_000 + Number(n), ""];
  return [200_000, label];
}

/** A range: the last `ms` (live), or a fixed span. */
type Range = { live: true; key: string; ms: number } | { live: false; from: number; to: number };

/** An answer, or the server's reason. */
type Answer<T> = { ok: true; data: T } | { ok: false; status: number; why: string };

/** GETs `path` (below the base) as JSON; the server's reason on failure. */
async function getJson<T>(path: string): Promise<Answer<T>> {
  try {
    const r = await fetch(`${basePath()}${path}`, { credentials: "same-origin", headers: { accept: "application/json" } });
    if (r.ok) return { ok: true, data: (await r.json()) as T };
    let why = `${r.status} ${r.statusText}`;
    try {
      why = ((await r.json()) as { error?: string }).error ?? why;
    } catch {
      /* keep the status line */
    }
    return { ok: false, status: r.status, why };
  } catch (e) {
    return { ok: false, status: 0, why: `Cannot reach the server: ${String(e)}` };
  }
}

/** `2024-05-01T14:03` in local time, for a `datetime-local` input. */
function localInput(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Sums the series of one metric point by point (every interface's rate); null where all are. */
function sum(series: StoredSeries[], n: number): (number | null)[] {
  const out: (number | null)[] = new Array<number | null>(n).fill(null);
  for (const s of series)
    s.avg.forEach((v, i) => {
      if (v !== null && i < n) out[i] = (out[i] ?? 0) + v;
    });
  return out;
}

/** The range picker: the preset ranges, and a custom from/to. */
class RangePicker {
  readonly el: HTMLElement;
  private readonly buttons = new Map<string, HTMLButtonElement>();
  private readonly from = h("input", { type: "datetime-local", id: "range-from", "aria-label": "From" });
  private readonly to = h("input", { type: "datetime-local", id: "range-to", "aria-label": "To" });
  private readonly custom: HTMLElement;

  constructor(private readonly onPick: (r: Range) => void) {
    const seg = h("div", { class: "segmented", role: "group", "aria-label": "Time range" });
    for (const [key, label, ms] of RANGES) {
      const b = h("button", { type: "button", class: "seg", "data-range": key, "aria-pressed": "false" }, label);
      b.addEventListener("click", () => this.onPick({ live: true, key, ms }));
      this.buttons.set(key, b);
      seg.append(b);
    }
    const c = h("button", { type: "button", class: "seg", "data-range": "custom", "aria-pressed": "false" }, "Custom");
    c.addEventListener("click", () => {
      show(this.custom, this.custom.hidden);
    });
    this.buttons.set("custom", c);
    seg.append(c);
    const apply = h("button", { type: "button", class: "btn", id: "range-apply" }, "Show");
    const why = h("span", { class: "muted", id: "range-why", role: "status" });
    apply.addEventListener("click", () => {
      const a = new Date(this.from.value).getTime();
      const b = new Date(this.to.value).getTime();
      if (!Number.isFinite(a) || !Number.isFinite(b)) return setText(why, "Give both times.");
      if (a >= b) return setText(why, "From must be before To.");
      setText(why, "");
      this.onPick({ live: false, from: a, to: b });
    });
    this.custom = h("span", { class: "range-custom", id: "range-custom", hidden: true }, this.from, "–", this.to, apply, why);
    this.el = h("div", { class: "range-picker", id: "range-picker" }, seg, this.custom);
  }

  /** Shows `r` as chosen. */
  set(r: Range, from: number, to: number): void {
    const key = r.live ? r.key : "custom";
    for (const [k, b] of this.buttons) setAttr(b, "aria-pressed", String(k === key));
    if (!r.live || this.custom.hidden) {
      this.from.value = localInput(from);
      this.to.value = localInput(to);
    }
    if (!r.live) show(this.custom, true);
  }
}

/** What the view shows: a host's history (with processes and GPUs) or a cluster's. */
export interface HistoryViewOptions {
  kind: "host" | "cluster";
  /** Host id or cluster name. */
  id: string;
}

/** The history section of a host or cluster page. */
export class HistoryView {
  readonly el: HTMLElement;
  private range: Range = { live: true, key: "1h", ms: HOUR };
  private readonly picker: RangePicker;
  private readonly status = h("p", { class: "muted history-status", id: "history-status", role: "status" });
  private readonly chartsEl = h("div", { class: "charts" });
  private readonly charts: { cpu: HistoryChart; mem: HistoryChart; load: HistoryChart; net: HistoryChart; gpu: HistoryChart };
  /** What the GPU chart shows (`#gpu-metric`). */
  private gpuMetric: GpuMetric = GPU_METRICS[0] as GpuMetric;
  private readonly gpuPick = h("select", { id: "gpu-metric", class: "gpu-metric", "aria-label": "GPU chart shows" }, ...GPU_METRICS.map((m) => h("option", { value: m.metric }, m.title)));
  private readonly chartEvents: HistoryChartEvents;
  private readonly procs = h("section", { class: "card history-procs", id: "history-procs", hidden: true });
  private readonly gpuPane = h("div", { class: "gpu-usage", id: "gpu-usage", hidden: true });
  private readonly tabs = h("div", { class: "segmented", id: "history-tabs", role: "tablist" });
  private tab: "charts" | "gpus" = "charts";
  private seq = 0;
  private fetchedAt = 0;
  private readonly timer: number;
  private destroyed = false;
  /** History is off on the server: stop asking. */
  private off = false;
  /** What is hidden while history is off. */
  private parts: HTMLElement[] = [];
  /** Numbers the picks: only the last one's answer is shown. */
  private pickSeq = 0;
  /** The host's GPUs now (`setGpus`), and what they were when last drawn. */
  private gpus: GpuId[] = [];
  private gpusKey = "";

  constructor(private readonly opts: HistoryViewOptions) {
    this.picker = new RangePicker((r) => this.setRange(r));
    const zoom = (from: number, to: number) => this.setRange({ live: false, from, to });
    const pick = opts.kind === "host" ? (t: number) => void this.showProcesses(t) : undefined;
    const ev = { onZoom: zoom, onPick: pick };
    this.chartEvents = ev;
    const pctFmt = (v: number | null) => pct(v, 0);
    this.charts = {
      cpu: new HistoryChart("CPU", "cpu", [{ label: "CPU", color: "--chart-1" }], { range: [0, 100], fmt: pctFmt }, ev),
      mem: new HistoryChart("Memory", "mem", [{ label: "Used", color: "--chart-2" }], { range: [0, 100], fmt: pctFmt }, ev),
      load: new HistoryChart("Load (1 min)", "load", [{ label: "Load", color: "--chart-5" }], { fmt: (v) => num(v, 2) }, ev),
      net: new HistoryChart(
        "Network",
        "net",
        [
          { label: "Rx", color: "--chart-3" },
          { label: "Tx", color: "--chart-4" },
        ],
        { fmt: (v) => (v === null ? DASH : rate(v)), axisFmt: (v) => bytes(v), axisSize: 68 },
        ev,
      ),
      gpu: this.gpuChart(),
    };
    for (const c of Object.values(this.charts)) this.chartsEl.append(c.el);
    show(this.charts.gpu.el, false);
    this.gpuPick.addEventListener("change", () => {
      this.gpuMetric = GPU_METRICS.find((m) => m.metric === this.gpuPick.value) ?? this.gpuMetric;
      const old = this.charts.gpu;
      this.charts.gpu = this.gpuChart();
      show(this.charts.gpu.el, false);
      old.el.replaceWith(this.charts.gpu.el);
      old.destroy();
      void this.load();
    });

    const tools = h("div", { class: "section-tools" }, this.picker.el);
    if (opts.kind === "host") {
      for (const [key, label] of [
        ["charts", "Charts"],
        ["gpus", "GPUs"],
      ] as const) {
        const b = h("button", { type: "button", class: "seg", role: "tab", "data-tab": key, "aria-pressed": String(key === "charts") }, label);
        b.addEventListener("click", () => this.setTab(key));
        this.tabs.append(b);
      }
      tools.prepend(this.tabs);
    }
    const title = opts.kind === "host" ? "History" : `History of cluster ${opts.id}`;
    const hint = h("p", { class: "muted history-hint" }, opts.kind === "host" ? "Drag across a chart to zoom; click a point for the top processes at that minute." : "Drag across a chart to zoom. Percentages and loads are the mean over the cluster's hosts; rates the sum.");
    this.el = h("section", { class: "section history", id: "history", "data-state": "loading" }, h("div", { class: "section-head" }, h("h2", null, title), tools), hint, this.status, this.chartsEl, this.procs, this.gpuPane);
    this.parts = [tools, hint, this.chartsEl, this.gpuPane];
    this.setRange(this.range);
    // A live range moves with the clock: fetch again every few seconds (longer ranges less often).
    this.timer = window.setInterval(() => {
      if (!this.range.live || document.hidden || this.off) return;
      const every = Math.min(60_000, Math.max(5_000, this.range.ms / POINTS));
      if (Date.now() - this.fetchedAt >= every) void this.load();
    }, 1000);
  }

  /**
   * The host's GPUs now (from its live summary), which name the stored GPU series; drawn again
   * when they change (a GPU gone or back, a new index).
   */
  setGpus(gpus: readonly GpuId[]): void {
    const key = gpus.map((g) => `${g.index}\u0000${g.uuid}\u0000${g.name}`).join("\u0001");
    if (key === this.gpusKey) return;
    this.gpusKey = key;
    this.gpus = gpus.map((g) => ({ index: g.index, uuid: g.uuid, name: g.name }));
    if (!this.off) void this.load();
  }

  /** The GPU chart for the chosen GPU metric, with the picker in its header. */
  private gpuChart(): HistoryChart {
    const m = this.gpuMetric;
    const title = m.counter ? `${m.title} (last value)` : m.title;
    const c = new HistoryChart(title, "gpu", [], { range: m.range, fmt: m.fmt, tools: this.gpuPick }, this.chartEvents);
    setAttr(c.el, "data-gpu-metric", m.metric);
    return c;
  }

  private bounds(): [number, number] {
    if (this.range.live) {
      const to = Date.now();
      return [to - this.range.ms, to];
    }
    return [this.range.from, this.range.to];
  }

  private setRange(r: Range): void {
    this.range = r;
    const [from, to] = this.bounds();
    this.picker.set(r, from, to);
    setAttr(this.el, "data-live", r.live ? "true" : null);
    void this.load();
  }

  private setTab(t: "charts" | "gpus"): void {
    this.tab = t;
    for (const b of Array.from(this.tabs.children)) setAttr(b, "aria-pressed", String((b as HTMLElement).dataset.tab === t));
    show(this.chartsEl, t === "charts");
    show(this.gpuPane, t === "gpus");
    if (t === "gpus") show(this.procs, false);
    void this.load();
  }

  private base(): string {
    const id = encodeURIComponent(this.opts.id);
    return this.opts.kind === "host" ? `api/v1/hosts/${id}` : `api/v1/clusters/${id}`;
  }

  /** Fetches what the tab on screen shows, for the range now. */
  private async load(): Promise<void> {
    const seq = ++this.seq;
    this.fetchedAt = Date.now();
    const [from, to] = this.bounds();
    if (this.tab === "gpus") return this.loadGpus(seq, from, to);
    const gm = this.gpuMetric;
    // GPU use says whether the host has GPUs at all, whatever the GPU chart shows.
    const metrics = [...METRICS, "gpu_utilization_percent", gm.metric].filter((m, i, a) => a.indexOf(m) === i);
    const q = `metrics=${metrics.join(",")}&from=${Math.round(from)}&to=${Math.round(to)}&points=${POINTS}`;
    const r = await getJson<SeriesAnswer>(`${this.base()}/history?${q}`);
    if (seq !== this.seq || this.destroyed) return;
    if (!r.ok) return this.fail(r.status, r.why);
    this.ok();
    const a = r.data;
    const n = a.t.length;
    const of = (m: string) => a.series.filter((s) => s.metric === m);
    const one = (m: string) => of(m)[0];
    const put = (c: HistoryChart, m: string, label: string, color: string) => {
      const s = one(m);
      c.setData(a.from, a.to, a.t, [{ label, color }], [s?.avg ?? []], s?.max, s?.min);
    };
    put(this.charts.cpu, "cpu_percent", "CPU", "--chart-1");
    put(this.charts.mem, "mem_percent", "Used", "--chart-2");
    put(this.charts.load, "load1", "Load", "--chart-5");
    this.charts.net.setData(
      a.from,
      a.to,
      a.t,
      [
        { label: "Rx", color: "--chart-3" },
        { label: "Tx", color: "--chart-4" },
      ],
      [sum(of("net_rx_bytes_per_s"), n), sum(of("net_tx_bytes_per_s"), n)],
    );
    // One series per GPU UUID, named and ordered by the host's GPUs now.
    const byGpu = (m: string) =>
      of(m).sort((x, y) => {
        const [a, b] = [gpuOrder(x.label ?? "", this.gpus), gpuOrder(y.label ?? "", this.gpus)];
        return a[0] - b[0] || a[1].localeCompare(b[1]);
      });
    const hasGpus = of("gpu_utilization_percent").length > 0 || of(gm.metric).length > 0;
    show(this.charts.gpu.el, hasGpus);
    if (hasGpus) {
      const gpus = byGpu(gm.metric);
      const defs: SeriesDef[] = gpus.map((g, k) => ({ label: gpuLabel(g.label ?? String(k), this.gpus), color: `--chart-${(k % 8) + 1}` }));
      // A count's mean over a point is no count: draw its max, which is its last value.
      const line = (g: StoredSeries) => (gm.counter ? g.max : g.avg);
      const band = gpus.length === 1 && !gm.counter;
      this.charts.gpu.setData(
        a.from,
        a.to,
        a.t,
        defs,
        gpus.map(line),
        band ? gpus[0]?.max : undefined,
        band ? gpus[0]?.min : undefined,
      );
    }
    setAttr(this.el, "data-tier", a.tier);
  }

  private ok(): void {
    setAttr(this.el, "data-state", "ready");
    setText(this.status, "");
    show(this.status, false);
    this.showParts(true);
  }

  /** A refusal: history off (503: only a line is left, and nothing is fetched again), or an
   * error with the server's reason. */
  private fail(status: number, why: string): void {
    const off = status === 503;
    this.off = off;
    setAttr(this.el, "data-state", off ? "off" : "error");
    setText(this.status, off ? "History is off on this server: only the live charts above are kept." : `History could not be read: ${why}`);
    show(this.status, true);
    if (off) this.showParts(false);
  }

  private showParts(on: boolean): void {
    for (const el of this.parts) show(el, on && (el !== this.chartsEl || this.tab === "charts") && (el !== this.gpuPane || this.tab === "gpus"));
  }

  /** The GPU tab: GPU-hours per GPU and per user of this host over the range. */
  private async loadGpus(seq: number, from: number, to: number): Promise<void> {
    const q = (by: string) => `api/v1/gpus/usage?by=${by}&host=${encodeURIComponent(this.opts.id)}&from=${Math.round(from)}&to=${Math.round(to)}`;
    const [perGpu, perUser] = await Promise.all([getJson<GpuUsageAnswer>(q("gpu")), getJson<GpuUsageAnswer>(q("user"))]);
    if (seq !== this.seq || this.destroyed) return;
    if (!perGpu.ok) return this.fail(perGpu.status, perGpu.why);
    this.ok();
    // A GPU's key is `host/<uuid>` (`host/#index` for rows stored before UUIDs).
    const prefix = `${this.opts.id}/`;
    const gpuOf = (key: string) => gpuLabel(key.startsWith(prefix) ? key.slice(prefix.length) : key, this.gpus);
    const table = (id: string, title: string, keyLabel: string, a: Answer<GpuUsageAnswer>) => {
      let body: HTMLElement;
      if (!a.ok) body = h("p", { class: "muted", "data-refused": String(a.status) }, a.why);
      else if (a.data.rows.length === 0) body = h("p", { class: "muted" }, "No GPU process was stored in this range.");
      else
        body = h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "data compact" },
            h("thead", null, h("tr", null, h("th", null, keyLabel), h("th", { class: "num" }, "GPU-hours"), h("th", { class: "num" }, "GPU memory (GiB·h)"), h("th", { class: "num" }, "Processes"))),
            h(
              "tbody",
              null,
              ...a.data.rows.map((r) => h("tr", { "data-key": r.key }, h("td", { class: keyLabel === "GPU" ? undefined : "mono", "data-col": "key", title: r.key }, keyLabel === "GPU" ? gpuOf(r.key) : r.key), h("td", { class: "num", "data-col": "hours" }, num(r.gpu_hours, 2)), h("td", { class: "num" }, num(r.gpu_memory_gib_hours, 1)), h("td", { class: "num" }, String(r.processes)))),
            ),
          ),
        );
      return h("section", { class: "card", id }, h("header", { class: "card-head" }, h("span", { class: "card-title" }, title)), body);
    };
    this.gpuPane.replaceChildren(
      h("p", { class: "muted" }, `GPU use from ${dateTime(from)} to ${dateTime(to)}: a GPU held by one process for an hour is one GPU-hour.`),
      h("div", { class: "two-col" }, table("gpu-usage-gpu", "Per GPU", "GPU", perGpu), table("gpu-usage-user", "Per user", "User", perUser)),
    );
    const sampled = await this.sampleGpuUsers(from, to);
    if (seq !== this.seq || this.destroyed || !sampled) return;
    this.gpuPane.append(sampled);
  }

  /**
   * Who held each GPU: the stored GPU processes at `GPU_SAMPLES` minutes spread over the range
   * (the usage routes group by GPU or by user, not both), as the share of those minutes in
   * which each user held each GPU.
   */
  private async sampleGpuUsers(from: number, to: number): Promise<HTMLElement | null> {
    const at = Array.from({ length: GPU_SAMPLES }, (_, i) => Math.round(from + ((i + 0.5) * (to - from)) / GPU_SAMPLES));
    const answers = await Promise.all(at.map((t) => getJson<ProcessesAnswer>(`${this.base()}/processes?at=${t}`)));
    const minutes = new Set<number>();
    // Per GPU (its UUID; its index for rows stored before UUIDs) and user.
    const held = new Map<string, { gpu: string; index: number; user: string; minutes: Set<number> }>();
    for (const r of answers) {
      if (!r.ok || r.data.at === null || r.data.at < from - MIN || r.data.at > to) continue;
      const m = r.data.at;
      minutes.add(m);
      for (const g of r.data.gpu) {
        const gpu = g.parent_uuid || `#${g.gpu}`;
        const key = `${gpu}/${g.user}`;
        let e = held.get(key);
        if (!e) held.set(key, (e = { gpu, index: g.gpu, user: g.user, minutes: new Set() }));
        e.minutes.add(m);
      }
    }
    const title = h("header", { class: "card-head" }, h("span", { class: "card-title" }, "Per GPU and user (sampled)"));
    if (minutes.size === 0) return h("section", { class: "card", id: "gpu-usage-sampled" }, title, h("p", { class: "muted" }, "No process list is stored in this range."));
    const order = (e: { gpu: string }) => gpuOrder(e.gpu, this.gpus);
    const rows = Array.from(held.entries()).sort(([, a], [, b]) => {
      const [x, y] = [order(a), order(b)];
      return x[0] - y[0] || x[1].localeCompare(y[1]) || b.minutes.size - a.minutes.size;
    });
    const share = (n: number) => pct((100 * n) / minutes.size, 0);
    return h(
      "section",
      { class: "card", id: "gpu-usage-sampled" },
      title,
      h("p", { class: "muted" }, `At ${minutes.size} stored minutes spread over the range: the share of them in which each user held each GPU.`),
      rows.length === 0
        ? h("p", { class: "muted" }, "No GPU process at those minutes.")
        : h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "data compact" },
              h("thead", null, h("tr", null, h("th", null, "GPU"), h("th", null, "User"), h("th", { class: "num" }, "Minutes held"))),
              h("tbody", null, ...rows.map(([key, e]) => h("tr", { "data-key": key }, h("td", { "data-col": "gpu", title: e.gpu }, gpuLabel(e.gpu, this.gpus)), h("td", { "data-col": "user" }, e.user || "(hidden)"), h("td", { class: "num", "data-col": "share" }, share(e.minutes.size))))),
            ),
          ),
    );
  }

  /** The top processes at the minute nearest `t` (a clicked point). */
  private async showProcesses(t: number): Promise<void> {
    const seq = ++this.pickSeq;
    show(this.procs, true);
    setAttr(this.procs, "data-at", null);
    this.procs.replaceChildren(h("header", { class: "card-head" }, h("span", { class: "card-title" }, `Top processes near ${dateTime(t)}`)), h("p", { class: "muted" }, "Loading…"));
    const r = await getJson<ProcessesAnswer>(`${this.base()}/processes?at=${Math.round(t)}`);
    if (seq !== this.pickSeq || this.destroyed) return;
    const close = h("button", { type: "button", class: "text-btn", id: "history-procs-close" }, "Close");
    close.addEventListener("click", () => show(this.procs, false));
    if (!r.ok) {
      this.procs.replaceChildren(h("header", { class: "card-head" }, h("span", { class: "card-title" }, "Top processes"), close), h("p", { class: "muted" }, r.why));
      return;
    }
    const a = r.data;
    setAttr(this.procs, "data-at", a.at === null ? "none" : String(a.at));
    const head = h("header", { class: "card-head" }, h("span", { class: "card-title" }, a.at === null ? `No processes stored near ${dateTime(t)}` : `Top processes at ${dateTime(a.at)}`), close);
    if (a.at === null) {
      this.procs.replaceChildren(head);
      return;
    }
    const procTable = (id: string, title: string, list: ProcessAt[]) =>
      h(
        "div",
        { class: "history-proc-list" },
        h("h3", null, title),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "data compact", id },
            h("thead", null, h("tr", null, h("th", { class: "num" }, "PID"), h("th", null, "User"), h("th", null, "Name"), h("th", { class: "num" }, "CPU"), h("th", { class: "num" }, "Memory"), h("th", null, "Command"))),
            h(
              "tbody",
              null,
              ...list.map((p) =>
                h(
                  "tr",
                  { "data-pid": p.pid },
                  h("td", { class: "num", "data-col": "pid" }, String(p.pid)),
                  h("td", { class: "ellipsis", "data-col": "user" }, p.user || DASH),
                  h("td", { class: "ellipsis", "data-col": "name" }, p.name),
                  h("td", { class: "num", "data-col": "cpu" }, pct(p.cpu_percent)),
                  h("td", { class: "num", "data-col": "mem" }, bytes(p.memory_bytes)),
                  h("td", { class: "cmd mono", "data-col": "cmd", title: p.cmdline || "Command lines are not shown to this login" }, p.cmdline || DASH),
                ),
              ),
            ),
          ),
        ),
      );
    const parts: HTMLElement[] = [head, h("div", { class: "two-col" }, procTable("history-top-cpu", "By CPU", a.top_cpu), procTable("history-top-mem", "By memory", a.top_memory))];
    if (a.gpu.length > 0)
      parts.push(
        h(
          "div",
          { class: "history-proc-list" },
          h("h3", null, "On GPUs"),
          h(
            "table",
            { class: "data compact", id: "history-gpu-procs" },
            h("thead", null, h("tr", null, h("th", null, "GPU"), h("th", { class: "num" }, "PID"), h("th", null, "User"), h("th", null, "Name"), h("th", { class: "num" }, "GPU memory"))),
            h("tbody", null, ...a.gpu.map((g) => h("tr", { "data-pid": g.pid }, h("td", { title: g.parent_uuid || g.gpu_uuid }, `GPU ${g.gpu}`), h("td", { class: "num" }, String(g.pid)), h("td", { "data-col": "user" }, g.user || DASH), h("td", null, g.name), h("td", { class: "num" }, bytes(g.memory_bytes))))),
          ),
        ),
      );
    this.procs.replaceChildren(...parts);
  }

  destroy(): void {
    this.destroyed = true;
    window.clearInterval(this.timer);
    for (const c of Object.values(this.charts)) c.destroy();
  }
}
