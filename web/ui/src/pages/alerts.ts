/**
 * The alerts page (`#/alerts`, REST only: web/PROTOCOL.md "Alerts"), in five tabs:
 *
 * - **Firing**: the alerts firing and pending now (rule, severity, host, subject, value, since
 *   and for how long, pending / silenced / flapping / acknowledged), fetched again every few
 *   seconds by the shared feed (`components/alerts.ts`); rows are keyed by alert id and updated
 *   in place, so that an open menu survives a refresh. Admins acknowledge (the server refuses
 *   viewers: 403) and may silence an alert's rule on its host for a chosen time.
 * - **History**: stored firings and resolutions, newest first, over a chosen range.
 * - **Rules**: config rules read-only (marked as such), UI rules with who changed them last;
 *   admins create, edit and delete UI rules, and the server's reason for a refusal is shown
 *   next to the field it names (`alerts.rules[0].when: ...` goes under "Condition").
 * - **Silences**: what is silenced now or later, maintenance windows included; admins create
 *   and delete them.
 * - **Channels**: each channel's target (no secret), whether a secret is set, its figures
 *   (sent, failed, dropped, queued), last error and success, where it comes from; admins send
 *   a test, and make, edit and delete UI channels (config channels are read-only). The
 *   editor's fields follow the type (`CHANNEL_TYPES`: every type but `command`, no `*_file`
 *   key); secrets are password inputs and never shown again, so an edit starts with the type's
 *   fields empty ("unchanged") and sends only what was filled in (PUT keeps the rest), the
 *   rate limit and age limit filled with the channel's. The server's reason for a refusal is
 *   shown under the field it names (`channel.url: ...` under URL); its refusal to delete a
 *   channel that rules notify (409, naming them) in the tab's status line.
 *
 * The host and rule filters (from the query: `#/alerts?host=lab:n1`, the overview's badge
 * links there) apply to the firing list and the history. Viewers see everything an admin
 * sees but get no buttons that acknowledge or change rules, silences or channels (the server
 * refuses them anyway).
 *
 * Test hooks: `#alerts-page[data-state=loading|ready|off|login|error][data-role]`,
 * `#alerts-tabs button[data-tab]`, `#alerts-host-filter`, `#alerts-rule-filter`,
 * `#firing-table tr[data-alert-id]` (`data-rule`, `data-host`, `data-pending`,
 * `data-silenced`, `data-acked`; buttons `.alert-ack`, select `.alert-silence`),
 * `#alert-history tr[data-seq]` (`data-status`), `#rules-table tr[data-rule][data-source]`
 * (`.rule-edit`, `.rule-delete`), `#rule-new`, `#rule-form` (inputs `[name=...]`,
 * `.field-error[data-for=...]`, `#rule-save`, `#rule-status`), `#silences-table
 * tr[data-silence]` (`data-active`, `.silence-delete`), `#silence-form`, `#silence-status`,
 * `#channels-table tr[data-channel][data-source]` (`.channel-test`, `.test-result[data-ok]`,
 * `.channel-edit`, `.channel-delete`), `#channels-status[data-ok]`, `#channel-new`,
 * `#channel-form` (inputs `[name=...]`: `name`, `type`, the type's keys, `max` and `per_s`
 * (`rate_limit`), `max_age_s`; `.field-error[data-for=...]`, `[data-field][data-invalid]`,
 * `#channel-save`, `#channel-cancel`, `#channel-status`).
 */
import "../styles/alerts.css";
import { call, whoAmI } from "../api";
import { h, setAttr, setText, setTitle, show } from "../dom";
import { DASH, ago, dateTime, duration, num } from "../format";
import { alertsHref, hostHref, type AlertsRoute, type AlertsTab } from "../router";
import { SEVERITY_ORDER, alertFeed, severityBadge, stateChips, type FeedState } from "../components/alerts";
import type { ActiveAlert, Alert, AlertHistoryAnswer, ChannelEntry, ChannelSpec, NewSilence, RuleEntry, RuleSpec, SilenceEntry, WindowSpec } from "../types";

const TABS: { key: AlertsTab; label: string }[] = [
  { key: "firing", label: "Firing" },
  { key: "history", label: "History" },
  { key: "rules", label: "Rules" },
  { key: "silences", label: "Silences" },
  { key: "channels", label: "Channels" },
];

/** The durations offered to silence an alert, and for a new silence. */
const SILENCE_FOR: { s: number; label: string }[] = [
  { s: 3600, label: "1 hour" },
  { s: 4 * 3600, label: "4 hours" },
  { s: 86400, label: "1 day" },
  { s: 7 * 86400, label: "1 week" },
];

/** The history's ranges. */
const RANGES: { ms: number; label: string }[] = [
  { ms: 3600_000, label: "Last hour" },
  { ms: 6 * 3600_000, label: "Last 6 hours" },
  { ms: 86400_000, label: "Last 24 hours" },
  { ms: 7 * 86400_000, label: "Last 7 days" },
  { ms: 30 * 86400_000, label: "Last 30 days" },
];

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** A measured value, short: 93.12, 7, 0.5. */
function value(v: number | undefined): string {
  if (v === undefined || v === null || !Number.isFinite(v)) return DASH;
  return String(Math.round(v * 100) / 100);
}

/** What a silence or a rule's scope covers, in words: "rule host down, host lab:n7". */
function scopeText(s: { rule?: string; host?: string; cluster?: string; tag?: string }, all: string): string {
  const parts = [s.rule ? `rule ${s.rule}` : "", s.host ? `host ${s.host}` : "", s.cluster ? `cluster ${s.cluster}` : "", s.tag ? `tag ${s.tag}` : ""].filter(Boolean);
  return parts.length ? parts.join(", ") : all;
}

/** A maintenance window in words: "sun 02:00–04:00 Europe/Paris". */
function windowText(w: WindowSpec): string {
  return `${w.days.length ? w.days.join(", ") : "every day"} ${w.start}–${w.end} ${w.timezone ?? "UTC"}`;
}

/**
 * The form field a server's reason names: the last part of the path before the first ": "
 * (`alerts.rules[0].when: 'cpu_prcent > 90' names no metric` names `when`).
 */
export function fieldOf(why: string, fields: readonly string[]): string | null {
  const i = why.indexOf(": ");
  if (i <= 0) return null;
  const path = why.slice(0, i);
  if (/\s/.test(path)) return null;
  const last = (path.split(".").pop() ?? "").replace(/\[\d+\]$/, "");
  return fields.includes(last) ? last : null;
}

function field(label: string, input: HTMLElement, name: string, hint?: string): HTMLElement {
  return h("label", { class: "acct-field af-field", "data-field": name }, h("span", null, label), input, hint ? h("small", { class: "muted" }, hint) : null, h("span", { class: "field-error", "data-for": name, role: "alert" }));
}

