/** A tiny inline-SVG line of recent values (CPU % of a host row), 0-100 on the vertical axis. */
import { svg, setAttr } from "../dom";

const POINTS = 60;

export class Sparkline {
  readonly el: SVGSVGElement;
  private readonly line: SVGPolylineElement;
  private readonly area: SVGPolygonElement;
  private values: number[] = [];
  private key = "";

  constructor(cls = "spark") {
    this.el = svg("svg", {
      class: cls,
      viewBox: `0 0 ${POINTS - 1} 100`,
      preserveAspectRatio: "none",
      "aria-hidden": "true",
    });
    this.area = svg("polygon", { class: "spark-area" });
    this.line = svg("polyline", { class: "spark-line", "vector-effect": "non-scaling-stroke" });
    this.el.append(this.area, this.line);
  }

  /** Replaces the values (oldest first; only the last 60 are drawn). */
  set(values: readonly (number | null)[]): void {
    this.values = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v)).slice(-POINTS);
    this.draw();
  }

  /** Appends one value. */
  push(v: number | null): void {
    if (typeof v !== "number" || !Number.isFinite(v)) return;
    this.values.push(v);
    if (this.values.length > POINTS) this.values.splice(0, this.values.length - POINTS);
    this.draw();
  }

  private draw(): void {
    const v = this.values;
    const off = POINTS - v.length; // right-aligned: the newest value is at the right edge
    const pts = v.map((x, i) => `${off + i},${(100 - Math.max(0, Math.min(100, x))).toFixed(1)}`).join(" ");
    if (pts === this.key) return;
    this.key = pts;
    setAttr(this.line, "points", pts);
    setAttr(this.area, "points", v.length ? `${off},100 ${pts} ${POINTS - 1},100` : "");
  }
}
