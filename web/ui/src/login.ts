/**
 * The login page: posts the form as JSON to `api/v1/login` (same origin, so the CSRF check
 * passes), shows the server's reason on failure (wrong password, too many attempts), and goes
 * to the dashboard on success. Paths are relative, so the page works at `/` and under a prefix.
 */
import "./styles/app.css";
import "./styles/login.css";
import { initTheme } from "./theme";

initTheme();

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} missing`);
  return e as T;
}

async function start(): Promise<void> {
  const form = el<HTMLFormElement>("login-form");
  const user = el<HTMLInputElement>("user");
  const password = el<HTMLInputElement>("password");
  const error = el<HTMLElement>("login-error");
  const submit = el<HTMLButtonElement>("login-submit");

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    void (async () => {
      try {
        const r = await fetch("api/v1/login", {
          method: "POST",
          credentials: "same-origin",
          headers: { "content-type": "application/json", accept: "application/json" },
          body: JSON.stringify({ user: user.value, password: password.value }),
        });
        if (r.ok) {
          location.replace("./");
          return;
        }
        let why = `${r.status} ${r.statusText}`;
        try {
          why = ((await r.json()) as { error?: string }).error ?? why;
        } catch {
          /* keep the status line */
        }
        error.textContent = why;
        error.hidden = false;
        password.value = "";
        password.focus();
      } catch (e) {
        error.textContent = `Cannot reach the server: ${String(e)}`;
        error.hidden = false;
      } finally {
        submit.disabled = false;
      }
    })();
  });
  // The form is handled from here on (tests wait for this before typing).
  form.dataset.ready = "1";

  // Already logged in, or a public dashboard: offer the way in.
  try {
    const me = await fetch("api/v1/me", { credentials: "same-origin", headers: { accept: "application/json" } });
    if (me.ok) {
      const body = (await me.json()) as { user: string | null; public_read_only: boolean };
      if (body.user) {
        location.replace("./");
        return;
      }
      if (body.public_read_only) el<HTMLElement>("public-link").hidden = false;
    }
  } catch {
    /* the form still works */
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => void start(), { once: true });
else void start();
