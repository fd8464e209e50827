// presenced's JavaScript client (docs/protocol.md): one WebSocket per client, channels
// with presence, typing and chat, reconnects with backoff, a fresh token per connection, and
// recovery of missed messages. No dependencies; an ES module for browsers and Node.

/**
 * The connection's state, as `client.on("state", …)` reports it:
 * - `connecting`: the first connection is being made (token, then WebSocket);
 * - `open`: connected; joined channels are (re-)joined;
 * - `reconnecting`: the connection was lost or refused; the client is waiting for its next
 *   attempt (backoff) or making it;
 * - `revoked`: the server revoked the connection (close 4403) or the token endpoint refused the
 *   user (401/403): no retry; sign the user in again and make a new client;
 * - `closed`: `close()` was called; final.
 */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "revoked" | "closed";

/** Every state change the client allows; any other is a bug and throws. */
export const CONNECTION_TRANSITIONS: { readonly [S in ConnectionState]: readonly ConnectionState[] } = {
  connecting: ["open", "reconnecting", "revoked", "closed"],
  open: ["reconnecting", "revoked", "closed"],
  reconnecting: ["open", "revoked", "closed"],
  revoked: ["closed"],
  closed: [],
};

/** A chat message as the server fans it out (docs/protocol.md, "Server messages"). */
export interface ChatMessage {
  type: "message";
  /** Unique, time-ordered id (UUIDv7). */
  id: string;
  /** User id of the sender. */
  sender: string;
  content: string;
  channel: string;
  /** UTC, ISO 8601 with milliseconds. */
  timestamp: string;
  /** Position in the channel's history (absent when the server keeps no history). */
  offset?: number;
  /** Which history `offset` counts in; changes when the server lost the channel's history. */
  epoch?: string;
  /** The sender's idempotency key (set by `Channel.send`). */
  nonce?: string;
}

/** One member of a channel in the presence map. */
export interface Member {
  /** Whether the user has at least one connection in the channel (all tabs and devices together). */
  online: boolean;
  /** The `name` claim of the user's token, when it has one. */
  name?: string;
  /** When the user's last connection ended (ISO 8601), on members that went offline. */
  lastSeen?: string;
}

/** What the server answered when a join completed (`joined`, docs/protocol.md, "Recovery after a reconnect"). */
export interface JoinResult {
  /** The channel's latest offset (absent when the server keeps no history). */
  offset?: number;
  epoch?: string;
  /** On a re-join with `since`: whether every missed message was replayed. */
  recovered?: boolean;
}

/**
 * An error from the server (`code` is its error code: `forbidden_channel`, `rate_limited`,
 * `unavailable`, `too_large`, …) or from the client itself: `closed` (after `close()`),
 * `revoked`, `left` (the channel was left), `not_joined` (send before join), `invalid_channel`,
 * `token` (the token function failed).
 */
export class PresenceError extends Error {
  /** The error code. */
  readonly code: string;
  /** The HTTP status, for errors of the token endpoint. */
  readonly status?: number;

  constructor(code: string, message: string, status?: number) {
    super(message);
    this.name = "PresenceError";
    this.code = code;
    this.status = status;
  }
}

