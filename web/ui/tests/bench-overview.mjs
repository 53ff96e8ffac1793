#!/usr/bin/env node
// The overview page under live updates, for `smon-bench overview` (bench/src/suite.rs): Debian
// chromium through playwright-core (flags as tests/browser.mjs; no browser is downloaded).
//
//   node tests/bench-overview.mjs <url> <duration_s> <hosts> [warmup_s]
//
// Opens the home page at <url>, waits until <hosts> rows are up and Socket.IO runs over
// WebSocket, waits [warmup_s] (default 5), then for <duration_s> seconds:
// - main-thread time per live update: CDP `Performance.getMetrics` (ScriptDuration,
//   TaskDuration, LayoutDuration, RecalcStyleDuration) read half an interval after each
//   `overview_delta` frame arrives (seen with CDP `Network.webSocketFrameReceived`). The
//   difference between two reads is the work of one update (its frame handling, DOM changes,
//   and any timers in that interval). Reads that span more than one frame are left out.
// - responsiveness: a real input every 200 ms (CDP mouse moves over the table); the page
//   records `performance.now() - event.timeStamp` in a `pointermove` listener (input delay),
//   the gaps between animation frames, and long tasks (PerformanceObserver `longtask`).
//
// Prints, on stdout, `{"event":"window_start","t_ms":n}`, `{"event":"window_end","t_ms":n}`,
// then one JSON summary line. Progress and errors on stderr. Exit status 0, 1 on failure, 2 on
// bad usage. CHROMIUM overrides /usr/bin/chromium.
import { chromium } from "playwright-core";

const STEP_MS = 120_000;
const INPUT_EVERY_MS = 200;

function usage(msg) {
  console.error(`bench-overview.mjs: ${msg}\nusage: bench-overview.mjs <url> <duration_s> <hosts> [warmup_s]`);
  process.exit(2);
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1];
}
const sorted = (v) => [...v].sort((a, b) => a - b);

const [url, durationArg, hostsArg, warmupArg = "5"] = process.argv.slice(2);
if (!url) usage("no url given");
try {
  new URL(url);
} catch {
  usage(`'${url}' is not a URL`);
}
const durationS = Number(durationArg);
if (!Number.isFinite(durationS) || durationS <= 0) usage(`<duration_s> must be a positive number, not '${durationArg}'`);
const hosts = Number(hostsArg);
if (!Number.isInteger(hosts) || hosts < 1) usage(`<hosts> must be a whole number above 0, not '${hostsArg}'`);
const warmupS = Number(warmupArg);
if (!Number.isFinite(warmupS) || warmupS < 0) usage(`[warmup_s] must be a number, not '${warmupArg}'`);

