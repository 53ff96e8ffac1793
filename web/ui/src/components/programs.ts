/**
 * supervisord's programs on the host page (docs/protocol-programs.md): a "Programs" section
 * listing each program (group:name, coloured state, pid, uptime, CPU, memory, description),
 * read from `GET /api/v1/hosts/{id}/programs` every few seconds; hidden while the host has
 * no programs and no supervisor error. Admins get Start, Stop and Restart (confirmed, the
 * outcome shown) and Log: a panel with the end of the program's stdout or stderr that follows
 * the log live while it is open (`GET .../log/stream`, server-sent events through an
 * `EventSource`; closing the panel closes the stream, which ends the server's reads).
 *
 * `SignalMenu` is the process list's "Signal…" action for admins: TERM, INT, KILL or HUP to
 * one pid, confirmed, through `POST /api/v1/hosts/{id}/signal`.
 */
import { call, whoAmI } from "../api";
import { basePath } from "../connection";
import { h, setText, show } from "../dom";
import { bytes, duration } from "../format";

/** One program, as the route answers it. */
export interface ProgramState {
  group: string;
  name: string;
  state: string;
  pid: number;
  uptime_s: number;
  description: string;
  spawnerr?: string;
  exit_status: number;
  cpu_percent?: number;
  memory_bytes?: number;
}

/** `GET /api/v1/hosts/{id}/programs`. */
export interface ProgramsAnswer {
  host: string;
  supervisor: boolean;
  url?: string;
  error?: string;
  age_ms: number;
  processes: boolean;
  programs: ProgramState[];
}

type Verb = "start" | "stop" | "restart";
const VERBS: Verb[] = ["start", "stop", "restart"];
const LABEL: Record<Verb, string> = { start: "Start", stop: "Stop", restart: "Restart" };

/** How often the list is read again. */
const LIST_EVERY_MS = 3000;
/** The most text an open log panel keeps (older text is dropped from the top). */
const LOG_KEEP_CHARS = 256 * 1024;

/** A `chunk` event of the log stream. */
interface LogChunk {
  text: string;
  offset: number;
  overflow: boolean;
}

/** The colour class of a supervisord state. */
export function stateLevel(s: string): string {
  switch (s) {
    case "RUNNING":
      return "ok";
    case "STARTING":
    case "STOPPING":
    case "BACKOFF":
      return "pending";
    case "FATAL":
    case "UNKNOWN":
      return "crit";
    default:
      return "off";
  }
}

const hostPath = (id: string) => `api/v1/hosts/${encodeURIComponent(id)}`;

/** The Programs section of one host. */
export class HostPrograms {
  readonly el: HTMLElement;
  private readonly error = h("div", { class: "programs-error", role: "alert", hidden: true });
  private readonly body = h("tbody");
  private readonly out = h("div", { class: "program-out", role: "status", "aria-live": "polite" });
  private readonly logTitle = h("span", { class: "program-log-title" });
  private readonly logText = h("pre", { class: "program-log-text" });
  private readonly logStream = h("select", { class: "program-log-stream", "aria-label": "Log stream" }, h("option", { value: "stdout" }, "stdout"), h("option", { value: "stderr" }, "stderr"));
  private readonly logPanel: HTMLElement;
  private logName: string | null = null;
  private admin = false;
  private timer: number | null = null;
  private source: EventSource | null = null;
  private destroyed = false;
  private last: ProgramsAnswer | null = null;

  constructor(private readonly id: string) {
    const close = h("button", { type: "button", class: "text-btn program-log-close" }, "Close");
    close.addEventListener("click", () => this.closeLog());
    this.logStream.addEventListener("change", () => this.follow());
    this.logPanel = h("div", { class: "program-log", hidden: true }, h("div", { class: "program-log-head" }, this.logTitle, this.logStream, close), this.logText);
    const table = h(
      "table",
      { class: "data programs-table" },
      h("thead", {}, h("tr", {}, ...["Program", "State", "PID", "Uptime", "CPU", "Memory", "Description", ""].map((t) => h("th", {}, t)))),
      this.body,
    );
    this.el = h("section", { class: "section host-programs", hidden: true }, h("div", { class: "section-head" }, h("h2", {}, "Programs"), h("a", { href: "#/applications", class: "text-btn programs-fleet", title: "These programs across the fleet" }, "All hosts")), this.error, h("div", { class: "table-wrap" }, table), this.out, this.logPanel);
    void whoAmI().then((me) => {
      this.admin = me?.role === "admin";
      if (this.last) this.render(this.last);
    });
    void this.refresh();
  }

