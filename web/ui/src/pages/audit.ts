/**
 * The Audit page (`#/audit`, admins): the audit log, newest first (`GET /api/v1/audit`): when,
 * who (a user or `token:<name>`), from where, what, on which account or hosts, and how it went.
 * "Older" loads the next page (`before` = the smallest id shown).
 *
 * Test hooks: `#audit-page[data-state=loading|ready|error]`, `#audit-table tr[data-id]`,
 * `#audit-older`, `#audit-status`.
 */
import { basePath } from "../connection";
import { h, setAttr, setText, show } from "../dom";
import { DASH, dateTime } from "../format";
import type { AuditEntry } from "../types";

/** Records asked for at a time. */
const PAGE = 100;

export class AuditPage {
  readonly el: HTMLElement;
  private readonly status = h("p", { class: "acct-status", id: "audit-status", role: "status" });
  private readonly rows = h("tbody");
  private readonly older = h("button", { type: "button", class: "text-btn", id: "audit-older" }, "Older");
  private oldest: number | null = null;
  private destroyed = false;

  constructor() {
    const table = h(
      "table",
      { class: "data", id: "audit-table" },
      h("thead", null, h("tr", null, h("th", null, "When"), h("th", null, "Who"), h("th", null, "From"), h("th", null, "Action"), h("th", null, "On"), h("th", null, "Outcome"))),
      this.rows,
    );
    this.el = h("section", { class: "accounts audit", id: "audit-page", "data-state": "loading" }, h("h1", null, "Audit"), this.status, h("div", { class: "acct-card" }, h("div", { class: "table-wrap" }, table), this.older));
    this.older.addEventListener("click", () => void this.load());
    show(this.older, false);
    void this.load();
  }

  private async load(): Promise<void> {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (this.oldest !== null) q.set("before", String(this.oldest));
    let r: Response;
    try {
      r = await fetch(`${basePath()}api/v1/audit?${q.toString()}`, { credentials: "same-origin", headers: { accept: "application/json" } });
    } catch (e) {
      return this.fail(`Cannot reach the server: ${String(e)}`);
    }
    if (this.destroyed) return;
    if (!r.ok) {
      let why = `${r.status} ${r.statusText}`;
      try {
        why = ((await r.json()) as { error?: string }).error ?? why;
      } catch {
        /* keep the status line */
      }
      return this.fail(why);
    }
    const entries = (await r.json()) as AuditEntry[];
    if (this.destroyed) return;
    setAttr(this.el, "data-state", "ready");
    setText(this.status, this.oldest === null && entries.length === 0 ? "Nothing was audited yet." : "");
    this.rows.append(...entries.map((e) => this.row(e)));
    this.oldest = entries[entries.length - 1]?.id ?? this.oldest;
    show(this.older, entries.length === PAGE);
  }

  private row(e: AuditEntry): HTMLElement {
    const on = e.hosts && e.hosts.length > 0 ? e.hosts.join(", ") : e.target ?? DASH;
    const what = e.role ? `${e.action} (${e.role})` : e.action;
    const ok = e.outcome === "ok";
    return h(
      "tr",
      { "data-id": String(e.id) },
      h("td", null, dateTime(e.at_ms)),
      h("td", null, e.actor),
      h("td", { class: "mono" }, e.client ?? DASH),
      h("td", null, what),
      h("td", null, on),
      h("td", { "data-ok": String(ok) }, e.outcome),
    );
  }

  private fail(why: string): void {
    setAttr(this.el, "data-state", "error");
    setText(this.status, why);
    this.status.dataset.ok = "false";
  }

  destroy(): void {
    this.destroyed = true;
  }
}
