/**
 * A chart of stored history (uPlot) over a given range: each series' average as a line and,
 * for a chart of one series, its maximum and minimum as thin dashed lines, so that spikes stay
 * visible when many samples share a point. Dragging across the chart zooms to that span
 * (`onZoom`); a click picks the point under the cursor (`onPick`). The header shows the values
 * under the cursor, or the newest ones. Colours come from the theme; a theme change redraws.
 *
 * Test hooks: the chart's element has `data-metric`, `data-from`/`data-to` (the range shown,
 * ms) and `data-points` (how many points it holds); the plot area is uPlot's `.u-over`.
 */
import uPlot from "uplot";
import { h, setAttr, setText } from "../dom";
import { cssColor, onThemeChange } from "../theme";
import type { SeriesDef } from "./chart";

export interface HistoryChartOptions {
  /** Fixed vertical range, e.g. [0, 100]; otherwise from 0 to the data. */
  range?: [number, number];
  /** Formats a value for the header. */
  fmt: (v: number | null) => string;
  /** Formats a value of the vertical axis (default: `fmt`). */
  axisFmt?: (v: number) => string;
  /** Width of the vertical axis in px (default 44). */
  axisSize?: number;
  height?: number;
  /** Shown in the header after the title (e.g. a picker of what the chart shows). */
  tools?: HTMLElement;
}

/** What the chart reports. */
export interface HistoryChartEvents {
  /** A span was dragged across: zoom to it (ms since the epoch). */
  onZoom: (fromMs: number, toMs: number) => void;
  /** A point was clicked (its time, ms since the epoch). */
  onPick?: (tMs: number) => void;
}

/**
 * The columns to draw: points where no series has a value are dropped where they only sit
 * between samples (a host sampled every 10 s read at 1.5 s points), so the lines join; a gap
 * longer than three times the usual spacing of the samples keeps one empty point, so an outage
 * shows as a gap.
 */
export function drawnColumns(xs: readonly number[], cols: readonly (readonly (number | null)[])[]): number[] {
  const full: number[] = [];
  for (let i = 0; i < xs.length; i++) if (cols.some((c) => c[i] !== null && c[i] !== undefined)) full.push(i);
  if (full.length < 2) return full;
  const gaps = full.slice(1).map((k, j) => (xs[k] as number) - (xs[full[j] as number] as number));
  const sorted = [...gaps].sort((a, b) => a - b);
  const usual = sorted[Math.floor(sorted.length / 2)] as number;
  const out: number[] = [full[0] as number];
  for (let j = 1; j < full.length; j++) {
    const prev = full[j - 1] as number;
    const k = full[j] as number;
    if ((gaps[j - 1] as number) > 3 * usual && k - prev > 1) out.push(prev + 1);
    out.push(k);
  }
  return out;
}

/** Shortest drag (px) that zooms; anything shorter is a click. */
const MIN_DRAG_PX = 4;

export class HistoryChart {
  readonly el: HTMLElement;
  private readonly body: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly legend: HTMLElement;
  private values: HTMLElement[] = [];
  private plot: uPlot | null = null;
  /** `[xs (s), avg per series..., then max and min of a single series]`. */
  private data: uPlot.AlignedData = [[]];
  private fromS = 0;
  private toS = 1;
  private cursorIdx: number | null = null;
  /** A drag just ended: the click that follows it is not a pick. */
  private dragged = false;
  private readonly ro: ResizeObserver;
  private readonly unTheme: () => void;

