// The connection's state machine, backoff, pings, wake signals and tokens, on injected time.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CONNECTION_TRANSITIONS, PresenceClient, PresenceError, backoffDelay } from "../../dist/index.js";
import { FakeTimers } from "../support/fake.mjs";
import { fakeClient, FakeSocket, settle } from "./harness.mjs";

const policy = { minDelay: 500, maxDelay: 30000, stableAfter: 60000 };

test("backoffDelay stays within [0.5 s, min(30 s, 0.5 s·2^attempt)] and spans it", () => {
  for (let attempt = 0; attempt < 40; attempt++) {
    const ceiling = Math.min(30000, 500 * 2 ** attempt);
    assert.equal(backoffDelay(attempt, policy, () => 0), 500, `attempt ${attempt}, random 0`);
    const top = backoffDelay(attempt, policy, () => 0.999999);
    assert.ok(top <= ceiling && top > ceiling - 0.05 * ceiling, `attempt ${attempt}: ${top} near ${ceiling}`);
    const mid = backoffDelay(attempt, policy, () => 0.5);
    assert.equal(mid, 500 + 0.5 * (ceiling - 500));
  }
});

test("the state machine allows exactly the documented transitions", () => {
  assert.deepEqual(CONNECTION_TRANSITIONS, {
    connecting: ["open", "reconnecting", "revoked", "closed"],
    open: ["reconnecting", "revoked", "closed"],
    reconnecting: ["open", "revoked", "closed"],
    revoked: ["closed"],
    closed: [],
  });
});

test("connects at once with a token, then open", async () => {
  const h = await fakeClient();
  assert.equal(h.client.state, "connecting");
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(h.socket.url, "ws://presenced.test/ws?token=token-1");
  h.socket.open();
  assert.equal(h.client.state, "open");
  assert.deepEqual(h.states, ["open"]);
});

test("reconnect delays follow the jittered backoff, grow to 30 s, and reset after a stable minute", async () => {
  const randoms = [0.1, 0.9, 0.3, 0.7, 0.2, 0.99, 0.5, 0.05, 0.8, 0.6];
  let r = 0;
  const h = await fakeClient({ random: () => randoms[r++ % randoms.length] });
  const delays = [];
  for (let attempt = 0; attempt < 10; attempt++) {
    h.socket.serverClose(1006); // refused before open, as a browser reports a failed upgrade
    assert.equal(h.client.state, "reconnecting");
    const [delay] = h.timers.pendingDelays;
    delays.push(delay);
    const ceiling = Math.min(30000, 500 * 2 ** attempt);
    assert.ok(delay >= 500 && delay <= ceiling, `attempt ${attempt}: ${delay} in [500, ${ceiling}]`);
    assert.equal(delay, 500 + randoms[attempt] * (ceiling - 500));
    const sockets = FakeSocket.all.length;
    await h.timers.advance(delay - 1);
    assert.equal(FakeSocket.all.length, sockets, "no attempt before the delay");
    await h.timers.advance(1);
    assert.equal(FakeSocket.all.length, sockets + 1, "an attempt when the delay is over");
  }
  assert.equal(h.token.calls, 11, "a fresh token for every attempt");
  // Open for less than a minute: the backoff keeps growing.
  h.socket.open();
  await h.timers.advance(59000);
  h.socket.serverClose(1011);
  assert.ok(h.timers.pendingDelays[0] >= 500 && h.timers.pendingDelays[0] <= 30000);
  assert.equal(h.timers.pendingDelays[0], 500 + randoms[10 % randoms.length] * (30000 - 500));
  await h.timers.advance(h.timers.pendingDelays[0]);
  // Open for a minute: the next drop starts again at 0.5 s.
  h.socket.open();
  await h.timers.advance(60000);
  h.socket.serverClose(1006);
  assert.deepEqual(h.timers.pendingDelays, [500]);
});

test("1008, 4008, 1011, 1001 and network errors back off; 4401 gets a new token at once; 4403 is revoked for good", async () => {
  for (const code of [1008, 4008, 1011, 1001, 1006]) {
    const h = await fakeClient({ random: () => 0 });
    h.socket.open();
    h.socket.serverClose(code);
    assert.equal(h.client.state, "reconnecting", `close ${code}`);
    assert.deepEqual(h.timers.pendingDelays, [500], `close ${code} waits for the backoff`);
    assert.equal(FakeSocket.all.length, 1);
    h.client.close();
  }
  const h = await fakeClient();
  h.socket.open();
  h.socket.serverClose(4401);
  assert.equal(h.client.state, "reconnecting");
  await h.timers.advance(0);
  assert.equal(FakeSocket.all.length, 2, "4401: a new attempt at once");
  assert.equal(h.token.calls, 2, "with a new token");
  assert.equal(h.socket.url.endsWith("token=token-2"), true);
  h.socket.open();
  const ch = h.client.channel("room");
  const joining = ch.join();
  const sending = ch.send("x");
  h.socket.serverClose(4403);
  assert.equal(h.client.state, "revoked");
  await assert.rejects(joining, (e) => e instanceof PresenceError && e.code === "revoked");
  await assert.rejects(sending, (e) => e.code === "revoked");
  await h.timers.advance(3600000);
  h.wake();
  await settle();
  assert.equal(FakeSocket.all.length, 2, "revoked: no retry, even on a wake signal");
  assert.deepEqual(h.states, ["open", "reconnecting", "open", "revoked"]);
  await assert.rejects(ch.join(), (e) => e.code === "revoked");
  h.client.close();
  assert.equal(h.client.state, "closed");
});