/** One row of the firing list, updated in place. */
class FiringRow {
  readonly tr: HTMLTableRowElement;
  alert: ActiveAlert;
  private readonly sev = h("td", { "data-col": "severity" });
  private readonly rule = h("td", { "data-col": "rule" });
  private readonly host = h("td", { "data-col": "host" });
  private readonly subject = h("td", { "data-col": "subject" });
  private readonly value = h("td", { class: "num", "data-col": "value" });
  private readonly since = h("td", { "data-col": "since" });
  private readonly dur = h("td", { class: "num", "data-col": "duration" });
  private readonly state = h("td", { "data-col": "state" });
  private readonly acked = h("td", { "data-col": "ack" });
  private readonly ackBtn = h("button", { type: "button", class: "text-btn alert-ack", title: "Say that someone is on it (kept until it resolves)" }, "Acknowledge");
  private readonly silence: HTMLSelectElement;
  private key = "";

  constructor(a: ActiveAlert, admin: boolean, onAck: (a: ActiveAlert) => void, onSilence: (a: ActiveAlert, s: number) => void) {
    this.alert = a;
    this.ackBtn.addEventListener("click", () => onAck(this.alert));
    this.silence = h("select", { class: "alert-silence", "aria-label": "Silence this rule on this host" }, h("option", { value: "" }, "Silence…"), ...SILENCE_FOR.map((d) => h("option", { value: String(d.s) }, `for ${d.label}`)));
    this.silence.addEventListener("change", () => {
      const s = Number(this.silence.value);
      this.silence.value = "";
      if (s > 0) onSilence(this.alert, s);
    });
    const actions = h("td", { class: "alert-actions", "data-col": "actions" }, admin ? this.ackBtn : null, admin ? this.silence : null);
    this.tr = h("tr", { "data-alert-id": a.id }, this.sev, this.rule, this.host, this.subject, this.value, this.since, this.dur, this.state, this.acked, actions);
    this.update(a);
  }

  update(a: ActiveAlert): void {
    this.alert = a;
    const key = JSON.stringify([a.severity, a.rule, a.host, a.fired_ms, a.started_ms, a.pending, a.silenced, a.flapping, a.ack]);
    if (key === this.key) return;
    this.key = key;
    setAttr(this.tr, "data-rule", a.rule);
    setAttr(this.tr, "data-host", a.host.host);
    setAttr(this.tr, "data-severity", a.severity);
    setAttr(this.tr, "data-pending", String(a.pending));
    setAttr(this.tr, "data-silenced", String(a.silenced));
    setAttr(this.tr, "data-acked", String(!!a.ack));
    this.sev.replaceChildren(severityBadge(a.severity));
    setText(this.rule, a.rule);
    this.host.replaceChildren(h("a", { href: hostHref(a.host.host) }, a.host.host));
    setText(this.subject, a.host.subject ?? DASH);
    setText(this.value, value(a.host.value));
    setTitle(this.value, a.host.detail ?? "");
    const since = a.pending ? a.started_ms : a.fired_ms;
    setText(this.since, dateTime(since));
    setTitle(this.since, a.pending ? `pending since ${dateTime(a.started_ms)}` : `condition since ${dateTime(a.started_ms)}, fired ${dateTime(a.fired_ms)}`);
    this.state.replaceChildren(stateChips(a), ...(a.host.detail ? [h("div", { class: "muted detail" }, a.host.detail)] : []));
    setText(this.acked, a.ack ? `${a.ack.by}, ${dateTime(a.ack.at_ms)}` : DASH);
    show(this.ackBtn, !a.ack && !a.pending);
  }

  /** The duration, `sinceMs` after the answer that gave it. */
  tick(sinceMs: number): void {
    setText(this.dur, duration(this.alert.duration_s + Math.max(0, sinceMs) / 1000));
  }
}

export class AlertsPage {
  readonly el: HTMLElement;
  private route: AlertsRoute;
  private admin = false;
  private user = "";
  private destroyed = false;
  private readonly unlisten: () => void;
  private readonly tabs = new Map<AlertsTab, { btn: HTMLButtonElement; panel: HTMLElement }>();
  private readonly status = h("p", { class: "acct-status", id: "alerts-status", role: "status" });
  private readonly hostFilter = h("input", { type: "search", class: "search", id: "alerts-host-filter", placeholder: "Host (cluster:name)", "aria-label": "Only this host", list: "alerts-hosts", spellcheck: "false", autocomplete: "off" });
  private readonly ruleFilter = h("select", { id: "alerts-rule-filter", "aria-label": "Only this rule" }, h("option", { value: "" }, "All rules"));
  private readonly hostList = h("datalist", { id: "alerts-hosts" });
  // Firing.
  private readonly firingBody = h("tbody");
  private readonly firingEmpty = h("p", { class: "empty-state", id: "firing-empty" }, "Loading…");
  private readonly rows = new Map<string, FiringRow>();
  private feedAt = 0;
  private readonly actionStatus = h("p", { class: "acct-status", id: "firing-status", role: "status" });
  // History.
  private readonly historyBody = h("tbody");
  private readonly historyNote = h("p", { class: "muted", id: "history-note" });
  private readonly range = h("select", { id: "alerts-range", "aria-label": "Range" }, ...RANGES.map((r) => h("option", { value: String(r.ms) }, r.label)));
  // Rules, silences, channels.
  private readonly rulesBody = h("tbody");
  private readonly rulesStatus = h("p", { class: "acct-status", id: "rules-status", role: "status" });
  private readonly ruleForm: RuleForm;
  private rules: RuleEntry[] = [];
  private readonly silencesBody = h("tbody");
  private readonly silencesStatus = h("p", { class: "acct-status", id: "silences-status", role: "status" });
  private readonly channelsBody = h("tbody");
  private readonly channelsStatus = h("p", { class: "acct-status", id: "channels-status", role: "status" });
  private readonly channelForm: ChannelForm;
  private channelNames: string[] = [];
  private readonly adminOnly: HTMLElement[] = [];
  private readonly timer: number;
  private slowTick = 0;

  constructor(route: AlertsRoute) {
    this.route = route;
    const tabBar = h("div", { class: "segmented", id: "alerts-tabs", role: "tablist" });
    const panels = h("div", { class: "alerts-panels" });
    for (const t of TABS) {
      const btn = h("button", { type: "button", class: "seg", role: "tab", "data-tab": t.key }, t.label);
      btn.addEventListener("click", () => this.setRoute({ ...this.route, tab: t.key }, true));
      const panel = h("section", { class: "alerts-panel", id: `alerts-${t.key}`, role: "tabpanel", hidden: true });
      tabBar.append(btn);
      panels.append(panel);
      this.tabs.set(t.key, { btn, panel });
    }
    this.hostFilter.value = route.host;
    this.hostFilter.addEventListener("change", () => this.setRoute({ ...this.route, host: this.hostFilter.value.trim() }, true));
    this.ruleFilter.addEventListener("change", () => this.setRoute({ ...this.route, rule: this.ruleFilter.value }, true));
    this.range.value = String(86400_000);
    this.range.addEventListener("change", () => void this.loadHistory());
    this.ruleForm = new RuleForm(() => this.channelNames, async (r) => {
      this.say(this.rulesStatus, r, true);
      await this.loadRules();
    });
    this.channelForm = new ChannelForm(async (r) => {
      this.say(this.channelsStatus, r, true);
      await this.loadChannels();
    });
    this.buildPanels();
    this.el = h(
      "section",
      { class: "alerts-page", id: "alerts-page", "data-state": "loading" },
      h("div", { class: "alerts-head" }, h("h1", null, "Alerts"), tabBar),
      h("div", { class: "toolbar alerts-filters" }, this.hostFilter, this.hostList, this.ruleFilter),
      this.status,
      panels,
    );
    this.unlisten = alertFeed.listen((s) => this.onFeed(s));
    void this.start();
    this.timer = window.setInterval(() => this.tick(), 1000);
  }

