// Channels on injected time and sockets: join and re-join with `since`, dedupe by offset, gap,
// the presence snapshot, typing throttle, the send queue with nonces and its retries.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fakeClient, FakeSocket, openAndJoin, settle } from "./harness.mjs";

const message = (offset, content, extra = {}) =>
  ({ type: "message", id: "id-" + offset, sender: "bob", content, channel: "room", timestamp: "2026-12-05T10:00:00.000Z", offset, epoch: "e1", ...extra });

test("join resolves on joined; nothing is sent before the connection opens", async () => {
  const h = await fakeClient();
  const ch = h.client.channel("room");
  assert.equal(h.client.channel("room"), ch, "one object per channel id");
  let result = null;
  ch.join().then((r) => { result = r; });
  assert.equal(h.socket.sent.length, 0);
  h.socket.open();
  assert.deepEqual(h.socket.sent, [{ type: "join", channel: "room" }]);
  h.socket.receive({ type: "presence", user_id: "alice", online: true, channel: "room" });
  await settle();
  assert.equal(result, null, "a presence frame is not the end of the join");
  h.socket.receive({ type: "joined", channel: "room", offset: 4, epoch: "e1" });
  await settle();
  assert.deepEqual(result, { offset: 4, epoch: "e1" });
  assert.deepEqual(await ch.join(), { offset: 4, epoch: "e1" }, "a second join() resolves at once");
  assert.equal(h.socket.frames("join").length, 1);
});

test("a re-join carries since; replayed messages already delivered are not emitted again", async () => {
  const h = await fakeClient({ random: () => 0 });
  const ch = h.client.channel("room");
  const got = [];
  let gaps = 0;
  ch.on("message", (m) => got.push(m.offset));
  ch.on("gap", () => gaps++);
  ch.join();
  await openAndJoin(h, "room", { offset: 5 });
  h.socket.receive(message(6, "six"));
  h.socket.receive(message(7, "seven"));
  h.socket.serverClose(1006);
  assert.equal(h.client.state, "reconnecting");
  await h.timers.advance(500);
  h.socket.open();
  assert.deepEqual(h.socket.frames("join"), [{ type: "join", channel: "room", since: { offset: 7, epoch: "e1" } }]);
  // A server may repeat what the client has: offsets at or below 7 are dropped.
  for (const n of [6, 7, 8, 9]) h.socket.receive(message(n, "m" + n));
  h.socket.receive({ type: "joined", channel: "room", offset: 9, epoch: "e1", recovered: true });
  h.socket.receive(message(9, "m9 again"));
  h.socket.receive(message(10, "ten"));
  await settle();
  assert.deepEqual(got, [6, 7, 8, 9, 10]);
  assert.equal(gaps, 0);
});

test("recovered:false emits gap and continues from the server's latest offset", async () => {
  const h = await fakeClient({ random: () => 0 });
  const ch = h.client.channel("room");
  const got = [];
  let gaps = 0;
  ch.on("message", (m) => got.push(m.epoch + ":" + m.offset));
  ch.on("gap", () => gaps++);
  ch.join();
  await openAndJoin(h, "room", { offset: 2 });
  h.socket.serverClose(1006);
  await h.timers.advance(500);
  h.socket.open();
  assert.deepEqual(h.socket.frames("join")[0].since, { offset: 2, epoch: "e1" });
  h.socket.receive({ type: "joined", channel: "room", offset: 1, epoch: "e2", recovered: false });
  h.socket.receive(message(2, "first of the new epoch", { epoch: "e2" }));
  await settle();
  assert.equal(gaps, 1);
  assert.deepEqual(got, ["e2:2"]);
  // The next re-join continues from the new epoch.
  h.socket.serverClose(1006);
  await h.timers.advance(500);
  h.socket.open();
  assert.deepEqual(h.socket.frames("join")[0].since, { offset: 2, epoch: "e2" });
});

test("without history (no offset in joined) every re-join is a gap", async () => {
  const h = await fakeClient({ random: () => 0 });
  const ch = h.client.channel("room");
  let gaps = 0;
  ch.on("gap", () => gaps++);
  ch.join();
  h.socket.open();
  h.socket.receive({ type: "joined", channel: "room" });
  await settle();
  assert.equal(gaps, 0, "not on the first join");
  h.socket.serverClose(1006);
  await h.timers.advance(500);
  h.socket.open();
  assert.deepEqual(h.socket.frames("join"), [{ type: "join", channel: "room" }], "no since without a position");
  h.socket.receive({ type: "joined", channel: "room" });
  await settle();
  assert.equal(gaps, 1);
});

