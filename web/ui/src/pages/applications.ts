/**
 * The Applications page (`#/applications`): the fleet's supervisord programs from
 * `GET /api/v1/applications`, read again every few seconds. Programs are grouped by supervisord
 * group; each row shows the program, its hosts as state chips, how many of them run it, and
 * CPU and memory summed over its processes. A search box filters by group, program or host.
 *
 * Admins act on one host (click its chip: Start, Stop, Restart through the host's program
 * routes) or across all the hosts that have the program (`POST /api/v1/programs/{name}/{verb}`
 * with `{}`); each action is confirmed with the host list first, and the per-host results are
 * shown. When the server declares applications (`applications[]`), a part above lists them
 * with their state, where they run, their problem and latest decisions, and (admins) Start,
 * Stop and Restart through `POST /api/v1/applications/{name}/{verb}`.
 *
 * Test hooks: `#applications-page[data-state=loading|ready|error]`, `#apps-search`,
 * `.app-group[data-group]`, `tr.app-row[data-program]` with `data-running`/`data-total`,
 * `.host-chip[data-host][data-state]`, `.app-all[data-verb]`, `#apps-results` with
 * `li[data-host][data-ok]`, `#declared-apps tr[data-app]`.
 */
import { call, whoAmI } from "../api";
import { stateLevel, type ProgramState } from "../components/programs";
import { h, setAttr, setText, show } from "../dom";
import { DASH, bytes, dateTime, duration } from "../format";
import { hostHref } from "../router";

/** A program's state on one host (`ProgramOnHost`). */
export interface ProgramOnHost {
  host: string;
  host_status: string;
  state: string;
  pid: number;
  uptime_s: number;
  description: string;
  cpu_percent?: number;
  memory_bytes?: number;
}

/** A program across the fleet (`FleetProgram`). */
export interface FleetProgram {
  group: string;
  name: string;
  running: number;
  cpu_percent: number;
  memory_bytes: number;
  application?: string;
  hosts: ProgramOnHost[];
}

/** One decision of the aggregator for a declared application. */
export interface Decision {
  at_ms: number;
  action: string;
  host: string;
  reason: string;
  outcome: string;
}

/** A declared application (`DeclaredApp`). */
export interface DeclaredApp {
  name: string;
  program: string;
  instances: number;
  strategy: string;
  on_host_down: string;
  start_after: string[];
  candidates: string[];
  running_on: string[];
  state: "running" | "starting" | "degraded" | "stopped";
  problem?: string;
  decisions: Decision[];
}

/** `GET /api/v1/applications`. */
export interface ApplicationsAnswer {
  programs: FleetProgram[];
  declared: DeclaredApp[];
}

/** What a program action did on one host. */
interface ProgramResult {
  host: string;
  ok: boolean;
  message: string;
  programs: ProgramState[];
}

type Verb = "start" | "stop" | "restart";
const VERBS: Verb[] = ["start", "stop", "restart"];
const LABEL: Record<Verb, string> = { start: "Start", stop: "Stop", restart: "Restart" };

/** How often the page is read again. */
const EVERY_MS = 3000;
/** Above this many hosts, a row shows its hosts that are not RUNNING and a count of the rest. */
const CHIPS_SHOWN = 24;

/** The confirmation of `verb` on `name` on `hosts`, naming them. */
function confirmed(verb: Verb, name: string, hosts: string[]): boolean {
  const list = hosts.length > 20 ? `${hosts.slice(0, 20).join("\n")}\n… and ${hosts.length - 20} more` : hosts.join("\n");
  return window.confirm(`${LABEL[verb]} ${name} on ${hosts.length} host${hosts.length === 1 ? "" : "s"}?\n\n${list}`);
}

export class ApplicationsPage {
  readonly el: HTMLElement;
  private readonly status = h("p", { class: "acct-status", id: "apps-status", role: "status" });
  private readonly search = h("input", { type: "search", id: "apps-search", placeholder: "Filter by group, program or host", "aria-label": "Filter programs" });
  private readonly summary = h("p", { class: "apps-summary", id: "apps-summary" });
  private readonly groups = h("div", { class: "apps-groups", id: "apps-groups" });
  private readonly declared = h("div", { class: "acct-card declared-apps", id: "declared-apps", hidden: true });
  private readonly results = h("div", { class: "apps-results", id: "apps-results", role: "status", "aria-live": "polite", hidden: true });
  private readonly menu = h("div", { class: "chip-menu", id: "chip-menu", hidden: true });
  private admin = false;
  private last: ApplicationsAnswer | null = null;
  /** What each row was drawn from: a row is redrawn only when it changed. */
  private drawn = new Map<string, { key: string; el: HTMLElement }>();
  /** Rows whose every host chip is shown (by `group:name`). */
  private expanded = new Set<string>();
  private timer: number | null = null;
  private destroyed = false;