  private async start(): Promise<void> {
    const me = await whoAmI();
    if (this.destroyed) return;
    this.admin = me?.role === "admin";
    this.user = me?.user ?? "";
    setAttr(this.el, "data-role", me?.role ?? "none");
    for (const el of this.adminOnly) show(el, this.admin);
    // Rows made before the role was known get their admin controls now.
    for (const row of this.rows.values()) row.tr.remove();
    this.rows.clear();
    this.onFeed(alertFeed.state);
    await Promise.all([this.loadRules(), this.loadChannels()]);
    this.setRoute(this.route, false);
  }

  /** Another `#/alerts...` route while the page is shown (or a tab or filter picked here). */
  setRoute(r: AlertsRoute, fromPage: boolean): void {
    const before = this.route;
    this.route = r;
    if (fromPage) history.replaceState(null, "", alertsHref(r));
    if (this.hostFilter.value !== r.host) this.hostFilter.value = r.host;
    this.syncRuleFilter();
    for (const [k, t] of this.tabs) {
      setAttr(t.btn, "aria-pressed", String(k === r.tab));
      setAttr(t.btn, "aria-selected", String(k === r.tab));
      show(t.panel, k === r.tab);
    }
    this.onFeed(alertFeed.state);
    if (r.tab === "history" && (before.tab !== "history" || before.host !== r.host || before.rule !== r.rule || !fromPage)) void this.loadHistory();
    if (r.tab === "silences") void this.loadSilences();
    if (r.tab === "channels") void this.loadChannels();
    if (r.tab === "rules") void this.loadRules();
  }

  private syncRuleFilter(): void {
    const names = [...new Set([...this.rules.map((r) => r.rule.name), this.route.rule].filter(Boolean))].sort();
    const have = Array.from(this.ruleFilter.options).slice(1).map((o) => o.value);
    if (have.join("\n") !== names.join("\n")) this.ruleFilter.replaceChildren(h("option", { value: "" }, "All rules"), ...names.map((n) => h("option", { value: n }, n)));
    this.ruleFilter.value = this.route.rule;
  }

  private say(el: HTMLElement, text: string, ok: boolean): void {
    setText(el, text);
    el.dataset.ok = ok ? "true" : "false";
  }

  private buildPanels(): void {
    const tab = (k: AlertsTab) => (this.tabs.get(k) as { panel: HTMLElement }).panel;
    const head = (...labels: [string, string?][]) => h("thead", null, h("tr", null, ...labels.map(([l, cls]) => h("th", { class: cls ?? null }, l))));

    tab("firing").append(
      this.actionStatus,
      h("div", { class: "table-wrap" }, h("table", { class: "data alerts-table", id: "firing-table" }, head(["Severity"], ["Rule"], ["Host"], ["Subject"], ["Value", "num"], ["Since"], ["For", "num"], ["State"], ["Acknowledged"], [""]), this.firingBody)),
      this.firingEmpty,
    );

    const reload = h("button", { type: "button", class: "btn", id: "history-reload" }, "Refresh");
    reload.addEventListener("click", () => void this.loadHistory());
    tab("history").append(
      h("div", { class: "toolbar" }, this.range, reload, this.historyNote),
      h("div", { class: "table-wrap" }, h("table", { class: "data alerts-table", id: "alert-history" }, head(["Time"], ["Event"], ["Severity"], ["Rule"], ["Host"], ["Subject"], ["Value", "num"], ["Started"], ["Lasted", "num"]), this.historyBody)),
    );

    const newRule = h("button", { type: "button", class: "btn", id: "rule-new" }, "New rule");
    newRule.addEventListener("click", () => this.ruleForm.open(null));
    // The editor opens from "New rule" or "Edit" (admins only): not shown with the role.
    this.adminOnly.push(newRule);
    show(newRule, false);
    this.ruleForm.el.hidden = true;
    tab("rules").append(
      h("div", { class: "toolbar" }, newRule, h("span", { class: "muted" }, "Rules from config_app.json are read-only; rules made here are stored in the database.")),
      this.ruleForm.el,
      this.rulesStatus,
      h("div", { class: "table-wrap" }, h("table", { class: "data alerts-table", id: "rules-table" }, head(["Name"], ["Condition"], ["Scope"], ["Severity"], ["For", "num"], ["Clear", "num"], ["Repeat", "num"], ["Notify"], ["Firing", "num"], ["Source"], [""]), this.rulesBody)),
    );

    const silenceForm = this.silenceForm();
    this.adminOnly.push(silenceForm);
    show(silenceForm, false);
    tab("silences").append(
      this.silencesStatus,
      h("div", { class: "table-wrap" }, h("table", { class: "data alerts-table", id: "silences-table" }, head(["Covers"], ["When"], ["State"], ["By"], ["Comment"], ["Source"], [""]), this.silencesBody)),
      silenceForm,
    );

    const newChannel = h("button", { type: "button", class: "btn", id: "channel-new" }, "New channel");
    newChannel.addEventListener("click", () => this.channelForm.open(null));
    this.adminOnly.push(newChannel);
    show(newChannel, false);
    tab("channels").append(
      h("div", { class: "toolbar" }, newChannel, h("span", { class: "muted" }, "Channels from config_app.json are read-only; channels made here are stored in the database.")),
      this.channelForm.el,
      this.channelsStatus,
      h("div", { class: "table-wrap" }, h("table", { class: "data alerts-table", id: "channels-table" }, head(["Name"], ["Type"], ["Target"], ["Secret"], ["Rate limit"], ["Sent", "num"], ["Failed", "num"], ["Dropped", "num"], ["Queued", "num"], ["Last error"], ["Last success"], ["Source"], [""]), this.channelsBody)),
    );
  }

  // ---------------------------------------------------------------- firing

