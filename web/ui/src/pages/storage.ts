/**
 * The Storage page (`#/storage`, admins): the history database's file and size, each tier's
 * size, retention and oldest data, the writer's queue and last write error (a full disk), and
 * the remote-write targets with their queue, lag and errors. Refreshed every 10 seconds.
 *
 * Test hooks: `#storage-page[data-state=loading|ready|off|error]`, `#storage-bytes`,
 * `#storage-error`, `#storage-tiers tr[data-tier]`, `#storage-remote tr[data-url]`.
 */
import { basePath } from "../connection";
import { h, setAttr, setText, show } from "../dom";
import { DASH, bytes, dateTime, duration, num } from "../format";
import type { StorageAnswer } from "../types";

export class StoragePage {
  readonly el: HTMLElement;
  private readonly status = h("p", { class: "acct-status", id: "storage-status", role: "status" });
  private readonly body = h("div", { class: "storage-body" });
  private readonly timer: number;
  private destroyed = false;

  constructor() {
    this.el = h("section", { class: "accounts storage", id: "storage-page", "data-state": "loading" }, h("h1", null, "Storage"), this.status, this.body);
    void this.load();
    this.timer = window.setInterval(() => void this.load(), 10_000);
  }

  private async load(): Promise<void> {
    let r: Response;
    try {
      r = await fetch(`${basePath()}api/v1/admin/storage`, { credentials: "same-origin", headers: { accept: "application/json" } });
    } catch (e) {
      return this.fail("error", `Cannot reach the server: ${String(e)}`);
    }
    if (this.destroyed) return;
    if (!r.ok) {
      let why = `${r.status} ${r.statusText}`;
      try {
        why = ((await r.json()) as { error?: string }).error ?? why;
      } catch {
        /* keep the status line */
      }
      return this.fail(r.status === 503 ? "off" : "error", r.status === 503 ? "History is off on this server: nothing is stored." : why);
    }
    const a = (await r.json()) as StorageAnswer;
    if (this.destroyed) return;
    setAttr(this.el, "data-state", "ready");
    setText(this.status, "");
    this.render(a);
  }

  private fail(state: string, why: string): void {
    setAttr(this.el, "data-state", state);
    setText(this.status, why);
    this.status.dataset.ok = "false";
  }

  private render(a: StorageAnswer): void {
    const err = h("p", { class: "alert", id: "storage-error", role: "alert" }, a.write_error ? `Writes are failing: ${a.write_error}. The live view goes on; samples that cannot be stored are dropped.` : "");
    show(err, a.write_error !== null);
    const tiers = h(
      "table",
      { class: "data", id: "storage-tiers" },
      h("thead", null, h("tr", null, h("th", null, "Tier"), h("th", { class: "num" }, "Size"), h("th", { class: "num" }, "Kept for"), h("th", null, "Oldest data"))),
      h("tbody", null, ...a.tiers.map((t) => h("tr", { "data-tier": t.name }, h("td", null, t.name), h("td", { class: "num" }, bytes(t.bytes)), h("td", { class: "num" }, duration(t.retention_s)), h("td", null, dateTime(t.oldest_ms))))),
    );
    const remote =
      a.remote_write.length === 0
        ? h("p", { class: "muted" }, "No remote-write target is configured (storage.remote_write).")
        : h(
            "table",
            { class: "data", id: "storage-remote" },
            h("thead", null, h("tr", null, h("th", null, "URL"), h("th", { class: "num" }, "Queued"), h("th", { class: "num" }, "Lag"), h("th", { class: "num" }, "Sent"), h("th", { class: "num" }, "Dropped"), h("th", null, "Last error"))),
            h("tbody", null, ...a.remote_write.map((t) => h("tr", { "data-url": t.url }, h("td", { class: "mono" }, t.url), h("td", { class: "num" }, num(t.queued)), h("td", { class: "num" }, `${num(t.lag_s, 1)} s`), h("td", { class: "num" }, num(t.sent)), h("td", { class: "num" }, num(t.dropped)), h("td", null, t.last_error ?? DASH)))),
          );
    this.body.replaceChildren(
      err,
      h(
        "div",
        { class: "acct-card" },
        h("h2", null, "Database"),
        h("dl", { class: "facts" }, h("div", null, h("dt", null, "File"), h("dd", { class: "mono" }, a.path)), h("div", null, h("dt", null, "Size"), h("dd", { id: "storage-bytes" }, bytes(a.bytes))), h("div", null, h("dt", null, "Waiting to be written"), h("dd", null, num(a.queued)))),
      ),
      h("div", { class: "acct-card" }, h("h2", null, "Tiers"), h("div", { class: "table-wrap" }, tiers)),
      h("div", { class: "acct-card" }, h("h2", null, "Remote write"), h("div", { class: "table-wrap" }, remote)),
    );
  }

  destroy(): void {
    this.destroyed = true;
    window.clearInterval(this.timer);
  }
}
