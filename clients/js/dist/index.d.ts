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
export declare type ConnectionState = "connecting" | "open" | "reconnecting" | "revoked" | "closed";
/** Every state change the client allows; any other is a bug and throws. */
export declare const CONNECTION_TRANSITIONS: {
    readonly [S in ConnectionState]: readonly ConnectionState[];
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
export declare class PresenceError extends Error {
    /** The error code. */
    readonly code: string;
    /** The HTTP status, for errors of the token endpoint. */
    readonly status?: number;
    constructor(code: string, message: string, status?: number);
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
    onmessage: ((event: {
        data: unknown;
    }) => void) | null;
    onclose: ((event: {
        code: number;
    }) => void) | null;
    onerror: ((event: unknown) => void) | null;
}
/** A WebSocket constructor (`WebSocket` in browsers, `require("ws")` in Node). */
export declare type WebSocketConstructor = new (url: string) => WebSocketLike;
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
/** The delay before reconnect attempt `attempt` (0-based): uniform in [minDelay, min(maxDelay, minDelay·2^attempt)]. */
export declare function backoffDelay(attempt: number, policy: ReconnectPolicy, random: () => number): number;
/** A minimal typed event emitter; `on` returns the function that removes the listener. */
export declare class Emitter<Events> {
    private listeners;
    /** Calls `listener` on every `event`; returns the unsubscribe function. */
    on<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): () => void;
    /** Removes a listener added with `on`. */
    off<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): void;
    /** Calls every listener of `event`; a listener that throws does not stop the others (its error is rethrown asynchronously). */
    protected emit<K extends keyof Events>(event: K, value: Events[K]): void;
}
/**
 * A connection to presenced that survives drops: it connects at once, reconnects with backoff
 * and jitter, fetches a fresh token for every attempt, pings to find dead connections, and
 * re-joins every joined channel with recovery.
 */
export declare class PresenceClient extends Emitter<ClientEvents> {
    private current;
    private readonly url;
    private readonly token;
    private readonly WebSocketType;
    private readonly pingInterval;
    private readonly pongTimeout;
    private readonly channels;
    private readonly stopWakeSignals;
    private socket;
    /** Counts connection attempts: callbacks of an older one are ignored. */
    private connection;
    /** Failed attempts since the last stable connection (the backoff exponent). */
    private failures;
    private retryTimer;
    private pingTimer;
    private deadlineTimer;
    private stableTimer;
    /** Starts connecting at once. */
    constructor(options: PresenceClientOptions);
    /** The connection state now. */
    get state(): ConnectionState;
    /** The channel `id` (one object per id for this client; nothing is sent until `join()`). */
    channel(id: string): Channel;
    /** Closes the connection for good: pending joins and sends reject with code `closed`. */
    close(): void;
    private moveTo;
    private connect;
    private opened;
    private schedulePing;
    private ping;
    /** Gives up on the connection unless a frame (or the open) arrives within `ms`. */
    private expectFrameWithin;
    private receive;
    private ownerOf;
    /** The connection ended (closed by the server, reset, or found dead). */
    private lost;
    private nextDelay;
    private retry;
    private revoke;
    /** Drops the socket (its callbacks are ignored from now on) and every timer. */
    private disconnect;
    /** The network is back or the tab is visible: retry now, or check the open connection with a ping. */
    private wake;
}
/**
 * One channel of a client: join it, then receive messages, presence and typing, and send.
 * Survives reconnects: re-joined with `since`, missed messages replayed, sends re-sent once.
 */
export declare class Channel extends Emitter<ChannelEvents> {
    /** The channel id. */
    readonly id: string;
    private readonly client;
    /** join() was called and leave() was not. */
    private wanted;
    private status;
    private joinWaiter;
    private lastJoin;
    private joinRefusals;
    private joinRetry;
    /** Offset and epoch of the last message delivered (what a re-join asks to continue from). */
    private position;
    private everJoined;
    private readonly memberMap;
    /** Presence frames of a join in progress: replace the map when `joined` arrives. */
    private snapshot;
    private readonly typists;
    private readonly outbox;
    private typingSentAt;
    private typingOn;
    private typingIdle;
    /** The presence map now (a copy): user id → member. */
    get members(): Map<string, Member>;
    /** The users typing now (a copy). */
    get typingUsers(): Set<string>;
    /** Joins; resolves on the server's `joined` (at once when already joined). Rejects with the server's refusal (`forbidden_channel`; `unavailable` after retries). */
    join(): Promise<JoinResult>;
    /** Leaves the channel: pending sends reject with code `left`; the maps are emptied. */
    leave(): void;
    /**
     * Sends a message; resolves with the server's frame (id, offset). Carries a nonce, is queued
     * while offline or joining and re-sent after a reconnect with the same nonce, so it appears
     * once. Rejects with the server's error code (`rate_limited`, `too_large`, …; `unavailable`
     * only after retries with backoff).
     */
    send(content: string): Promise<ChatMessage>;
    /** Says whether the user is typing; throttled (a typing:true at most every 2 s), ended after 3 s without a call and by `send()`. */
    typing(active: boolean): void;
    private requestJoin;
    private joined;
    private delivered;
    private presence;
    private typingFrame;
    private refused;
    /** Sends every pending message not yet sent on this connection, in order, once joined. */
    private flush;
}