  constructor() {
    this.search.addEventListener("input", () => this.filter());
    this.el = h(
      "section",
      { class: "accounts applications-page", id: "applications-page", "data-state": "loading" },
      h("h1", null, "Applications"),
      this.status,
      this.declared,
      h("div", { class: "apps-tools" }, this.search, this.summary),
      this.groups,
      // Stays at the bottom of the screen while the groups scroll under it.
      h("div", { class: "apps-dock" }, this.menu, this.results),
    );
    void whoAmI().then((me) => {
      this.admin = me?.role === "admin";
      this.drawn.clear();
      if (this.last) this.render(this.last);
    });
    void this.refresh();
  }

  private async refresh(): Promise<void> {
    this.timer = null;
    const r = await call<ApplicationsAnswer>("GET", "api/v1/applications");
    if (this.destroyed) return;
    if (r.ok) {
      setText(this.status, "");
      this.render(r.data);
      setAttr(this.el, "data-state", "ready");
    } else {
      setText(this.status, r.why);
      if (!this.last) setAttr(this.el, "data-state", "error");
    }
    this.timer = window.setTimeout(() => void this.refresh(), EVERY_MS);
  }

  private render(a: ApplicationsAnswer): void {
    this.last = a;
    this.renderDeclared(a.declared);
    const hosts = new Set<string>();
    let running = 0;
    let total = 0;
    for (const p of a.programs) {
      for (const x of p.hosts) hosts.add(x.host);
      running += p.running;
      total += p.hosts.length;
    }
    setText(this.summary, a.programs.length ? `${a.programs.length} programs on ${hosts.size} hosts · ${running} of ${total} running` : "No host reports supervisord programs.");
    // Groups in order; each group's rows in order; elements reused when unchanged.
    const byGroup = new Map<string, FleetProgram[]>();
    for (const p of a.programs) {
      const g = byGroup.get(p.group);
      if (g) g.push(p);
      else byGroup.set(p.group, [p]);
    }
    const seen = new Set<string>();
    const sections: HTMLElement[] = [];
    for (const [group, progs] of byGroup) {
      const rows = progs.map((p) => {
        const full = `${p.group}:${p.name}`;
        seen.add(full);
        const key = JSON.stringify([p, this.admin, this.expanded.has(full)]);
        const old = this.drawn.get(full);
        if (old && old.key === key) return old.el;
        const el = this.row(p);
        this.drawn.set(full, { key, el });
        return el;
      });
      const run = progs.reduce((n, p) => n + p.running, 0);
      const tot = progs.reduce((n, p) => n + p.hosts.length, 0);
      const head = h("div", { class: "section-head" }, h("h2", null, group), h("span", { class: "chip app-count", "data-level": run === tot ? "ok" : run === 0 ? "crit" : "warn" }, `${run}/${tot} running`));
      const table = h(
        "table",
        { class: "data apps-table" },
        h("thead", null, h("tr", null, ...["Program", "Hosts", "Running", "CPU", "Memory", ""].map((t) => h("th", null, t)))),
        h("tbody", null, ...rows),
      );
      sections.push(h("div", { class: "acct-card app-group", "data-group": group }, head, h("div", { class: "table-wrap" }, table)));
    }
    for (const k of [...this.drawn.keys()]) if (!seen.has(k)) this.drawn.delete(k);
    this.groups.replaceChildren(...sections);
    this.filter();
  }

  /** One program's row. */
  private row(p: FleetProgram): HTMLElement {
    const full = `${p.group}:${p.name}`;
    const chips = h("td", { class: "host-chips" });
    const many = p.hosts.length > CHIPS_SHOWN && !this.expanded.has(full);
    const shown = many ? p.hosts.filter((x) => x.state !== "RUNNING") : p.hosts;
    for (const x of shown) chips.append(this.chip(full, x));
    if (many) {
      const more = h("button", { type: "button", class: "chip chip-more", "data-level": "ok" }, `+${p.hosts.length - shown.length} running`);
      more.addEventListener("click", () => {
        this.expanded.add(full);
        if (this.last) this.render(this.last);
      });
      chips.append(more);
    }
    const actions = h("td", { class: "program-actions" });
    if (this.admin) {
      for (const v of VERBS) {
        const b = h("button", { type: "button", class: "text-btn app-all", "data-verb": v, title: `${LABEL[v]} ${full} on every host that has it` }, `${LABEL[v]} all`);
        b.addEventListener("click", () => void this.actAll(v, p));
        actions.append(b);
      }
    }
    const withFigures = p.hosts.some((x) => x.cpu_percent !== undefined);
    const name = h("td", { class: "mono app-name" }, p.name);
    if (p.application) name.append(" ", h("span", { class: "tag", title: "Managed by the declared application" }, p.application));
    return h(
      "tr",
      { class: "app-row", "data-program": full, "data-running": String(p.running), "data-total": String(p.hosts.length), "data-search": `${full} ${p.application ?? ""} ${p.hosts.map((x) => x.host).join(" ")}`.toLowerCase() },
      name,
      chips,
      h("td", { class: "num app-running" }, `${p.running}/${p.hosts.length}`),
      h("td", { class: "num" }, withFigures ? `${p.cpu_percent.toFixed(1)} %` : DASH),
      h("td", { class: "num" }, withFigures ? bytes(p.memory_bytes) : DASH),
      actions,
    );
  }

