// presenced's JavaScript client (docs/protocol.md): one WebSocket per client, channels
// with presence, typing and chat, reconnects with backoff, a fresh token per connection, and
// recovery of missed messages. No dependencies; an ES module for browsers and Node.
/** Every state change the client allows; any other is a bug and throws. */
export const CONNECTION_TRANSITIONS = {
    connecting: ["open", "reconnecting", "revoked", "closed"],
    open: ["reconnecting", "revoked", "closed"],
    reconnecting: ["open", "revoked", "closed"],
    revoked: ["closed"],
    closed: [],
};
/**
 * An error from the server (`code` is its error code: `forbidden_channel`, `rate_limited`,
 * `unavailable`, `too_large`, …) or from the client itself: `closed` (after `close()`),
 * `revoked`, `left` (the channel was left), `not_joined` (send before join), `invalid_channel`,
 * `token` (the token function failed).
 */
export class PresenceError extends Error {
    constructor(code, message, status) {
        super(message);
        this.name = "PresenceError";
        this.code = code;
        this.status = status;
    }
}
/** Attempts of a send or join answered `unavailable` before it fails. */
const UNAVAILABLE_RETRIES = 4;
/** A typing:true is repeated at most this often while the user keeps typing (server ends it after 5 s). */
const TYPING_REFRESH_MS = 2000;
/** typing:false after this long without `typing(true)`. */
const TYPING_IDLE_MS = 3000;
const CHANNEL_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const systemTimers = {
    now: () => Date.now(),
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (handle) => clearTimeout(handle),
};
/** The delay before reconnect attempt `attempt` (0-based): uniform in [minDelay, min(maxDelay, minDelay·2^attempt)]. */
export function backoffDelay(attempt, policy, random) {
    const ceiling = Math.min(policy.maxDelay, policy.minDelay * 2 ** Math.min(attempt, 30));
    return policy.minDelay + random() * (ceiling - policy.minDelay);
}
/** A minimal typed event emitter; `on` returns the function that removes the listener. */
export class Emitter {
    constructor() {
        this.listeners = {};
    }
    /** Calls `listener` on every `event`; returns the unsubscribe function. */
    on(event, listener) {
        (this.listeners[event] ??= new Set()).add(listener);
        return () => this.off(event, listener);
    }
    /** Removes a listener added with `on`. */
    off(event, listener) {
        this.listeners[event]?.delete(listener);
    }
    /** Calls every listener of `event`; a listener that throws does not stop the others (its error is rethrown asynchronously). */
    emit(event, value) {
        for (const listener of [...(this.listeners[event] ?? [])]) {
            try {
                listener(value);
            }
            catch (error) {
                setTimeout(() => { throw error; }, 0);
            }
        }
    }
}
/** The default token function: `POST <same path, /ws → /api/v1/ws-token>` with credentials. */
function sessionToken(url) {
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
function browserWakeSignals(wake) {
    const page = globalThis;
    if (typeof page.addEventListener !== "function")
        return () => { };
    const visible = () => { if (page.document?.visibilityState === "visible")
        wake(); };
    page.addEventListener("online", wake);
    page.document?.addEventListener("visibilitychange", visible);
    return () => {
        page.removeEventListener("online", wake);
        page.document?.removeEventListener("visibilitychange", visible);
    };
}
/** 21 characters of `[A-Za-z0-9_-]` (126 random bits). */
function makeNonce() {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    const bytes = new Uint8Array(21);
    const crypto = globalThis.crypto;
    if (crypto?.getRandomValues)
        crypto.getRandomValues(bytes);
    else
        for (let i = 0; i < bytes.length; i++)
            bytes[i] = Math.floor(Math.random() * 256);
    let nonce = "";
    for (const byte of bytes)
        nonce += alphabet[byte & 63];
    return nonce;
}
function deferred() {
    const d = {};
    d.promise = new Promise((resolve, reject) => { d.resolve = resolve; d.reject = reject; });
    d.promise.catch(() => { });
    return d;
}
/**
 * A connection to presenced that survives drops: it connects at once, reconnects with backoff
 * and jitter, fetches a fresh token for every attempt, pings to find dead connections, and
 * re-joins every joined channel with recovery.
 */
export class PresenceClient extends Emitter {
    /** Starts connecting at once. */
    constructor(options) {
        super();
        this.current = "connecting";
        this.channels = new Map();
        this.socket = null;
        /** Counts connection attempts: callbacks of an older one are ignored. */
        this.connection = 0;
        /** Failed attempts since the last stable connection (the backoff exponent). */
        this.failures = 0;
        this.retryTimer = null;
        this.pingTimer = null;
        this.deadlineTimer = null;
        this.stableTimer = null;
        this.url = options.url;
        this.token = options.token ?? sessionToken(options.url);
        const WebSocketType = options.WebSocket ?? globalThis.WebSocket;
        if (!WebSocketType)
            throw new TypeError("no WebSocket here: pass the WebSocket option (in Node: the ws package)");
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
    get state() {
        return this.current;
    }
    /** The channel `id` (one object per id for this client; nothing is sent until `join()`). */
    channel(id) {
        if (!CHANNEL_ID.test(id))
            throw new PresenceError("invalid_channel", "channel ids are 1-128 characters of [A-Za-z0-9_.:-]");
        let channel = this.channels.get(id);
        if (!channel)
            this.channels.set(id, (channel = new Channel(this, id)));
        return channel;
    }
    /** Closes the connection for good: pending joins and sends reject with code `closed`. */
    close() {
        if (this.current === "closed")
            return;
        this.moveTo("closed");
        this.stopWakeSignals();
        this.disconnect();
        for (const channel of this.channels.values())
            channel.fail(new PresenceError("closed", "the client was closed"));
    }
    /** The error of a client that is closed or revoked (null while it is not). @internal */
    ended() {
        const state = this.current;
        return state === "closed" || state === "revoked" ? new PresenceError(state, "the client is " + state) : null;
    }
    /** Whether frames can be sent now. @internal */
    get isOpen() {
        return this.current === "open";
    }
    /** The current connection's number (changes on every reconnect). @internal */
    get connectionNumber() {
        return this.connection;
    }
    /** Sends one frame when open; false when not. @internal */
    transmit(frame) {
        if (!this.socket || this.current !== "open")
            return false;
        this.socket.send(JSON.stringify(frame));
        return true;
    }
    moveTo(next) {
        if (next === this.current)
            return;
        if (!CONNECTION_TRANSITIONS[this.current].includes(next)) {
            throw new Error("presence client: no transition from " + this.current + " to " + next);
        }
        this.current = next;
        this.emit("state", next);
    }
    async connect() {
        const connection = ++this.connection;
        let token;
        try {
            await null; // no event before the constructor has returned
            token = await this.token();
        }
        catch (error) {
            if (connection !== this.connection)
                return;
            const status = error.status;
            if (status === 401 || status === 403)
                return this.revoke();
            this.emit("error", error instanceof PresenceError ? error : new PresenceError("token", String(error)));
            return this.retry(this.nextDelay());
        }
        if (connection !== this.connection)
            return;
        const socket = new this.WebSocketType(this.url + (this.url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token));
        this.socket = socket;
        this.expectFrameWithin(this.pongTimeout);
        socket.onopen = () => { if (connection === this.connection)
            this.opened(); };
        socket.onmessage = (event) => { if (connection === this.connection)
            this.receive(event.data); };
        socket.onclose = (event) => { if (connection === this.connection)
            this.lost(event.code); };
        socket.onerror = () => { }; // a close follows
    }
    opened() {
        this.timers.clearTimeout(this.deadlineTimer);
        this.deadlineTimer = null;
        this.moveTo("open");
        this.stableTimer = this.timers.setTimeout(() => { this.failures = 0; }, this.policy.stableAfter);
        this.schedulePing();
        for (const channel of this.channels.values())
            channel.connected();
    }
    schedulePing() {
        this.pingTimer = this.timers.setTimeout(() => { this.ping(); this.schedulePing(); }, this.pingInterval);
    }
    ping() {
        if (this.transmit({ type: "ping" }) && this.deadlineTimer === null)
            this.expectFrameWithin(this.pongTimeout);
    }
    /** Gives up on the connection unless a frame (or the open) arrives within `ms`. */
    expectFrameWithin(ms) {
        this.deadlineTimer = this.timers.setTimeout(() => { this.deadlineTimer = null; this.lost(1006); }, ms);
    }
    receive(data) {
        let frame;
        try {
            frame = JSON.parse(String(data));
        }
        catch {
            return;
        }
        this.timers.clearTimeout(this.deadlineTimer);
        this.deadlineTimer = null;
        if (frame.type === "pong")
            return;
        const channel = frame.channel === undefined ? this.ownerOf(frame.nonce) : this.channels.get(frame.channel);
        if (channel)
            channel.receive(frame);
        else if (frame.type === "error")
            this.emit("error", new PresenceError(String(frame.code), String(frame.message)));
    }
    ownerOf(nonce) {
        if (nonce !== undefined)
            for (const channel of this.channels.values())
                if (channel.owns(nonce))
                    return channel;
        return undefined;
    }
    /** The connection ended (closed by the server, reset, or found dead). */
    lost(code) {
        this.disconnect();
        for (const channel of this.channels.values())
            channel.disconnected();
        if (code === 4403)
            return this.revoke();
        this.retry(code === 4401 ? 0 : this.nextDelay());
    }
    nextDelay() {
        return backoffDelay(this.failures++, this.policy, this.random);
    }
    retry(delay) {
        this.moveTo("reconnecting");
        this.retryTimer = this.timers.setTimeout(() => { this.retryTimer = null; void this.connect(); }, delay);
    }
    revoke() {
        this.disconnect();
        this.moveTo("revoked");
        for (const channel of this.channels.values())
            channel.fail(new PresenceError("revoked", "the server revoked this connection: sign in again"));
    }
    /** Drops the socket (its callbacks are ignored from now on) and every timer. */
    disconnect() {
        this.connection++;
        for (const timer of [this.retryTimer, this.pingTimer, this.deadlineTimer, this.stableTimer])
            this.timers.clearTimeout(timer);
        this.retryTimer = this.pingTimer = this.deadlineTimer = this.stableTimer = null;
        const socket = this.socket;
        this.socket = null;
        if (socket) {
            // onerror stays a no-op: ws (Node) throws on an error event nobody listens to.
            socket.onopen = socket.onmessage = socket.onclose = null;
            try {
                socket.close(1000);
            }
            catch {
                // already closed, or not yet open in an environment that refuses close then
            }
        }
    }
    /** The network is back or the tab is visible: retry now, or check the open connection with a ping. */
    wake() {
        if (this.current === "open")
            return this.ping();
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
export class Channel extends Emitter {
    /** Use `client.channel(id)`. @internal */
    constructor(client, id) {
        super();
        /** join() was called and leave() was not. */
        this.wanted = false;
        this.status = "idle";
        this.joinWaiter = null;
        this.lastJoin = null;
        this.joinRefusals = 0;
        this.joinRetry = null;
        /** Offset and epoch of the last message delivered (what a re-join asks to continue from). */
        this.position = null;
        this.everJoined = false;
        this.memberMap = new Map();
        /** Presence frames of a join in progress: replace the map when `joined` arrives. */
        this.snapshot = null;
        this.typists = new Set();
        this.outbox = [];
        this.typingSentAt = 0;
        this.typingOn = false;
        this.typingIdle = null;
        this.client = client;
        this.id = id;
    }
    /** The presence map now (a copy): user id → member. */
    get members() {
        return new Map(this.memberMap);
    }
    /** The users typing now (a copy). */
    get typingUsers() {
        return new Set(this.typists);
    }
    /** Joins; resolves on the server's `joined` (at once when already joined). Rejects with the server's refusal (`forbidden_channel`; `unavailable` after retries). */
    join() {
        const ended = this.client.ended();
        if (ended)
            return Promise.reject(ended);
        if (this.status === "joined" && this.lastJoin)
            return Promise.resolve(this.lastJoin);
        this.joinWaiter ??= deferred();
        if (!this.wanted) {
            this.wanted = true;
            this.requestJoin();
        }
        return this.joinWaiter.promise;
    }
    /** Leaves the channel: pending sends reject with code `left`; the maps are emptied. */
    leave() {
        if (!this.wanted)
            return;
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
    send(content) {
        const ended = this.client.ended();
        if (ended)
            return Promise.reject(ended);
        if (!this.wanted)
            return Promise.reject(new PresenceError("not_joined", "join the channel before sending to it"));
        this.typing(false);
        const pending = { ...deferred(), nonce: makeNonce(), content, sentOn: 0, refusals: 0 };
        this.outbox.push(pending);
        this.flush();
        return pending.promise;
    }
    /** Says whether the user is typing; throttled (a typing:true at most every 2 s), ended after 3 s without a call and by `send()`. */
    typing(active) {
        const timers = this.client.timers;
        timers.clearTimeout(this.typingIdle);
        this.typingIdle = null;
        if (!active) {
            if (this.typingOn)
                this.client.transmit({ type: "typing", channel: this.id, typing: false });
            this.typingOn = false;
            return;
        }
        if (this.status !== "joined")
            return;
        const now = timers.now();
        if ((!this.typingOn || now - this.typingSentAt >= TYPING_REFRESH_MS) &&
            this.client.transmit({ type: "typing", channel: this.id, typing: true })) {
            this.typingOn = true;
            this.typingSentAt = now;
        }
        this.typingIdle = timers.setTimeout(() => this.typing(false), TYPING_IDLE_MS);
    }
    /** Whether a pending send carries `nonce`. @internal */
    owns(nonce) {
        return this.outbox.some((p) => p.nonce === nonce);
    }
    /** The client's connection opened. @internal */
    connected() {
        if (this.wanted)
            this.requestJoin();
    }
    /** The connection was lost: the join is to be made again; others' typing is forgotten. @internal */
    disconnected() {
        if (this.status !== "idle")
            this.status = "idle";
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
    fail(error) {
        this.joinWaiter?.reject(error);
        this.joinWaiter = null;
        for (const pending of this.outbox.splice(0)) {
            this.client.timers.clearTimeout(pending.retry);
            pending.reject(error);
        }
    }
    /** A server frame for this channel (or for one of its nonces). @internal */
    receive(frame) {
        if (!this.wanted)
            return;
        switch (frame.type) {
            case "message": return this.delivered(frame);
            case "presence": return this.presence(frame);
            case "typing": return this.typingFrame(frame);
            case "joined": return this.joined(frame);
            case "error": return this.refused(frame);
        }
    }
    requestJoin() {
        if (!this.client.isOpen)
            return; // joined on open
        const frame = { type: "join", channel: this.id };
        if (this.position)
            frame.since = this.position;
        this.status = "joining";
        this.snapshot = new Map();
        this.client.transmit(frame);
    }
    joined(frame) {
        const rejoin = this.everJoined;
        this.status = "joined";
        this.everJoined = true;
        this.joinRefusals = 0;
        if (this.snapshot) {
            // Who was online before and is not in the snapshot has left meanwhile.
            for (const [user, member] of this.memberMap)
                if (!this.snapshot.has(user))
                    this.memberMap.set(user, { ...member, online: false });
            for (const [user, member] of this.snapshot)
                this.memberMap.set(user, member);
            this.snapshot = null;
            this.emit("presence", this.members);
        }
        const result = {};
        if (typeof frame.offset === "number" && typeof frame.epoch === "string") {
            result.offset = frame.offset;
            result.epoch = frame.epoch;
            const p = this.position;
            if (!p || p.epoch !== frame.epoch || p.offset < frame.offset)
                this.position = { offset: frame.offset, epoch: frame.epoch };
        }
        else {
            this.position = null;
        }
        if (typeof frame.recovered === "boolean")
            result.recovered = frame.recovered;
        this.lastJoin = result;
        // A re-join that could not replay what was missed (or a server without history): a gap.
        if (rejoin && result.recovered !== true)
            this.emit("gap", undefined);
        this.joinWaiter?.resolve(result);
        this.joinWaiter = null;
        this.flush();
    }
    delivered(message) {
        const index = message.nonce === undefined ? -1 : this.outbox.findIndex((p) => p.nonce === message.nonce);
        if (index >= 0) {
            const [pending] = this.outbox.splice(index, 1);
            this.client.timers.clearTimeout(pending.retry);
            pending.resolve(message);
        }
        if (typeof message.offset === "number" && typeof message.epoch === "string") {
            const p = this.position;
            if (p && p.epoch === message.epoch && message.offset <= p.offset)
                return; // delivered before
            // A new epoch outside a join: the server lost the channel's history; what came between is unknown.
            if (p && p.epoch !== message.epoch && this.status === "joined")
                this.emit("gap", undefined);
            this.position = { offset: message.offset, epoch: message.epoch };
        }
        if (this.typists.delete(message.sender))
            this.emit("typing", this.typingUsers);
        this.emit("message", message);
    }
    presence(frame) {
        const user = String(frame.user_id);
        const member = { online: frame.online === true };
        const name = frame.name ?? this.memberMap.get(user)?.name;
        if (name !== undefined)
            member.name = name;
        if (frame.last_seen !== undefined)
            member.lastSeen = frame.last_seen;
        if (this.snapshot)
            return void this.snapshot.set(user, member);
        this.memberMap.set(user, member);
        if (!member.online && this.typists.delete(user))
            this.emit("typing", this.typingUsers);
        this.emit("presence", this.members);
    }
    typingFrame(frame) {
        const user = String(frame.user_id);
        const had = this.typists.has(user);
        if (frame.typing === true)
            this.typists.add(user);
        else
            this.typists.delete(user);
        if (had !== this.typists.has(user))
            this.emit("typing", this.typingUsers);
    }
    refused(frame) {
        const error = new PresenceError(String(frame.code), String(frame.message));
        const pending = frame.nonce === undefined ? undefined : this.outbox.find((p) => p.nonce === frame.nonce);
        if (pending) {
            if (error.code === "unavailable" && pending.refusals < UNAVAILABLE_RETRIES) {
                pending.retry = this.client.timers.setTimeout(() => { pending.sentOn = 0; this.flush(); }, backoffDelay(pending.refusals++, this.client.policy, this.client.random));
                return;
            }
            this.outbox.splice(this.outbox.indexOf(pending), 1);
            return pending.reject(error);
        }
        if (this.status !== "joining")
            return this.emit("error", error);
        // The join was refused.
        this.status = "idle";
        this.snapshot = null;
        if ((error.code === "unavailable" || error.code === "rate_limited") && this.joinRefusals < UNAVAILABLE_RETRIES) {
            this.joinRetry = this.client.timers.setTimeout(() => { this.joinRetry = null; this.requestJoin(); }, backoffDelay(this.joinRefusals++, this.client.policy, this.client.random));
            return;
        }
        const waited = this.joinWaiter !== null;
        this.wanted = false;
        this.joinRefusals = 0;
        this.fail(error);
        if (!waited)
            this.emit("error", error);
    }
    /** Sends every pending message not yet sent on this connection, in order, once joined. */
    flush() {
        if (this.status !== "joined")
            return;
        const connection = this.client.connectionNumber;
        for (const pending of this.outbox) {
            if (pending.sentOn === connection)
                continue;
            if (!this.client.transmit({ type: "message", channel: this.id, content: pending.content, nonce: pending.nonce }))
                return;
            pending.sentOn = connection;
        }
    }
}
