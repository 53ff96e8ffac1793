/**
 * The inventory page (`#/inventory`, REST only: docs/protocol-inventory.md): the fleet's
 * clusters and hosts, those of `config_app.json` read-only (marked "config") and those made
 * here editable by admins. A host needs an agent address or an IP: without an agent (a
 * printer, a NAS, a switch) it is shown with its reachability only. Tokens are password
 * inputs and never shown again: an edit leaves them empty ("unchanged"), and only what is
 * typed there replaces them. The server's reason for a refusal is shown under the field it
 * names (`mac: 'zz' is not a MAC address ...` under MAC). Viewers see everything but the
 * buttons that change something (the server refuses them anyway).
 *
 * Test hooks: `#inventory-page[data-state=loading|ready|login|error][data-role]`,
 * `#inventory-status`, `#inventory-clusters tr[data-cluster][data-source]`
 * (`.cluster-delete`), `#cluster-form` (`[name=cluster_name]`, `#cluster-add`),
 * `#inventory-hosts tr[data-inv-id][data-source][data-agent]` (`.host-edit`, `.host-delete`),
 * `#host-new`, `#host-form` (inputs `[name=...]`, `.field-error[data-for=...]`,
 * `[data-field][data-invalid]`, `#host-save`, `#host-cancel`, `#host-status`).
 */
import "../styles/inventory.css";
import { call, whoAmI } from "../api";
import { h, setAttr, setText } from "../dom";
import { DASH, ago, dateTime } from "../format";
import { hostHref } from "../router";
import type { HostInput, InventoryCluster, InventoryHost, ServiceSpec } from "../types";

/** The host editor's fields. */
const FIELDS = ["cluster", "name", "address", "token", "ip", "mac", "wol_broadcast", "wol_port", "wol_via", "tags", "services", "control_token"] as const;
type Field = (typeof FIELDS)[number];

/**
 * The field a server's reason names: the path before the first ": " (`wol.port: '0' must be
 * 1-65535` names `wol_port`; `services[1].port: ...` names `services`). Null when none does.
 */
export function inventoryField(why: string): Field | null {
  const i = why.indexOf(": ");
  if (i <= 0) return null;
  const path = why.slice(0, i);
  if (/\s/.test(path)) return null;
  const f = path.replace(/\[\d+\].*$/, "").replace(".", "_");
  if (f === "wol") return "mac";
  return (FIELDS as readonly string[]).includes(f) ? (f as Field) : null;
}

/** `ssh:22, dns:53/tcp, ping/icmp` as services. */
export function parseServices(s: string): ServiceSpec[] {
  return s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => {
      const [head, kind] = x.split("/", 2) as [string, string | undefined];
      const [name, port] = head.split(":", 2) as [string, string | undefined];
      const out: ServiceSpec = { name: name.trim() };
      if (port !== undefined && port.trim() !== "") out.port = Number(port.trim());
      if (kind) out.type = kind.trim() as ServiceSpec["type"];
      return out;
    });
}

/** Services as the editor writes them. */
export function servicesText(s: ServiceSpec[]): string {
  return s.map((x) => `${x.name}${x.port !== undefined ? `:${x.port}` : ""}${x.type === "icmp" ? "/icmp" : ""}`).join(", ");
}

function field(label: string, input: HTMLElement, name: Field, hint?: string): HTMLElement {
  return h("label", { class: "acct-field af-field", "data-field": name }, h("span", null, label), input, hint ? h("small", { class: "muted" }, hint) : null, h("span", { class: "field-error", "data-for": name, role: "alert" }));
}

function sourceCell(e: { source: "config" | "ui"; updated_by?: string; updated_ms?: number }): HTMLElement {
  return e.source === "config"
    ? h("span", { class: "chip", title: "Defined in config_app.json: read-only here" }, "config")
    : h("span", { title: e.updated_ms ? `changed ${dateTime(e.updated_ms)}` : "" }, h("span", { class: "chip st-up" }, "UI"), e.updated_by ? ` ${e.updated_by}` : "", e.updated_ms ? h("span", { class: "muted" }, ` · ${ago(Date.now() - e.updated_ms)}`) : null);
}

/** The host editor (admins): a new host, or a UI host to change. */
class HostForm {
  readonly el: HTMLFormElement;
  private editing: string | null = null;
  private readonly inputs = new Map<Field, HTMLInputElement | HTMLSelectElement>();
  private readonly title = h("h2");
  private readonly status = h("p", { class: "acct-status", id: "host-status", role: "status" });
  private readonly cluster = h("select", { name: "cluster" });