async function measure(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Performance.enable");

  let intervalMs = 1000;
  let frames = 0;
  let frameBytes = 0;
  let onFrame = null;
  cdp.on("Network.webSocketFrameReceived", ({ response }) => {
    const text = response.payloadData ?? "";
    if (response.opcode === 1 && text.startsWith('42["hello"')) {
      try {
        intervalMs = JSON.parse(text.slice(2))[1].interval_ms ?? intervalMs;
      } catch {}
    }
    if (response.opcode === 1 && text.startsWith('42["overview_delta"')) {
      frames++;
      frameBytes += text.length;
      onFrame?.();
    }
  });

  console.error(`Loading ${url} and waiting for ${hosts} hosts up.`);
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForSelector('#conn[data-state="connected"]', { state: "attached" });
  await page.waitForFunction((n) => document.querySelectorAll('tr[data-host-id][data-status="up"]').length >= n, hosts, { polling: 500 });
  await page.waitForSelector('#conn[data-transport="websocket"]', { state: "attached" });
  const rows = await page.evaluate(() => document.querySelectorAll("tr[data-host-id]").length);
  console.error(`${rows} rows; warming up for ${warmupS} s.`);
  await page.waitForTimeout(warmupS * 1000);

  await page.evaluate(() => {
    const w = window;
    const r = (w.__smonBench = { inputDelay: [], rafGaps: [], longTasks: [], stop: false });
    document.addEventListener("pointermove", (e) => r.inputDelay.push(performance.now() - e.timeStamp), { passive: true });
    let last = performance.now();
    const raf = (t) => {
      r.rafGaps.push(t - last);
      last = t;
      if (!r.stop) requestAnimationFrame(raf);
    };
    requestAnimationFrame(raf);
    try {
      const obs = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) r.longTasks.push(e.duration);
      });
      obs.observe({ type: "longtask", buffered: false });
      w.__smonBenchObs = obs;
    } catch {}
  });

  const metrics = async () => {
    const { metrics: m } = await cdp.send("Performance.getMetrics");
    const get = (name) => m.find((x) => x.name === name)?.value ?? 0;
    return { script: get("ScriptDuration"), task: get("TaskDuration"), layout: get("LayoutDuration"), style: get("RecalcStyleDuration"), frames };
  };

  // One read half an interval after each frame; consecutive reads one frame apart give one
  // update's cost.
  const reads = [];
  let pending = null;
  onFrame = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      reads.push(await metrics());
    }, intervalMs / 2);
  };

  const box = await page.locator("table").first().boundingBox();
  const t0 = Date.now();
  console.log(JSON.stringify({ event: "window_start", t_ms: t0 }));
  const frames0 = frames;
  const m0 = await metrics();
  let flip = false;
  while (Date.now() - t0 < durationS * 1000) {
    flip = !flip;
    const x = (box?.x ?? 100) + (flip ? 40 : 240);
    const y = (box?.y ?? 100) + 60 + (flip ? 0 : 120);
    await page.mouse.move(x, y);
    await page.waitForTimeout(INPUT_EVERY_MS);
  }
  onFrame = null;
  if (pending) clearTimeout(pending);
  const m1 = await metrics();
  const t1 = Date.now();
  console.log(JSON.stringify({ event: "window_end", t_ms: t1 }));
  const windowS = (t1 - t0) / 1000;
  const probe = await page.evaluate(() => {
    const r = window.__smonBench;
    r.stop = true;
    window.__smonBenchObs?.disconnect();
    return { inputDelay: r.inputDelay, rafGaps: r.rafGaps, longTasks: r.longTasks };
  });
  await context.close();

  const per = { script: [], task: [], layoutStyle: [] };
  for (let i = 1; i < reads.length; i++) {
    const a = reads[i - 1];
    const b = reads[i];
    if (b.frames - a.frames !== 1) continue;
    per.script.push((b.script - a.script) * 1000);
    per.task.push((b.task - a.task) * 1000);
    per.layoutStyle.push((b.layout - a.layout + b.style - a.style) * 1000);
  }
  const s = sorted(per.script);
  const t = sorted(per.task);
  const ls = sorted(per.layoutStyle);
  const input = sorted(probe.inputDelay);
  const raf = sorted(probe.rafGaps);
  const nFrames = frames - frames0;
  return {
    hosts,
    rows,
    window_s: windowS,
    interval_ms: intervalMs,
    updates: nFrames,
    updates_measured: s.length,
    mean_delta_chars: nFrames ? frameBytes / Math.max(frames, 1) : 0,
    script_p50_ms: percentile(s, 50),
    script_p99_ms: percentile(s, 99),
    script_max_ms: s.length ? s[s.length - 1] : null,
    task_p50_ms: percentile(t, 50),
    task_p99_ms: percentile(t, 99),
    layout_style_p50_ms: percentile(ls, 50),
    script_ms_per_s: ((m1.script - m0.script) * 1000) / windowS,
    task_ms_per_s: ((m1.task - m0.task) * 1000) / windowS,
    inputs: input.length,
    input_delay_p50_ms: percentile(input, 50),
    input_delay_p99_ms: percentile(input, 99),
    input_delay_max_ms: input.length ? input[input.length - 1] : null,
    raf_gap_p50_ms: percentile(raf, 50),
    raf_gap_p99_ms: percentile(raf, 99),
    raf_gap_max_ms: raf.length ? raf[raf.length - 1] : null,
    long_tasks: probe.longTasks.length,
    long_task_max_ms: probe.longTasks.length ? Math.max(...probe.longTasks) : 0,
  };
}

let browser;
let code = 0;
const watchdog = setTimeout(
  () => {
    console.error(`bench-overview.mjs: gave up after ${durationS + warmupS + 240} s`);
    process.exit(1);
  },
  (durationS + warmupS + 240) * 1000,
);
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout: STEP_MS,
  });
  console.log(JSON.stringify(await measure(browser)));
} catch (e) {
  code = 1;
  console.error(`bench-overview.mjs: ${e.stack ?? e}`);
} finally {
  await browser?.close().catch(() => undefined);
  clearTimeout(watchdog);
}
process.exit(code);
