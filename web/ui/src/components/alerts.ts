/**
 * What fires now, shared by the top bar's Alerts link (its count), the alerts page and the
 * host page: one poll of `GET /api/v1/alerts` every few seconds (PROTOCOL.md "Alerts": there
 * is no Socket.IO event for alerts), however many parts of the page listen. Also the small
 * pieces every alert view uses: the severity badge and the state chips, and the host page's
 * Alerts section (`HostAlerts`).
 */
import { call } from "../api";
import { h, setAttr, setText, show } from "../dom";
import { DASH, dateTime, duration } from "../format";
import { alertsHref } from "../router";
import type { ActiveAlert, AlertsAnswer, Severity } from "../types";

/** How often the firing alerts are fetched again. */
export const POLL_MS = 4000;

/** What the feed knows: the alerts, or why there are none to show. */
export type FeedState =
  | { kind: "loading" }
  | { kind: "ready"; answer: AlertsAnswer; at: number }
  /** 503: no alerting on this server; 401: not logged in (public dashboard); else an error. */
  | { kind: "off" | "login" | "error"; why: string };

type Listener = (s: FeedState) => void;

/** The poll of the firing alerts (one per page load: `alertFeed`). */
class AlertFeed {
  state: FeedState = { kind: "loading" };
  private readonly listeners = new Set<Listener>();
  private timer = 0;
  private inFlight = false;

  /** Calls `fn` now (with what is known) and after every poll; returns the unsubscribe. */
  listen(fn: Listener): () => void {
    this.listeners.add(fn);
    fn(this.state);
    if (!this.timer) {
      void this.refresh();
      this.timer = window.setInterval(() => void this.refresh(), POLL_MS);
    }
    return () => {
      this.listeners.delete(fn);
    };
  }

  /** Fetches again now (after an action, so that the page shows its effect at once). */
  async refresh(): Promise<void> {
    if (this.inFlight) return;
    this.inFlight = true;
    const r = await call<AlertsAnswer>("GET", "api/v1/alerts");
    this.inFlight = false;
    if (r.ok) this.state = { kind: "ready", answer: r.data, at: performance.now() };
    else this.state = { kind: r.status === 503 || r.status === 404 ? "off" : r.status === 401 ? "login" : "error", why: r.why };
    // Nothing to poll for on a server without alerting.
    if (this.state.kind === "off" && this.timer) {
      window.clearInterval(this.timer);
      this.timer = 0;
    }
    for (const l of this.listeners) l(this.state);
  }
}

/** The one feed of the page. */
export const alertFeed = new AlertFeed();

/** Alerts that fire (not pending), in a feed state; null when unknown. */
export function firing(s: FeedState): ActiveAlert[] | null {
  return s.kind === "ready" ? s.answer.alerts.filter((a) => !a.pending) : null;
}

/** Order for sorting by severity: critical first. */
export const SEVERITY_ORDER: Record<Severity, number> = { critical: 0, warning: 1, info: 2 };

/** A coloured severity badge with `data-severity`. */
export function severityBadge(s: Severity): HTMLElement {
  return h("span", { class: "sev", "data-severity": s }, s);
}

/** The chips of an alert's state: pending, silenced, flapping, acknowledged. */
export function stateChips(a: ActiveAlert): HTMLElement {
  const chip = (cls: string, text: string, title: string) => h("span", { class: `chip ${cls}`, title }, text);
  return h(
    "span",
    { class: "alert-chips" },
    a.pending ? chip("st-pending", "pending", "The condition holds; the rule's for_s has not passed yet") : chip("st-firing", "firing", "Firing"),
    a.silenced ? chip("st-silenced", "silenced", "A silence covers it: shown, but nothing is notified") : null,
    a.flapping ? chip("st-stale", "flapping", "It changes state too often: notified once, not on every change") : null,
    a.ack ? chip("st-ack", "acknowledged", `Acknowledged by ${a.ack.by}`) : null,
  );
}

/**
 * The host page's Alerts section: this host's firing and pending alerts from the feed (rule,
 * severity, subject and detail, since when), firing first and worst first, with a link to the
 * alerts page filtered on the host. Hidden when none fires here, and when alerting is off or
 * the caller may not read alerts.
 *
 * Test hooks: `#host-alerts[data-count]`, `li.host-alert[data-alert-id][data-rule]
 * [data-severity][data-pending]`, `#host-alerts-link`.
 */
export class HostAlerts {
  readonly el: HTMLElement;
  private readonly list = h("ul", { class: "host-alerts-list" });
  private readonly count = h("span", { class: "muted" });
  private readonly unlisten: () => void;
  private key = "";

  constructor(private readonly host: string) {
    const link = h("a", { href: alertsHref({ host }), id: "host-alerts-link" }, "All alerts of this host →");
    this.el = h(
      "section",
      { class: "section host-alerts", id: "host-alerts", hidden: true },
      h("div", { class: "section-head" }, h("h2", null, "Alerts"), this.count, link),
      this.list,
    );
    this.unlisten = alertFeed.listen((s) => this.onFeed(s));
  }

  private onFeed(s: FeedState): void {
    const mine = s.kind === "ready" ? s.answer.alerts.filter((a) => a.host.host === this.host) : [];
    mine.sort((a, b) => Number(a.pending) - Number(b.pending) || SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || b.fired_ms - a.fired_ms || a.rule.localeCompare(b.rule));
    setAttr(this.el, "data-count", String(mine.length));
    show(this.el, mine.length > 0);
    const firingNow = mine.filter((a) => !a.pending).length;
    setText(this.count, mine.length ? `${firingNow} firing${mine.length > firingNow ? `, ${mine.length - firingNow} pending` : ""}` : "");
    // Rebuilt only when something shown changed (the "since" ages are redrawn each poll).
    const key = JSON.stringify(mine.map((a) => [a.id, a.severity, a.pending, a.silenced, a.flapping, !!a.ack, a.host.subject, a.host.detail, a.fired_ms, a.started_ms, Math.floor(a.duration_s / 60)]));
    if (key === this.key) return;
    this.key = key;
    this.list.replaceChildren(...mine.map((a) => this.item(a)));
  }

  private item(a: ActiveAlert): HTMLElement {
    const since = a.pending ? a.started_ms : a.fired_ms;
    return h(
      "li",
      { class: "host-alert", "data-alert-id": a.id, "data-rule": a.rule, "data-severity": a.severity, "data-pending": String(a.pending) },
      severityBadge(a.severity),
      h("span", { class: "rule" }, a.rule),
      h("span", { class: "subject" }, a.host.subject || DASH, a.host.detail ? h("span", { class: "muted" }, ` · ${a.host.detail}`) : null),
      stateChips(a),
      h("span", { class: "since", title: dateTime(since) }, `${a.pending ? "pending" : "firing"} for ${duration(a.duration_s)}`, h("span", { class: "muted" }, ` · since ${dateTime(since)}`)),
    );
  }

  destroy(): void {
    this.unlisten();
  }
}
