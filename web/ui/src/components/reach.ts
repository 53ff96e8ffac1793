/**
 * The host page's Reachability section (PROTOCOL.md "Reachability"): the host's last check —
 * its ping and each configured service with the latency or the error — and its last
 * transitions, from `GET /api/v1/hosts/{id}/reach`, fetched on open and every 15 s; admins get
 * a "Check now" button (`POST /api/v1/hosts/{id}/check`). Hidden when the server runs no
 * checker, the caller may not read it, or nothing was checked yet.
 *
 * Test hooks: `#host-reach[data-checked-ms]`, `li.reach-item[data-subject][data-up]`,
 * `#reach-check`.
 */
import { call, whoAmI } from "../api";
import { h, setAttr, setText, show } from "../dom";
import { dateTime } from "../format";
import type { ReachAnswer, ReachResult } from "../types";

/** How often the section is fetched again. */
const POLL_MS = 15_000;

/** Transitions listed. */
const TRANSITIONS = 10;

function latency(ms: number | undefined): string {
  if (ms === undefined) return "";
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

function state(up: boolean | null): string {
  return up === null ? "unknown" : up ? "up" : "down";
}

export class HostReach {
  readonly el: HTMLElement;
  private readonly list = h("ul", { class: "reach-list" });
  private readonly history = h("ul", { class: "reach-history" });
  private readonly checked = h("span", { class: "muted" });
  private readonly button = h("button", { class: "btn", id: "reach-check", type: "button", hidden: true }, "Check now");
  private readonly why = h("span", { class: "reach-why", role: "alert" });
  private timer: number | undefined;
  private destroyed = false;

  constructor(private readonly host: string) {
    this.el = h(
      "section",
      { class: "section host-reach", id: "host-reach", hidden: true },
      h("div", { class: "section-head" }, h("h2", null, "Reachability"), this.checked, this.button, this.why),
      this.list,
      this.history,
    );
    this.button.addEventListener("click", () => void this.checkNow());
    void whoAmI().then((me) => show(this.button, me?.role === "admin"));
    void this.fetch();
  }

  private path(what: string): string {
    return `api/v1/hosts/${encodeURIComponent(this.host)}/${what}`;
  }

  private async fetch(): Promise<void> {
    const r = await call<ReachAnswer>("GET", this.path("reach"));
    if (this.destroyed) return;
    if (r.ok) this.render(r.data.result, r.data.transitions);
    else show(this.el, false);
    this.timer = window.setTimeout(() => void this.fetch(), POLL_MS);
  }

  private async checkNow(): Promise<void> {
    this.button.disabled = true;
    setText(this.why, "");
    const r = await call<ReachResult>("POST", this.path("check"));
    this.button.disabled = false;
    if (this.destroyed) return;
    if (!r.ok) {
      setText(this.why, r.why);
      return;
    }
    window.clearTimeout(this.timer);
    void this.fetch();
  }

  private render(res: ReachResult | null, transitions: ReachAnswer["transitions"]): void {
    show(this.el, res !== null || transitions.length > 0);
    setAttr(this.el, "data-checked-ms", res ? String(res.checked_ms) : null);
    setText(this.checked, res ? `checked ${dateTime(res.checked_ms)}` : "");
    const item = (subject: string, what: string, up: boolean | null, ms: number | undefined, error: string | undefined) =>
      h(
        "li",
        { class: `reach-item reach-${state(up)}`, "data-subject": subject, "data-up": state(up) },
        h("span", { class: "reach-dot", "aria-label": state(up) }),
        h("span", { class: "reach-name" }, subject),
        h("span", { class: "muted" }, what),
        h("span", { class: up ? "reach-ms" : "reach-error" }, up ? latency(ms) : (error ?? state(up))),
      );
    const rows: HTMLElement[] = [];
    if (res) {
      rows.push(item("ping", res.ping.address ?? "", res.ping.up, res.ping.latency_ms, res.ping.error));
      for (const s of res.services) rows.push(item(s.name, s.kind === "tcp" ? `tcp ${s.port ?? ""}` : "icmp", s.up, s.latency_ms, s.error));
    }
    this.list.replaceChildren(...rows);
    this.history.replaceChildren(
      ...transitions.slice(0, TRANSITIONS).map((t) =>
        h("li", { class: `reach-${t.up ? "up" : "down"}` }, h("span", { class: "muted" }, dateTime(t.at_ms)), ` ${t.subject} ${t.up ? "back up" : "down"}`, t.error ? h("span", { class: "muted" }, ` · ${t.error}`) : null),
      ),
    );
  }

  destroy(): void {
    this.destroyed = true;
    window.clearTimeout(this.timer);
  }
}