  private onFeed(s: FeedState): void {
    if (this.destroyed) return;
    setAttr(this.el, "data-state", s.kind);
    if (s.kind === "loading") return;
    if (s.kind !== "ready") {
      this.say(this.status, s.kind === "off" ? "Alerts are off on this server (no alert rules or no database)." : s.kind === "login" ? "Log in to see the alerts." : s.why, false);
      return;
    }
    setText(this.status, "");
    this.feedAt = s.at;
    const hosts = new Set<string>();
    const want = s.answer.alerts
      .filter((a) => {
        hosts.add(a.host.host);
        return (!this.route.host || a.host.host === this.route.host) && (!this.route.rule || a.rule === this.route.rule);
      })
      .sort((a, b) => Number(a.pending) - Number(b.pending) || SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || b.fired_ms - a.fired_ms || a.host.host.localeCompare(b.host.host));
    const keep = new Set(want.map((a) => a.id));
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.tr.remove();
        this.rows.delete(id);
      }
    }
    let prev: Element | null = null;
    for (const a of want) {
      let row = this.rows.get(a.id);
      if (row) row.update(a);
      else {
        row = new FiringRow(a, this.admin, (x) => void this.ack(x), (x, secs) => void this.silenceAlert(x, secs));
        this.rows.set(a.id, row);
      }
      const next: Element | null = prev ? prev.nextElementSibling : this.firingBody.firstElementChild;
      if (next !== row.tr) this.firingBody.insertBefore(row.tr, next);
      prev = row.tr;
    }
    const filtered = this.route.host || this.route.rule;
    setText(this.firingEmpty, want.length ? "" : filtered ? "Nothing fires here now." : "Nothing fires now.");
    show(this.firingEmpty, want.length === 0);
    const names = [...hosts].sort();
    if (Array.from(this.hostList.options).map((o) => o.value).join("\n") !== names.join("\n")) this.hostList.replaceChildren(...names.map((n) => h("option", { value: n })));
    this.tick();
  }

  private tick(): void {
    const since = performance.now() - this.feedAt;
    for (const row of this.rows.values()) row.tick(since);
    // The open tab's lists follow without a click (the firing list has the feed).
    if (++this.slowTick % 15 === 0) {
      if (this.route.tab === "channels") void this.loadChannels();
      if (this.route.tab === "silences") void this.loadSilences();
      if (this.route.tab === "history") void this.loadHistory();
    }
  }

  private async ack(a: ActiveAlert): Promise<void> {
    const r = await call<ActiveAlert>("POST", `api/v1/alerts/${encodeURIComponent(a.id)}/ack`);
    this.say(this.actionStatus, r.ok ? `Acknowledged ${a.rule} on ${a.host.host}.` : r.why, r.ok);
    await alertFeed.refresh();
  }

  private async silenceAlert(a: ActiveAlert, secs: number): Promise<void> {
    const body: NewSilence = { rule: a.rule, host: a.host.host, duration_s: secs, comment: `silenced from the alerts page by ${this.user || "an admin"}` };
    const r = await call<SilenceEntry>("POST", "api/v1/alerts/silences", body);
    this.say(this.actionStatus, r.ok ? `Silenced ${a.rule} on ${a.host.host} for ${duration(secs)}.` : r.why, r.ok);
    await alertFeed.refresh();
  }

  // ---------------------------------------------------------------- history

  private async loadHistory(): Promise<void> {
    const to = Date.now();
    const from = to - Number(this.range.value);
    const q = new URLSearchParams({ from: String(from), to: String(to), limit: "500" });
    if (this.route.host) q.set("host", this.route.host);
    if (this.route.rule) q.set("rule", this.route.rule);
    const r = await call<AlertHistoryAnswer>("GET", `api/v1/alerts/history?${q.toString()}`);
    if (this.destroyed) return;
    if (!r.ok) {
      this.historyBody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 9 }, r.why)));
      setText(this.historyNote, "");
      return;
    }
    const a = r.data;
    this.historyBody.replaceChildren(
      ...(a.events.length
        ? a.events.map((e) => this.historyRow(e.seq, e.at_ms, e.alert))
        : [h("tr", { class: "empty" }, h("td", { colspan: 9 }, "No alert fired or resolved in this range."))]),
    );
    setText(this.historyNote, `${a.events.length} event${a.events.length === 1 ? "" : "s"}${a.truncated ? " (the newest; narrow the range or the filters to see the others)" : ""}`);
  }

  private historyRow(seq: number, at: number, a: Alert): HTMLElement {
    const end = a.resolved_ms ?? null;
    const from = a.fired_ms || a.started_ms;
    return h(
      "tr",
      { "data-seq": String(seq), "data-status": a.status, "data-rule": a.rule, "data-host": a.host.host },
      h("td", null, dateTime(at)),
      h("td", null, h("span", { class: `chip ${a.status === "firing" ? "st-firing" : "st-up"}` }, a.status === "firing" ? "fired" : "resolved"), a.flapping ? h("span", { class: "chip st-stale" }, "flapping") : null),
      h("td", null, severityBadge(a.severity)),
      h("td", null, a.rule),
      h("td", null, h("a", { href: hostHref(a.host.host) }, a.host.host)),
      h("td", null, a.host.subject ?? DASH),
      h("td", { class: "num", title: a.host.detail ?? null }, value(a.host.value)),
      h("td", null, dateTime(a.started_ms)),
      h("td", { class: "num" }, end !== null && from ? duration((end - from) / 1000) : DASH),
    );
  }

  // ---------------------------------------------------------------- rules

  private async loadRules(): Promise<void> {
    const r = await call<RuleEntry[]>("GET", "api/v1/alerts/rules");
    if (this.destroyed) return;
    if (!r.ok) {
      this.rulesBody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 11 }, r.why)));
      return;
    }
    this.rules = r.data;
    this.syncRuleFilter();
    this.rulesBody.replaceChildren(...(r.data.length ? r.data.map((e) => this.ruleRow(e)) : [h("tr", { class: "empty" }, h("td", { colspan: 11 }, "No alert rules."))]));
  }

  private ruleRow(e: RuleEntry): HTMLElement {
    const s = e.rule;
    const extra = [s.within_h !== undefined ? `within ${s.within_h} h` : "", s.idle_min !== undefined ? `idle ${s.idle_min} min` : "", s.process ? `process ${s.process}` : ""].filter(Boolean).join(", ");
    const actions = h("td", { class: "alert-actions" });
    if (this.admin && e.source === "ui") {
      const edit = h("button", { type: "button", class: "text-btn rule-edit" }, "Edit");
      edit.addEventListener("click", () => this.ruleForm.open(s));
      const del = h("button", { type: "button", class: "text-btn rule-delete" }, "Delete");
      del.addEventListener("click", () => {
        if (!window.confirm(`Delete the rule ${s.name}? Its alerts resolve.`)) return;
        void call("DELETE", `api/v1/alerts/rules/${encodeURIComponent(s.name)}`).then(async (r) => {
          this.say(this.rulesStatus, r.ok ? `Deleted ${s.name}.` : r.why, r.ok);
          await this.loadRules();
        });
      });
      actions.append(edit, del);
    }
    const firing = h("td", { class: "num" }, e.firing > 0 ? h("a", { href: alertsHref({ rule: s.name }) }, String(e.firing)) : "0");
    return h(
      "tr",
      { "data-rule": s.name, "data-source": e.source },
      h("td", null, s.name),
      h("td", { class: "mono" }, s.when, extra ? h("div", { class: "muted" }, extra) : null),
      h("td", null, scopeText(s, "all hosts")),
      h("td", null, severityBadge(s.severity ?? "warning")),
      h("td", { class: "num" }, s.for_s ? duration(s.for_s) : "0"),
      h("td", { class: "num" }, s.clear !== undefined ? value(s.clear) : DASH),
      h("td", { class: "num" }, s.repeat_s ? duration(s.repeat_s) : "never"),
      h("td", null, (s.notify ?? []).join(", ") || DASH),
      firing,
      h("td", null, sourceCell(e)),
      actions,
    );
  }

  // ---------------------------------------------------------------- silences

  private async loadSilences(): Promise<void> {
    const r = await call<SilenceEntry[]>("GET", "api/v1/alerts/silences");
    if (this.destroyed) return;
    if (!r.ok) {
      this.silencesBody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 7 }, r.why)));
      return;
    }
    this.silencesBody.replaceChildren(...(r.data.length ? r.data.map((s) => this.silenceRow(s)) : [h("tr", { class: "empty" }, h("td", { colspan: 7 }, "Nothing is silenced."))]));
  }

  private silenceRow(s: SilenceEntry): HTMLElement {
    const when = s.window ? `${windowText(s.window)}${s.ends_ms ? `, until ${dateTime(s.ends_ms)}` : ""}` : `${s.starts_ms ? dateTime(s.starts_ms) : "now"} → ${s.ends_ms ? dateTime(s.ends_ms) : DASH}`;
    const actions = h("td", { class: "alert-actions" });
    if (this.admin && s.source === "ui") {
      const del = h("button", { type: "button", class: "text-btn silence-delete" }, "Delete");
      del.addEventListener("click", () => {
        void call("DELETE", `api/v1/alerts/silences/${encodeURIComponent(s.id)}`).then(async (r) => {
          this.say(this.silencesStatus, r.ok ? "Silence deleted." : r.why, r.ok);
          await this.loadSilences();
          await alertFeed.refresh();
        });
      });
      actions.append(del);
    }
    return h(
      "tr",
      { "data-silence": s.id, "data-source": s.source, "data-active": String(s.active) },
      h("td", null, scopeText(s, "everything")),
      h("td", null, s.window ? h("span", { class: "chip", title: "A recurring maintenance window" }, "window") : null, " ", when),
      h("td", null, s.active ? h("span", { class: "chip st-silenced" }, "in force") : h("span", { class: "chip" }, "not now")),
      h("td", null, s.created_by || DASH),
      h("td", { class: "wrap" }, s.comment || DASH),
      h("td", null, s.source === "config" ? h("span", { class: "chip" }, "config") : "UI"),
      actions,
    );
  }

  /** The admin's form for a new silence: for a time, or a recurring window. */
  private silenceForm(): HTMLElement {
    const text = (name: string, ph: string) => h("input", { type: "text", name, placeholder: ph, autocomplete: "off", spellcheck: "false" });
    const rule = text("rule", "rule name");
    const host = text("host", "cluster:name");
    const cluster = text("cluster", "cluster");
    const tag = text("tag", "tag");
    const kind = h("select", { name: "kind" }, h("option", { value: "for" }, "For a time"), h("option", { value: "window" }, "A recurring window"));
    const dur = h("select", { name: "duration_s" }, ...SILENCE_FOR.map((d) => h("option", { value: String(d.s) }, d.label)));
    const days = h("span", { class: "days" }, ...DAYS.map((d) => h("label", { class: "day" }, h("input", { type: "checkbox", value: d }), d)));
    const start = h("input", { type: "time", name: "start", value: "02:00" });
    const end = h("input", { type: "time", name: "end", value: "04:00" });
    const tz = text("timezone", "UTC or Europe/Paris");
    tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    const comment = text("comment", "why");
    const windowFields = h("div", { class: "acct-add" }, field("Days (none: every day)", days, "days"), field("From", start, "start"), field("To", end, "end"), field("Time zone", tz, "timezone"));
    const forFields = field("For", dur, "duration_s");
    const sync = () => {
      show(windowFields, kind.value === "window");
      show(forFields, kind.value === "for");
    };
    kind.addEventListener("change", sync);
    sync();
    const submit = h("button", { type: "submit", class: "btn", id: "silence-create" }, "Create silence");
    const form = h(
      "form",
      { class: "acct-card", id: "silence-form" },
      h("h2", null, "New silence"),
      h("p", { class: "muted" }, "Covers the alerts that match everything given (at least one of rule, host, cluster, tag)."),
      h("div", { class: "acct-add" }, field("Rule", rule, "rule"), field("Host", host, "host"), field("Cluster", cluster, "cluster"), field("Tag", tag, "tag")),
      h("div", { class: "acct-add" }, field("When", kind, "kind"), forFields, field("Comment", comment, "comment")),
      windowFields,
      submit,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const opt = (v: string) => v.trim() || undefined;
      const body: NewSilence = { rule: opt(rule.value), host: opt(host.value), cluster: opt(cluster.value), tag: opt(tag.value), comment: comment.value.trim() };
      if (kind.value === "window") {
        body.window = { days: Array.from(days.querySelectorAll("input:checked")).map((i) => (i as HTMLInputElement).value), start: start.value, end: end.value, timezone: opt(tz.value) };
      } else body.duration_s = Number(dur.value);
      submit.disabled = true;
      void call<SilenceEntry>("POST", "api/v1/alerts/silences", body).then(async (r) => {
        submit.disabled = false;
        showFieldError(form, r.ok ? null : r.why, ["rule", "host", "cluster", "tag", "duration_s", "days", "start", "end", "timezone", "comment"]);
        this.say(this.silencesStatus, r.ok ? `Silence ${r.data.id} created.` : r.why, r.ok);
        if (r.ok) {
          form.reset();
          tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
          sync();
        }
        await this.loadSilences();
        await alertFeed.refresh();
      });
    });
    return form;
  }

  // ---------------------------------------------------------------- channels

  private async loadChannels(): Promise<void> {
    const r = await call<ChannelEntry[]>("GET", "api/v1/alerts/channels");
    if (this.destroyed) return;
    if (!r.ok) {
      this.channelsBody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 13 }, r.why)));
      return;
    }
    this.channelNames = r.data.map((c) => c.name);
    // Keep the result of a test shown across refreshes.
    const results = new Map<string, Node>();
    for (const tr of Array.from(this.channelsBody.querySelectorAll("tr[data-channel]"))) {
      const res = tr.querySelector(".test-result");
      if (res?.textContent) results.set(tr.getAttribute("data-channel") ?? "", res);
    }
    this.channelsBody.replaceChildren(...(r.data.length ? r.data.map((c) => this.channelRow(c, results.get(c.name))) : [h("tr", { class: "empty" }, h("td", { colspan: 13 }, "No channel is configured (alerts.channels in config_app.json, or New channel)."))]));
  }

  private channelRow(c: ChannelEntry, result: Node | undefined): HTMLElement {
    const res = (result as HTMLElement | undefined) ?? h("span", { class: "test-result", role: "status" });
    const actions = h("td", { class: "alert-actions" });
    if (this.admin) {
      const test = h("button", { type: "button", class: "text-btn channel-test" }, "Send test");
      test.addEventListener("click", () => {
        test.disabled = true;
        setText(res, "sending…");
        delete res.dataset.ok;
        void call<{ ok: boolean }>("POST", `api/v1/alerts/channels/${encodeURIComponent(c.name)}/test`).then((r) => {
          test.disabled = false;
          setText(res, r.ok ? "delivered" : r.why);
          res.dataset.ok = String(r.ok);
        });
      });
      actions.append(test);
      if (c.source === "ui") {
        const edit = h("button", { type: "button", class: "text-btn channel-edit" }, "Edit");
        edit.addEventListener("click", () => this.channelForm.open(c));
        const del = h("button", { type: "button", class: "text-btn channel-delete" }, "Delete");
        del.addEventListener("click", () => {
          if (!window.confirm(`Delete the channel ${c.name}?`)) return;
          void call("DELETE", `api/v1/alerts/channels/${encodeURIComponent(c.name)}`).then(async (r) => {
            // 409: rules notify it; the server's sentence names them.
            this.say(this.channelsStatus, r.ok ? `Deleted ${c.name}.` : r.why, r.ok);
            if (r.ok && this.channelForm.editingName() === c.name) this.channelForm.close();
            await this.loadChannels();
          });
        });
        actions.append(edit, del);
      }
      actions.append(res);
    }
    return h(
      "tr",
      { "data-channel": c.name, "data-source": c.source, "data-failing": String(!!c.last_error && (c.last_success_ms ?? 0) < (c.last_error_ms ?? 0)) },
      h("td", null, c.name),
      h("td", null, c.type, c.custom_templates ? h("span", { class: "muted", title: "This channel has its own templates" }, " · templates") : null),
      h("td", { class: "mono ellipsis target", title: c.target }, c.target || DASH),
      h("td", null, c.secret_set ? "set" : "none"),
      h("td", null, `${c.rate_limit.max} per ${duration(c.rate_limit.per_s)}`),
      h("td", { class: "num" }, num(c.sent)),
      h("td", { class: "num" }, num(c.failed)),
      h("td", { class: "num" }, num(c.dropped)),
      h("td", { class: "num" }, num(c.queued)),
      h("td", { class: `wrap ${c.last_error ? "lvl-crit" : ""}`.trim(), title: c.last_error_ms ? dateTime(c.last_error_ms) : null }, c.last_error ? `${c.last_error} (${ago(Date.now() - (c.last_error_ms ?? Date.now()))})` : DASH),
      h("td", null, c.last_success_ms ? ago(Date.now() - c.last_success_ms) : DASH),
      h("td", { class: "source" }, sourceCell(c)),
      actions,
    );
  }

  destroy(): void {
    this.destroyed = true;
    this.unlisten();
    window.clearInterval(this.timer);
  }
}