  constructor(
    title: string,
    metric: string,
    private series: SeriesDef[],
    private readonly opts: HistoryChartOptions,
    private readonly events: HistoryChartEvents,
  ) {
    this.legend = h("span", { class: "chart-legend" });
    this.body = h("div", { class: "chart-body" });
    this.empty = h("div", { class: "chart-empty" }, "Nothing stored in this range");
    this.el = h("section", { class: "card chart hchart", "data-metric": metric }, h("header", { class: "card-head" }, h("span", { class: "card-title" }, title), opts.tools, this.legend), this.body, this.empty);
    if (events.onPick) this.el.title = "Drag to zoom; click a point for the top processes at that minute";
    else this.el.title = "Drag to zoom";
    this.fillLegend();
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.body);
    this.unTheme = onThemeChange(() => this.rebuild());
  }

  private fillLegend(): void {
    this.values = [];
    this.legend.replaceChildren(
      ...this.series.map((s) => {
        const v = h("b");
        this.values.push(v);
        const sw = h("i", { class: "swatch" });
        sw.style.background = `var(${s.color})`;
        return h("span", { class: "legend-item" }, sw, `${s.label} `, v);
      }),
    );
  }

  /** Whether this chart draws max and min (one series only). */
  private get minmax(): boolean {
    return this.series.length === 1;
  }

  /**
   * Shows the range `[fromMs, toMs]` with points at `tMs`: `avg[i]` per series, and for a
   * single series its `max` and `min`.
   */
  setData(fromMs: number, toMs: number, tMs: readonly number[], series: SeriesDef[], avg: (number | null)[][], max?: (number | null)[], min?: (number | null)[]): void {
    const sameSeries = series.length === this.series.length && series.every((s, i) => s.label === this.series[i]?.label && s.color === this.series[i]?.color);
    if (!sameSeries) {
      this.series = series;
      this.fillLegend();
    }
    this.fromS = fromMs / 1000;
    this.toS = toMs / 1000;
    const all = tMs.map((t) => t / 1000);
    const full: (number | null)[][] = series.map((_, i) => (avg[i] ?? []).slice(0, all.length));
    if (this.minmax) full.push((max ?? []).slice(0, all.length), (min ?? []).slice(0, all.length));
    const keep = drawnColumns(all, full);
    const xs = keep.map((i) => all[i] as number);
    const cols = full.map((c) => keep.map((i) => c[i] ?? null));
    this.data = [xs, ...cols];
    setAttr(this.el, "data-from", String(Math.round(fromMs)));
    setAttr(this.el, "data-to", String(Math.round(toMs)));
    setAttr(this.el, "data-points", String(xs.length));
    const none = xs.length === 0 || cols.every((c) => c.every((v) => v === null));
    this.body.hidden = none;
    this.empty.hidden = !none;
    if (!none) {
      if (this.plot && sameSeries) {
        this.plot.setData(this.data, false);
        this.plot.setScale("x", { min: this.fromS, max: this.toS });
      } else this.rebuild();
    }
    this.showValues();
  }

  private showValues(): void {
    const xs = this.data[0];
    const idx = this.cursorIdx ?? (xs.length > 0 ? xs.length - 1 : null);
    this.values.forEach((v, i) => {
      const col = this.data[i + 1];
      let text = this.opts.fmt(idx === null || !col ? null : (col[idx] ?? null));
      if (this.minmax && idx !== null) {
        const mx = this.data[2]?.[idx] ?? null;
        if (mx !== null && mx !== undefined) text += ` (max ${this.opts.fmt(mx)})`;
      }
      setText(v, text);
    });
  }

  private rebuild(): void {
    this.plot?.destroy();
    this.plot = null;
    const width = this.body.clientWidth;
    if (width <= 0 || this.data[0].length === 0) return;
    const fg = cssColor("--fg-muted");
    const grid = cssColor("--grid");
    const font = `11px ${getComputedStyle(document.body).fontFamily}`;
    const axisFmt = this.opts.axisFmt ?? this.opts.fmt;
    const range = this.opts.range;
    const lines: uPlot.Series[] = this.series.map((s) => {
      const c = cssColor(s.color, "#3b82f6");
      return { label: s.label, stroke: c, width: 1.5, fill: this.minmax ? `${c}1f` : undefined, points: { show: false }, spanGaps: false };
    });
    if (this.minmax) {
      const c = cssColor(this.series[0]?.color ?? "--chart-1", "#3b82f6");
      lines.push({ label: "max", stroke: `${c}99`, width: 1, dash: [3, 3], points: { show: false } }, { label: "min", stroke: `${c}66`, width: 1, dash: [2, 4], points: { show: false } });
    }
    const opts: uPlot.Options = {
      width,
      height: this.opts.height ?? 150,
      legend: { show: false },
      padding: [8, 12, 0, 0],
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 6 } },
      select: { show: true, left: 0, top: 0, width: 0, height: 0 },
      scales: {
        x: { time: true, range: () => [this.fromS, this.toS] },
        y: { range: range ? () => range : (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { stroke: fg, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, size: 28 },
        { stroke: fg, font, grid: { stroke: grid, width: 1 }, ticks: { show: false }, size: this.opts.axisSize ?? 44, values: (_u, vals) => vals.map((v) => axisFmt(v)) },
      ],
      series: [{}, ...lines],
      hooks: {
        setCursor: [
          (u) => {
            this.cursorIdx = u.cursor.idx ?? null;
            this.showValues();
          },
        ],
        setSelect: [
          (u) => {
            const { left, width: w } = u.select;
            if (w < MIN_DRAG_PX) return;
            this.dragged = true;
            const a = u.posToVal(left, "x") * 1000;
            const b = u.posToVal(left + w, "x") * 1000;
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            if (b - a >= 1000) this.events.onZoom(Math.round(a), Math.round(b));
          },
        ],
      },
    };
    this.plot = new uPlot(opts, this.data, this.body);
    const over = this.plot.over;
    over.addEventListener("mousedown", () => {
      this.dragged = false;
    });
    over.addEventListener("click", () => {
      if (this.dragged) {
        this.dragged = false;
        return;
      }
      const idx = this.plot?.cursor.idx;
      const t = idx === null || idx === undefined ? undefined : this.data[0][idx];
      if (t !== undefined && this.events.onPick) this.events.onPick(Math.round(t * 1000));
    });
  }

  private resize(): void {
    const width = this.body.clientWidth;
    if (width <= 0) return;
    if (!this.plot) this.rebuild();
    else if (Math.abs(this.plot.width - width) > 1) this.plot.setSize({ width, height: this.opts.height ?? 150 });
  }

  destroy(): void {
    this.ro.disconnect();
    this.unTheme();
    this.plot?.destroy();
    this.plot = null;
  }
}
