// A Socket.IO client (socket.io-client, the library the UI uses) on the overview room of the
// aggregator at argv[2]: it keeps the overview's host ids as the page would (full parts, then
// deltas with layout changes) and prints them as one JSON line each time they change.
// Used by live.rs; SMON_UI_DIR names web/ui, where socket.io-client is installed.
import { createRequire } from "node:module";

const require = createRequire(`${process.env.SMON_UI_DIR}/package.json`);
const { io } = require("socket.io-client");

const url = new URL(process.argv[2]);
const path = `${url.pathname.replace(/\/$/, "")}/socket.io/`;
const socket = io(url.origin, { path, transports: ["websocket"], reconnection: false });
let ids = [];
let layout = 0;

const show = () => console.log(JSON.stringify({ ids, layout }));

socket.on("connect", () => socket.emit("subscribe", { room: "overview" }, () => undefined));
socket.on("connect_error", (e) => {
  console.error(`connect_error: ${e.message}`);
  process.exit(2);
});
socket.on("disconnect", () => process.exit(3));
socket.on("overview", (o) => {
  if (o.offset === 0) ids = new Array(o.total).fill(null);
  o.hosts.forEach((h, k) => {
    ids[o.offset + k] = h.id;
  });
  layout = o.layout;
  if (!ids.includes(null)) show();
});
socket.on("overview_delta", (d) => {
  const l = d.layout;
  if (!l) return;
  if (l.gen !== layout + 1) {
    console.error(`layout gap: have ${layout}, got ${l.gen}`);
    process.exit(4);
  }
  const gone = new Set(l.removed);
  ids = ids.filter((_, i) => !gone.has(i));
  for (const a of l.added) ids.splice(a.i, 0, a.row.id);
  layout = l.gen;
  show();
});
