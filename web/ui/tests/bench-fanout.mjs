#!/usr/bin/env node
// Browser fan-out, for `smon-bench fanout`, `scale` and `soak` (bench/src/fleet.rs): many
// Socket.IO clients (socket.io-client, the library the UI uses) on the overview room of one
// aggregator, all in this one Node.js process.
//
//   node tests/bench-fanout.mjs <url> <clients> <duration_s> [warmup_s] [progress_s]
//
// Connects <clients> sockets over WebSocket (50 at a time), subscribes each to the overview,
// waits [warmup_s] seconds (default 5), then measures for <duration_s> seconds:
// - delivery latency of every `overview_delta` to every client: Date.now() when the client has
//   decoded the frame minus the frame's `server_time_ms` (when the hub built it). The
//   aggregator and this script run on one machine, on one clock. Kept in 1 ms buckets.
// - bytes per client: what its TCP socket read (`bytesRead`: WebSocket frames with their
//   headers; no TCP/IP headers), and the Socket.IO payload characters.
// - continuity: per client, the longest gap between two deltas and the time since the last
//   one at the end (a client that stopped receiving shows both), disconnects, reconnects.
//
// To keep 1,000 clients in one process from measuring their own JSON parsing, the socket.io
// parser is the library's own with one change: `overview` and `overview_delta` frames are
// read only up to `server_time_ms` (the first key the hub writes), not parsed whole. Every
// other packet (connect, acks, hello) goes through the stock decoder. FULL_PARSE=1 turns that
// off (every frame parsed, as a browser does).
//
// Prints, on stdout, one line `{"event":"window_start","t_ms":n}` when the window opens, one
// `{"event":"window_end","t_ms":n}` when it closes, then the JSON summary (one line). Progress
// goes to stderr every [progress_s] seconds (default 10). Exit status 0, 1 on failure, 2 on
// bad usage.
import * as parser from "socket.io-parser";
import { io } from "socket.io-client";

const BATCH = 50;
const STEP_MS = 30_000;

function usage(msg) {
  console.error(`bench-fanout.mjs: ${msg}\nusage: bench-fanout.mjs <url> <clients> <duration_s> [warmup_s] [progress_s]`);
  process.exit(2);
}

const [url, clientsArg, durationArg, warmupArg = "5", progressArg = "10"] = process.argv.slice(2);
if (!url) usage("no url given");
let base;
try {
  base = new URL(url);
} catch {
  usage(`'${url}' is not a URL`);
}
const clients = Number(clientsArg);
if (!Number.isInteger(clients) || clients < 1) usage(`<clients> must be a whole number above 0, not '${clientsArg}'`);
const durationS = Number(durationArg);
if (!Number.isFinite(durationS) || durationS <= 0) usage(`<duration_s> must be a positive number, not '${durationArg}'`);
const warmupS = Number(warmupArg);
if (!Number.isFinite(warmupS) || warmupS < 0) usage(`[warmup_s] must be a number, not '${warmupArg}'`);
const progressS = Number(progressArg);
if (!Number.isFinite(progressS) || progressS <= 0) usage(`[progress_s] must be a positive number, not '${progressArg}'`);