/** Time and timers the client uses; injectable so tests control time. */
export interface Timers {
  /** Milliseconds on any monotonic or wall clock. */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** What the client needs of a WebSocket: the browser's, or `ws`'s in Node. */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** A WebSocket constructor (`WebSocket` in browsers, `require("ws")` in Node). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Reconnect timing: a delay drawn in [minDelay, min(maxDelay, minDelay·2^attempt)] (full jitter). */
export interface ReconnectPolicy {
  /** First delay and floor of every delay, ms (500). */
  minDelay: number;
  /** Ceiling of every delay, ms (30 000). */
  maxDelay: number;
  /** A connection open this long resets the backoff, ms (60 000). */
  stableAfter: number;
}

/** Options of `new PresenceClient(…)`. */
export interface PresenceClientOptions {
  /** The server's WebSocket endpoint, e.g. `wss://rt.casa.example/ws`. */
  url: string;
  /**
   * A fresh single-use token for every connection attempt. Default: `POST /api/v1/ws-token`
   * beside `url` with the browser's cookies. An error with `status` 401 or 403 means the user
   * has no session: the client goes to `revoked`.
   */
  token?: () => string | Promise<string>;
  /** WebSocket constructor; default the global `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect timing (defaults 0.5 s … 30 s, reset after a stable minute). */
  reconnect?: Partial<ReconnectPolicy>;
  /** The client's own `ping` every this many ms (20 000). */
  pingInterval?: number;
  /** No `pong` (nor any other frame) this long after a ping, or no open this long after a connect: reconnect (10 000). */
  pongTimeout?: number;
  /** Clock and timers (default: the global ones). */
  timers?: Timers;
  /** Uniform random in [0, 1) for the jitter (default `Math.random`). */
  random?: () => number;
  /**
   * Subscribes to "try now" signals and returns the unsubscribe function. Default: the
   * browser's `online` event and a hidden tab becoming visible.
   */
  wakeSignals?: (wake: () => void) => () => void;
}

/** Events of `PresenceClient`. */
export interface ClientEvents {
  /** The connection state changed. */
  state: ConnectionState;
  /** An error not tied to a channel or a send (a token failure, a protocol error). */
  error: PresenceError;
}

/** Events of `Channel`. */
export interface ChannelEvents {
  /** Every message once, in offset order, recovered ones included. */
  message: ChatMessage;
  /** The whole presence map (a new Map each time): user id → member. */
  presence: Map<string, Member>;
  /** The users typing now (a new Set each time; the client's own user excluded by the server). */
  typing: Set<string>;
  /** Messages were missed and cannot be replayed: reload the channel's history from chat-service. */
  gap: void;
  /** The channel failed after its join had succeeded (e.g. a re-join refused), or a typing error. */
  error: PresenceError;
}

/** Attempts of a send or join answered `unavailable` before it fails. */
const UNAVAILABLE_RETRIES = 4;
/** A typing:true is repeated at most this often while the user keeps typing (server ends it after 5 s). */
const TYPING_REFRESH_MS = 2000;
/** typing:false after this long without `typing(true)`. */
const TYPING_IDLE_MS = 3000;
const CHANNEL_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** The delay before reconnect attempt `attempt` (0-based): uniform in [minDelay, min(maxDelay, minDelay·2^attempt)]. */
export function backoffDelay(attempt: number, policy: ReconnectPolicy, random: () => number): number {
  const ceiling = Math.min(policy.maxDelay, policy.minDelay * 2 ** Math.min(attempt, 30));
  return policy.minDelay + random() * (ceiling - policy.minDelay);
}

/** A minimal typed event emitter; `on` returns the function that removes the listener. */
export class Emitter<Events> {
  private listeners: { [K in keyof Events]?: Set<(value: Events[K]) => void> } = {};

  /** Calls `listener` on every `event`; returns the unsubscribe function. */
  on<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): () => void {
    (this.listeners[event] ??= new Set()).add(listener);
    return () => this.off(event, listener);
  }

  /** Removes a listener added with `on`. */
  off<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): void {
    this.listeners[event]?.delete(listener);
  }

  /** Calls every listener of `event`; a listener that throws does not stop the others (its error is rethrown asynchronously). */
  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const listener of [...(this.listeners[event] ?? [])]) {
      try {
        listener(value);
      } catch (error) {
        setTimeout(() => { throw error; }, 0);
      }
    }
  }
}

