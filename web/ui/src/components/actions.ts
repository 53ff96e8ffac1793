/**
 * Actions on hosts (PROTOCOL.md, "Actions"), for admins: Wake, Reboot and Shut down on the
 * host page (`HostActions`), and the same for a whole cluster or tag from the overview
 * (`GroupActions`). Every action is confirmed first, naming the hosts; the results come back
 * per host. After a wake the host is followed (its row, every 2 s) until it answers or five
 * minutes pass, and the page says which.
 */
import { call, whoAmI } from "../api";
import { h, show } from "../dom";

/** An action on a host. */
export type Action = "wake" | "reboot" | "shutdown";

/** What an action did on one host. */
export interface ActionResult {
  host: string;
  ok: boolean;
  message: string;
}

/** The answer of a group action. */
export interface GroupAnswer {
  action: Action;
  results: ActionResult[];
}

const LABEL: Record<Action, string> = { wake: "Wake", reboot: "Reboot", shutdown: "Shut down" };
const VERB: Record<Action, string> = { wake: "Wake", reboot: "Reboot", shutdown: "Shut down" };

/** How long a woken host is followed. */
const FOLLOW_MS = 5 * 60_000;
/** How often its row is read meanwhile. */
const FOLLOW_EVERY_MS = 2000;

/** The confirmation of `action` on `hosts`. */
function confirmed(action: Action, hosts: string[]): boolean {
  const list = hosts.length > 12 ? `${hosts.slice(0, 12).join(", ")} and ${hosts.length - 12} more` : hosts.join(", ");
  const warn = action === "wake" ? "" : " Programs running there stop.";
  return window.confirm(`${VERB[action]} ${hosts.length === 1 ? "" : `${hosts.length} hosts: `}${list}?${warn}`);
}

/** Whether the caller may act (admins); asked once per page load. */
async function isAdmin(): Promise<boolean> {
  return (await whoAmI())?.role === "admin";
}

/** The buttons of one host, shown to admins, with the outcome below them. */
export class HostActions {
  readonly el: HTMLElement;
  private readonly out = h("div", { class: "action-out", role: "status", "aria-live": "polite" });
  private timer: number | null = null;
  private destroyed = false;

  constructor(private readonly id: string) {
    const buttons = (["wake", "reboot", "shutdown"] as Action[]).map((a) => {
      const b = h("button", { type: "button", class: `text-btn action-${a}`, "data-action": a }, LABEL[a]);
      b.addEventListener("click", () => void this.run(a));
      return b;
    });
    this.el = h("div", { class: "host-actions", hidden: true }, ...buttons, this.out);
    void isAdmin().then((yes) => show(this.el, yes && !this.destroyed));
  }

  private async run(action: Action): Promise<void> {
    if (!confirmed(action, [this.id])) return;
    this.stopFollowing();
    this.say("pending", `${VERB[action]}: asking…`);
    const r = await call<ActionResult>("POST", `api/v1/hosts/${encodeURIComponent(this.id)}/${action}`, {});
    if (this.destroyed) return;
    if (!r.ok) {
      this.say("error", r.why);
      return;
    }
    this.say("ok", r.data.message);
    if (action === "wake") this.follow(r.data.message);
  }

  /** Follows the woken host until its agent answers (status up), or for a host without an
   * agent its ping, or FOLLOW_MS pass. */
  private follow(sent: string): void {
    const start = Date.now();
    const tick = async (): Promise<void> => {
      this.timer = null;
      const r = await call<{ host: { status: string; address: string; reach?: { ping_up: boolean | null } | null } }>(
        "GET",
        `api/v1/hosts/${encodeURIComponent(this.id)}`,
      );
      if (this.destroyed) return;
      const s = Math.round((Date.now() - start) / 1000);
      if (r.ok && r.data.host.status === "up") {
        this.say("ok", `${this.id} is up, ${s} s after the wake.`);
        return;
      }
      // A host without an agent answers pings only (the checker's, every interval).
      if (r.ok && !r.data.host.address && r.data.host.reach?.ping_up === true) {
        this.say("ok", `${this.id} answers pings, ${s} s after the wake.`);
        return;
      }
      if (Date.now() - start >= FOLLOW_MS) {
        this.say(
          "error",
          `${this.id} did not answer within ${FOLLOW_MS / 60_000} minutes of the wake (${sent}). Check that Wake-on-LAN is on in its firmware and network card, and its MAC and broadcast address.`,
        );
        return;
      }
      this.say("pending", `${sent}. Waiting for ${this.id} to answer… ${s} s`);
      this.timer = window.setTimeout(() => void tick(), FOLLOW_EVERY_MS);
    };
    this.timer = window.setTimeout(() => void tick(), FOLLOW_EVERY_MS);
  }

