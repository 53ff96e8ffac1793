/**
 * A sortable table that updates in place. Rows are pooled by position: each update rewrites only
 * the cells whose text changed, and adds or removes rows at the end (no node is rebuilt, none is
 * moved). A long table can be virtualised: only the rows in view (plus a margin) are in the DOM,
 * between two spacer rows, so a 2,000-row process list refreshed every second costs about as
 * much as a 50-row one.
 */
import { h, setAttr, setText, setTitle } from "../dom";

export interface Column<T> {
  key: string;
  label: string;
  /** Class of the header and body cells, e.g. "num" (right-aligned, tabular digits). */
  cls?: string;
  /** Tooltip of the header. */
  headTitle?: string;
  /** Text of the cell. */
  text?: (t: T) => string;
  /** Tooltip of the cell. */
  title?: (t: T) => string;
  /** Custom cell content; must be idempotent (it is called on every update of the cell). */
  render?: (td: HTMLTableCellElement, t: T) => void;
  /** Sort key; the column is sortable when present. */
  sort?: (t: T) => number | string;
  /** The first click sorts descending (numbers: biggest first). */
  desc?: boolean;
}

export interface TableOptions<T> {
  id?: string;
  cls?: string;
  /** Initial sort column and direction. */
  sortKey?: string;
  sortDesc?: boolean;
  /** Sets per-row attributes (e.g. `data-pid`) and classes. */
  rowAttrs?: (tr: HTMLTableRowElement, t: T) => void;
  /** Text of the single row shown when there is no data. */
  empty?: string;
  /** Called after the user changed the sort. */
  onSort?: () => void;
  /** Column widths (CSS lengths) by key; with them the table uses `table-layout: fixed`. */
  widths?: Record<string, string>;
  /** Virtualise above this many rows (rows must be one line high). */
  virtualAbove?: number;
}

/** Rows rendered above and below the visible ones. */
const OVERSCAN = 20;