/** The default token function: `POST <same path, /ws → /api/v1/ws-token>` with credentials. */
function sessionToken(url: string): () => Promise<string> {
  const endpoint = new URL(url);
  endpoint.protocol = endpoint.protocol === "wss:" ? "https:" : "http:";
  endpoint.pathname = endpoint.pathname.replace(/ws\/?$/, "") + "api/v1/ws-token";
  endpoint.search = "";
  return async () => {
    const response = await fetch(endpoint.href, { method: "POST", credentials: "include" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok || typeof body.token !== "string") {
      throw new PresenceError(body.code || "token", body.error || "ws-token answered " + response.status, response.status);
    }
    return body.token;
  };
}

/** The default wake signals: `online`, and the page becoming visible. */
function browserWakeSignals(wake: () => void): () => void {
  const page = globalThis as unknown as Window;
  if (typeof page.addEventListener !== "function") return () => {};
  const visible = () => { if (page.document?.visibilityState === "visible") wake(); };
  page.addEventListener("online", wake);
  page.document?.addEventListener("visibilitychange", visible);
  return () => {
    page.removeEventListener("online", wake);
    page.document?.removeEventListener("visibilitychange", visible);
  };
}

/** 21 characters of `[A-Za-z0-9_-]` (126 random bits). */
function makeNonce(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
  const bytes = new Uint8Array(21);
  const crypto = (globalThis as { crypto?: Crypto }).crypto;
  if (crypto?.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  let nonce = "";
  for (const byte of bytes) nonce += alphabet[byte & 63];
  return nonce;
}

/** A promise with its resolve/reject at hand; marked handled so an unawaited rejection is not reported as unhandled. */
interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: PresenceError): void;
}

function deferred<T>(): Deferred<T> {
  const d = {} as Deferred<T>;
  d.promise = new Promise<T>((resolve, reject) => { d.resolve = resolve; d.reject = reject; });
  d.promise.catch(() => {});
  return d;
}

/** A message waiting for the server's frame: sent again, with the same nonce, after every re-join. */
interface PendingSend extends Deferred<ChatMessage> {
  nonce: string;
  content: string;
  /** The connection it was last sent on (0: not sent since the last re-join or retry). */
  sentOn: number;
  /** `unavailable` answers so far. */
  refusals: number;
  retry?: unknown;
}

/** Server frames as they arrive: only the fields the client reads. */
interface ServerFrame {
  type?: string;
  channel?: string;
  code?: string;
  message?: string;
  nonce?: string;
  user_id?: string;
  online?: boolean;
  name?: string;
  last_seen?: string;
  typing?: boolean;
  sender?: string;
  offset?: number;
  epoch?: string;
  recovered?: boolean;
}

/**
 * A connection to presenced that survives drops: it connects at once, reconnects with backoff
 * and jitter, fetches a fresh token for every attempt, pings to find dead connections, and
 * re-joins every joined channel with recovery.
 */
export class PresenceClient extends Emitter<ClientEvents> {
  private current: ConnectionState = "connecting";
  private readonly url: string;
  private readonly token: () => string | Promise<string>;
  private readonly WebSocketType: WebSocketConstructor;
  /** @internal */ readonly policy: ReconnectPolicy;
  private readonly pingInterval: number;
  private readonly pongTimeout: number;
  /** @internal */ readonly timers: Timers;
  /** @internal */ readonly random: () => number;
  private readonly channels = new Map<string, Channel>();
  private readonly stopWakeSignals: () => void;
  private socket: WebSocketLike | null = null;
  /** Counts connection attempts: callbacks of an older one are ignored. */
  private connection = 0;
  /** Failed attempts since the last stable connection (the backoff exponent). */
  private failures = 0;
  private retryTimer: unknown = null;
  private pingTimer: unknown = null;
  private deadlineTimer: unknown = null;
  private stableTimer: unknown = null;