  private async refresh(): Promise<void> {
    this.timer = null;
    const r = await call<ProgramsAnswer>("GET", `${hostPath(this.id)}/programs`);
    if (this.destroyed) return;
    if (r.ok) this.render(r.data);
    this.timer = window.setTimeout(() => void this.refresh(), LIST_EVERY_MS);
  }

  private render(a: ProgramsAnswer): void {
    this.last = a;
    const visible = a.supervisor && (a.programs.length > 0 || !!a.error);
    show(this.el, visible);
    if (!visible) return;
    setText(this.error, a.error ? `supervisord: ${a.error}` : "");
    show(this.error, !!a.error);
    const rows = a.programs.map((p) => {
      const full = `${p.group}:${p.name}`;
      const state = h("span", { class: "program-state", "data-level": stateLevel(p.state) }, p.state);
      const actions = h("td", { class: "program-actions" });
      if (this.admin) {
        for (const v of VERBS) {
          const b = h("button", { type: "button", class: `text-btn program-${v}`, "data-verb": v }, LABEL[v]);
          b.addEventListener("click", () => void this.act(v, full));
          actions.append(b);
        }
        const log = h("button", { type: "button", class: "text-btn program-log-open" }, "Log");
        log.addEventListener("click", () => this.openLog(full));
        actions.append(log);
      }
      const running = p.pid > 0;
      return h(
        "tr",
        { "data-program": full, "data-state": p.state },
        h("td", { class: "mono" }, full),
        h("td", {}, state),
        h("td", { class: "num" }, running ? String(p.pid) : "—"),
        h("td", { class: "num" }, running ? duration(p.uptime_s) : "—"),
        h("td", { class: "num" }, p.cpu_percent === undefined ? "—" : `${p.cpu_percent.toFixed(1)} %`),
        h("td", { class: "num" }, p.memory_bytes === undefined ? "—" : bytes(p.memory_bytes)),
        h("td", { class: "ellipsis", title: p.spawnerr || p.description }, p.spawnerr || p.description),
        actions,
      );
    });
    this.body.replaceChildren(...rows);
  }

  private async act(verb: Verb, name: string): Promise<void> {
    if (!window.confirm(`${LABEL[verb]} ${name} on ${this.id}?`)) return;
    this.say("pending", `${LABEL[verb]} ${name}: asking…`);
    const r = await call<{ message: string; programs: ProgramState[] }>("POST", `${hostPath(this.id)}/programs/${encodeURIComponent(name)}/${verb}`, {});
    if (this.destroyed) return;
    if (!r.ok) {
      this.say("error", r.why);
      return;
    }
    this.say("ok", r.data.message);
    // Show the states supervisord answered at once; the next read brings the rest.
    if (this.last) {
      const now = new Map(r.data.programs.map((p) => [`${p.group}:${p.name}`, p]));
      this.render({ ...this.last, programs: this.last.programs.map((p) => now.get(`${p.group}:${p.name}`) ?? p) });
    }
  }

  private openLog(name: string): void {
    this.logName = name;
    setText(this.logTitle, `Log of ${name} (live)`);
    show(this.logPanel, true);
    this.follow();
  }

  private closeLog(): void {
    this.logName = null;
    this.source?.close();
    this.source = null;
    this.logText.removeAttribute("data-live");
    show(this.logPanel, false);
  }

