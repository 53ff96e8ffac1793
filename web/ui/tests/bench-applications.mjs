// The Applications page at a simulated fleet: REST latency of GET /api/v1/applications and the
// page's load and live updates in Chromium (BENCHMARKS.md, "Applications page"). Run by
// `smon-bench applications` (bench/src/applications.rs), or by hand:
//
//   node tests/bench-applications.mjs <base URL of a public read-only dashboard> \
//       [loads per viewport, 5] [seconds of live updates, 15] [REST calls, 40]
//
// Progress goes to stderr; the last stdout line is the JSON summary:
//   {"rest": {calls, median_ms, p95_ms, max_ms, programs, entries, entries_with_sums,
//             programs_with_sums, bytes, content_encoding, identity_calls, identity_median_ms},
//    "viewports": [{width, height, loads_ms: [...], median_ms, max_ms, rows, chips,
//                   live_s, long_tasks, longest_task_ms,
//                   app_js and applications_json: {transfer_bytes, encoded_bytes, decoded_bytes},
//                   timeline: {html_ms, app_js_ms, dom_ready_ms, me_ms, applications_start_ms,
//                              applications_ms, drawn_ms} of the last load}]}
//
// CHROMIUM overrides /usr/bin/chromium.
import { createRequire } from "node:module";
const require = createRequire(new URL("../package.json", import.meta.url));
const { chromium } = require("playwright-core");
const base = process.argv[2];
const count = (i, dflt) => {
  const v = process.argv[i] === undefined ? dflt : Number(process.argv[i]);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`argument ${i - 1}: '${process.argv[i]}' is not a positive whole number`);
    process.exit(2);
  }
  return v;
};
if (!base) {
  console.error("usage: bench-applications.mjs BASE_URL [LOADS] [LIVE_S] [REST_CALLS]");
  process.exit(2);
}
const LOADS = count(3, 5), LIVE_S = count(4, 15), CALLS = count(5, 40);
const pct = (a, p) => a.slice().sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))];
const r1 = (x) => Math.round(x * 10) / 10;