  /** Starts connecting at once. */
  constructor(options: PresenceClientOptions) {
    super();
    this.url = options.url;
    this.token = options.token ?? sessionToken(options.url);
    const WebSocketType = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WebSocketType) throw new TypeError("no WebSocket here: pass the WebSocket option (in Node: the ws package)");
    this.WebSocketType = WebSocketType;
    this.policy = { minDelay: 500, maxDelay: 30000, stableAfter: 60000, ...options.reconnect };
    this.pingInterval = options.pingInterval ?? 20000;
    this.pongTimeout = options.pongTimeout ?? 10000;
    this.timers = options.timers ?? systemTimers;
    this.random = options.random ?? Math.random;
    this.stopWakeSignals = (options.wakeSignals ?? browserWakeSignals)(() => this.wake());
    void this.connect();
  }

  /** The connection state now. */
  get state(): ConnectionState {
    return this.current;
  }

  /** The channel `id` (one object per id for this client; nothing is sent until `join()`). */
  channel(id: string): Channel {
    if (!CHANNEL_ID.test(id)) throw new PresenceError("invalid_channel", "channel ids are 1-128 characters of [A-Za-z0-9_.:-]");
    let channel = this.channels.get(id);
    if (!channel) this.channels.set(id, (channel = new Channel(this, id)));
    return channel;
  }

  /** Closes the connection for good: pending joins and sends reject with code `closed`. */
  close(): void {
    if (this.current === "closed") return;
    this.moveTo("closed");
    this.stopWakeSignals();
    this.disconnect();
    for (const channel of this.channels.values()) channel.fail(new PresenceError("closed", "the client was closed"));
  }

  /** The error of a client that is closed or revoked (null while it is not). @internal */
  ended(): PresenceError | null {
    const state = this.current;
    return state === "closed" || state === "revoked" ? new PresenceError(state, "the client is " + state) : null;
  }

  /** Whether frames can be sent now. @internal */
  get isOpen(): boolean {
    return this.current === "open";
  }

  /** The current connection's number (changes on every reconnect). @internal */
  get connectionNumber(): number {
    return this.connection;
  }

  /** Sends one frame when open; false when not. @internal */
  transmit(frame: object): boolean {
    if (!this.socket || this.current !== "open") return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  private moveTo(next: ConnectionState): void {
    if (next === this.current) return;
    if (!CONNECTION_TRANSITIONS[this.current].includes(next)) {
      throw new Error("presence client: no transition from " + this.current + " to " + next);
    }
    this.current = next;
    this.emit("state", next);
  }

  private async connect(): Promise<void> {
    const connection = ++this.connection;
    let token: string;
    try {
      await null; // no event before the constructor has returned
      token = await this.token();
    } catch (error) {
      if (connection !== this.connection) return;
      const status = (error as PresenceError).status;
      if (status === 401 || status === 403) return this.revoke();
      this.emit("error", error instanceof PresenceError ? error : new PresenceError("token", String(error)));
      return this.retry(this.nextDelay());
    }
    if (connection !== this.connection) return;
    const socket = new this.WebSocketType(this.url + (this.url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token));
    this.socket = socket;
    this.expectFrameWithin(this.pongTimeout);
    socket.onopen = () => { if (connection === this.connection) this.opened(); };
    socket.onmessage = (event) => { if (connection === this.connection) this.receive(event.data); };
    socket.onclose = (event) => { if (connection === this.connection) this.lost(event.code); };
    socket.onerror = () => {}; // a close follows
  }

  private opened(): void {
    this.timers.clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    this.moveTo("open");
    this.stableTimer = this.timers.setTimeout(() => { this.failures = 0; }, this.policy.stableAfter);
    this.schedulePing();
    for (const channel of this.channels.values()) channel.connected();
  }

  private schedulePing(): void {
    this.pingTimer = this.timers.setTimeout(() => { this.ping(); this.schedulePing(); }, this.pingInterval);
  }

  private ping(): void {
    if (this.transmit({ type: "ping" }) && this.deadlineTimer === null) this.expectFrameWithin(this.pongTimeout);
  }

  /** Gives up on the connection unless a frame (or the open) arrives within `ms`. */
  private expectFrameWithin(ms: number): void {
    this.deadlineTimer = this.timers.setTimeout(() => { this.deadlineTimer = null; this.lost(1006); }, ms);
  }

  private receive(data: unknown): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(String(data));
    } catch {
      return;
    }
    this.timers.clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    if (frame.type === "pong") return;
    const channel = frame.channel === undefined ? this.ownerOf(frame.nonce) : this.channels.get(frame.channel);
    if (channel) channel.receive(frame);
    else if (frame.type === "error") this.emit("error", new PresenceError(String(frame.code), String(frame.message)));
  }

  private ownerOf(nonce: string | undefined): Channel | undefined {
    if (nonce !== undefined) for (const channel of this.channels.values()) if (channel.owns(nonce)) return channel;
    return undefined;
  }

  /** The connection ended (closed by the server, reset, or found dead). */
  private lost(code: number): void {
    this.disconnect();
    for (const channel of this.channels.values()) channel.disconnected();
    if (code === 4403) return this.revoke();
    this.retry(code === 4401 ? 0 : this.nextDelay());
  }

  private nextDelay(): number {
    return backoffDelay(this.failures++, this.policy, this.random);
  }

  private retry(delay: number): void {
    this.moveTo("reconnecting");
    this.retryTimer = this.timers.setTimeout(() => { this.retryTimer = null; void this.connect(); }, delay);
  }

  private revoke(): void {
    this.disconnect();
    this.moveTo("revoked");
    for (const channel of this.channels.values()) channel.fail(new PresenceError("revoked", "the server revoked this connection: sign in again"));
  }

  /** Drops the socket (its callbacks are ignored from now on) and every timer. */
  private disconnect(): void {
    this.connection++;
    for (const timer of [this.retryTimer, this.pingTimer, this.deadlineTimer, this.stableTimer]) this.timers.clearTimeout(timer);
    this.retryTimer = this.pingTimer = this.deadlineTimer = this.stableTimer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      // onerror stays a no-op: ws (Node) throws on an error event nobody listens to.
      socket.onopen = socket.onmessage = socket.onclose = null;
      try {
        socket.close(1000);
      } catch {
        // already closed, or not yet open in an environment that refuses close then
      }
    }
  }

  /** The network is back or the tab is visible: retry now, or check the open connection with a ping. */
  private wake(): void {
    if (this.current === "open") return this.ping();
    if (this.retryTimer !== null) {
      this.timers.clearTimeout(this.retryTimer);
      this.retryTimer = null;
      void this.connect();
    }
  }
}

