/**
 * A live time-series chart (uPlot) over a fixed window ending at the newest sample. Its header
 * shows the newest value of each series, or the value under the cursor, so that nothing depends
 * on hovering. Colours come from the theme's CSS variables; a theme change redraws the chart.
 */
import uPlot from "uplot";
import { h, setText } from "../dom";
import { cssColor, onThemeChange } from "../theme";

export interface SeriesDef {
  label: string;
  /** CSS variable holding a hex colour, e.g. "--chart-1". */
  color: string;
}

export interface ChartOptions {
  /** Fixed vertical range, e.g. [0, 100] for percentages; otherwise from 0 to the data. */
  range?: [number, number];
  /** Formats a value for the axis and the header. */
  fmt: (v: number | null) => string;
  /** Window in seconds (900: 15 minutes). */
  windowS: number;
  height?: number;
  /** Formats a value of the vertical axis (default: `fmt`). */
  axisFmt?: (v: number) => string;
  /** Width of the vertical axis in px (default 44). */
  axisSize?: number;
  /** Ticks at round binary multiples (bytes: 1, 2, 5 x 1024^k). */
  binary?: boolean;
}

/** Tick increments for byte values: 1, 2, 5 x 10^j x 1024^k. */
const BINARY_INCRS: number[] = [];
for (let k = 0; k < 6; k++) for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500]) BINARY_INCRS.push(m * 1024 ** k);

export class LiveChart {
  readonly el: HTMLElement;
  private readonly body: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly values: HTMLElement[] = [];
  private plot: uPlot | null = null;
  private data: uPlot.AlignedData = [[]];
  private cursorIdx: number | null = null;
  private readonly ro: ResizeObserver;
  private readonly unTheme: () => void;

  constructor(
    title: string,
    private series: SeriesDef[],
    private readonly opts: ChartOptions,
  ) {
    const legend = h("span", { class: "chart-legend" });
    for (const s of series) legend.append(this.legendItem(s));
    this.body = h("div", { class: "chart-body" });
    this.empty = h("div", { class: "chart-empty" }, "No samples yet");
    this.el = h("section", { class: "card chart" }, h("header", { class: "card-head" }, h("span", { class: "card-title" }, title), legend), this.body, this.empty);
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.body);
    this.unTheme = onThemeChange(() => this.rebuild());
  }

  private legendItem(s: SeriesDef): HTMLElement {
    const v = h("b");
    this.values.push(v);
    const sw = h("i", { class: "swatch" });
    sw.style.background = `var(${s.color})`;
    return h("span", { class: "legend-item" }, sw, `${s.label} `, v);
  }

  /** Replaces the series (when the number of GPUs changes). */
  setSeries(series: SeriesDef[]): void {
    if (series.length === this.series.length && series.every((s, i) => s.label === this.series[i]?.label)) return;
    this.series = series;
    const legend = this.el.querySelector(".chart-legend");
    this.values.length = 0;
    if (legend) {
      legend.replaceChildren();
      for (const s of series) legend.append(this.legendItem(s));
    }
    this.rebuild();
  }

  /** Replaces the data: times in ms, one array of values per series. */
  setData(tMs: readonly number[], ys: readonly (readonly (number | null)[])[]): void {
    const xs = tMs.map((t) => t / 1000);
    this.data = [xs, ...this.series.map((_, i) => (ys[i] ?? []).slice(0, xs.length) as (number | null)[])];
    const none = xs.length === 0;
    this.body.hidden = none;
    this.empty.hidden = !none;
    if (none) return this.showValues();
    if (this.plot) this.plot.setData(this.data);
    else this.rebuild();
    this.showValues();
  }

  private showValues(): void {
    const xs = this.data[0];
    const idx = this.cursorIdx ?? (xs.length > 0 ? xs.length - 1 : null);
    this.values.forEach((v, i) => {
      const col = this.data[i + 1];
      setText(v, this.opts.fmt(idx === null || !col ? null : (col[idx] ?? null)));
    });
  }

  private rebuild(): void {
    this.plot?.destroy();
    this.plot = null;
    const width = this.body.clientWidth;
    if (width <= 0) return; // not laid out yet: the ResizeObserver calls back
    const fg = cssColor("--fg-muted");
    const grid = cssColor("--grid");
    const font = `11px ${getComputedStyle(document.body).fontFamily}`;
    const axisFmt = this.opts.axisFmt ?? this.opts.fmt;
    const range = this.opts.range;
    const windowS = this.opts.windowS;
    const opts: uPlot.Options = {
      width,
      height: this.opts.height ?? 150,
      legend: { show: false },
      padding: [8, 12, 0, 0],
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      scales: {
        x: { time: true, range: (_u, _min, max) => [max - windowS, max] },
        y: { range: range ? () => range : (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { stroke: fg, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, size: 28 },
        {
          stroke: fg,
          font,
          grid: { stroke: grid, width: 1 },
          ticks: { show: false },
          size: this.opts.axisSize ?? 44,
          ...(this.opts.binary ? { incrs: BINARY_INCRS } : {}),
          values: (_u, vals) => vals.map((v) => axisFmt(v)),
        },
      ],
      series: [
        {},
        ...this.series.map((s) => {
          const c = cssColor(s.color, "#3b82f6");
          return { label: s.label, stroke: c, width: 1.5, fill: `${c}1f`, points: { show: false } };
        }),
      ],
      hooks: {
        setCursor: [
          (u) => {
            this.cursorIdx = u.cursor.idx ?? null;
            this.showValues();
          },
        ],
      },
    };
    this.plot = new uPlot(opts, this.data, this.body);
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
