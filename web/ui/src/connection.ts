/**
 * The Socket.IO connection to the server (web/PROTOCOL.md).
 *
 * - The Socket.IO path is derived from the page's directory, so the UI works at `/` and under a
 *   prefix such as `/smon/`: `io({ path: base + "socket.io/" })`.
 * - It reconnects forever with backoff (socket.io's defaults, capped at 10 s), also after the
 *   server closed the socket or refused the handshake, where socket.io itself gives up.
 * - On every (re)connect it subscribes again to the current room; the server answers with the
 *   full state, which replaces what the page shows (resync).
 * - It tracks the server's clock (`server_time_ms` of each frame) so that ages are computed
 *   against the server, not the browser's clock, and when the last frame arrived, so that the
 *   page can flag data that stopped updating.
 * - The indicator (`#conn`) shows ONE state, the same as the stale banner's: `connected`
 *   ("Live") only while frames arrive; `stale` while the socket is up but no frame came for
 *   3 intervals (a frozen server, a stalled proxy); `reconnecting` / `disconnected` otherwise.
 *   The page decides staleness (`setStale`), every second and on every frame.
 * - `?transport=polling` or `?transport=websocket` in the page URL forces one transport (tests).
 */
import { io, type Socket } from "socket.io-client";
import { setAttr, setText, h } from "./dom";
import type { Ack, ClientEvents, Hello, Room, ServerEvents } from "./types";

export type ConnState = "connected" | "reconnecting" | "disconnected";

/** What the indicator shows: the socket's state, or `stale` while it is up without frames. */
export type ShownState = ConnState | "stale";

type FrameEvents = Exclude<keyof ServerEvents, "hello">;
type Handler<E extends keyof ServerEvents> = ServerEvents[E];

/** The directory of the page: "/" or "/smon/". */
export function basePath(pathname = location.pathname): string {
  const dir = pathname.replace(/[^/]*$/, "");
  return dir.startsWith("/") ? dir : `/${dir}`;
}

function forcedTransports(): ("polling" | "websocket")[] | undefined {
  const t = new URLSearchParams(location.search).get("transport");
  return t === "polling" || t === "websocket" ? [t] : undefined;
}

const ACK_TIMEOUT_MS = 10_000;
const SAME_ROOM = (a: Room | null, b: Room | null) =>
  a !== null && b !== null && a.room === b.room && (a.room !== "host" || (b.room === "host" && a.id === b.id));

export class Connection {
  readonly socket: Socket<ServerEvents, ClientEvents>;
  /** The indicator element, `#conn`, with `data-state`. */
  readonly indicator: HTMLElement;
  hello: Hello | null = null;
  state: ConnState = "disconnected";
  /** Ms to add to `Date.now()` to get the server's time. */
  private clockOffset = 0;
  /** `performance.now()` when the last data frame for the current room arrived (null: none yet). */
  private lastFrameAt: number | null = null;
  private room: Room | null = null;
  private onAck: ((a: Ack) => void) | null = null;
  private attempt = 0;
  private retryTimer: number | undefined;
  private readonly label: HTMLElement;
  private readonly listeners: { [E in keyof ServerEvents]?: Set<Handler<E>> } = {};
  private readonly stateListeners = new Set<(s: ConnState) => void>();
  private readonly frameListeners = new Set<() => void>();
  /** The socket is up but frames stopped (set by the page, see `setStale`). */
  private stale = false;
  /** Label and tooltip of the socket state, shown unless stale. */
  private stateLabel = "Connecting…";
  private stateWhy: string | undefined;

  constructor() {
    this.label = h("span", { class: "conn-label" }, "Connecting…");
    this.indicator = h(
      "span",
      { id: "conn", class: "conn", "data-state": "disconnected", role: "status", "aria-live": "polite" },
      h("i", { class: "dot", "aria-hidden": "true" }),
      this.label,
    );
    const transports = forcedTransports();
    this.socket = io({
      path: `${basePath()}socket.io/`,
      reconnectionDelayMax: 10_000,
      ...(transports ? { transports, upgrade: false } : {}),
    });
    this.wire();
  }

  private wire(): void {
    const s = this.socket;
    s.on("connect", () => {
      this.attempt = 0;
      this.setState("connected");
      this.trackTransport();
      this.subscribe();
    });
    s.on("disconnect", (reason) => {
      this.setState("disconnected", `Disconnected (${reason})`);
      // After the server closed the socket, or the client did, socket.io does not reconnect by
      // itself: do it, the data must never silently stop.
      if (!s.active) this.retryLater();
    });
    s.on("connect_error", (err) => {
      // No session (never logged in, logged out elsewhere, or expired): to the login page. The
      // server refuses the handshake itself with 401 (seen as the polling error's status), or,
      // when the session ended between handshake and connect, the connect packet.
      const status = (err as { description?: unknown }).description;
      if (err.message === "login required" || status === 401) {
        location.replace(`${basePath()}login`);
        return;
      }
      // A WebSocket handshake refused with 401 gives no status: ask the server.
      if ((err as { type?: unknown }).type === "TransportError") this.checkSession();
      if (!s.active) {
        // The handshake was refused (e.g. a middleware said no): socket.io gives up here.
        this.setState("disconnected", `Refused: ${err.message}`);
        this.retryLater();
      } else {
        this.setState("reconnecting", undefined, err.message);
      }
    });
    s.io.on("reconnect_attempt", (n) => {
      this.attempt = n;
      this.setState("reconnecting");
    });
    s.on("hello", (m) => {
      this.hello = m;
      this.clock(m.server_time_ms);
      this.emitLocal("hello", m);
    });
    const frames: FrameEvents[] = ["overview", "overview_delta", "host", "host_update", "host_removed"];
    for (const ev of frames) {
      s.on(ev, (m: { server_time_ms: number }) => {
        this.clock(m.server_time_ms);
        this.lastFrameAt = performance.now();
        this.emitLocal(ev, m as never);
        for (const l of this.frameListeners) l();
      });
    }
  }