/**
 * One channel of a client: join it, then receive messages, presence and typing, and send.
 * Survives reconnects: re-joined with `since`, missed messages replayed, sends re-sent once.
 */
export class Channel extends Emitter<ChannelEvents> {
  /** The channel id. */
  readonly id: string;
  private readonly client: PresenceClient;
  /** join() was called and leave() was not. */
  private wanted = false;
  private status: "idle" | "joining" | "joined" = "idle";
  private joinWaiter: Deferred<JoinResult> | null = null;
  private lastJoin: JoinResult | null = null;
  private joinRefusals = 0;
  private joinRetry: unknown = null;
  /** Offset and epoch of the last message delivered (what a re-join asks to continue from). */
  private position: { offset: number; epoch: string } | null = null;
  private everJoined = false;
  private readonly memberMap = new Map<string, Member>();
  /** Presence frames of a join in progress: replace the map when `joined` arrives. */
  private snapshot: Map<string, Member> | null = null;
  private readonly typists = new Set<string>();
  private readonly outbox: PendingSend[] = [];
  private typingSentAt = 0;
  private typingOn = false;
  private typingIdle: unknown = null;

  /** Use `client.channel(id)`. @internal */
  constructor(client: PresenceClient, id: string) {
    super();
    this.client = client;
    this.id = id;
  }

  /** The presence map now (a copy): user id → member. */
  get members(): Map<string, Member> {
    return new Map(this.memberMap);
  }

  /** The users typing now (a copy). */
  get typingUsers(): Set<string> {
    return new Set(this.typists);
  }

  /** Joins; resolves on the server's `joined` (at once when already joined). Rejects with the server's refusal (`forbidden_channel`; `unavailable` after retries). */
  join(): Promise<JoinResult> {
    const ended = this.client.ended();
    if (ended) return Promise.reject(ended);
    if (this.status === "joined" && this.lastJoin) return Promise.resolve(this.lastJoin);
    this.joinWaiter ??= deferred();
    if (!this.wanted) {
      this.wanted = true;
      this.requestJoin();
    }
    return this.joinWaiter.promise;
  }

  /** Leaves the channel: pending sends reject with code `left`; the maps are emptied. */
  leave(): void {
    if (!this.wanted) return;
    this.typing(false);
    this.client.transmit({ type: "leave", channel: this.id });
    this.wanted = false;
    this.status = "idle";
    this.position = null;
    this.everJoined = false;
    this.lastJoin = null;
    this.fail(new PresenceError("left", "the channel was left"));
    this.memberMap.clear();
    this.typists.clear();
  }

