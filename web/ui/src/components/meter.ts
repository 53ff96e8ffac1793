/**
 * A percentage with a thin bar under it (memory, disk, GPU use...). Coloured by level:
 * ok below 70 %, warn below 90 %, crit above. Updates touch only what changed. The bar is a
 * width in percent, without transform or clip, so that a table of a thousand meters does not
 * make thousands of paint layers.
 */
import { h, setText, setTitle } from "../dom";
import { DASH, level, pct } from "../format";

export class Meter {
  readonly el: HTMLElement;
  private readonly value: HTMLElement;
  private readonly sub: HTMLElement;
  private readonly fill: HTMLElement;
  private lvl = "";
  private isNone = false;

  constructor(cls = "meter") {
    this.value = h("span", { class: "meter-value" });
    this.sub = h("span", { class: "meter-sub" });
    this.fill = h("i", { class: "meter-fill" });
    this.el = h("span", { class: cls }, h("span", { class: "meter-text" }, this.value, this.sub), h("span", { class: "meter-bar" }, this.fill));
  }

  /** Sets the percentage, an optional short note after it and a tooltip. */
  set(v: number | null | undefined, sub = "", title = "", digits = 1): void {
    if (this.isNone) {
      this.isNone = false;
      this.el.classList.remove("meter-none");
    }
    setText(this.value, pct(v, digits));
    setText(this.sub, sub === DASH ? "" : sub);
    setTitle(this.el, title);
    // A width, not a transform: a transform gives each fill its own paint layer (see app.css).
    setBar(this.fill, v);
    const l = level(v);
    if (l !== this.lvl) {
      if (this.lvl) this.el.classList.remove(`lvl-${this.lvl}`);
      this.el.classList.add(`lvl-${l}`);
      this.lvl = l;
    }
  }

  /** Something the host does not have (e.g. swap): `text` instead of a value, no bar. */
  none(text: string, title = ""): void {
    setText(this.value, text);
    setText(this.sub, "");
    setTitle(this.el, title);
    setBar(this.fill, null);
    if (this.lvl) this.el.classList.remove(`lvl-${this.lvl}`);
    this.lvl = "";
    if (!this.isNone) {
      this.isNone = true;
      this.el.classList.add("meter-none");
    }
  }
}

/** A bare horizontal bar (no text), e.g. per core. */
export function setBar(fill: HTMLElement, v: number | null | undefined): void {
  const w = v === null || v === undefined || !Number.isFinite(v) ? 0 : Math.max(0, Math.min(100, v));
  const ws = `${w.toFixed(1)}%`;
  if (fill.style.width !== ws) fill.style.width = ws;
}

/** Sets the height of a vertical bar fill. */
export function setVBar(fill: HTMLElement, v: number | null | undefined): void {
  const w = v === null || v === undefined || !Number.isFinite(v) ? 0 : Math.max(0, Math.min(100, v));
  const ws = `${w.toFixed(1)}%`;
  if (fill.style.height !== ws) fill.style.height = ws;
}

/** Replaces `lvl-*` classes of an element by the level of `v`. */
export function setLevel(el: Element, v: number | null | undefined): void {
  const l = `lvl-${level(v)}`;
  for (const c of Array.from(el.classList)) if (c.startsWith("lvl-") && c !== l) el.classList.remove(c);
  if (!el.classList.contains(l)) el.classList.add(l);
}