// REST: sequential GETs, as a browser asks (gzip/br accepted: Node's fetch sends
// Accept-Encoding and decodes).
const times = [];
let rest = {};
for (let i = 0; i < CALLS; i++) {
  const t0 = performance.now();
  const r = await fetch(new URL("api/v1/applications", base));
  const text = await r.text();
  times.push(performance.now() - t0);
  if (!r.ok) throw new Error(`GET api/v1/applications: ${r.status} ${text.slice(0, 200)}`);
  if (i === CALLS - 1) {
    const v = JSON.parse(text);
    const entries = v.programs.flatMap((p) => p.hosts);
    rest = {
      programs: v.programs.length,
      entries: entries.length,
      entries_with_sums: entries.filter((x) => x.memory_bytes != null).length,
      programs_with_sums: v.programs.filter((p) => p.memory_bytes > 0).length,
      bytes: Buffer.byteLength(text),
      content_encoding: r.headers.get("content-encoding") ?? "identity",
    };
  }
}
// The same without compression (Accept-Encoding: identity), a quarter as many: what
// compressing costs or saves on this link.
const plain = [];
for (let i = 0; i < Math.max(5, Math.ceil(CALLS / 4)); i++) {
  const t0 = performance.now();
  const r = await fetch(new URL("api/v1/applications", base), { headers: { "accept-encoding": "identity" } });
  await r.text();
  plain.push(performance.now() - t0);
  if (r.headers.get("content-encoding")) throw new Error(`identity asked, ${r.headers.get("content-encoding")} sent`);
}
rest = { calls: CALLS, median_ms: r1(pct(times, 0.5)), p95_ms: r1(pct(times, 0.95)), max_ms: r1(Math.max(...times)), ...rest, identity_calls: plain.length, identity_median_ms: r1(pct(plain, 0.5)) };
console.error(`GET /api/v1/applications: ${rest.programs} programs, ${rest.entries} program-host entries (${rest.entries_with_sums} with CPU/memory), ${(rest.bytes / 1024).toFixed(0)} KiB (${rest.content_encoding}); median ${rest.median_ms} ms, p95 ${rest.p95_ms} ms, max ${rest.max_ms} ms (${CALLS} sequential calls); uncompressed: median ${rest.identity_median_ms} ms (${rest.identity_calls} calls)`);

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
const viewports = [];
for (const vp of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
  const loads = [];
  let out = {};
  for (let i = 0; i < LOADS; i++) {
    // A fresh context each time: nothing cached.
    const page = await (await browser.newContext({ viewport: vp })).newPage();
    const t0 = Date.now();
    await page.goto(new URL("#/applications", base).toString());
    await page.waitForSelector("#applications-page[data-state=ready] tr.app-row", { timeout: 60000 });
    loads.push(Date.now() - t0);
    if (i === LOADS - 1) {
      // Where the load's time went, ms from the navigation's start (the page's clock): each
      // request's end, the DOM ready, and the rows seen drawn (read just after, so a bound).
      const timeline = await page.evaluate(() => {
        const end = (suffix) => {
          const e = performance.getEntriesByType("resource").find((r) => r.name.endsWith(suffix));
          return e ? Math.round(e.responseEnd) : null;
        };
        const nav = performance.getEntriesByType("navigation")[0];
        const apps = performance.getEntriesByType("resource").find((r) => r.name.endsWith("/api/v1/applications"));
        return {
          html_ms: nav ? Math.round(nav.responseEnd) : null,
          app_js_ms: end("/assets/app.js"),
          dom_ready_ms: nav ? Math.round(nav.domContentLoadedEventEnd) : null,
          me_ms: end("/api/v1/me"),
          applications_start_ms: apps ? Math.round(apps.startTime) : null,
          applications_ms: apps ? Math.round(apps.responseEnd) : null,
          drawn_ms: Math.round(performance.now()),
        };
      });
      // Live updates (the page reads the route every 3 s): the longest main-thread task.
      const longest = await page.evaluate((ms) => new Promise((done) => {
        let max = 0, n = 0;
        new PerformanceObserver((l) => { for (const e of l.getEntries()) { max = Math.max(max, e.duration); n++; } }).observe({ type: "longtask" });
        setTimeout(() => done({ max, n }), ms);
      }), LIVE_S * 1000);
      const [js, json] = await page.evaluate(() => {
        const of = (suffix) => {
          const e = performance.getEntriesByType("resource").find((r) => r.name.endsWith(suffix));
          return e ? { transfer_bytes: e.transferSize, encoded_bytes: e.encodedBodySize, decoded_bytes: e.decodedBodySize } : null;
        };
        return [of("/assets/app.js"), of("/api/v1/applications")];
      });
      out = {
        rows: await page.locator("tr.app-row").count(),
        chips: await page.locator(".host-chip").count(),
        live_s: LIVE_S,
        long_tasks: longest.n,
        longest_task_ms: Math.round(longest.max),
        app_js: js,
        applications_json: json,
        timeline,
      };
    }
    await page.context().close();
  }
  const v = { width: vp.width, height: vp.height, loads_ms: loads, median_ms: pct(loads, 0.5), max_ms: Math.max(...loads), ...out };
  console.error(`Chromium ${v.width}x${v.height}: navigation to rows drawn median ${v.median_ms} ms, max ${v.max_ms} ms (${LOADS} loads); ${v.rows} rows, ${v.chips} chips; ${LIVE_S} s of live updates: ${v.long_tasks} long tasks, longest ${v.longest_task_ms} ms; app.js ${JSON.stringify(v.app_js)}; the route's JSON ${JSON.stringify(v.applications_json)}; last load ${JSON.stringify(v.timeline)}`);
  viewports.push(v);
}
await browser.close();
console.log(JSON.stringify({ rest, viewports }));
