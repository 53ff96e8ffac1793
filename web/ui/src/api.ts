/**
 * REST calls below the page's base path, with the server's reason on failure: every error
 * answer is `{"error": "<sentence>"}` (web/PROTOCOL.md), shown to the user as it is.
 */
import { basePath } from "./connection";

/** The answer of a call: its JSON (null for an empty body), or the status and the reason. */
export type CallResult<T> = { ok: true; data: T } | { ok: false; status: number; why: string };

/** Sends `body` as JSON with `method` to `path` (below the base path). Status 0: no answer. */
export async function call<T>(method: string, path: string, body?: unknown): Promise<CallResult<T>> {
  try {
    const r = await fetch(`${basePath()}${path}`, {
      method,
      credentials: "same-origin",
      headers: { accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.ok) {
      const text = await r.text();
      return { ok: true, data: (text ? JSON.parse(text) : null) as T };
    }
    let why = `${r.status} ${r.statusText}`;
    try {
      why = ((await r.json()) as { error?: string }).error ?? why;
    } catch {
      /* keep the status line */
    }
    return { ok: false, status: r.status, why };
  } catch (e) {
    return { ok: false, status: 0, why: `Cannot reach the server: ${String(e)}` };
  }
}

/** Who is logged in (`GET /api/v1/me`), asked once per page load. */
export interface Me {
  authenticated?: boolean;
  user: string | null;
  role: string;
}

let me: Promise<Me | null> | null = null;

/** The caller (null when the server could not say). */
export function whoAmI(): Promise<Me | null> {
  me ??= call<Me>("GET", "api/v1/me").then((r) => (r.ok ? r.data : null));
  return me;
}