  /** Goes to the login page when the server says this page has no session (any more). */
  private checkSession(): void {
    fetch(`${basePath()}api/v1/me`, { credentials: "same-origin" }).then(
      (r) => {
        if (r.status === 401) location.replace(`${basePath()}login`);
      },
      () => undefined,
    );
  }

  /** Reconnects after a delay that grows like socket.io's own backoff. */
  private retryLater(): void {
    window.clearTimeout(this.retryTimer);
    this.attempt++;
    const delay = Math.min(10_000, 1000 * 2 ** Math.min(this.attempt - 1, 4)) * (0.5 + Math.random());
    this.retryTimer = window.setTimeout(() => {
      if (!this.socket.connected) {
        this.setState("reconnecting");
        this.socket.connect();
      }
    }, delay);
  }

  private trackTransport(): void {
    const engine = this.socket.io.engine;
    setAttr(this.indicator, "data-transport", engine.transport.name);
    engine.once("upgrade", (t: { name: string }) => setAttr(this.indicator, "data-transport", t.name));
  }

  private clock(serverMs: number): void {
    if (Number.isFinite(serverMs)) this.clockOffset = serverMs - Date.now();
  }

  private setState(state: ConnState, text?: string, why?: string): void {
    this.state = state;
    this.stateLabel =
      text ??
      (state === "connected"
        ? "Live"
        : state === "reconnecting"
          ? `Reconnecting${this.attempt > 0 ? ` (attempt ${this.attempt})` : "…"}`
          : "Disconnected");
    this.stateWhy = why;
    this.paintIndicator();
    for (const l of this.stateListeners) l(state);
  }

  /**
   * Marks the data stale (no frame for too long while the socket is up) or fresh again: the
   * indicator then says so instead of "Live". `since` is the time without frames, for the
   * tooltip.
   */
  setStale(stale: boolean, why = ""): void {
    if (stale === this.stale && (!stale || why === this.stateWhy)) return;
    this.stale = stale;
    if (stale) this.stateWhy = why;
    else if (this.state === "connected") this.stateWhy = undefined;
    this.paintIndicator();
  }

  /** What the indicator shows now. */
  shown(): ShownState {
    return this.state === "connected" && this.stale ? "stale" : this.state;
  }

  private paintIndicator(): void {
    const shown = this.shown();
    setAttr(this.indicator, "data-state", shown);
    const label = shown === "stale" ? "Stale" : this.stateLabel;
    setText(this.label, label);
    const why = this.stateWhy;
    setAttr(this.indicator, "title", why ? `${label}: ${why}` : label);
  }

  private emitLocal<E extends keyof ServerEvents>(ev: E, m: Parameters<ServerEvents[E]>[0]): void {
    const set = this.listeners[ev] as Set<(m: unknown) => void> | undefined;
    if (set) for (const fn of set) fn(m);
  }

  /** Listens to a server event; returns the function that stops listening. */
  on<E extends keyof ServerEvents>(ev: E, fn: Handler<E>): () => void {
    let set = this.listeners[ev] as Set<Handler<E>> | undefined;
    if (!set) {
      set = new Set();
      (this.listeners as Record<string, Set<Handler<E>>>)[ev] = set;
    }
    set.add(fn);
    return () => set?.delete(fn);
  }

  /** Calls `fn` after every data frame (once its listeners ran). */
  onFrame(fn: () => void): () => void {
    this.frameListeners.add(fn);
    return () => this.frameListeners.delete(fn);
  }

  /** Listens to connection state changes. */
  onState(fn: (s: ConnState) => void): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /**
   * Makes `room` the current room: leaves the previous one and subscribes (now if connected, and
   * again after every reconnect). `onAck` gets the server's answer each time.
   */
  setRoom(room: Room | null, onAck?: (a: Ack) => void): void {
    const prev = this.room;
    if (SAME_ROOM(prev, room)) return;
    this.room = room;
    this.onAck = onAck ?? null;
    this.lastFrameAt = null;
    if (!this.socket.connected) return;
    if (prev) this.socket.timeout(ACK_TIMEOUT_MS).emit("unsubscribe", prev, () => undefined);
    this.subscribe();
  }

  private subscribe(): void {
    const room = this.room;
    if (!room) return;
    this.socket.timeout(ACK_TIMEOUT_MS).emit("subscribe", room, (err, ack) => {
      if (!SAME_ROOM(room, this.room)) return;
      if (err) {
        // No answer in time. Going down: the reconnect resubscribes. Still up (a lost packet,
        // a stalled server): ask again, the page must not wait forever for its first state.
        console.warn("smon: no answer to subscribe", room);
        if (this.socket.connected) this.subscribe();
        return;
      }
      if (!ack.ok) console.warn("smon: subscribe refused", room, ack.error);
      this.onAck?.(ack);
    });
  }

  /** The server's current time, in Unix ms, from the clock of the last frame. */
  serverNow(): number {
    return Date.now() + this.clockOffset;
  }

  /** The server's sampling interval (1 s until `hello` says otherwise). */
  intervalMs(): number {
    const i = this.hello?.interval_ms;
    return i && i > 0 ? i : 1000;
  }

  /** Ms since the last data frame of the current room, or null when none arrived yet. */
  sinceLastFrame(): number | null {
    return this.lastFrameAt === null ? null : performance.now() - this.lastFrameAt;
  }
}