const HEAD = /^2\["(overview(?:_delta)?)",\{"server_time_ms":(\d+)/;

/** The stock decoder, except that overview frames are read only up to `server_time_ms`. */
class LightDecoder extends parser.Decoder {
  add(obj) {
    if (typeof obj === "string" && obj.startsWith('2["overview')) {
      const m = HEAD.exec(obj.slice(0, 80));
      if (m) {
        this.emitReserved("decoded", { type: parser.PacketType.EVENT, nsp: "/", data: [m[1], { server_time_ms: Number(m[2]), chars: obj.length }] });
        return;
      }
    }
    super.add(obj);
  }
}
const lightParser = { protocol: parser.protocol, PacketType: parser.PacketType, Encoder: parser.Encoder, Decoder: LightDecoder };

/** Latencies in 1 ms buckets, 0 to 120 s (the last bucket holds anything slower). */
const MAX_MS = 120_000;
const hist = new Uint32Array(MAX_MS + 1);
let histN = 0;
let histSum = 0;
let histMax = 0;
function record(ms) {
  const v = Math.min(Math.max(Math.round(ms), 0), MAX_MS);
  hist[v]++;
  histN++;
  histSum += ms;
  histMax = Math.max(histMax, ms);
}
/** Nearest-rank percentile `p` (0-100] of the histogram (as bench/src/stats.rs). */
function percentile(p) {
  if (histN === 0) return null;
  const rank = Math.min(Math.max(Math.ceil((p / 100) * histN), 1), histN);
  let seen = 0;
  for (let i = 0; i <= MAX_MS; i++) {
    seen += hist[i];
    if (seen >= rank) return i;
  }
  return MAX_MS;
}

let measuring = false;
let intervalMs = 1000;
const state = [];

function wireBytes(c) {
  const ws = c.socket.io.engine?.transport?.ws;
  return ws?._socket?.bytesRead ?? 0;
}

function open(i) {
  const c = { i, frames: 0, chars: 0, lastAt: 0, maxGap: 0, disconnects: 0, connects: 0, errors: 0, subscribed: false, bytes0: 0, bytesDone: 0, socket: null };
  const socket = io(base.origin, {
    path: `${base.pathname.replace(/\/?$/, "/")}socket.io/`,
    transports: ["websocket"],
    forceNew: true,
    reconnectionDelay: 500,
    timeout: STEP_MS,
    ...(process.env.FULL_PARSE === "1" ? {} : { parser: lightParser }),
  });
  c.socket = socket;
  socket.on("connect", () => {
    c.connects++;
    socket.emit("subscribe", { room: "overview" }, (ack) => {
      if (ack && ack.ok) c.subscribed = true;
      else console.error(`client ${i}: subscribe refused: ${JSON.stringify(ack)}`);
    });
  });
  socket.on("hello", (h) => {
    if (h && Number.isFinite(h.interval_ms)) intervalMs = h.interval_ms;
  });
  socket.on("connect_error", (e) => {
    c.errors++;
    if (c.errors <= 1) console.error(`client ${i}: connect error: ${e.message}`);
  });
  socket.on("disconnect", (reason) => {
    // The bytes its old WebSocket read are kept; a new one counts from zero.
    if (measuring) c.bytesDone += wireBytes(c) - c.bytes0;
    c.bytes0 = 0;
    c.subscribed = false;
    if (measuring) {
      c.disconnects++;
      console.error(`client ${i}: disconnected (${reason})`);
    }
  });
  socket.on("overview_delta", (d) => {
    if (!measuring) return;
    const now = Date.now();
    record(now - d.server_time_ms);
    c.frames++;
    c.chars += d.chars ?? 0;
    if (c.lastAt) c.maxGap = Math.max(c.maxGap, now - c.lastAt);
    c.lastAt = now;
  });
  state.push(c);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, what) {
  const until = Date.now() + STEP_MS;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function main() {
  console.error(`Connecting ${clients} clients to ${url}.`);
  for (let i = 0; i < clients; i += BATCH) {
    for (let j = i; j < Math.min(i + BATCH, clients); j++) open(j);
    await waitFor(() => state.every((c) => c.subscribed), `${state.length} clients to subscribe`);
  }
  console.error(`${clients} clients subscribed; warming up for ${warmupS} s.`);
  await sleep(warmupS * 1000);

  for (const c of state) c.bytes0 = wireBytes(c);
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  measuring = true;
  console.log(JSON.stringify({ event: "window_start", t_ms: t0 }));
  const end = t0 + durationS * 1000;
  let lastProgress = t0;
  let lastFrames = 0;
  while (Date.now() < end) {
    await sleep(Math.min(250, Math.max(end - Date.now(), 0)));
    const now = Date.now();
    if (now - lastProgress >= progressS * 1000) {
      const frames = state.reduce((a, c) => a + c.frames, 0);
      const connected = state.filter((c) => c.socket.connected).length;
      const silent = state.filter((c) => now - (c.lastAt || t0) > 5 * intervalMs).length;
      console.error(
        `t=${((now - t0) / 1000).toFixed(0)} s: ${connected}/${clients} connected, ${silent} silent for > ${(5 * intervalMs) / 1000} s, ` +
          `${((frames - lastFrames) / ((now - lastProgress) / 1000)).toFixed(1)} deltas/s in all, p50 ${percentile(50)} ms, p99 ${percentile(99)} ms`,
      );
      lastProgress = now;
      lastFrames = frames;
    }
  }
  measuring = false;
  const t1 = Date.now();
  console.log(JSON.stringify({ event: "window_end", t_ms: t1 }));
  const cpu1 = process.cpuUsage(cpu0);
  const windowS = (t1 - t0) / 1000;
  for (const c of state) c.bytesDone += wireBytes(c) - c.bytes0;
  const connectedEnd = state.filter((c) => c.socket.connected).length;
  const frames = state.map((c) => c.frames);
  const sum = (v) => v.reduce((a, b) => a + b, 0);
  // A client "stopped receiving" when its last delta is more than 5 intervals old at the end.
  const stalled = state.filter((c) => !c.lastAt || t1 - c.lastAt > 5 * intervalMs).length;
  const summary = {
    clients,
    connected_end: connectedEnd,
    disconnects: sum(state.map((c) => c.disconnects)),
    reconnects: sum(state.map((c) => Math.max(c.connects - 1, 0))),
    connect_errors: sum(state.map((c) => c.errors)),
    window_s: windowS,
    interval_ms: intervalMs,
    deltas: histN,
    deltas_per_client_per_s: histN / clients / windowS,
    min_deltas_per_client: Math.min(...frames),
    max_deltas_per_client: Math.max(...frames),
    p50_ms: percentile(50),
    p99_ms: percentile(99),
    max_ms: histN ? histMax : null,
    mean_ms: histN ? histSum / histN : null,
    bytes_per_s_per_client: sum(state.map((c) => c.bytesDone)) / clients / windowS,
    payload_chars_per_s_per_client: sum(state.map((c) => c.chars)) / clients / windowS,
    mean_delta_chars: histN ? sum(state.map((c) => c.chars)) / histN : 0,
    max_gap_ms: Math.max(...state.map((c) => c.maxGap)),
    stalled_clients: stalled,
    client_cpu_percent: ((cpu1.user + cpu1.system) / 1000 / (windowS * 1000)) * 100,
    full_parse: process.env.FULL_PARSE === "1",
  };
  for (const c of state) c.socket.close();
  console.log(JSON.stringify(summary));
}

const watchdog = setTimeout(
  () => {
    console.error(`bench-fanout.mjs: gave up after ${durationS + warmupS + 300} s`);
    process.exit(1);
  },
  (durationS + warmupS + 300) * 1000,
);
let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  console.error(`bench-fanout.mjs: ${e.stack ?? e}`);
}
clearTimeout(watchdog);
process.exit(code);