  constructor(private readonly saved: (what: string) => Promise<void>) {
    const text = (name: Field, ph = "", type = "text") => {
      const i = h("input", { type, name, placeholder: ph, autocomplete: type === "password" ? "new-password" : "off", spellcheck: "false" });
      this.inputs.set(name, i);
      return i;
    };
    this.inputs.set("cluster", this.cluster);
    const save = h("button", { type: "submit", class: "btn", id: "host-save" }, "Save host");
    const cancel = h("button", { type: "button", class: "btn", id: "host-cancel" }, "Cancel");
    cancel.addEventListener("click", () => this.close());
    this.el = h(
      "form",
      { class: "acct-card rule-form", id: "host-form", novalidate: true, hidden: true },
      this.title,
      h("div", { class: "acct-add" }, field("Cluster", this.cluster, "cluster"), field("Name", text("name", "nas"), "name"), field("Tags (comma-separated)", text("tags", "rack 3, storage"), "tags")),
      h("div", { class: "acct-add" }, field("Agent address", text("address", "10.0.0.20:50051"), "address", "Leave empty for a host without an agent (a printer, a switch): then give its IP."), field("Agent token", text("token", "", "password"), "token"), field("Control token", text("control_token", "", "password"), "control_token")),
      h("div", { class: "acct-add" }, field("IP or DNS name", text("ip", "10.0.0.20"), "ip"), field("MAC", text("mac", "aa:bb:cc:dd:ee:ff"), "mac")),
      h("div", { class: "acct-add" }, field("Wake-on-LAN broadcast", text("wol_broadcast", "255.255.255.255"), "wol_broadcast"), field("Wake-on-LAN port", text("wol_port", "9"), "wol_port"), field("Relayed by (host)", text("wol_via", "gateway"), "wol_via")),
      h("div", { class: "acct-add" }, field("Services", text("services", "ssh:22, ping/icmp"), "services", "name:port (TCP) or name/icmp, comma-separated")),
      h("div", { class: "acct-add" }, save, cancel),
      this.status,
    );
    this.el.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.submit(save);
    });
  }

  /** Opens the form, empty or with `host` to edit, offering `clusters`. */
  open(host: InventoryHost | null, clusters: InventoryCluster[]): void {
    this.editing = host?.id ?? null;
    setText(this.title, host ? `Edit host ${host.id}` : "New host");
    this.cluster.replaceChildren(...clusters.map((c) => h("option", { value: c.name }, c.name)));
    const v: Record<Field, string> = {
      cluster: host?.cluster ?? clusters[0]?.name ?? "",
      name: host?.name ?? "",
      address: host?.address ?? "",
      token: "",
      ip: host?.ip ?? "",
      mac: host?.mac ?? "",
      wol_broadcast: host?.wol?.broadcast ?? "",
      wol_port: host?.wol?.port !== undefined ? String(host.wol.port) : "",
      wol_via: host?.wol?.via ?? "",
      tags: host?.tags.join(", ") ?? "",
      services: servicesText(host?.services ?? []),
      control_token: "",
    };
    for (const [k, i] of this.inputs) i.value = v[k];
    // Cluster and name make the host's id: fixed once made.
    this.cluster.disabled = host !== null;
    (this.inputs.get("name") as HTMLInputElement).readOnly = host !== null;
    for (const k of ["token", "control_token"] as const) setAttr(this.inputs.get(k) as HTMLElement, "placeholder", host ? (k === "token" ? (host.has_token ? "unchanged" : "none") : host.has_control_token ? "unchanged" : "none") : "");
    this.showError(null);
    setText(this.status, "");
    this.el.hidden = false;
    this.inputs.get(host ? "address" : "name")?.focus();
  }

  close(): void {
    this.el.hidden = true;
    this.editing = null;
  }

  /** Shows `why` under the field it names (none: clears them); returns that field. */
  private showError(why: string | null): Field | null {
    const f = why === null ? null : inventoryField(why);
    for (const el of Array.from(this.el.querySelectorAll<HTMLElement>(".field-error"))) {
      const mine = f !== null && el.dataset.for === f;
      setText(el, mine ? (why ?? "") : "");
      setAttr(el.closest(".af-field") ?? el, "data-invalid", mine ? "true" : null);
    }
    return f;
  }

  private async submit(save: HTMLButtonElement): Promise<void> {
    const val = (k: Field) => (this.inputs.get(k)?.value ?? "").trim();
    const body: HostInput = {
      cluster: val("cluster"),
      name: val("name"),
      tags: val("tags")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
      services: parseServices(val("services")),
    };
    for (const k of ["address", "ip", "mac"] as const) if (val(k)) body[k] = val(k);
    // Tokens: empty keeps the stored one on an edit (left out), sets none on a new host.
    for (const k of ["token", "control_token"] as const) if (val(k)) body[k] = val(k);
    if (val("wol_broadcast") || val("wol_port") || val("wol_via")) {
      body.wol = {};
      if (val("wol_broadcast")) body.wol.broadcast = val("wol_broadcast");
      if (val("wol_port")) {
        const n = Number(val("wol_port"));
        if (!Number.isInteger(n) || n < 0 || n > 65535) {
          this.showError(`wol.port: '${val("wol_port")}' must be 1-65535`);
          this.say("The port is not a number: see the field marked.", false);
          return;
        }
        body.wol.port = n;
      }
      if (val("wol_via")) body.wol.via = val("wol_via");
    }
    const bad = body.services.find((s) => s.port !== undefined && (!Number.isInteger(s.port) || s.port < 0 || s.port > 65535));
    if (bad) {
      this.showError(`services: '${val("services")}' has a port that is not a number (name:port, name/icmp)`);
      this.say("A service's port is not a number: see the field marked.", false);
      return;
    }
    save.disabled = true;
    const r = this.editing === null ? await call<InventoryHost>("POST", "api/v1/inventory/hosts", body) : await call<InventoryHost>("PUT", `api/v1/inventory/hosts/${encodeURIComponent(this.editing)}`, body);
    save.disabled = false;
    if (!r.ok) {
      // An id already taken (409) is the name's problem, whatever the sentence says.
      const f = this.showError(r.status === 409 ? `name: ${r.why}` : r.why);
      this.say(f ? "The server refused the host: see the field marked." : r.why, false);
      return;
    }
    this.close();
    await this.saved(`Host ${r.data.id} saved.`);
  }

  private say(text: string, ok: boolean): void {
    setText(this.status, text);
    this.status.dataset.ok = String(ok);
  }
}