test("a token endpoint that says 401 or 403 revokes; other token failures back off", async () => {
  for (const status of [401, 403]) {
    const h = await fakeClient({ token: () => { throw new PresenceError("unauthorized", "no session", status); } });
    assert.equal(h.client.state, "revoked", `token ${status}`);
    assert.equal(FakeSocket.all.length, 0);
  }
  let fail = true;
  const h = await fakeClient({ random: () => 0, token: () => { if (fail) throw new PresenceError("bad_gateway", "auth down", 502); return "ok"; } });
  assert.equal(h.client.state, "reconnecting");
  assert.equal(h.errors[0].code, "bad_gateway");
  assert.deepEqual(h.timers.pendingDelays, [500]);
  fail = false;
  await h.timers.advance(500);
  assert.equal(FakeSocket.all.length, 1);
  h.socket.open();
  assert.equal(h.client.state, "open");
});

test("pings every 20 s; a connection silent 10 s after a ping is replaced", async () => {
  const h = await fakeClient({ random: () => 0, autoPong: false });
  h.socket.open();
  await h.timers.advance(19999);
  assert.equal(h.socket.frames("ping").length, 0);
  await h.timers.advance(1);
  assert.equal(h.socket.frames("ping").length, 1);
  await h.timers.advance(5000);
  h.socket.receive({ type: "pong" });
  await h.timers.advance(15000);
  assert.equal(h.socket.frames("ping").length, 2);
  assert.equal(h.client.state, "open");
  const dead = h.socket;
  await h.timers.advance(9999);
  assert.equal(h.client.state, "open");
  await h.timers.advance(1);
  assert.equal(h.client.state, "reconnecting", "no pong within 10 s");
  assert.equal(dead.closedByClient, 1000, "the dead socket is closed");
  await h.timers.advance(500);
  assert.equal(FakeSocket.all.length, 2);
  // Late events of the old socket are ignored.
  dead.serverClose(1006);
  assert.equal(h.client.state, "reconnecting");
});

test("a connection that does not open within 10 s is abandoned", async () => {
  const h = await fakeClient({ random: () => 0 });
  await h.timers.advance(10000);
  assert.equal(h.client.state, "reconnecting");
  assert.equal(FakeSocket.all[0].closedByClient, 1000);
});

test("the online / visible signal retries at once while waiting, and pings an open connection", async () => {
  const h = await fakeClient({ random: () => 0.9, autoPong: false });
  for (let i = 0; i < 6; i++) { h.socket.serverClose(1006); await h.timers.advance(h.timers.pendingDelays[0]); }
  h.socket.serverClose(1006);
  assert.ok(h.timers.pendingDelays[0] > 20000, "a long wait is pending");
  const before = FakeSocket.all.length;
  h.wake();
  await settle();
  assert.equal(FakeSocket.all.length, before + 1, "attempted at once");
  h.socket.open();
  h.wake();
  assert.equal(h.socket.frames("ping").length, 1, "an open connection is checked with a ping");
  await h.timers.advance(10000);
  assert.equal(h.client.state, "reconnecting", "and replaced when the ping goes unanswered");
});

test("close() closes the socket, rejects what is pending, and stops everything", async () => {
  const h = await fakeClient();
  h.socket.open();
  const ch = h.client.channel("room");
  const joining = ch.join();
  h.client.close();
  assert.equal(h.client.state, "closed");
  assert.equal(h.socket.closedByClient, 1000);
  await assert.rejects(joining, (e) => e.code === "closed");
  await assert.rejects(ch.send("late"), (e) => e.code === "closed");
  await h.timers.advance(3600000);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(h.timers.pending.size, 0, "no timer left");
  assert.throws(() => h.client.channel("bad channel!"), (e) => e.code === "invalid_channel");
});

test("by default the browser's online event and a tab becoming visible are the wake signals", async () => {
  // A stand-in window and document on globalThis, as in a browser.
  const page = new EventTarget();
  const document = new EventTarget();
  document.visibilityState = "hidden";
  globalThis.addEventListener = page.addEventListener.bind(page);
  globalThis.removeEventListener = page.removeEventListener.bind(page);
  globalThis.document = document;
  try {
    FakeSocket.all = [];
    const timers = new FakeTimers();
    const client = new PresenceClient({ url: "ws://presenced.test/ws", token: () => "t", WebSocket: FakeSocket, timers, random: () => 0.99 });
    await settle();
    for (let i = 0; i < 5; i++) { FakeSocket.last.serverClose(1006); await timers.advance(timers.pendingDelays[0]); }
    FakeSocket.last.serverClose(1006);
    assert.ok(timers.pendingDelays[0] > 10000);
    page.dispatchEvent(new Event("online"));
    await settle();
    assert.equal(FakeSocket.all.length, 7, "online: attempted at once");
    FakeSocket.last.serverClose(1006);
    document.dispatchEvent(new Event("visibilitychange"));
    await settle();
    assert.equal(FakeSocket.all.length, 7, "still hidden: no attempt");
    document.visibilityState = "visible";
    document.dispatchEvent(new Event("visibilitychange"));
    await settle();
    assert.equal(FakeSocket.all.length, 8, "visible again: attempted at once");
    client.close();
    page.dispatchEvent(new Event("online"));
    await settle();
    assert.equal(FakeSocket.all.length, 8, "close() removed the listeners");
  } finally {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
    delete globalThis.document;
  }
});