/** Where a rule or a channel comes from: config (read-only), or the UI with who changed it last. */
function sourceCell(e: { source: "config" | "ui"; updated_by?: string; updated_ms?: number }): HTMLElement {
  return e.source === "config"
    ? h("span", { class: "chip", title: "Defined in config_app.json: read-only here" }, "config")
    : h("span", { title: e.updated_ms ? `changed ${dateTime(e.updated_ms)}` : "" }, h("span", { class: "chip st-up" }, "UI"), e.updated_by ? ` ${e.updated_by}` : "", e.updated_ms ? h("span", { class: "muted" }, ` · ${ago(Date.now() - e.updated_ms)}`) : null);
}

/** Shows `why` next to the field it names in `form` (or clears every field's error). */
function showFieldError(form: HTMLElement, why: string | null, fields: readonly string[]): string | null {
  const f = why === null ? null : fieldOf(why, fields);
  for (const el of Array.from(form.querySelectorAll<HTMLElement>(".field-error"))) {
    const mine = f !== null && el.dataset.for === f;
    setText(el, mine ? (why ?? "") : "");
    setAttr(el.closest(".af-field") ?? el, "data-invalid", mine ? "true" : null);
  }
  return f;
}

/** The fields of the rule editor (the names of `RuleSpec`). */
const RULE_FIELDS = ["name", "when", "severity", "for_s", "clear", "repeat_s", "cluster", "host", "tag", "notify", "within_h", "idle_min", "process", "group_wait_s"] as const;
const NUMBER_FIELDS = new Set(["for_s", "clear", "repeat_s", "within_h", "idle_min", "group_wait_s"]);

