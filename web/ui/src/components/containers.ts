/**
 * The host page's Containers section: the containers and systemd services the agent found by
 * their cgroups (`Snapshot.containers`), in a sortable table with a search box, and the process
 * list's filter by container.
 *
 * - Columns: name, kind (and the runtime's state when known), CPU (percent of one core),
 *   memory against its limit as a bar with the page cache apart, block I/O read and write per
 *   second, tasks, network received and sent per second (only for a container with its own
 *   network namespace). Rows carry `data-ctr-id`.
 * - `Containers.error` (the cgroups could not be read) is shown above the table
 *   (`#containers-error`); with none found the table says so.
 * - The section is hidden while the host reports no containers part (the agent's
 *   `monitor.containers` off, or an agent before containers): `present` says whether it does.
 * - A name is a button: it filters the process list by that container (`onPick`), as the
 *   select `procFilter` in the Processes section does (all processes, those in no container,
 *   or one container's).
 */
import { h, setAttr, setClass, setText, setTitle, show } from "../dom";
import { DASH, bytes, pct, rate } from "../format";
import { setBar, setLevel } from "./meter";
import { DataTable } from "./table";
import type { Container, Containers, Process } from "../types";

/** `procFilter`'s value for every process. */
const ALL = "*";
/** `procFilter`'s value for the processes in no container. */
const NONE = "-";

/** A CPU figure of one core: whole percents from 1,000 % up, as the process list. */
function cpu(v: number): string {
  return v >= 999.95 ? `${Math.round(v)}%` : pct(v);
}

/** What a container is, for its title: id, cgroup, image and state as known. */
function describe(c: Container): string {
  return [c.id !== c.name ? `id ${c.id}` : "", `cgroup ${c.cgroup}`, c.image ? `image ${c.image}` : "", c.state ? `state ${c.state}` : ""].filter(Boolean).join("\n");
}

/** The memory cell: "used / limit" over a bar of the use (the page cache after it, lighter). */
function memCell(td: HTMLTableCellElement, c: Container): void {
  if (!td.firstChild) {
    td.append(
      h("span", { class: "meter ctr-mem" }, h("span", { class: "meter-text" }, h("span", { class: "meter-value" }), h("span", { class: "meter-sub" })), h("span", { class: "meter-bar ctr-mem-bar" }, h("i", { class: "meter-fill" }), h("i", { class: "ctr-cache-fill" }))),
    );
  }
  const box = td.firstChild as HTMLElement;
  const [text, bar] = Array.from(box.children) as HTMLElement[];
  const [value, sub] = Array.from(text?.children ?? []) as HTMLElement[];
  const [fill, cache] = Array.from(bar?.children ?? []) as HTMLElement[];
  if (!value || !sub || !bar || !fill || !cache) return;
  const limit = c.memory_limit_bytes;
  const used = c.memory_bytes;
  const p = limit ? (100 * used) / limit : null;
  setText(value, limit ? `${bytes(used)} / ${bytes(limit)}` : bytes(used));
  setText(sub, c.memory_cache_bytes > 0 ? `+${bytes(c.memory_cache_bytes)} cache` : "");
  show(bar, !!limit);
  setBar(fill, p);
  setBar(cache, limit ? (100 * c.memory_cache_bytes) / limit : null);
  setLevel(box, p);
  setAttr(box, "data-limited", limit ? "true" : null);
  setTitle(td, [`In use: ${bytes(used)} (page cache apart)`, `Page cache: ${bytes(c.memory_cache_bytes)}`, limit ? `Limit: ${bytes(limit)} (${pct(p)} in use)` : "No limit"].join("\n"));
}

export class HostContainers {
  /** The section (hidden while the host reports no containers). */
  readonly el: HTMLElement;
  /** The process list's filter by container, for the Processes section's tools. */
  readonly procFilter = h("select", { id: "proc-container", class: "proc-container", "aria-label": "Processes of a container", hidden: true });
  /** Whether the host reports containers (the last sample had the part). */
  present = false;
  private readonly table: DataTable<Container>;
  private readonly error = h("div", { class: "alert warn", id: "containers-error", hidden: true });
  private readonly count = h("span", { class: "muted", id: "containers-count" });
  private readonly search = h("input", { type: "search", class: "search", id: "containers-search", placeholder: "Search name, kind, image…", "aria-label": "Search containers", spellcheck: "false", autocomplete: "off" });
  private items: Container[] = [];
  /** The filter's options as last built (ids and names), to rebuild only when they change. */
  private optionsKey = "";
  /** The chosen filter: ALL, NONE or a container's id. */
  private chosen = ALL;