  private stopFollowing(): void {
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
  }

  private say(state: "ok" | "error" | "pending", text: string): void {
    this.out.dataset.state = state;
    this.out.textContent = text;
  }

  destroy(): void {
    this.destroyed = true;
    this.stopFollowing();
  }
}

/**
 * Group actions from an overview, for admins: pick the action and the hosts (those the filter
 * shows, a cluster, or a tag; the first is a selection by any text the filter matches),  * tag), confirm with the list, and see one line per host.
 */
export class GroupActions {
  readonly el: HTMLElement;
  private readonly action = h(
    "select",
    { class: "group-action", "aria-label": "Action" },
    ...(["wake", "reboot", "shutdown"] as Action[]).map((a) => h("option", { value: a }, LABEL[a])),
  );
  private readonly target = h("select", { class: "group-target", "aria-label": "Hosts" });
  private readonly results = h("ul", { class: "group-results", "aria-live": "polite" });

  /** `hosts` gives the current rows (id, cluster, tags, whether the filter shows them) each
   * time the menu opens. */
  constructor(private readonly hosts: () => { id: string; cluster: string; tags: string[]; shown: boolean }[]) {
    const go = h("button", { type: "button", class: "text-btn group-go" }, "Go…");
    go.addEventListener("click", () => void this.run());
    const open = h("button", { type: "button", class: "text-btn group-open" }, "Actions");
    const panel = h("div", { class: "group-panel", hidden: true }, this.action, this.target, go, this.results);
    open.addEventListener("click", () => {
      this.fill();
      show(panel, panel.hidden);
    });
    this.el = h("div", { class: "group-actions", hidden: true }, open, panel);
    void isAdmin().then((yes) => show(this.el, yes));
  }

  /** The choices: the hosts the filter shows, each cluster and each tag, with their counts. */
  private fill(): void {
    const rows = this.hosts();
    const count = new Map<string, number>();
    const shown = rows.filter((r) => r.shown).length;
    for (const r of rows) {
      count.set(`cluster:${r.cluster}`, (count.get(`cluster:${r.cluster}`) ?? 0) + 1);
      for (const t of r.tags) count.set(`tag:${t}`, (count.get(`tag:${t}`) ?? 0) + 1);
    }
    const keep = this.target.value;
    this.target.replaceChildren(
      h("option", { value: "shown:" }, `hosts shown (${shown})`),
      ...[...count.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, n]) => {
          const [kind, name] = [k.slice(0, k.indexOf(":")), k.slice(k.indexOf(":") + 1)];
          return h("option", { value: k }, `${kind === "tag" ? "tag" : "cluster"} ${name} (${n})`);
        }),
    );
    if (keep) this.target.value = keep;
  }

  private async run(): Promise<void> {
    const action = this.action.value as Action;
    const k = this.target.value;
    if (!k) return;
    const [kind, name] = [k.slice(0, k.indexOf(":")), k.slice(k.indexOf(":") + 1)];
    const ids = this.hosts()
      .filter((r) => (kind === "shown" ? r.shown : kind === "tag" ? r.tags.includes(name) : r.cluster === name))
      .map((r) => r.id);
    if (ids.length === 0 || !confirmed(action, ids)) return;
    this.results.replaceChildren(h("li", { "data-state": "pending" }, `${VERB[action]}: asking…`));
    const body = kind === "shown" ? { hosts: ids } : kind === "tag" ? { tag: name } : { cluster: name };
    const r = await call<GroupAnswer>("POST", `api/v1/actions/${action}`, body);
    if (!r.ok) {
      this.results.replaceChildren(h("li", { "data-state": "error" }, r.why));
      return;
    }
    this.results.replaceChildren(
      ...r.data.results.map((x) => h("li", { "data-state": x.ok ? "ok" : "error", "data-host": x.host }, `${x.host}: ${x.message}`)),
    );
  }
}