/** The rule editor (admins): a new rule, or a UI rule to change. */
class RuleForm {
  readonly el: HTMLFormElement;
  private editing: string | null = null;
  private readonly inputs = new Map<string, HTMLInputElement | HTMLSelectElement>();
  private readonly title = h("h2");
  private readonly status = h("p", { class: "acct-status", id: "rule-status", role: "status" });
  private readonly channelsHint = h("small", { class: "muted" });

  constructor(
    private readonly channels: () => string[],
    private readonly saved: (what: string) => Promise<void>,
  ) {
    const text = (name: string, ph = "") => {
      const i = h("input", { type: "text", name, placeholder: ph, autocomplete: "off", spellcheck: "false" });
      this.inputs.set(name, i);
      return i;
    };
    const sev = h("select", { name: "severity" }, h("option", { value: "info" }, "info"), h("option", { value: "warning" }, "warning"), h("option", { value: "critical" }, "critical"));
    this.inputs.set("severity", sev);
    const save = h("button", { type: "submit", class: "btn", id: "rule-save" }, "Save rule");
    const cancel = h("button", { type: "button", class: "btn", id: "rule-cancel" }, "Cancel");
    cancel.addEventListener("click", () => this.close());
    this.el = h(
      "form",
      { class: "acct-card rule-form", id: "rule-form", novalidate: true },
      this.title,
      h("div", { class: "acct-add" }, field("Name", text("name", "cpu busy"), "name"), field("Condition", text("when", "cpu_percent > 90"), "when", "host_down, METRIC OP VALUE, process_missing, unresponsive, version_mismatch, disk_full_within, gpu_idle_with_memory, service_down"), field("Severity", sev, "severity")),
      h("div", { class: "acct-add" }, field("For (s)", text("for_s", "0"), "for_s"), field("Clear at", text("clear", "threshold"), "clear"), field("Repeat every (s)", text("repeat_s", "0: never"), "repeat_s"), field("Group wait (s)", text("group_wait_s", "engine's"), "group_wait_s")),
      h("div", { class: "acct-add" }, field("Cluster", text("cluster", "all"), "cluster"), field("Host", text("host", "all"), "host"), field("Tag", text("tag", "all"), "tag")),
      h("div", { class: "acct-add" }, field("Notify (channels, comma-separated)", text("notify", "ops, mail"), "notify"), this.channelsHint),
      h("div", { class: "acct-add" }, field("Within (h)", text("within_h", "disk_full_within"), "within_h"), field("Idle (min)", text("idle_min", "gpu_idle_with_memory"), "idle_min"), field("Process", text("process", "process_missing"), "process")),
      h("div", { class: "acct-add" }, save, cancel),
      this.status,
    );
    this.el.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.submit(save);
    });
  }

  /** Opens the form, empty or with `rule` to edit. */
  open(rule: RuleSpec | null): void {
    this.editing = rule?.name ?? null;
    setText(this.title, rule ? `Edit rule ${rule.name}` : "New rule");
    for (const [k, i] of this.inputs) {
      const v = rule ? (rule as unknown as Record<string, unknown>)[k] : undefined;
      i.value = k === "severity" ? String(v ?? "warning") : Array.isArray(v) ? v.join(", ") : v === undefined || v === null ? "" : String(v);
    }
    const names = this.channels();
    setText(this.channelsHint, names.length ? `Channels: ${names.join(", ")}` : "No channel is configured.");
    showFieldError(this.el, null, RULE_FIELDS);
    setText(this.status, "");
    this.el.hidden = false;
    this.inputs.get("name")?.focus();
  }

  close(): void {
    this.el.hidden = true;
    this.editing = null;
  }

  private async submit(save: HTMLButtonElement): Promise<void> {
    const spec: Record<string, unknown> = {};
    for (const [k, i] of this.inputs) {
      const v = i.value.trim();
      if (v === "") continue;
      if (k === "notify") spec[k] = v.split(",").map((s) => s.trim()).filter(Boolean);
      else if (NUMBER_FIELDS.has(k)) {
        const n = Number(v);
        if (!Number.isFinite(n) || (k !== "clear" && n < 0)) {
          showFieldError(this.el, `${k}: '${v}' is not a number`, RULE_FIELDS);
          this.say(`${k}: '${v}' is not a number`, false);
          return;
        }
        spec[k] = n;
      } else spec[k] = v;
    }
    save.disabled = true;
    const r = this.editing === null ? await call<RuleEntry>("POST", "api/v1/alerts/rules", spec) : await call<RuleEntry>("PUT", `api/v1/alerts/rules/${encodeURIComponent(this.editing)}`, spec);
    save.disabled = false;
    if (!r.ok) {
      // A name already taken (409) is the name's problem, whatever the sentence says.
      const f = showFieldError(this.el, r.status === 409 ? `name: ${r.why}` : r.why, RULE_FIELDS);
      this.say(f ? "The server refused the rule: see the field marked." : r.why, false);
      return;
    }
    showFieldError(this.el, null, RULE_FIELDS);
    this.close();
    await this.saved(`Saved rule ${r.data.rule.name}.`);
  }

  private say(text: string, ok: boolean): void {
    setText(this.status, text);
    this.status.dataset.ok = ok ? "true" : "false";
  }
}