  /** `onPick`: the process filter changed (`scroll`: bring the process list into view). */
  constructor(private readonly onPick: (scroll: boolean) => void) {
    this.table = new DataTable<Container>(
      [
        {
          key: "name",
          label: "Name",
          cls: "ellipsis ctr-name-cell",
          render: (td, c) => {
            let b = td.firstElementChild as HTMLButtonElement | null;
            if (!b) {
              b = h("button", { type: "button", class: "ctr-pick" });
              const btn = b;
              btn.addEventListener("click", () => this.pick(btn.dataset.id ?? ALL, true));
              td.append(b);
            }
            b.dataset.id = c.id;
            setText(b, c.name);
            setTitle(b, `Show the processes of ${c.name}\n${describe(c)}`);
          },
          sort: (c) => c.name.toLowerCase(),
        },
        { key: "kind", label: "Kind", text: (c) => (c.state ? `${c.kind} · ${c.state}` : c.kind), title: (c) => c.image ?? "", sort: (c) => c.kind },
        { key: "cpu", label: "CPU", cls: "num", text: (c) => cpu(c.cpu_percent), sort: (c) => c.cpu_percent, desc: true, headTitle: "Percent of one core (past 100 on several cores)" },
        { key: "mem", label: "Memory", cls: "col-ctr-mem", render: memCell, sort: (c) => c.memory_bytes, desc: true, headTitle: "In use against its limit; the page cache apart" },
        { key: "read", label: "Read", cls: "num", text: (c) => rate(c.io_read_bytes_per_s), sort: (c) => c.io_read_bytes_per_s, desc: true, headTitle: "Block devices read per second" },
        { key: "write", label: "Write", cls: "num", text: (c) => rate(c.io_write_bytes_per_s), sort: (c) => c.io_write_bytes_per_s, desc: true, headTitle: "Block devices written per second" },
        { key: "tasks", label: "Tasks", cls: "num", text: (c) => String(c.pids), sort: (c) => c.pids, desc: true, headTitle: "Processes and threads" },
        { key: "rx", label: "Rx", cls: "num", text: (c) => (c.net_rx_bytes_per_s === null ? DASH : rate(c.net_rx_bytes_per_s)), sort: (c) => c.net_rx_bytes_per_s ?? -1, desc: true, headTitle: "Received per second in its own network namespace (— : the host's)" },
        { key: "tx", label: "Tx", cls: "num", text: (c) => (c.net_tx_bytes_per_s === null ? DASH : rate(c.net_tx_bytes_per_s)), sort: (c) => c.net_tx_bytes_per_s ?? -1, desc: true, headTitle: "Sent per second in its own network namespace (— : the host's)" },
      ],
      {
        id: "containers",
        sortKey: "cpu",
        sortDesc: true,
        empty: "No containers or services found",
        rowAttrs: (tr, c) => {
          setAttr(tr, "data-ctr-id", c.id);
          setAttr(tr, "data-kind", c.kind);
          setClass(tr, "chosen", c.id === this.chosen);
        },
        onSort: () => this.renderCount(),
        virtualAbove: 200,
      },
    );
    this.search.addEventListener("input", () => this.applySearch());
    this.procFilter.addEventListener("change", () => this.pick(this.procFilter.value, false));
    this.el = h(
      "section",
      { class: "section", id: "containers-section", hidden: true },
      h("div", { class: "section-head" }, h("h2", null, "Containers"), h("div", { class: "section-tools" }, this.count, this.search)),
      this.error,
      this.table.el,
    );
    this.renderOptions();
  }

  /** Takes a sample's containers part (null or absent: the host reports none). */
  update(c: Containers | null | undefined): void {
    this.present = !!c;
    show(this.el, this.present);
    show(this.procFilter, this.present);
    this.items = c?.items ?? [];
    setText(this.error, c?.error ?? "");
    show(this.error, !!c?.error);
    this.table.setData(this.items);
    this.renderOptions();
    this.renderCount();
  }

  /** The name of the container with this id (the id itself when it is not listed). */
  nameOf(id: string): string {
    return this.items.find((c) => c.id === id)?.name ?? id;
  }

  /** The process filter: null for every process. */
  filter(): ((p: Process) => boolean) | null {
    const k = this.chosen;
    if (k === ALL || !this.present) return null;
    if (k === NONE) return (p) => !p.container;
    return (p) => p.container === k;
  }

  destroy(): void {
    this.table.destroy();
  }

  private pick(id: string, scroll: boolean): void {
    this.chosen = id;
    this.renderOptions();
    this.table.setData(this.items); // marks the chosen row
    this.onPick(scroll);
  }

  private applySearch(): void {
    const q = this.search.value.trim().toLowerCase();
    this.table.setFilter(q ? (c) => [c.name, c.id, c.kind, c.image ?? "", c.state ?? "", c.cgroup].some((s) => s.toLowerCase().includes(q)) : null);
    this.renderCount();
  }

  private renderCount(): void {
    const total = this.items.length;
    const m = this.table.matched;
    setText(this.count, m === total ? `${total} found` : `${m} of ${total} matching`);
  }

  /** Rebuilds the filter's options when the containers (or the choice) changed. */
  private renderOptions(): void {
    const list = this.items.slice().sort((a, b) => a.name.localeCompare(b.name));
    const gone = this.chosen !== ALL && this.chosen !== NONE && !list.some((c) => c.id === this.chosen);
    const key = [this.chosen, ...list.map((c) => `${c.id}\u0000${c.name}`)].join("\u0001");
    if (key === this.optionsKey) return;
    this.optionsKey = key;
    const opts = [h("option", { value: ALL }, "All processes"), h("option", { value: NONE }, "In no container"), ...list.map((c) => h("option", { value: c.id, title: `${c.kind}: ${c.cgroup}` }, c.name))];
    // A container that went away stays chosen (its processes are gone too) until changed.
    if (gone) opts.push(h("option", { value: this.chosen }, `${this.chosen} (gone)`));
    this.procFilter.replaceChildren(...opts);
    this.procFilter.value = this.chosen;
  }
}
