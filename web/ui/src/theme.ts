/**
 * Light / dark theme. The choice is stored in localStorage; without one the theme follows the
 * system's `prefers-color-scheme`, live. The theme is applied as `data-theme` on <html> before
 * the first paint (app.js is loaded synchronously in <head>).
 */

export type Theme = "light" | "dark";

const KEY = "smon.theme";
const listeners = new Set<(t: Theme) => void>();
const media = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;

function stored(): Theme | null {
  try {
    const v = localStorage.getItem(KEY);
    return v === "light" || v === "dark" ? v : null;
  } catch {
    return null; // storage blocked (private mode, sandboxed frame)
  }
}

/** The theme in force. */
export function currentTheme(): Theme {
  return stored() ?? (media?.matches ? "dark" : "light");
}

function apply(): void {
  const t = currentTheme();
  if (document.documentElement.dataset.theme !== t) {
    document.documentElement.dataset.theme = t;
    for (const l of listeners) l(t);
  }
}

/** Applies the theme and follows system changes while no choice is stored. */
export function initTheme(): void {
  apply();
  media?.addEventListener("change", apply);
}

/** Switches to the other theme and remembers the choice. */
export function toggleTheme(): void {
  const next: Theme = currentTheme() === "dark" ? "light" : "dark";
  try {
    localStorage.setItem(KEY, next);
  } catch {
    /* not remembered, still applied below */
  }
  document.documentElement.dataset.theme = next;
  for (const l of listeners) l(next);
}

/** Calls `fn` after each theme change (canvas charts redraw with the new colours). */
export function onThemeChange(fn: (t: Theme) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/**
 * The computed colour of a CSS custom property, e.g. `cssColor("--fg")` -> "rgb(20, 20, 20)",
 * for drawing on canvas.
 */
export function cssColor(name: string, fallback = "#888"): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}
