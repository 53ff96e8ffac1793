/**
 * The Accounts page (`#/accounts`): everyone changes their own password (the current one is
 * needed); admins also see the users, add and remove them, set roles and reset passwords. The
 * server checks and audits every change; this page only shows its answers, reasons included.
 * Users defined in the config are listed but cannot be changed here.
 */
import "../styles/accounts.css";
import { basePath } from "../connection";
import { h, setText } from "../dom";

type Role = "viewer" | "admin";
interface UserEntry {
  name: string;
  role: Role;
  from_config: boolean;
}

/** Sends `body` as JSON with `method` to `path` (below the base); the error text on failure. */
async function call(method: string, path: string, body?: unknown): Promise<{ ok: true; data: unknown } | { ok: false; why: string }> {
  try {
    const r = await fetch(`${basePath()}${path}`, {
      method,
      credentials: "same-origin",
      headers: { accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.ok) {
      const text = await r.text();
      return { ok: true, data: text ? (JSON.parse(text) as unknown) : null };
    }
    let why = `${r.status} ${r.statusText}`;
    try {
      why = ((await r.json()) as { error?: string }).error ?? why;
    } catch {
      /* keep the status line */
    }
    return { ok: false, why };
  } catch (e) {
    return { ok: false, why: `Cannot reach the server: ${String(e)}` };
  }
}

function field(label: string, input: HTMLElement): HTMLElement {
  return h("label", { class: "acct-field" }, h("span", null, label), input);
}

function passwordInput(id: string, autocomplete: string): HTMLInputElement {
  return h("input", { type: "password", id, autocomplete, minlength: 8, required: true });
}

/** The Accounts page. */
export class AccountsPage {
  readonly el: HTMLElement;
  private readonly usersBody = h("tbody", { id: "users-body" });
  private readonly usersStatus = h("p", { class: "acct-status", id: "users-status", role: "status" });
  private me: string | null = null;

  constructor() {
    this.el = h("section", { class: "accounts", id: "accounts-page" }, h("h1", null, "Accounts"));
    this.el.append(this.ownPassword());
    void this.loadAdmin();
  }

  /** The form that changes the caller's own password. */
  private ownPassword(): HTMLElement {
    const current = passwordInput("current-password", "current-password");
    const next = passwordInput("new-password", "new-password");
    const again = passwordInput("new-password-again", "new-password");
    const status = h("p", { class: "acct-status", id: "password-status", role: "status" });
    const submit = h("button", { type: "submit", class: "btn", id: "change-password" }, "Change password");
    const form = h(
      "form",
      { class: "acct-card", id: "password-form" },
      h("h2", null, "Your password"),
      field("Current password", current),
      field("New password (8 characters or more)", next),
      field("New password again", again),
      submit,
      status,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (next.value !== again.value) {
        this.say(status, "The new passwords differ.", false);
        return;
      }
      submit.disabled = true;
      void call("POST", "api/v1/me/password", { current: current.value, new: next.value }).then((r) => {
        submit.disabled = false;
        if (r.ok) {
          form.reset();
          this.say(status, "Password changed. Your other sessions have ended.", true);
        } else {
          this.say(status, r.why, false);
        }
      });
    });
    return form;
  }

  private say(el: HTMLElement, text: string, ok: boolean): void {
    setText(el, text);
    el.dataset.ok = ok ? "true" : "false";
  }

  /** The users (admins only: the server answers 403 to others, and the section stays away). */
  private async loadAdmin(): Promise<void> {
    const me = await call("GET", "api/v1/me");
    if (!me.ok) return;
    const who = me.data as { user: string | null; role: string };
    this.me = who.user;
    if (who.role !== "admin") return;
    const name = h("input", { type: "text", id: "new-user-name", autocomplete: "off", maxlength: 64, pattern: "[A-Za-z0-9._@-]{1,64}", required: true });
    const role = h("select", { id: "new-user-role" }, h("option", { value: "viewer" }, "viewer"), h("option", { value: "admin" }, "admin"));
    const password = passwordInput("new-user-password", "new-password");
    const add = h("button", { type: "submit", class: "btn", id: "add-user" }, "Add user");
    const form = h("form", { class: "acct-add", id: "add-user-form" }, field("Name", name), field("Role", role), field("Password", password), add);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      add.disabled = true;
      void call("POST", "api/v1/admin/users", { name: name.value, role: role.value, password: password.value }).then(async (r) => {
        add.disabled = false;
        if (r.ok) {
          this.say(this.usersStatus, `Added ${name.value}.`, true);
          form.reset();
          await this.refresh();
        } else {
          this.say(this.usersStatus, r.why, false);
        }
      });
    });
    this.el.append(
      h(
        "div",
        { class: "acct-card", id: "users-card" },
        h("h2", null, "Users"),
        h("div", { class: "table-wrap" }, h("table", { class: "data", id: "users-table" }, h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "Role"), h("th", null, "New password"), h("th", null, ""))), this.usersBody)),
        h("h3", null, "Add a user"),
        form,
        this.usersStatus,
      ),
    );
    await this.refresh();
  }

  private async refresh(): Promise<void> {
    const r = await call("GET", "api/v1/admin/users");
    if (!r.ok) {
      this.say(this.usersStatus, r.why, false);
      return;
    }
    this.usersBody.replaceChildren(...(r.data as UserEntry[]).map((u) => this.row(u)));
  }

  private row(u: UserEntry): HTMLElement {
    const tr = h("tr", { "data-user": u.name });
    const name = h("td", null, u.name, u.name === this.me ? h("span", { class: "muted" }, " (you)") : null);
    if (u.from_config) {
      tr.append(name, h("td", null, u.role), h("td", { class: "muted", colspan: 2 }, "defined in the config"));
      return tr;
    }
    const role = h("select", { class: "user-role", "aria-label": `Role of ${u.name}` }, h("option", { value: "viewer" }, "viewer"), h("option", { value: "admin" }, "admin"));
    role.value = u.role;
    role.addEventListener("change", () => {
      void call("PUT", `api/v1/admin/users/${encodeURIComponent(u.name)}/role`, { role: role.value }).then(async (r) => {
        this.say(this.usersStatus, r.ok ? `${u.name} is now ${role.value}.` : r.why, r.ok);
        await this.refresh();
      });
    });
    const pw = h("input", { type: "password", class: "user-password", autocomplete: "new-password", "aria-label": `New password for ${u.name}` });
    const set = h("button", { type: "button", class: "text-btn user-set-password" }, "Set");
    set.addEventListener("click", () => {
      void call("PUT", `api/v1/admin/users/${encodeURIComponent(u.name)}/password`, { password: pw.value }).then((r) => {
        if (r.ok) pw.value = "";
        this.say(this.usersStatus, r.ok ? `New password set for ${u.name}; their sessions have ended.` : r.why, r.ok);
      });
    });
    const remove = h("button", { type: "button", class: "text-btn user-remove" }, "Remove");
    remove.addEventListener("click", () => {
      if (!window.confirm(`Remove the user ${u.name}?`)) return;
      void call("DELETE", `api/v1/admin/users/${encodeURIComponent(u.name)}`).then(async (r) => {
        this.say(this.usersStatus, r.ok ? `Removed ${u.name}.` : r.why, r.ok);
        await this.refresh();
      });
    });
    tr.append(name, h("td", null, role), h("td", null, pw, " ", set), h("td", null, remove));
    return tr;
  }

  /** Nothing to stop: the page holds no timers or sockets. */
  destroy(): void {}
}
