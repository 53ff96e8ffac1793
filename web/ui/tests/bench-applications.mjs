// Applications page at a simulated fleet: REST latency of GET /api/v1/applications and the
// page's load and live updates in Chromium (BENCHMARKS.md, "Applications page").
//
//   node tests/bench-applications.mjs <base URL of a public read-only dashboard>
//
// CHROMIUM overrides /usr/bin/chromium.
import { createRequire } from "node:module";
const require = createRequire(new URL("../package.json", import.meta.url));
const { chromium } = require("playwright-core");
const base = process.argv[2];
const pct = (a, p) => a.slice().sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))];
// REST: 40 sequential GETs.
const times = [];
let size = 0, programs = 0, chips = 0;
for (let i = 0; i < 40; i++) {
  const t0 = performance.now();
  const r = await fetch(new URL("api/v1/applications", base));
  const text = await r.text();
  times.push(performance.now() - t0);
  size = text.length;
  const v = JSON.parse(text);
  programs = v.programs.length;
  chips = v.programs.reduce((n, p) => n + p.hosts.length, 0);
}
console.log(`GET /api/v1/applications: ${programs} programs, ${chips} program-host entries, ${(size / 1024).toFixed(0)} KiB; median ${pct(times, 0.5).toFixed(1)} ms, p95 ${pct(times, 0.95).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms (40 sequential calls)`);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
for (const vp of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
  const loads = [];
  for (let i = 0; i < 5; i++) {
    const page = await (await browser.newContext({ viewport: vp })).newPage();
    const t0 = Date.now();
    await page.goto(new URL("#/applications", base).toString());
    await page.waitForSelector("#applications-page[data-state=ready] tr.app-row", { timeout: 30000 });
    loads.push(Date.now() - t0);
    if (i === 4) {
      // 15 s of live updates (a read every 3 s): the longest main-thread task.
      const longest = await page.evaluate(() => new Promise((done) => {
        let max = 0, n = 0;
        new PerformanceObserver((l) => { for (const e of l.getEntries()) { max = Math.max(max, e.duration); n++; } }).observe({ type: "longtask" });
        setTimeout(() => done({ max, n }), 15000);
      }));
      const rows = await page.locator("tr.app-row").count();
      const shown = await page.locator(".host-chip").count();
      console.log(`Chromium ${vp.width}x${vp.height}: page ready (navigation to rows drawn) median ${pct(loads, 0.5)} ms, max ${Math.max(...loads)} ms (5 loads); ${rows} rows, ${shown} chips drawn; over 15 s of live updates: ${longest.n} long tasks, longest ${longest.max.toFixed(0)} ms`);
    }
    await page.context().close();
  }
}
await browser.close();