export class DataTable<T> {
  /** The scrollable wrapper to put in the page. */
  readonly el: HTMLElement;
  readonly table: HTMLTableElement;
  private readonly tbody: HTMLTableSectionElement;
  private readonly heads = new Map<string, HTMLTableCellElement>();
  private readonly pool: HTMLTableRowElement[] = [];
  private readonly emptyRow: HTMLTableRowElement;
  private readonly topSpacer: HTMLTableRowElement;
  private readonly bottomSpacer: HTMLTableRowElement;
  private items: T[] = [];
  /** The rows to show: filtered, sorted and limited. */
  private list: T[] = [];
  private rowHeight = 0;
  private frame = 0;
  private readonly onScroll = () => {
    if (!this.frame) this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
    });
  };
  private sortKey: string | null;
  private sortDesc: boolean;
  private filter: ((t: T) => boolean) | null = null;
  private arrange: ((sorted: T[]) => T[]) | null = null;
  private limit = Infinity;
  /** Rows matching the filter, before the limit. */
  matched = 0;

  constructor(
    private readonly cols: Column<T>[],
    private readonly opts: TableOptions<T> = {},
  ) {
    this.sortKey = opts.sortKey ?? null;
    this.sortDesc = opts.sortDesc ?? false;
    const tr = h("tr");
    for (const c of cols) {
      const th = h("th", { scope: "col", class: c.cls ?? null, title: c.headTitle ?? null });
      const w = opts.widths?.[c.key];
      if (w) th.style.width = w;
      if (c.sort) {
        const btn = h("button", { type: "button", class: "sort" }, c.label);
        btn.addEventListener("click", () => this.sortBy(c.key));
        th.append(btn);
      } else {
        th.textContent = c.label;
      }
      this.heads.set(c.key, th);
      tr.append(th);
    }
    this.tbody = h("tbody");
    this.emptyRow = h("tr", { class: "empty" }, h("td", { colspan: cols.length }, opts.empty ?? "Nothing to show"));
    this.topSpacer = h("tr", { class: "spacer", "aria-hidden": "true" }, h("td", { colspan: cols.length }));
    this.bottomSpacer = h("tr", { class: "spacer", "aria-hidden": "true" }, h("td", { colspan: cols.length }));
    const cls = `data ${opts.widths ? "fixed" : ""} ${opts.cls ?? ""}`.replace(/\s+/g, " ").trim();
    this.table = h("table", { class: cls, id: opts.id ?? null }, h("thead", null, tr), this.tbody);
    this.el = h("div", { class: "table-wrap" }, this.table);
    if (opts.virtualAbove !== undefined) {
      window.addEventListener("scroll", this.onScroll, { passive: true });
      window.addEventListener("resize", this.onScroll, { passive: true });
      this.el.addEventListener("scroll", this.onScroll, { passive: true });
    }
    this.markSort();
  }

  /** Stops listening to scrolling. */
  destroy(): void {
    window.removeEventListener("scroll", this.onScroll);
    window.removeEventListener("resize", this.onScroll);
    this.el.removeEventListener("scroll", this.onScroll);
    if (this.frame) cancelAnimationFrame(this.frame);
  }

  /** Sorts by a column; a second click on the same column reverses the order. */
  sortBy(key: string): void {
    const col = this.cols.find((c) => c.key === key);
    if (!col?.sort) return;
    if (this.sortKey === key) this.sortDesc = !this.sortDesc;
    else {
      this.sortKey = key;
      this.sortDesc = col.desc ?? false;
    }
    this.markSort();
    this.render();
    this.opts.onSort?.();
  }

  private markSort(): void {
    for (const [key, th] of this.heads) {
      setAttr(th, "aria-sort", key === this.sortKey ? (this.sortDesc ? "descending" : "ascending") : null);
    }
  }

  /** Keeps only the rows for which `fn` is true (null: all). */
  setFilter(fn: ((t: T) => boolean) | null): void {
    this.filter = fn;
    this.render();
  }

  /**
   * Re-orders the filtered, sorted rows before the limit (e.g. a tree: children after their
   * parent, in the sort's order); null: the sort's order.
   */
  setArrange(fn: ((sorted: T[]) => T[]) | null): void {
    this.arrange = fn;
    this.render();
  }

  /** Shows at most `n` rows. */
  setLimit(n: number): void {
    this.limit = n;
    this.render();
  }

  /** Replaces the data. */
  setData(items: T[]): void {
    this.items = items;
    this.render();
  }

  private sorted(): T[] {
    let list = this.filter ? this.items.filter(this.filter) : this.items.slice();
    const col = this.cols.find((c) => c.key === this.sortKey);
    const key = col?.sort;
    if (key) {
      const dir = this.sortDesc ? -1 : 1;
      const dec = list.map((t, i) => ({ t, k: key(t), i }));
      dec.sort((a, b) => {
        const c = a.k < b.k ? -1 : a.k > b.k ? 1 : 0;
        return c !== 0 ? c * dir : a.i - b.i;
      });
      list = dec.map((d) => d.t);
    }
    return this.arrange ? this.arrange(list) : list;
  }

  private render(): void {
    const list = this.sorted();
    this.matched = list.length;
    this.list = list.length > this.limit ? list.slice(0, this.limit) : list;
    this.paint();
  }

  /** Puts the rows in view into the DOM. */
  private paint(): void {
    const list = this.list;
    const n = list.length;
    if (n === 0) {
      this.tbody.replaceChildren(this.emptyRow);
      this.pool.length = 0;
      return;
    }
    if (this.emptyRow.parentNode) this.emptyRow.remove();
    let from = 0;
    let to = n;
    const virtual = this.opts.virtualAbove !== undefined && n > this.opts.virtualAbove;
    if (virtual) {
      if (!this.rowHeight) this.measure();
      const rh = this.rowHeight || 25;
      // The part of the tbody inside both the window and the scrolling wrapper.
      const wrap = this.el.getBoundingClientRect();
      const body = this.tbody.getBoundingClientRect();
      const top = Math.max(wrap.top, 0) - body.top;
      const bottom = Math.min(wrap.bottom, window.innerHeight) - body.top;
      from = Math.max(0, Math.min(n, Math.floor(top / rh) - OVERSCAN));
      to = Math.max(from, Math.min(n, Math.ceil(bottom / rh) + OVERSCAN));
      if (to - from < 2 * OVERSCAN) to = Math.min(n, from + 2 * OVERSCAN);
      this.setSpacer(this.topSpacer, from * rh);
      this.setSpacer(this.bottomSpacer, (n - to) * rh);
    } else {
      this.topSpacer.remove();
      this.bottomSpacer.remove();
    }
    const count = to - from;
    while (this.pool.length < count) {
      const tr = h("tr");
      for (const c of this.cols) tr.append(h("td", { class: c.cls ?? null }));
      this.pool.push(tr);
    }
    while (this.pool.length > count) this.pool.pop()?.remove();
    for (let i = 0; i < count; i++) {
      const t = list[from + i] as T;
      const tr = this.pool[i] as HTMLTableRowElement;
      if (!tr.parentNode) this.tbody.insertBefore(tr, this.bottomSpacer.parentNode ? this.bottomSpacer : null);
      this.opts.rowAttrs?.(tr, t);
      const cells = tr.cells;
      for (let j = 0; j < this.cols.length; j++) {
        const c = this.cols[j] as Column<T>;
        const td = cells[j] as HTMLTableCellElement;
        if (c.render) c.render(td, t);
        else if (c.text) setText(td, c.text(t));
        if (c.title) setTitle(td, c.title(t));
      }
    }
  }

  private setSpacer(row: HTMLTableRowElement, px: number): void {
    const hs = `${px}px`;
    if (row.style.height !== hs) row.style.height = hs;
    const visible = px > 0;
    if (row === this.topSpacer) {
      if (visible && this.tbody.firstChild !== row) this.tbody.insertBefore(row, this.tbody.firstChild);
    } else if (visible && this.tbody.lastChild !== row) this.tbody.append(row);
    if (!visible) row.remove();
  }

  /** Height of one row, from the rows on screen. */
  private measure(): void {
    const a = this.pool[0];
    const b = this.pool[this.pool.length - 1];
    if (!a || !b || a === b || !a.isConnected) return;
    const h = (b.getBoundingClientRect().bottom - a.getBoundingClientRect().top) / this.pool.length;
    if (h > 0) this.rowHeight = h;
  }
}
