/**
 * Hash routing: `#/` (home), `#/host/<id>` (host page) and `#/accounts` (passwords and users). The server only serves index.html and
 * assets, so the page works at `/` and under any prefix.
 */

export type Route = { page: "home" } | { page: "host"; id: string } | { page: "accounts" };

/** Parses a location hash. Anything unknown is the home page. */
export function parseHash(hash: string): Route {
  if (hash === "#/accounts") return { page: "accounts" };
  const m = /^#\/host\/(.+)$/.exec(hash);
  if (m && m[1]) {
    try {
      return { page: "host", id: decodeURIComponent(m[1]) };
    } catch {
      return { page: "host", id: m[1] };
    }
  }
  return { page: "home" };
}

/** The hash of a host page. Ids are `cluster:host`; the colon stays readable. */
export function hostHref(id: string): string {
  return `#/host/${encodeURIComponent(id).replace(/%3A/gi, ":")}`;
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
  return true;
}