test("presence: one event with the whole snapshot at joined; members gone meanwhile are offline after a re-join", async () => {
  const h = await fakeClient({ random: () => 0 });
  const ch = h.client.channel("room");
  const maps = [];
  ch.on("presence", (m) => maps.push(m));
  ch.join();
  await openAndJoin(h, "room", { presence: ["alice", "bob", "carol"] });
  assert.equal(maps.length, 1);
  assert.deepEqual([...maps[0]], [["alice", { online: true }], ["bob", { online: true }], ["carol", { online: true }]]);
  h.socket.receive({ type: "presence", user_id: "dave", online: true, channel: "room", name: "Dave" });
  h.socket.receive({ type: "presence", user_id: "carol", online: false, channel: "room", last_seen: "2026-12-05T10:00:00.000Z" });
  assert.deepEqual(maps[2].get("carol"), { online: false, lastSeen: "2026-12-05T10:00:00.000Z" });
  assert.deepEqual(maps[2].get("dave"), { online: true, name: "Dave" });
  h.socket.serverClose(1006);
  await h.timers.advance(500);
  await openAndJoin(h, "room", { presence: ["alice", "dave"], recovered: true });
  const last = maps[maps.length - 1];
  assert.equal(maps.length, 4, "the re-join's snapshot is one event");
  assert.deepEqual(last.get("bob"), { online: false }, "bob left while the client was away");
  assert.deepEqual(last.get("dave"), { online: true, name: "Dave" }, "the name is kept");
  assert.equal(last.get("alice").online, true);
  assert.notEqual(last, ch.members, "members returns a copy");
});

test("typing: at most one typing:true per 2 s, typing:false after 3 s idle and on send", async () => {
  const h = await fakeClient();
  const ch = h.client.channel("room");
  ch.typing(true);
  assert.equal(h.socket.sent.length, 0, "not before the join");
  ch.join();
  await openAndJoin(h, "room");
  const typingFrames = () => h.socket.frames("typing").map((f) => f.typing);
  for (let i = 0; i < 10; i++) { ch.typing(true); await h.timers.advance(100); }
  assert.deepEqual(typingFrames(), [true], "throttled");
  await h.timers.advance(1000);
  ch.typing(true);
  assert.deepEqual(typingFrames(), [true, true], "refreshed after 2 s of typing");
  await h.timers.advance(2999);
  assert.deepEqual(typingFrames(), [true, true]);
  await h.timers.advance(1);
  assert.deepEqual(typingFrames(), [true, true, false], "stopped after 3 s idle");
  ch.typing(false);
  assert.deepEqual(typingFrames(), [true, true, false], "no second typing:false");
  ch.typing(true);
  void ch.send("hello");
  const types = h.socket.sent.slice(-3).map((f) => f.type + (f.type === "typing" ? ":" + f.typing : ""));
  assert.deepEqual(types, ["typing:true", "typing:false", "message"], "send() stops typing first");
});

test("typing frames: a Set of the users typing; a message or going offline ends a user's typing", async () => {
  const h = await fakeClient();
  const ch = h.client.channel("room");
  const sets = [];
  ch.on("typing", (s) => sets.push([...s].sort().join(",")));
  ch.join();
  await openAndJoin(h, "room", { presence: ["bob", "carol"] });
  h.socket.receive({ type: "typing", user_id: "bob", channel: "room", typing: true });
  h.socket.receive({ type: "typing", user_id: "bob", channel: "room", typing: true });
  h.socket.receive({ type: "typing", user_id: "carol", channel: "room", typing: true });
  h.socket.receive(message(1, "hi"));
  h.socket.receive({ type: "presence", user_id: "carol", online: false, channel: "room" });
  assert.deepEqual(sets, ["bob", "bob,carol", "carol", ""]);
});

test("send: queued until joined, resolved by the echo of its nonce, re-sent with the same nonce after a drop, never twice per connection", async () => {
  const h = await fakeClient({ random: () => 0 });
  const ch = h.client.channel("room");
  const emitted = [];
  ch.on("message", (m) => emitted.push(m.content));
  ch.join();
  const first = ch.send("one");
  const second = ch.send("two");
  h.socket.open();
  assert.equal(h.socket.frames("message").length, 0, "not before joined");
  h.socket.receive({ type: "joined", channel: "room", offset: 0, epoch: "e1" });
  const sent = h.socket.frames("message");
  assert.deepEqual(sent.map((f) => f.content), ["one", "two"]);
  for (const f of sent) assert.match(f.nonce, /^[A-Za-z0-9_-]{1,64}$/);
  assert.notEqual(sent[0].nonce, sent[1].nonce);
  h.socket.receive(message(1, "one", { sender: "me", nonce: sent[0].nonce }));
  assert.equal((await first).id, "id-1");
  // The connection drops before "two" is echoed: after the re-join it goes again with its nonce.
  h.socket.serverClose(1006);
  await h.timers.advance(500);
  h.socket.open();
  h.socket.receive({ type: "joined", channel: "room", offset: 1, epoch: "e1", recovered: true });
  assert.deepEqual(h.socket.frames("message"), [{ type: "message", channel: "room", content: "two", nonce: sent[1].nonce }]);
  h.socket.receive({ type: "joined", channel: "room", offset: 1, epoch: "e1" });
  assert.equal(h.socket.frames("message").length, 1, "not sent twice on one connection");
  h.socket.receive(message(2, "two", { sender: "me", nonce: sent[1].nonce }));
  assert.equal((await second).offset, 2);
  // A repeated answer (same offset) resolves nothing more and is not emitted again.
  h.socket.receive(message(2, "two", { sender: "me", nonce: sent[1].nonce }));
  assert.deepEqual(emitted, ["one", "two"]);
});

