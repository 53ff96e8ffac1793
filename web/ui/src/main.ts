/**
 * Entry point: applies the theme before the first paint, then builds the shell (top bar with the
 * connection indicator, the Alerts link with its count, the stale-data banner, the page), routes
 * between the home, host, cluster, accounts, storage, audit, inventory, applications and alerts pages, and dispatches the
 * server's frames to the page on screen.
 */
import "./styles/app.css";
import "./styles/account.css";
import "./styles/actions.css";
import "./styles/alerts.css";
import "./styles/applications.css";
import { basePath, Connection } from "./connection";
import { h, setAttr, setText, show } from "./dom";
import { age, ago } from "./format";
import { HomePage } from "./pages/home";
import { AlertsPage } from "./pages/alerts";
import { SEVERITY_ORDER, alertFeed } from "./components/alerts";
import { AccountsPage } from "./pages/accounts";
import { ClusterPage } from "./pages/cluster";
import { StoragePage } from "./pages/storage";
import { AuditPage } from "./pages/audit";
import { InventoryPage } from "./pages/inventory";
import { ApplicationsPage } from "./pages/applications";
import { HostPage } from "./pages/host";
import { sameRoute, watchRoute, type Route } from "./router";
import { initTheme, toggleTheme } from "./theme";

initTheme();

function start(): void {
  const conn = new Connection();
  const version = h("span", { class: "version" });
  const crumb = h("span", { class: "crumb" });
  const themeBtn = h("button", { type: "button", class: "icon-btn", id: "theme-toggle", title: "Light / dark theme", "aria-label": "Switch between light and dark theme" }, h("i", { class: "theme-icon", "aria-hidden": "true" }));
  themeBtn.addEventListener("click", toggleTheme);
  const account = h("span", { class: "account", id: "account" });
  void showAccount(account);
  const banner = h("div", { id: "stale-banner", class: "banner", role: "status", hidden: true });
  const viewEl = h("main", { id: "view" });
  document.body.append(
    h("header", { class: "topbar" }, h("a", { class: "brand", href: "#/" }, h("i", { class: "logo", "aria-hidden": "true" }), "smon"), version, crumb, h("span", { class: "spacer" }), conn.indicator, account, themeBtn),
    banner,
    viewEl,
  );

  let page: HomePage | HostPage | null = null;
  /** A page fed by REST only (no room). */
  let accounts: AccountsPage | ClusterPage | StoragePage | AuditPage | AlertsPage | InventoryPage | ApplicationsPage | null = null;
  let route: Route | null = null;

  watchRoute((r) => {
    if (sameRoute(route, r) && (page || accounts)) return;
    // Another tab or filter of the alerts page (a link, Back): the page follows in place.
    if (r.page === "alerts" && accounts instanceof AlertsPage) {
      route = r;
      accounts.setRoute(r, false);
      return;
    }
    route = r;
    page?.destroy();
    accounts?.destroy();
    page = null;
    accounts = null;
    viewEl.replaceChildren();
    window.scrollTo(0, 0);
    if (r.page === "accounts" || r.page === "storage" || r.page === "audit" || r.page === "cluster" || r.page === "alerts" || r.page === "inventory" || r.page === "applications") {
      const [p, title] =
        r.page === "accounts"
          ? [new AccountsPage(), "Accounts"]
          : r.page === "storage"
            ? [new StoragePage(), "Storage"]
            : r.page === "audit"
              ? [new AuditPage(), "Audit"]
              : r.page === "alerts"
                ? [new AlertsPage(r), "Alerts"]
                : r.page === "inventory"
                  ? [new InventoryPage(), "Inventory"]
                  : r.page === "applications"
                    ? [new ApplicationsPage(), "Applications"]
                : [new ClusterPage(r.name), `Cluster ${r.name}`];
      accounts = p;
      setText(crumb, `/ ${title}`);
      document.title = `${title} · smon`;
      conn.setRoom(null);
      viewEl.append(p.el);
      updateBanner();
      return;
    }
    if (r.page === "host") {
      const p = new HostPage(conn, r.id);
      page = p;
      setText(crumb, `/ ${r.id}`);
      document.title = `${r.id} · smon`;
      conn.setRoom(p.room, (a) => p.onAck(a));
    } else {
      const p = new HomePage(conn);
      page = p;
      setText(crumb, "");
      document.title = "smon";
      conn.setRoom(p.room, (a) => p.onAck(a));
    }
    viewEl.append(page.el);
    updateBanner();
  });

  conn.on("hello", (m) => {
    setText(version, `${m.mode} · v${m.version}`);
  });
  conn.on("overview", (m) => {
    if (page instanceof HomePage) page.onOverview(m);
  });
  conn.on("overview_delta", (m) => {
    if (page instanceof HomePage) page.onDelta(m);
  });
  conn.on("host", (m) => {
    if (page instanceof HostPage) page.onHost(m);
  });
  conn.on("host_update", (m) => {
    if (page instanceof HostPage) page.onUpdate(m);
  });
  conn.on("host_removed", (m) => {
    if (page instanceof HostPage) page.onRemoved(m);
    updateBanner();
  });
  conn.onState(() => updateBanner());
  // A frame after a stale spell: back to live at once, banner and indicator together.
  conn.onFrame(() => {
    if (conn.shown() === "stale") updateBanner();
  });

  /**
   * Stale data must never look live: when no frame came for 3 intervals, or the connection is
   * down, say so with the age of what is shown, and grey the page. The indicator is set here
   * too, from the same test, so that it never says "Live" next to a stale banner.
   */
  function updateBanner(): void {
    const since = conn.sinceLastFrame();
    let text = "";
    let stale = false;
    // A host that is gone sends nothing more: that is said on the page, not as stale data.
    if (since !== null && !(page instanceof HostPage && page.gone)) {
      // The age shown is that of the data: the last frame's, or the host's last sample if older.
      const from = ago(Math.max(since, page?.dataAgeMs() ?? 0));
      if (conn.state !== "connected") text = `Connection lost, reconnecting… Showing data from ${from}.`;
      else if (since > 3 * conn.intervalMs()) {
        stale = true;
        text = `Stale: no update for ${age(since)}. Showing data from ${from}.`;
      }
    }
    conn.setStale(stale, stale && since !== null ? `no update from the server for ${age(since)}` : "");
    setText(banner, text);
    show(banner, text !== "");
    setAttr(viewEl, "data-stale", text ? "true" : null);
  }

  window.setInterval(() => {
    page?.tick();
    updateBanner();
  }, 1000);
}