  /** Opens the stream of the log shown: its tail first, then what is written to it. */
  private follow(): void {
    this.source?.close();
    this.source = null;
    const name = this.logName;
    if (name === null || this.destroyed) return;
    const pre = this.logText;
    setText(pre, "");
    const url = `${basePath()}${hostPath(this.id)}/programs/${encodeURIComponent(name)}/log/stream?stream=${this.logStream.value}`;
    const es = new EventSource(url, { withCredentials: true });
    this.source = es;
    // Each (re)connection starts with the log's tail: it replaces what is shown.
    let fresh = true;
    es.addEventListener("open", () => {
      fresh = true;
    });
    es.addEventListener("chunk", (ev) => {
      const t = JSON.parse((ev as MessageEvent<string>).data) as LogChunk;
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      let text = fresh ? t.text : (pre.textContent ?? "") + (t.overflow ? "\n[… more was written than shown …]\n" : "") + t.text;
      fresh = false;
      if (text.length > LOG_KEEP_CHARS) text = text.slice(text.length - LOG_KEEP_CHARS);
      setText(pre, text);
      pre.setAttribute("data-live", "true");
      pre.setAttribute("data-offset", String(t.offset));
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
    es.addEventListener("problem", (ev) => {
      setText(this.logTitle, `Log of ${name} (${(ev as MessageEvent<string>).data}; retrying)`);
    });
    es.addEventListener("error", () => {
      if (this.source !== es) return;
      pre.removeAttribute("data-live");
      if (es.readyState === EventSource.CLOSED) void this.whyClosed(name);
    });
  }

  /** The stream was refused (the browser does not say why): ask the log route once. */
  private async whyClosed(name: string): Promise<void> {
    let why = "stream closed";
    try {
      const r = await fetch(`${basePath()}${hostPath(this.id)}/programs/${encodeURIComponent(name)}/log?stream=${this.logStream.value}&bytes=1`, { credentials: "same-origin" });
      if (!r.ok) why = ((await r.json().catch(() => ({}))) as { error?: string }).error ?? `${r.status} ${r.statusText}`;
    } catch (e) {
      why = `Cannot reach the server: ${String(e)}`;
    }
    if (this.destroyed || this.logName !== name) return;
    setText(this.logTitle, `Log of ${name} (${why})`);
  }

  private say(state: "ok" | "error" | "pending", text: string): void {
    this.out.dataset.state = state;
    this.out.textContent = text;
  }

  destroy(): void {
    this.destroyed = true;
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.closeLog();
  }
}

/** The process list's Signal… action: a small menu beside a pid, for admins. */
export class SignalMenu {
  /** Whether the caller is an admin (false until known). */
  admin = false;
  readonly el: HTMLElement;
  private readonly pidEl = h("span", { class: "signal-pid" });
  private readonly sig = h("select", { class: "signal-name", "aria-label": "Signal" }, ...["TERM", "INT", "KILL", "HUP"].map((s) => h("option", { value: s }, s)));
  private readonly out = h("span", { class: "signal-out", role: "status", "aria-live": "polite" });
  private pid = 0;
  private name = "";

  constructor(
    private readonly id: string,
    onAdmin: () => void,
  ) {
    const send = h("button", { type: "button", class: "text-btn signal-send" }, "Send…");
    send.addEventListener("click", () => void this.send());
    const close = h("button", { type: "button", class: "text-btn signal-close" }, "Close");
    close.addEventListener("click", () => show(this.el, false));
    this.el = h("div", { class: "signal-menu", hidden: true }, "Signal ", this.pidEl, this.sig, send, close, this.out);
    void whoAmI().then((me) => {
      this.admin = me?.role === "admin";
      if (this.admin) onAdmin();
    });
  }

  /** Opens the menu for process `pid` (`name`). */
  open(pid: number, name: string): void {
    this.pid = pid;
    this.name = name;
    setText(this.pidEl, `${pid} (${name})`);
    setText(this.out, "");
    show(this.el, true);
  }

  private async send(): Promise<void> {
    const s = this.sig.value;
    if (!window.confirm(`Send ${s} to ${this.pid} (${this.name}) on ${this.id}?`)) return;
    this.out.dataset.state = "pending";
    setText(this.out, "asking…");
    const r = await call<{ message: string }>("POST", `${hostPath(this.id)}/signal`, { pid: this.pid, signal: s });
    this.out.dataset.state = r.ok ? "ok" : "error";
    setText(this.out, r.ok ? r.data.message : r.why);
  }
}