  /**
   * Sends a message; resolves with the server's frame (id, offset). Carries a nonce, is queued
   * while offline or joining and re-sent after a reconnect with the same nonce, so it appears
   * once. Rejects with the server's error code (`rate_limited`, `too_large`, …; `unavailable`
   * only after retries with backoff).
   */
  send(content: string): Promise<ChatMessage> {
    const ended = this.client.ended();
    if (ended) return Promise.reject(ended);
    if (!this.wanted) return Promise.reject(new PresenceError("not_joined", "join the channel before sending to it"));
    this.typing(false);
    const pending: PendingSend = { ...deferred<ChatMessage>(), nonce: makeNonce(), content, sentOn: 0, refusals: 0 };
    this.outbox.push(pending);
    this.flush();
    return pending.promise;
  }

  /** Says whether the user is typing; throttled (a typing:true at most every 2 s), ended after 3 s without a call and by `send()`. */
  typing(active: boolean): void {
    const timers = this.client.timers;
    timers.clearTimeout(this.typingIdle);
    this.typingIdle = null;
    if (!active) {
      if (this.typingOn) this.client.transmit({ type: "typing", channel: this.id, typing: false });
      this.typingOn = false;
      return;
    }
    if (this.status !== "joined") return;
    const now = timers.now();
    if ((!this.typingOn || now - this.typingSentAt >= TYPING_REFRESH_MS) &&
        this.client.transmit({ type: "typing", channel: this.id, typing: true })) {
      this.typingOn = true;
      this.typingSentAt = now;
    }
    this.typingIdle = timers.setTimeout(() => this.typing(false), TYPING_IDLE_MS);
  }

  /** Whether a pending send carries `nonce`. @internal */
  owns(nonce: string): boolean {
    return this.outbox.some((p) => p.nonce === nonce);
  }

  /** The client's connection opened. @internal */
  connected(): void {
    if (this.wanted) this.requestJoin();
  }

  /** The connection was lost: the join is to be made again; others' typing is forgotten. @internal */
  disconnected(): void {
    if (this.status !== "idle") this.status = "idle";
    this.client.timers.clearTimeout(this.joinRetry);
    this.joinRetry = null;
    this.typingOn = false;
    this.client.timers.clearTimeout(this.typingIdle);
    for (const pending of this.outbox) {
      this.client.timers.clearTimeout(pending.retry);
      pending.sentOn = 0;
    }
    if (this.typists.size > 0) {
      this.typists.clear();
      this.emit("typing", new Set());
    }
  }

  /** Rejects every pending join and send with `error`. @internal */
  fail(error: PresenceError): void {
    this.joinWaiter?.reject(error);
    this.joinWaiter = null;
    for (const pending of this.outbox.splice(0)) {
      this.client.timers.clearTimeout(pending.retry);
      pending.reject(error);
    }
  }

  /** A server frame for this channel (or for one of its nonces). @internal */
  receive(frame: ServerFrame): void {
    if (!this.wanted) return;
    switch (frame.type) {
      case "message": return this.delivered(frame as unknown as ChatMessage);
      case "presence": return this.presence(frame);
      case "typing": return this.typingFrame(frame);
      case "joined": return this.joined(frame);
      case "error": return this.refused(frame);
    }
  }

  private requestJoin(): void {
    if (!this.client.isOpen) return; // joined on open
    const frame: { type: string; channel: string; since?: object } = { type: "join", channel: this.id };
    if (this.position) frame.since = this.position;
    this.status = "joining";
    this.snapshot = new Map();
    this.client.transmit(frame);
  }

