/**
 * Hash routing: `#/` (home), `#/host/<id>` (host page), `#/cluster/<name>` (a cluster's
 * history), `#/accounts` (passwords and users), `#/storage` (the history database, admins), `#/audit` (the audit log, admins),
 * `#/inventory` (the fleet's hosts and clusters, edited by admins), `#/applications` (the
 * fleet's supervisord programs and declared applications) and
 * `#/alerts` (alerts, their history, rules, silences and channels), which takes a query:
 * `#/alerts?host=lab:n1&rule=cpu%20busy&tab=history`.
 * The server only serves index.html and assets, so the page works at `/` and under any prefix.
 */

export type Route = { page: "home" } | { page: "host"; id: string } | { page: "cluster"; name: string } | { page: "accounts" } | { page: "storage" } | { page: "audit" } | { page: "inventory" } | { page: "applications" } | AlertsRoute;

/** The tabs of the alerts page. */
export type AlertsTab = "firing" | "history" | "rules" | "silences" | "channels";
const ALERT_TABS: readonly AlertsTab[] = ["firing", "history", "rules", "silences", "channels"];

/** The alerts page, with its filters (empty: none) and tab. */
export interface AlertsRoute {
  page: "alerts";
  host: string;
  rule: string;
  tab: AlertsTab;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Parses a location hash. Anything unknown is the home page. */
export function parseHash(hash: string): Route {
  if (hash === "#/accounts") return { page: "accounts" };
  if (hash === "#/storage") return { page: "storage" };
  if (hash === "#/audit") return { page: "audit" };
  if (hash === "#/inventory") return { page: "inventory" };
  if (hash === "#/applications") return { page: "applications" };
  const a = /^#\/alerts(?:\?(.*))?$/.exec(hash);
  if (a) {
    const q = new URLSearchParams(a[1] ?? "");
    const tab = q.get("tab") ?? "firing";
    return { page: "alerts", host: q.get("host") ?? "", rule: q.get("rule") ?? "", tab: (ALERT_TABS as readonly string[]).includes(tab) ? (tab as AlertsTab) : "firing" };
  }
  const m = /^#\/host\/(.+)$/.exec(hash);
  if (m && m[1]) return { page: "host", id: decode(m[1]) };
  const c = /^#\/cluster\/(.+)$/.exec(hash);
  if (c && c[1]) return { page: "cluster", name: decode(c[1]) };
  return { page: "home" };
}

/** The hash of a host page. Ids are `cluster:host`; the colon stays readable. */
export function hostHref(id: string): string {
  return `#/host/${encodeURIComponent(id).replace(/%3A/gi, ":")}`;
}

/** The hash of a cluster page. */
export function clusterHref(name: string): string {
  return `#/cluster/${encodeURIComponent(name)}`;
}

/** The hash of the alerts page, filtered on a host and/or rule, on a tab. */
export function alertsHref(f: { host?: string; rule?: string; tab?: AlertsTab } = {}): string {
  const q = new URLSearchParams();
  if (f.host) q.set("host", f.host);
  if (f.rule) q.set("rule", f.rule);
  if (f.tab && f.tab !== "firing") q.set("tab", f.tab);
  const s = q.toString().replace(/%3A/gi, ":");
  return s ? `#/alerts?${s}` : "#/alerts";
}

/** Calls `fn` with the current route now and after every hash change. */
export function watchRoute(fn: (r: Route) => void): void {
  window.addEventListener("hashchange", () => fn(parseHash(location.hash)));
  fn(parseHash(location.hash));
}

/** Same route? */
export function sameRoute(a: Route | null, b: Route): boolean {
  if (!a || a.page !== b.page) return false;
  if (a.page === "host") return b.page === "host" && a.id === b.id;
  if (a.page === "cluster") return b.page === "cluster" && a.name === b.name;
  if (a.page === "alerts") return b.page === "alerts" && a.host === b.host && a.rule === b.rule && a.tab === b.tab;
  return true;
}