  /** A host's chip in a program's row: its state; admins click it for the host's actions. */
  private chip(full: string, x: ProgramOnHost): HTMLElement {
    const down = x.host_status !== "up";
    const figures = x.cpu_percent !== undefined ? ` · ${x.cpu_percent.toFixed(1)} % CPU · ${bytes(x.memory_bytes ?? 0)}` : "";
    const title = `${x.host}: ${x.state}${x.pid ? ` (pid ${x.pid}, up ${duration(x.uptime_s)})` : ""}${figures}${down ? ` · host ${x.host_status}` : ""}${x.description ? ` · ${x.description}` : ""}`;
    const c = h("button", { type: "button", class: "chip host-chip program-state", "data-host": x.host, "data-state": x.state, "data-level": stateLevel(x.state), "data-host-status": x.host_status, title }, x.host);
    c.addEventListener("click", () => this.openMenu(full, x, c));
    return c;
  }

  /** The actions on one host's copy of a program, under its row. */
  private openMenu(full: string, x: ProgramOnHost, anchor: HTMLElement): void {
    const m = this.menu;
    const close = h("button", { type: "button", class: "text-btn chip-menu-close" }, "Close");
    close.addEventListener("click", () => show(m, false));
    const buttons = this.admin
      ? VERBS.map((v) => {
          const b = h("button", { type: "button", class: "text-btn chip-act", "data-verb": v }, LABEL[v]);
          b.addEventListener("click", () => void this.actOne(v, full, x.host));
          return b;
        })
      : [];
    m.replaceChildren(h("span", { class: "mono" }, `${full} on `), h("a", { href: hostHref(x.host) }, x.host), h("span", { class: "program-state", "data-level": stateLevel(x.state) }, ` ${x.state}`), ...buttons, close);
    show(m, true);
    anchor.focus();
  }

  private async actOne(verb: Verb, name: string, host: string): Promise<void> {
    if (!confirmed(verb, name, [host])) return;
    this.showResults(`${LABEL[verb]} ${name}: asking…`, []);
    const r = await call<ProgramResult>("POST", `api/v1/hosts/${encodeURIComponent(host)}/programs/${encodeURIComponent(name)}/${verb}`, {});
    if (this.destroyed) return;
    this.showResults(`${LABEL[verb]} ${name}`, [r.ok ? r.data : { host, ok: false, message: r.why, programs: [] }]);
    void this.soon();
  }

  private async actAll(verb: Verb, p: FleetProgram): Promise<void> {
    const full = `${p.group}:${p.name}`;
    const hosts = p.hosts.map((x) => x.host);
    if (!confirmed(verb, full, hosts)) return;
    this.showResults(`${LABEL[verb]} ${full} on ${hosts.length} hosts: asking…`, []);
    // The hosts confirmed, by name: a host that gained the program meanwhile is not touched.
    const r = await call<{ results: ProgramResult[] }>("POST", `api/v1/programs/${encodeURIComponent(full)}/${verb}`, { hosts });
    if (this.destroyed) return;
    if (!r.ok) {
      this.showResults(`${LABEL[verb]} ${full}: ${r.why}`, []);
      return;
    }
    const failed = r.data.results.filter((x) => !x.ok).length;
    this.showResults(`${LABEL[verb]} ${full}: ${failed ? `${failed} of ${r.data.results.length} failed` : `done on ${r.data.results.length} hosts`}`, r.data.results);
    void this.soon();
  }

  /** Reads the page again now (after an action). */
  private async soon(): Promise<void> {
    if (this.timer !== null) window.clearTimeout(this.timer);
    await this.refresh();
  }

  private showResults(title: string, results: ProgramResult[]): void {
    const close = h("button", { type: "button", class: "text-btn" }, "Close");
    close.addEventListener("click", () => show(this.results, false));
    const list = h(
      "ul",
      { class: "group-results" },
      ...results.map((r) => h("li", { "data-host": r.host, "data-ok": String(r.ok) }, h("strong", null, r.host), `: ${r.ok ? "" : "failed: "}${r.message}`)),
    );
    this.results.replaceChildren(h("div", { class: "apps-results-head" }, h("span", { class: "apps-results-title" }, title), close), list);
    setAttr(this.results, "data-done", results.length ? "true" : null);
    show(this.results, true);
  }