  private joined(frame: ServerFrame): void {
    const rejoin = this.everJoined;
    this.status = "joined";
    this.everJoined = true;
    this.joinRefusals = 0;
    if (this.snapshot) {
      // Who was online before and is not in the snapshot has left meanwhile.
      for (const [user, member] of this.memberMap) if (!this.snapshot.has(user)) this.memberMap.set(user, { ...member, online: false });
      for (const [user, member] of this.snapshot) this.memberMap.set(user, member);
      this.snapshot = null;
      this.emit("presence", this.members);
    }
    const result: JoinResult = {};
    if (typeof frame.offset === "number" && typeof frame.epoch === "string") {
      result.offset = frame.offset;
      result.epoch = frame.epoch;
      const p = this.position;
      if (!p || p.epoch !== frame.epoch || p.offset < frame.offset) this.position = { offset: frame.offset, epoch: frame.epoch };
    } else {
      this.position = null;
    }
    if (typeof frame.recovered === "boolean") result.recovered = frame.recovered;
    this.lastJoin = result;
    // A re-join that could not replay what was missed (or a server without history): a gap.
    if (rejoin && result.recovered !== true) this.emit("gap", undefined);
    this.joinWaiter?.resolve(result);
    this.joinWaiter = null;
    this.flush();
  }

  private delivered(message: ChatMessage): void {
    const index = message.nonce === undefined ? -1 : this.outbox.findIndex((p) => p.nonce === message.nonce);
    if (index >= 0) {
      const [pending] = this.outbox.splice(index, 1);
      this.client.timers.clearTimeout(pending.retry);
      pending.resolve(message);
    }
    if (typeof message.offset === "number" && typeof message.epoch === "string") {
      const p = this.position;
      if (p && p.epoch === message.epoch && message.offset <= p.offset) return; // delivered before
      // A new epoch outside a join: the server lost the channel's history; what came between is unknown.
      if (p && p.epoch !== message.epoch && this.status === "joined") this.emit("gap", undefined);
      this.position = { offset: message.offset, epoch: message.epoch };
    }
    if (this.typists.delete(message.sender)) this.emit("typing", this.typingUsers);
    this.emit("message", message);
  }

  private presence(frame: ServerFrame): void {
    const user = String(frame.user_id);
    const member: Member = { online: frame.online === true };
    const name = frame.name ?? this.memberMap.get(user)?.name;
    if (name !== undefined) member.name = name;
    if (frame.last_seen !== undefined) member.lastSeen = frame.last_seen;
    if (this.snapshot) return void this.snapshot.set(user, member);
    this.memberMap.set(user, member);
    if (!member.online && this.typists.delete(user)) this.emit("typing", this.typingUsers);
    this.emit("presence", this.members);
  }

  private typingFrame(frame: ServerFrame): void {
    const user = String(frame.user_id);
    const had = this.typists.has(user);
    if (frame.typing === true) this.typists.add(user);
    else this.typists.delete(user);
    if (had !== this.typists.has(user)) this.emit("typing", this.typingUsers);
  }

  private refused(frame: ServerFrame): void {
    const error = new PresenceError(String(frame.code), String(frame.message));
    const pending = frame.nonce === undefined ? undefined : this.outbox.find((p) => p.nonce === frame.nonce);
    if (pending) {
      if (error.code === "unavailable" && pending.refusals < UNAVAILABLE_RETRIES) {
        pending.retry = this.client.timers.setTimeout(() => { pending.sentOn = 0; this.flush(); },
          backoffDelay(pending.refusals++, this.client.policy, this.client.random));
        return;
      }
      this.outbox.splice(this.outbox.indexOf(pending), 1);
      return pending.reject(error);
    }
    if (this.status !== "joining") return this.emit("error", error);
    // The join was refused.
    this.status = "idle";
    this.snapshot = null;
    if ((error.code === "unavailable" || error.code === "rate_limited") && this.joinRefusals < UNAVAILABLE_RETRIES) {
      this.joinRetry = this.client.timers.setTimeout(() => { this.joinRetry = null; this.requestJoin(); },
        backoffDelay(this.joinRefusals++, this.client.policy, this.client.random));
      return;
    }
    const waited = this.joinWaiter !== null;
    this.wanted = false;
    this.joinRefusals = 0;
    this.fail(error);
    if (!waited) this.emit("error", error);
  }

  /** Sends every pending message not yet sent on this connection, in order, once joined. */
  private flush(): void {
    if (this.status !== "joined") return;
    const connection = this.client.connectionNumber;
    for (const pending of this.outbox) {
      if (pending.sentOn === connection) continue;
      if (!this.client.transmit({ type: "message", channel: this.id, content: pending.content, nonce: pending.nonce })) return;
      pending.sentOn = connection;
    }
  }
}
