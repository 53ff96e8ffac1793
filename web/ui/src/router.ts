/**
 * Hash routing: `#/` (home), `#/host/<id>` (host page), `#/cluster/<name>` (a cluster's
 * history), `#/accounts` (passwords and users) and `#/storage` (the history database, admins).
 * The server only serves index.html and assets, so the page works at `/` and under any prefix.
 */

export type Route = { page: "home" } | { page: "host"; id: string } | { page: "cluster"; name: string } | { page: "accounts" } | { page: "storage" };

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
  return true;
}