  /** Applies the search box: rows, then groups left empty. */
  private filter(): void {
    const q = this.search.value.trim().toLowerCase();
    for (const g of Array.from(this.groups.children) as HTMLElement[]) {
      const groupHit = !q || (g.dataset.group ?? "").toLowerCase().includes(q);
      let any = false;
      for (const r of Array.from(g.querySelectorAll<HTMLElement>("tr.app-row"))) {
        const hit = groupHit || (r.dataset.search ?? "").includes(q);
        if (r.hidden === hit) r.hidden = !hit;
        any ||= hit;
      }
      show(g, any);
    }
  }

  /** The declared applications, when the server has any. */
  private renderDeclared(apps: DeclaredApp[]): void {
    show(this.declared, apps.length > 0);
    if (!apps.length) return;
    const allButtons = this.admin
      ? VERBS.map((v) => {
          const b = h("button", { type: "button", class: "text-btn declared-all", "data-verb": v }, `${LABEL[v]} all`);
          b.addEventListener("click", () => void this.actApp(v, null));
          return b;
        })
      : [];
    const rows = apps.map((a) => {
      const buttons = this.admin
        ? VERBS.map((v) => {
            const b = h("button", { type: "button", class: "text-btn declared-act", "data-verb": v }, LABEL[v]);
            b.addEventListener("click", () => void this.actApp(v, a));
            return b;
          })
        : [];
      const decisions = h(
        "details",
        { class: "decisions" },
        h("summary", null, a.decisions.length ? `${a.decisions.length} decision${a.decisions.length === 1 ? "" : "s"}` : "no decision"),
        h("ul", null, ...a.decisions.map((d) => h("li", { "data-ok": String(d.outcome === "ok") }, `${dateTime(d.at_ms)} · ${d.action}${d.host ? ` on ${d.host}` : ""}: ${d.reason} → ${d.outcome}`))),
      );
      return h(
        "tr",
        { "data-app": a.name, "data-state": a.state },
        h("td", null, h("strong", null, a.name), h("div", { class: "mono muted" }, a.program)),
        h("td", null, h("span", { class: "program-state", "data-level": a.state === "running" ? "ok" : a.state === "degraded" ? "crit" : a.state === "starting" ? "pending" : "off" }, a.state), ` ${a.running_on.length}/${a.instances}`),
        h("td", null, a.running_on.length ? a.running_on.join(", ") : DASH),
        h("td", { class: "declared-problem" }, a.problem ?? ""),
        h("td", null, decisions),
        h("td", { class: "program-actions" }, ...buttons),
      );
    });
    this.declared.replaceChildren(
      h("div", { class: "section-head" }, h("h2", null, "Declared applications"), ...allButtons),
      h(
        "div",
        { class: "table-wrap" },
        h("table", { class: "data" }, h("thead", null, h("tr", null, ...["Application", "State", "Running on", "Problem", "Decisions", ""].map((t) => h("th", null, t)))), h("tbody", null, ...rows)),
      ),
    );
  }

  /** Starts, stops or restarts one declared application, or all of them (`null`). */
  private async actApp(verb: Verb, a: DeclaredApp | null): Promise<void> {
    const what = a ? `the application ${a.name} (${a.program}; candidates: ${a.candidates.join(", ") || DASH})` : "every declared application, in start_after order";
    if (!window.confirm(`${LABEL[verb]} ${what}?`)) return;
    this.showResults(`${LABEL[verb]} ${a ? a.name : "all applications"}: asking…`, []);
    const path = a ? `api/v1/applications/${encodeURIComponent(a.name)}/${verb}` : `api/v1/applications/${verb}`;
    const r = await call<{ applications: string[]; decisions: Decision[]; ok: boolean }>("POST", path, {});
    if (this.destroyed) return;
    if (!r.ok) {
      this.showResults(`${LABEL[verb]} ${a ? a.name : "all applications"}: ${r.why}`, []);
      return;
    }
    const results = r.data.decisions.map((d) => ({ host: d.host || DASH, ok: d.outcome === "ok", message: `${d.action}: ${d.reason} → ${d.outcome}`, programs: [] }));
    this.showResults(`${LABEL[verb]} ${r.data.applications.join(", ")}: ${r.data.ok ? "done" : "not all done"}`, results);
    void this.soon();
  }

  destroy(): void {
    this.destroyed = true;
    if (this.timer !== null) window.clearTimeout(this.timer);
  }
}