/**
 * Who is logged in, and the way out: `user (role)` and a Log out button; on a public dashboard
 * without a session, a Log in link.
 */
async function showAccount(el: HTMLElement): Promise<void> {
  let me: { authenticated?: boolean; user: string | null; role: string } | null = null;
  try {
    // Answered without a session too (`authenticated: false`, role "none" unless the dashboard
    // is public); a 401 from an older server means the same.
    const r = await fetch(`${basePath()}api/v1/me`, { credentials: "same-origin", headers: { accept: "application/json" } });
    if (r.ok) me = (await r.json()) as { authenticated?: boolean; user: string | null; role: string };
    if (r.status === 401 || me?.role === "none") {
      location.replace(`${basePath()}login`);
      return;
    }
  } catch {
    return;
  }
  if (!me) return;
  if (!me.user) {
    el.replaceChildren(h("a", { href: `${basePath()}login`, class: "login-link", id: "login-link" }, "Log in"));
    return;
  }
  const out = h("button", { type: "button", class: "text-btn", id: "logout" }, "Log out");
  out.addEventListener("click", () => {
    void fetch(`${basePath()}api/v1/logout`, { method: "POST", credentials: "same-origin" }).finally(() => location.replace(`${basePath()}login`));
  });
  const accountsLink = h("a", { href: "#/accounts", class: "text-btn", id: "accounts-link" }, "Accounts");
  // The fleet's hosts and clusters: everyone logged in reads, admins edit.
  const inventoryLink = h("a", { href: "#/inventory", class: "text-btn", id: "inventory-link" }, "Inventory");
  // The fleet's supervisord programs: everyone logged in reads, admins act.
  const appsLink = h("a", { href: "#/applications", class: "text-btn", id: "applications-link", title: "Applications" }, h("span", { class: "label-long" }, "Applications"), h("span", { class: "label-short" }, "Apps"));
  const alerts = alertsLink();
  // The history database's page: admins only (the server answers 403 to others).
  const storageLink = me.role === "admin" ? h("a", { href: "#/storage", class: "text-btn", id: "storage-link" }, "Storage") : null;
  const auditLink = me.role === "admin" ? h("a", { href: "#/audit", class: "text-btn", id: "audit-link" }, "Audit") : null;
  el.replaceChildren(h("span", { class: "who", id: "who", title: `Role: ${me.role}` }, `${me.user} (${me.role})`), alerts, inventoryLink, appsLink, accountsLink, ...(storageLink ? [storageLink] : []), ...(auditLink ? [auditLink] : []), out);
}

/**
 * The top bar's Alerts link, for everyone logged in: the number of alerts firing (not pending,
 * not silenced) as a badge (`data-count`, `data-severity`: the worst of them). Hidden when the
 * server runs no alerting (503) or refuses the caller (401); plain while the feed has no answer.
 */
function alertsLink(): HTMLElement {
  const count = h("span", { class: "alerts-count", hidden: true });
  const link = h("a", { href: "#/alerts", class: "text-btn alerts-link", id: "alerts-link", title: "Alerts" }, "Alerts", count);
  alertFeed.listen((s) => {
    show(link, s.kind === "ready" || s.kind === "loading" || s.kind === "error");
    setAttr(link, "data-state", s.kind);
    if (s.kind !== "ready") {
      setAttr(link, "data-count", null);
      setAttr(link, "data-severity", null);
      show(count, false);
      return;
    }
    const now = s.answer.alerts.filter((a) => !a.pending && !a.silenced);
    const worst = now.reduce<(typeof now)[number]["severity"] | null>((w, a) => (w === null || SEVERITY_ORDER[a.severity] < SEVERITY_ORDER[w] ? a.severity : w), null);
    setAttr(link, "data-count", String(now.length));
    setAttr(link, "data-severity", worst);
    setText(count, String(now.length));
    show(count, now.length > 0);
    setAttr(link, "title", now.length ? `${now.length} alert${now.length === 1 ? "" : "s"} firing` : "No alert firing");
  });
  return link;
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start, { once: true });
else start();