export class InventoryPage {
  readonly el: HTMLElement;
  private readonly status = h("p", { class: "acct-status", id: "inventory-status", role: "status" });
  private readonly clustersBody = h("tbody");
  private readonly hostsBody = h("tbody");
  private readonly form: HostForm;
  private readonly clusterForm: HTMLFormElement;
  private readonly newHost = h("button", { type: "button", class: "btn", id: "host-new", hidden: true }, "Add host");
  private admin = false;
  private hosts: InventoryHost[] = [];
  private clusters: InventoryCluster[] = [];
  private destroyed = false;

  constructor() {
    this.form = new HostForm((what) => this.reload(what));
    const name = h("input", { type: "text", name: "cluster_name", placeholder: "office", autocomplete: "off", spellcheck: "false" });
    this.clusterForm = h("form", { class: "acct-add", id: "cluster-form", novalidate: true, hidden: true }, h("label", { class: "acct-field" }, h("span", null, "New cluster"), name), h("button", { type: "submit", class: "btn", id: "cluster-add" }, "Add cluster"));
    this.clusterForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void (async () => {
        const r = await call<InventoryCluster>("POST", "api/v1/inventory/clusters", { name: name.value.trim() });
        if (!r.ok) return this.say(r.why, false);
        name.value = "";
        await this.reload(`Cluster ${r.data.name} added.`);
      })();
    });
    this.newHost.addEventListener("click", () => this.form.open(null, this.clusters));
    this.el = h(
      "section",
      { class: "accounts inventory", id: "inventory-page", "data-state": "loading" },
      h("h1", null, "Inventory"),
      h("p", { class: "muted" }, "Hosts and clusters of config_app.json are read-only here (change them in the file, then reload); those added here are kept in the server's database and polled at once."),
      this.status,
      h("div", { class: "acct-card" }, h("h2", null, "Clusters"), h("div", { class: "table-wrap" }, h("table", { class: "data", id: "inventory-clusters" }, h("thead", null, h("tr", null, h("th", null, "Cluster"), h("th", null, "Source"), h("th", { class: "num" }, "Hosts"), h("th", null, ""))), this.clustersBody)), this.clusterForm),
      h(
        "div",
        { class: "acct-card" },
        h("h2", null, "Hosts"),
        this.newHost,
        h(
          "div",
          { class: "table-wrap" },
          h("table", { class: "data", id: "inventory-hosts" }, h("thead", null, h("tr", null, h("th", null, "Source"), h("th", null, "Cluster"), h("th", null, "Name"), h("th", null, "Agent address"), h("th", null, "IP"), h("th", null, "MAC"), h("th", null, "Tags"), h("th", null, "Services"), h("th", null, ""))), this.hostsBody),
        ),
      ),
      this.form.el,
    );
    void this.start();
  }

  private async start(): Promise<void> {
    const me = await whoAmI();
    this.admin = me?.role === "admin";
    setAttr(this.el, "data-role", me?.role ?? "none");
    this.newHost.hidden = !this.admin;
    this.clusterForm.hidden = !this.admin;
    await this.reload("");
  }

  private async reload(what: string): Promise<void> {
    const [hs, cs] = await Promise.all([call<InventoryHost[]>("GET", "api/v1/inventory/hosts"), call<InventoryCluster[]>("GET", "api/v1/inventory/clusters")]);
    if (this.destroyed) return;
    if (!hs.ok || !cs.ok) {
      const bad = !hs.ok ? hs : !cs.ok ? cs : null;
      setAttr(this.el, "data-state", bad?.status === 401 ? "login" : "error");
      return this.say(bad?.why ?? "", false);
    }
    this.hosts = hs.data;
    this.clusters = cs.data;
    setAttr(this.el, "data-state", "ready");
    this.say(what, true);
    this.clustersBody.replaceChildren(...this.clusters.map((c) => this.clusterRow(c)));
    this.hostsBody.replaceChildren(...this.hosts.map((x) => this.hostRow(x)));
  }

  private clusterRow(c: InventoryCluster): HTMLElement {
    const del = this.admin && c.source === "ui" ? h("button", { type: "button", class: "text-btn cluster-delete" }, "Delete") : null;
    del?.addEventListener("click", () => {
      if (!window.confirm(`Delete the cluster ${c.name}?`)) return;
      void this.remove(`api/v1/inventory/clusters/${encodeURIComponent(c.name)}`, `Cluster ${c.name} deleted.`);
    });
    return h("tr", { "data-cluster": c.name, "data-source": c.source }, h("td", null, c.name), h("td", null, sourceCell(c)), h("td", { class: "num" }, String(c.hosts)), h("td", null, del));
  }

  private hostRow(x: InventoryHost): HTMLElement {
    const edit = this.admin && x.source === "ui" ? h("button", { type: "button", class: "text-btn host-edit" }, "Edit") : null;
    const del = this.admin && x.source === "ui" ? h("button", { type: "button", class: "text-btn host-delete" }, "Delete") : null;
    edit?.addEventListener("click", () => this.form.open(x, this.clusters));
    del?.addEventListener("click", () => {
      if (!window.confirm(`Delete the host ${x.id}? It is no longer watched.`)) return;
      void this.remove(`api/v1/inventory/hosts/${encodeURIComponent(x.id)}`, `Host ${x.id} deleted.`);
    });
    const address = x.agent ? h("span", { class: "mono" }, x.address ?? "", x.has_token ? h("span", { class: "muted", title: "An agent token is set" }, " · token") : null) : h("span", { class: "chip", title: "No agent: reachability checks and Wake-on-LAN only" }, "no agent");
    return h(
      "tr",
      { "data-inv-id": x.id, "data-source": x.source, "data-agent": String(x.agent) },
      h("td", null, sourceCell(x)),
      h("td", null, x.cluster),
      h("td", null, h("a", { href: hostHref(x.id) }, x.name)),
      h("td", null, address),
      h("td", { class: "mono" }, x.ip ?? DASH),
      h("td", { class: "mono" }, x.mac ?? DASH),
      h("td", null, x.tags.join(", ") || DASH),
      h("td", null, servicesText(x.services) || DASH),
      h("td", null, edit, del),
    );
  }

  private async remove(path: string, done: string): Promise<void> {
    const r = await call<null>("DELETE", path);
    if (!r.ok) return this.say(r.why, false);
    await this.reload(done);
  }

  private say(text: string, ok: boolean): void {
    setText(this.status, text);
    this.status.dataset.ok = String(ok);
  }

  destroy(): void {
    this.destroyed = true;
  }
}
