/**
 * Formatting of numbers for people: bytes in binary units, percentages, ages ("3 min ago") and
 * durations ("3d 4h"). A missing value (`null`/`undefined`/NaN) is shown as an em dash, never 0.
 */

/** Shown for a value the host could not measure. */
export const DASH = "—";

type Num = number | null | undefined;

function missing(v: Num): v is null | undefined {
  return v === null || v === undefined || !Number.isFinite(v);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/** 1536 -> "1.5 KiB"; three significant digits at most. */
export function bytes(v: Num): string {
  if (missing(v)) return DASH;
  let n = Math.abs(v);
  let u = 0;
  while (n >= 1024 && u < UNITS.length - 1) {
    n /= 1024;
    u++;
  }
  const sign = v < 0 ? "-" : "";
  if (u === 0) return `${sign}${Math.round(n)} B`;
  const digits = n >= 100 ? 0 : n >= 10 ? 1 : 2;
  return `${sign}${n.toFixed(digits)} ${UNITS[u]}`;
}

/** Bytes per second: "12.3 MiB/s". */
export function rate(v: Num): string {
  return missing(v) ? DASH : `${bytes(v)}/s`;
}

/** "used / total" in bytes, e.g. "12.1 / 62.8 GiB" when both have the same unit. */
export function bytesOf(used: Num, total: Num): string {
  if (missing(used) && missing(total)) return DASH;
  const u = bytes(used);
  const t = bytes(total);
  const us = u.split(" ");
  const ts = t.split(" ");
  if (us.length === 2 && ts.length === 2 && us[1] === ts[1]) return `${us[0]} / ${t}`;
  return `${u} / ${t}`;
}

/** 12.345 -> "12.3%" (digits after the point: 1 by default). */
export function pct(v: Num, digits = 1): string {
  return missing(v) ? DASH : `${v.toFixed(digits)}%`;
}

/** A plain number with the given digits, or a dash. */
export function num(v: Num, digits = 0): string {
  return missing(v) ? DASH : v.toFixed(digits);
}

/** Load average: "0.52 0.40 0.31". */
export function load(v: readonly number[] | null | undefined): string {
  if (!v || v.length === 0) return DASH;
  return v.map((x) => (Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2) : DASH)).join(" ");
}

/** A duration in seconds, two units at most: "42s", "5m 12s", "3h 4m", "3d 4h". */
export function duration(s: Num): string {
  if (missing(s)) return DASH;
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  if (m > 0) return sec > 0 && m < 10 ? `${m}m ${sec}s` : `${m}m`;
  return `${sec}s`;
}

/** An age in milliseconds, short: "now", "12 s", "3 min", "2 h", "4 d". */
export function age(ms: Num): string {
  if (missing(ms)) return DASH;
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 2) return "now";
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h`;
  return `${Math.floor(h / 24)} d`;
}

/** "3 min ago", or "just now". */
export function ago(ms: Num): string {
  if (missing(ms)) return DASH;
  const a = age(ms);
  return a === "now" ? "just now" : `${a} ago`;
}

/** Local date and time, "2024-05-01 14:03:12". */
export function dateTime(ms: Num): string {
  if (missing(ms) || ms <= 0) return DASH;
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Milliwatts as watts: "312 W". */
export function watts(mw: Num): string {
  return missing(mw) ? DASH : `${Math.round(mw / 1000)} W`;
}

/** Degrees Celsius: "64 °C". */
export function celsius(v: Num): string {
  return missing(v) ? DASH : `${Math.round(v)} °C`;
}

/** MHz, as GHz above 1000: "3.40 GHz". */
export function freq(mhz: Num): string {
  if (missing(mhz) || mhz <= 0) return DASH;
  return mhz >= 1000 ? `${(mhz / 1000).toFixed(2)} GHz` : `${mhz} MHz`;
}

/** Severity class of a percentage, for colouring: "ok" < 70 <= "warn" < 90 <= "crit". */
export function level(v: Num, warn = 70, crit = 90): "ok" | "warn" | "crit" | "none" {
  if (missing(v)) return "none";
  return v >= crit ? "crit" : v >= warn ? "warn" : "ok";
}
