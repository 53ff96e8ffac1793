#!/usr/bin/env node
// End-to-end latency of the home page, for `smon-bench e2e` (bench/src/e2e.rs), which starts
// the agents and the aggregator and then runs this script once. Uses Debian's chromium through
// playwright-core, with the flags of tests/browser.mjs; no browser is downloaded.
//
//   node tests/e2e-latency.mjs <url> <duration_s> <hosts>
//
// Opens the home page at <url>, waits until <hosts> rows are up and Socket.IO runs over
// WebSocket, then for <duration_s> seconds:
// - latency: for every change of a row's `data-sample-ms` (the agent's sample time, set by
//   src/pages/home.ts), Date.now() - sample_ms when a MutationObserver sees it. The agents,
//   the aggregator and the browser run on one machine, so they share one clock.
// - bytes: every Socket.IO frame the page receives, read through a CDP session
//   (`Network.webSocketFrameReceived`: payload plus the WebSocket frame header; long-polling
//   responses, if any, by `Network.loadingFinished` encodedDataLength, headers included).
// - where the time goes: each `overview_delta` frame carries `server_time_ms` (when the hub
//   built it), so each sample's latency splits into sample -> hub emit and emit -> DOM.
// - lost samples: the gaps between a host's consecutive samples, one interval each when none
//   was lost or overwritten on the way.
// - the page's main-thread cost: CDP `Performance.getMetrics` (ScriptDuration, TaskDuration,
//   LayoutDuration, RecalcStyleDuration) at the start and the end of the window.
//
// Prints one JSON object on stdout: { samples, p50_ms, p99_ms, max_ms, mean_ms, emit_p50_ms,
// emit_p99_ms, deliver_p50_ms, deliver_p99_ms, matched, gap_p50_ms, gap_max_ms, long_gaps,
// bytes_per_s, payload_bytes_per_s, frames_per_s, delta_frames, mean_delta_bytes,
// polling_bytes, dom_updates, script_ms_per_s, task_ms_per_s, layout_ms_per_s,
// style_ms_per_s, window_s, hosts, transport }. Progress and errors go to stderr. Exit status:
// 0 on success, 1 on failure, 2 on bad usage. CHROMIUM overrides /usr/bin/chromium.
import { chromium } from "playwright-core";

const STEP_MS = 20_000;

function usage(msg) {
  console.error(`e2e-latency.mjs: ${msg}\nusage: e2e-latency.mjs <url> <duration_s> <hosts>`);
  process.exit(2);
}

/** Nearest-rank percentile `p` (0-100] of a sorted, non-empty array (as bench/src/stats.rs). */
function percentile(sorted, p) {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1];
}

/** Bytes of a server-to-client WebSocket frame carrying `n` payload bytes (unmasked header). */
function wsFrameBytes(n) {
  return n + (n < 126 ? 2 : n < 65_536 ? 4 : 10);
}

const [url, durationArg, hostsArg] = process.argv.slice(2);
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