/** How a channel field is typed in and sent. */
type ChannelFieldKind = "text" | "secret" | "number" | "list" | "tls" | "chat";

interface ChannelField {
  key: string;
  label: string;
  kind: ChannelFieldKind;
  /** The placeholder of a new channel (an edit says "unchanged"). */
  ph?: string;
}

const URL_FIELD: ChannelField = { key: "url", label: "URL (secret)", kind: "secret", ph: "https://hooks.example.com/..." };

/**
 * The channel types an admin may make here and their fields (README "Notification channels");
 * `command` (runs a program on the server) and the `*_file` keys are config_app.json's only.
 */
const CHANNEL_TYPES: Record<string, ChannelField[]> = {
  webhook: [URL_FIELD, { key: "bearer", label: "Bearer token (secret)", kind: "secret", ph: "optional" }],
  slack: [URL_FIELD],
  discord: [URL_FIELD],
  ntfy: [
    { key: "topic", label: "Topic", kind: "text", ph: "lab-alerts-7f3k" },
    { key: "server", label: "Server", kind: "text", ph: "https://ntfy.sh" },
    { key: "token", label: "Token (secret)", kind: "secret", ph: "optional" },
  ],
  pushbullet: [
    { key: "token", label: "Token (secret)", kind: "secret" },
    { key: "device_iden", label: "Device", kind: "text", ph: "all devices" },
  ],
  telegram: [
    { key: "token", label: "Token (secret)", kind: "secret", ph: "bot token" },
    { key: "chat_id", label: "Chat", kind: "chat", ph: "-1001234567890 or @channel" },
  ],
  email: [
    { key: "host", label: "SMTP server", kind: "text", ph: "smtp.example.com" },
    { key: "port", label: "Port", kind: "number", ph: "by TLS" },
    { key: "tls", label: "TLS", kind: "tls" },
    { key: "user", label: "User", kind: "text", ph: "optional" },
    { key: "password", label: "Password (secret)", kind: "secret", ph: "optional" },
    { key: "from", label: "From", kind: "text", ph: "smon <smon@example.com>" },
    { key: "to", label: "To (comma-separated)", kind: "list", ph: "ops@example.com" },
  ],
  alertmanager: [{ key: "urls", label: "URLs (comma-separated)", kind: "list", ph: "http://am1:9093, http://am2:9093" }],
};

/** Every type's fields once, by key (a key several types share is one input). */
const CHANNEL_TYPE_FIELDS: ChannelField[] = [...new Map(Object.values(CHANNEL_TYPES).flat().map((f) => [f.key, f])).values()];

/** The fields the server's reasons name (`channel.rate_limit.max: ...` names `max`). */
const CHANNEL_FIELDS: readonly string[] = ["name", "type", ...CHANNEL_TYPE_FIELDS.map((f) => f.key), "max", "per_s", "max_age_s"];

/** The channel editor (admins): a new channel, or a UI channel to change. */
class ChannelForm {
  readonly el: HTMLFormElement;
  /** The channel being edited (null: a new one). */
  private editing: ChannelEntry | null = null;
  private readonly name = h("input", { type: "text", name: "name", placeholder: "ops-hook", autocomplete: "off", spellcheck: "false" });
  private readonly type = h("select", { name: "type" }, ...Object.keys(CHANNEL_TYPES).map((t) => h("option", { value: t }, t)));
  private readonly inputs = new Map<string, { f: ChannelField; input: HTMLInputElement | HTMLSelectElement; wrap: HTMLElement }>();
  private readonly max = h("input", { type: "text", name: "max", inputmode: "numeric", placeholder: "20", autocomplete: "off" });
  private readonly perS = h("input", { type: "text", name: "per_s", inputmode: "numeric", placeholder: "60", autocomplete: "off" });
  private readonly maxAge = h("input", { type: "text", name: "max_age_s", inputmode: "numeric", placeholder: "86400", autocomplete: "off" });
  private readonly title = h("h2");
  private readonly note = h("p", { class: "muted", id: "channel-note" });
  private readonly status = h("p", { class: "acct-status", id: "channel-status", role: "status" });
  private readonly tlsDefault = h("option", { value: "" });