test("send: a message replayed on re-join resolves its send without sending it again", async () => {
  const h = await fakeClient({ random: () => 0 });
  const ch = h.client.channel("room");
  ch.join();
  await openAndJoin(h, "room");
  const sending = ch.send("hello");
  const { nonce } = h.socket.frames("message")[0];
  h.socket.serverClose(1006);
  await h.timers.advance(500);
  h.socket.open();
  h.socket.receive(message(1, "hello", { sender: "me", nonce }));
  h.socket.receive({ type: "joined", channel: "room", offset: 1, epoch: "e1", recovered: true });
  assert.equal((await sending).offset, 1);
  assert.equal(h.socket.frames("message").length, 0);
});

test("send errors: the server's code rejects; unavailable is retried with backoff first", async () => {
  const h = await fakeClient({ random: () => 0.999999 }); // each retry waits just under its ceiling
  const ch = h.client.channel("room");
  await assert.rejects(ch.send("early"), (e) => e.code === "not_joined");
  ch.join();
  await openAndJoin(h, "room");
  const limited = ch.send("fast");
  const nonce1 = h.socket.frames("message")[0].nonce;
  h.socket.receive({ type: "error", code: "rate_limited", message: "slow down", channel: "room", nonce: nonce1 });
  await assert.rejects(limited, (e) => e.code === "rate_limited" && e.message === "slow down");
  const refused = ch.send("later");
  const nonce2 = h.socket.frames("message")[1].nonce;
  let outcome = null;
  refused.then(() => { outcome = "resolved"; }, (e) => { outcome = e.code; });
  for (let i = 0; i < 4; i++) {
    h.socket.receive({ type: "error", code: "unavailable", message: "try later", channel: "room", nonce: nonce2 });
    const before = h.socket.frames("message").length;
    await h.timers.advance(Math.min(30000, 500 * 2 ** i) - 1);
    assert.equal(h.socket.frames("message").length, before, "waits for the backoff");
    await h.timers.advance(1);
    assert.equal(h.socket.frames("message").length, before + 1, `retry ${i + 1}`);
    assert.equal(h.socket.frames("message").at(-1).nonce, nonce2, "same nonce");
    assert.equal(outcome, null);
  }
  h.socket.receive({ type: "error", code: "unavailable", message: "still down", nonce: nonce2 });
  await settle();
  assert.equal(outcome, "unavailable", "rejected after the retries (found by nonce without a channel)");
});

test("join errors: forbidden_channel rejects at once; unavailable is retried; a refused re-join emits error", async () => {
  const h = await fakeClient({ random: () => 0 });
  const forbidden = h.client.channel("secret");
  const pending = forbidden.join();
  h.socket.open();
  h.socket.receive({ type: "error", code: "forbidden_channel", message: "no", channel: "secret" });
  await assert.rejects(pending, (e) => e.code === "forbidden_channel");
  const ch = h.client.channel("room");
  let joined = false;
  ch.join().then(() => { joined = true; });
  h.socket.receive({ type: "error", code: "unavailable", message: "auth down", channel: "room" });
  assert.equal(h.socket.frames("join").filter((f) => f.channel === "room").length, 1);
  await h.timers.advance(500);
  assert.equal(h.socket.frames("join").filter((f) => f.channel === "room").length, 2, "join retried after the backoff");
  h.socket.receive({ type: "joined", channel: "room", offset: 0, epoch: "e1" });
  await settle();
  assert.equal(joined, true);
  const errors = [];
  ch.on("error", (e) => errors.push(e.code));
  h.socket.serverClose(1006);
  await h.timers.advance(500);
  h.socket.open();
  h.socket.receive({ type: "error", code: "forbidden_channel", message: "removed from the family", channel: "room" });
  assert.deepEqual(errors, ["forbidden_channel"]);
  await assert.rejects(ch.send("x"), (e) => e.code === "not_joined");
});

test("leave sends leave, rejects pending sends and forgets the channel's state", async () => {
  const h = await fakeClient();
  const ch = h.client.channel("room");
  ch.join();
  await openAndJoin(h, "room", { presence: ["bob"], offset: 3 });
  const sending = ch.send("bye");
  ch.leave();
  assert.deepEqual(h.socket.sent.at(-1), { type: "leave", channel: "room" });
  await assert.rejects(sending, (e) => e.code === "left");
  assert.equal(ch.members.size, 0);
  h.socket.receive(message(4, "after leave"));
  ch.join();
  assert.deepEqual(h.socket.sent.at(-1), { type: "join", channel: "room" }, "a new join starts afresh (no since)");
});

test("errors without channel or nonce go to the client's error event", async () => {
  const h = await fakeClient();
  h.socket.open();
  h.socket.receive({ type: "error", code: "bad_json", message: "oops" });
  assert.deepEqual(h.errors.map((e) => e.code), ["bad_json"]);
  FakeSocket.last.onmessage({ data: "not json" });
});