async function measure(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));

  // CDP first, so that the WebSocket opened by the page is seen from its start.
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Performance.enable");
  let counting = false;
  const ws = { frames: 0, bytes: 0, payload: 0, deltaFrames: 0, deltaBytes: 0 };
  let pollingBytes = 0;
  const pollingRequests = new Set();
  /** `${id}@${sample_ms}` -> server_time_ms of the overview_delta that carried it. */
  const emitted = new Map();
  /** Row position in the full overview -> host id (deltas name rows by position). */
  let idAt = [];
  cdp.on("Network.webSocketFrameReceived", ({ response }) => {
    const text = response.payloadData ?? "";
    if (response.opcode === 1 && text.startsWith('42["overview",')) {
      try {
        // A large fleet's overview comes in parts: `offset` places this one's rows.
        const part = JSON.parse(text.slice(2))[1];
        part.hosts.forEach((h, k) => (idAt[(part.offset ?? 0) + k] = h.id));
      } catch (e) {
        console.error(`cannot parse an overview frame: ${e.message}`);
      }
    }
    if (response.opcode === 1 && text.startsWith('42["overview_delta"') && text.includes('"layout":')) {
      // Hosts added or removed: rows removed by position, then new rows inserted (PROTOCOL.md).
      try {
        const l = JSON.parse(text.slice(2))[1].layout;
        if (l) {
          for (const i of [...l.removed].reverse()) idAt.splice(i, 1);
          for (const a of l.added) idAt.splice(a.i, 0, a.row.id);
        }
      } catch (e) {
        console.error(`cannot parse an overview_delta frame: ${e.message}`);
      }
    }
    if (!counting) return;
    const n = response.opcode === 2 ? Buffer.from(text, "base64").length : Buffer.byteLength(text, "utf8");
    ws.frames++;
    ws.payload += n;
    ws.bytes += wsFrameBytes(n);
    // Socket.IO event packets are "42" + JSON [event, data].
    if (response.opcode === 1 && text.startsWith('42["overview_delta"')) {
      ws.deltaFrames++;
      ws.deltaBytes += n;
      try {
        const [, data] = JSON.parse(text.slice(2));
        for (const h of data.hosts ?? []) {
          // `t`: the sample time relative to the frame's server_time_ms (PROTOCOL.md).
          if (typeof h.t === "number" && idAt[h.i] !== undefined) emitted.set(`${idAt[h.i]}@${data.server_time_ms + h.t}`, data.server_time_ms);
        }
      } catch (e) {
        console.error(`cannot parse an overview_delta frame: ${e.message}`);
      }
    }
  });
  cdp.on("Network.requestWillBeSent", ({ requestId, request }) => {
    if (request.url.includes("socket.io/") && request.url.includes("transport=polling")) pollingRequests.add(requestId);
  });
  cdp.on("Network.loadingFinished", ({ requestId, encodedDataLength }) => {
    if (counting && pollingRequests.has(requestId)) pollingBytes += encodedDataLength;
  });

  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForSelector('#conn[data-state="connected"]', { state: "attached" });
  await page.waitForFunction((n) => document.querySelectorAll('tr[data-host-id][data-status="up"]').length >= n, hosts);
  // Socket.IO starts on long-polling and upgrades; measure the steady state.
  await page.waitForSelector('#conn[data-transport="websocket"]', { state: "attached" });

  await page.evaluate(() => {
    const w = window;
    w.__smonE2e = { samples: [], mutations: 0 };
    const obs = new MutationObserver((records) => {
      const now = Date.now();
      w.__smonE2e.mutations += records.length;
      for (const r of records) {
        if (r.type !== "attributes" || r.attributeName !== "data-sample-ms") continue;
        const el = r.target;
        const v = el.getAttribute("data-sample-ms");
        if (v === null || v === r.oldValue) continue;
        const sample = Number(v);
        w.__smonE2e.samples.push({ id: el.getAttribute("data-host-id"), sample, at: now });
      }
    });
    obs.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true, attributeOldValue: true });
    w.__smonE2eStop = () => obs.disconnect();
  });
  const metrics = async () => {
    const { metrics: m } = await cdp.send("Performance.getMetrics");
    const get = (name) => m.find((x) => x.name === name)?.value ?? 0;
    return { script: get("ScriptDuration"), task: get("TaskDuration"), layout: get("LayoutDuration"), style: get("RecalcStyleDuration") };
  };
  const m0 = await metrics();
  counting = true;
  const t0 = Date.now();
  console.error(`Measuring for ${durationS} s.`);
  await page.waitForTimeout(durationS * 1000);
  counting = false;
  const windowS = (Date.now() - t0) / 1000;
  const m1 = await metrics();
  const { samples, mutations } = await page.evaluate(() => {
    window.__smonE2eStop();
    return window.__smonE2e;
  });
  const transport = await page.getAttribute("#conn", "data-transport");
  await context.close();

  if (samples.length === 0) throw new Error(`no row's data-sample-ms changed in ${windowS} s`);
  const lat = samples.map((s) => s.at - s.sample).sort((a, b) => a - b);
  const pct = (v, p) => (v.length ? percentile(v, p) : null);
  const emit = [];
  const deliver = [];
  for (const s of samples) {
    const server = emitted.get(`${s.id}@${s.sample}`);
    if (server === undefined) continue;
    emit.push(server - s.sample);
    deliver.push(s.at - server);
  }
  emit.sort((a, b) => a - b);
  deliver.sort((a, b) => a - b);
  // Gaps between a host's consecutive samples in the DOM: one interval each when no sample
  // was lost or overwritten on the way.
  const byHost = new Map();
  for (const s of samples) byHost.set(s.id, [...(byHost.get(s.id) ?? []), s.sample]);
  const gaps = [];
  for (const list of byHost.values()) for (let i = 1; i < list.length; i++) gaps.push(list[i] - list[i - 1]);
  gaps.sort((a, b) => a - b);
  const gapP50 = pct(gaps, 50);
  return {
    samples: lat.length,
    p50_ms: percentile(lat, 50),
    p99_ms: percentile(lat, 99),
    max_ms: lat[lat.length - 1],
    mean_ms: lat.reduce((a, b) => a + b, 0) / lat.length,
    emit_p50_ms: pct(emit, 50),
    emit_p99_ms: pct(emit, 99),
    deliver_p50_ms: pct(deliver, 50),
    deliver_p99_ms: pct(deliver, 99),
    matched: emit.length,
    gap_p50_ms: gapP50,
    gap_max_ms: gaps.length ? gaps[gaps.length - 1] : null,
    long_gaps: gapP50 === null ? 0 : gaps.filter((g) => g > 1.5 * gapP50).length,
    bytes_per_s: (ws.bytes + pollingBytes) / windowS,
    payload_bytes_per_s: ws.payload / windowS,
    frames_per_s: ws.frames / windowS,
    delta_frames: ws.deltaFrames,
    mean_delta_bytes: ws.deltaFrames ? ws.deltaBytes / ws.deltaFrames : 0,
    polling_bytes: pollingBytes,
    dom_updates: mutations,
    script_ms_per_s: ((m1.script - m0.script) * 1000) / windowS,
    task_ms_per_s: ((m1.task - m0.task) * 1000) / windowS,
    layout_ms_per_s: ((m1.layout - m0.layout) * 1000) / windowS,
    style_ms_per_s: ((m1.style - m0.style) * 1000) / windowS,
    window_s: windowS,
    hosts,
    transport,
  };
}

let browser;
let code = 0;
// A hard stop, in case something hangs outside the per-step timeouts.
const watchdog = setTimeout(() => {
  console.error(`e2e-latency.mjs: gave up after ${durationS + 90} s`);
  process.exit(1);
}, (durationS + 90) * 1000);
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout: STEP_MS,
  });
  console.log(JSON.stringify(await measure(browser)));
} catch (e) {
  code = 1;
  console.error(`e2e-latency.mjs: ${e.stack ?? e}`);
} finally {
  await browser?.close().catch(() => undefined);
  clearTimeout(watchdog);
}
process.exit(code);