  constructor(private readonly saved: (what: string) => Promise<void>) {
    const typeFields = h("div", { class: "acct-add", id: "channel-type-fields" });
    for (const f of CHANNEL_TYPE_FIELDS) {
      let input: HTMLInputElement | HTMLSelectElement;
      if (f.kind === "tls") {
        input = h("select", { name: f.key }, this.tlsDefault, ...["starttls", "tls", "none"].map((m) => h("option", { value: m }, m)));
      } else {
        input = h("input", {
          type: f.kind === "secret" ? "password" : "text",
          name: f.key,
          autocomplete: "off",
          spellcheck: "false",
          inputmode: f.kind === "number" ? "numeric" : null,
        });
      }
      const wrap = field(f.label, input, f.key);
      this.inputs.set(f.key, { f, input, wrap });
      typeFields.append(wrap);
    }
    this.type.addEventListener("change", () => this.syncType());
    const save = h("button", { type: "submit", class: "btn", id: "channel-save" }, "Save channel");
    const cancel = h("button", { type: "button", class: "btn", id: "channel-cancel" }, "Cancel");
    cancel.addEventListener("click", () => this.close());
    this.el = h(
      "form",
      { class: "acct-card channel-form", id: "channel-form", novalidate: true, autocomplete: "off" },
      this.title,
      this.note,
      h("div", { class: "acct-add" }, field("Name", this.name, "name", "letters, digits, - _ ."), field("Type", this.type, "type")),
      typeFields,
      h("div", { class: "acct-add" }, field("At most (notifications)", this.max, "max"), field("Per (s)", this.perS, "per_s"), field("Drop after (s)", this.maxAge, "max_age_s", "undelivered notifications")),
      h("div", { class: "acct-add" }, save, cancel),
      this.status,
    );
    this.el.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.submit(save);
    });
    this.el.hidden = true;
  }

  /** Opens the form, empty or for the UI channel `c`. */
  open(c: ChannelEntry | null): void {
    this.editing = c;
    this.el.reset();
    setText(this.title, c ? `Edit channel ${c.name}` : "New channel");
    setText(
      this.note,
      c
        ? `Sends to ${c.target || DASH}. Stored fields are never shown: fill in only what changes; the rest, secrets included, stays as it is.`
        : "Secrets are stored in smon's database and never shown again. Channels that read files or run programs belong in config_app.json.",
    );
    this.name.value = c?.name ?? "";
    this.name.disabled = c !== null;
    this.type.value = c && c.type in CHANNEL_TYPES ? c.type : "webhook";
    // A channel keeps its type: another type's fields would not fit the stored ones.
    this.type.disabled = c !== null;
    for (const { f, input } of this.inputs.values()) {
      input.value = "";
      if (input instanceof HTMLInputElement) input.placeholder = c ? "unchanged" : (f.ph ?? "");
    }
    setText(this.tlsDefault, c ? "unchanged" : "starttls (default)");
    this.max.value = c ? String(c.rate_limit.max) : "";
    this.perS.value = c ? String(c.rate_limit.per_s) : "";
    this.maxAge.value = c ? String(c.max_age_s) : "";
    this.syncType();
    showFieldError(this.el, null, CHANNEL_FIELDS);
    setText(this.status, "");
    this.el.hidden = false;
    (c ? this.max : this.name).focus();
  }

  /** The name of the channel being edited, if any. */
  editingName(): string | null {
    return this.editing?.name ?? null;
  }

  close(): void {
    this.el.reset();
    for (const { input } of this.inputs.values()) input.value = "";
    this.el.hidden = true;
    this.editing = null;
  }

  /** Shows the selected type's fields only. */
  private syncType(): void {
    const keys = new Set((CHANNEL_TYPES[this.type.value] ?? []).map((f) => f.key));
    for (const [k, { wrap }] of this.inputs) show(wrap, keys.has(k));
  }

  /** A whole number typed in `input`, undefined when empty; null (after saying why) when bad. */
  private whole(key: string, input: HTMLInputElement): number | undefined | null {
    const v = input.value.trim();
    if (v === "") return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) {
      this.refuse(`channel.${key}: '${v}' is not a whole number`);
      return null;
    }
    return n;
  }

  private refuse(why: string): void {
    const f = showFieldError(this.el, why, CHANNEL_FIELDS);
    this.say(f ? "The channel was not saved: see the field marked." : why, false);
  }

  private async submit(save: HTMLButtonElement): Promise<void> {
    const c = this.editing;
    const spec: ChannelSpec = {};
    if (!c) {
      spec.name = this.name.value.trim();
      spec.type = this.type.value;
    }
    for (const f of CHANNEL_TYPES[this.type.value] ?? []) {
      const input = (this.inputs.get(f.key) as { input: HTMLInputElement }).input;
      const v = input.value.trim();
      if (v === "") continue;
      if (f.kind === "list") spec[f.key] = v.split(",").map((s) => s.trim()).filter(Boolean);
      else if (f.kind === "chat") spec[f.key] = /^-?\d+$/.test(v) ? Number(v) : v;
      else if (f.kind === "number") {
        const n = this.whole(f.key, input);
        if (n === null) return;
        spec[f.key] = n;
      } else spec[f.key] = v;
    }
    const max = this.whole("rate_limit.max", this.max);
    const perS = this.whole("rate_limit.per_s", this.perS);
    const maxAge = this.whole("max_age_s", this.maxAge);
    if (max === null || perS === null || maxAge === null) return;
    // `rate_limit` is one key: both halves go together (the other one as it was, or its default).
    const rate = { max: max ?? c?.rate_limit.max ?? 20, per_s: perS ?? c?.rate_limit.per_s ?? 60 };
    if (c ? rate.max !== c.rate_limit.max || rate.per_s !== c.rate_limit.per_s : max !== undefined || perS !== undefined) spec.rate_limit = rate;
    if (maxAge !== undefined && maxAge !== c?.max_age_s) spec.max_age_s = maxAge;
    save.disabled = true;
    const r = c ? await call<ChannelEntry>("PUT", `api/v1/alerts/channels/${encodeURIComponent(c.name)}`, spec) : await call<ChannelEntry>("POST", "api/v1/alerts/channels", spec);
    save.disabled = false;
    if (!r.ok) {
      // A name already taken (409) is the name's problem, whatever the sentence says.
      this.refuse(r.status === 409 && !c ? `channel.name: ${r.why}` : r.why);
      return;
    }
    showFieldError(this.el, null, CHANNEL_FIELDS);
    this.close();
    await this.saved(`Saved channel ${r.data.name}.`);
  }

  private say(text: string, ok: boolean): void {
    setText(this.status, text);
    this.status.dataset.ok = ok ? "true" : "false";
  }
}
