// Recovery after a TCP reset and idempotent re-sends, against a real presenced behind a proxy
// that resets connections (docs/protocol.md, "Recovery after a reconnect").
import assert from "node:assert/strict";
import { test } from "node:test";
import { PresenceClient } from "../../dist/index.js";
import { startPresenced } from "../support/presenced.mjs";
import { startProxy } from "../support/proxy.mjs";
import { joined, waitFor, within } from "../support/wait.mjs";
import { WebSocket } from "../support/ws.mjs";

const fast = { minDelay: 50, maxDelay: 400 };

/** A server, a proxy in front of it, and clients that are all closed at the end. */
async function setUp(t, environment) {
  const server = await startPresenced(environment);
  const proxy = await startProxy(server.port);
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.close();
    await proxy.close();
    await server.stop();
  });
  const connect = (user, url = server.url) => {
    const token = server.tokens(user);
    const client = new PresenceClient({ url, token, WebSocket, reconnect: fast });
    client.tokenSource = token;
    clients.push(client);
    return client;
  };
  return { server, proxy, connect };
}

test("a TCP reset while another client sends 300 messages: the library emits exactly those 300, in order, after it reconnects", { timeout: 30000 }, async (t) => {
  const { proxy, connect } = await setUp(t, { HISTORY_SIZE: "1000", MESSAGE_RATE: "0" });
  const receiverClient = connect("alice", proxy.url);
  const states = [];
  receiverClient.on("state", (s) => states.push(s));
  const receiver = receiverClient.channel("family-r");
  const got = [];
  let gaps = 0;
  receiver.on("message", (m) => got.push(m));
  receiver.on("gap", () => gaps++);
  await joined(receiver);
  const sender = connect("bob").channel("family-r");
  await joined(sender);

  const first = [];
  for (let i = 1; i <= 100; i++) first.push(sender.send("m" + i));
  await within("the first 100 sends", Promise.all(first), 10000);
  await waitFor("the receiver has the first 100", () => got.length === 100);
  // The other 200 go out while the receiver's connection is reset and new ones are refused.
  const rest = [];
  for (let i = 101; i <= 300; i++) rest.push(sender.send("m" + i));
  proxy.refusing = true;
  proxy.reset();
  await within("the last 200 sends", Promise.all(rest), 10000);
  assert.equal(got.length, 100, "nothing reached the receiver after the reset");
  await waitFor("the receiver noticed the reset", () => receiverClient.state === "reconnecting");
  proxy.refusing = false;
  await waitFor("the receiver has all 300", () => got.length >= 300, 15000);
  await new Promise((r) => setTimeout(r, 300)); // room for a duplicate to show up
  assert.equal(got.length, 300);
  assert.deepEqual(got.map((m) => m.content), Array.from({ length: 300 }, (_, i) => "m" + (i + 1)));
  const offsets = got.map((m) => m.offset);
  for (let i = 1; i < offsets.length; i++) assert.equal(offsets[i], offsets[i - 1] + 1, `offsets consecutive at ${i}`);
  assert.equal(new Set(got.map((m) => m.epoch)).size, 1);
  const sent = await Promise.all(first.concat(rest));
  assert.deepEqual(got.map((m) => m.id), sent.map((m) => m.id), "the frames the sender's sends resolved with");
  assert.equal(gaps, 0, "recovered: no gap");
  assert.ok(states.includes("reconnecting") && states.at(-1) === "open", states.join(" "));
  assert.ok(proxy.accepted >= 2, "a new connection was made");
  assert.equal(receiverClient.tokenSource.calls, proxy.accepted, "a fresh token for every connection attempt");
});

test("more missed than the server's history keeps: gap, and nothing replayed", { timeout: 30000 }, async (t) => {
  const { proxy, connect } = await setUp(t, { HISTORY_SIZE: "10", MESSAGE_RATE: "0" });
  const receiverClient = connect("alice", proxy.url);
  const receiver = receiverClient.channel("family-g");
  const got = [];
  let gaps = 0;
  receiver.on("message", (m) => got.push(m.content));
  receiver.on("gap", () => gaps++);
  await joined(receiver);
  const sender = connect("bob").channel("family-g");
  await joined(sender);
  proxy.refusing = true;
  proxy.reset();
  await waitFor("the receiver noticed the reset", () => receiverClient.state === "reconnecting");
  const sends = [];
  for (let i = 1; i <= 30; i++) sends.push(sender.send("missed " + i));
  await within("30 sends", Promise.all(sends), 10000);
  proxy.refusing = false;
  await waitFor("the gap event", () => gaps === 1, 10000);
  assert.deepEqual(got, [], "recovered:false replays nothing");
  await sender.send("after the gap");
  await waitFor("the next live message", () => got.length === 1);
  assert.deepEqual(got, ["after the gap"]);
  assert.equal(gaps, 1);
});

for (const history of ["0", "200"]) {
  test(`a send whose echo was lost in a drop is re-sent and appears once (HISTORY_SIZE=${history})`, { timeout: 30000 }, async (t) => {
    const { proxy, connect } = await setUp(t, { HISTORY_SIZE: history });
    const writerClient = connect("alice", proxy.url);
    const writer = writerClient.channel("family-s");
    const observer = connect("bob").channel("family-s");
    await joined(writer);
    await joined(observer);
    const writerSaw = [];
    const observerSaw = [];
    writer.on("message", (m) => writerSaw.push(m));
    observer.on("message", (m) => observerSaw.push(m));
    // The server takes the message, but its answer never reaches the writer: then a reset.
    proxy.blackholeDownstream = true;
    const sending = writer.send("only once");
    await waitFor("the observer got the message", () => observerSaw.length === 1);
    let settled = false;
    sending.then(() => { settled = true; }, () => { settled = true; });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(settled, false, "the writer has not seen its echo");
    proxy.blackholeDownstream = false;
    proxy.reset();
    const frame = await within("the send resolves after the reconnect", sending, 10000);
    assert.equal(frame.id, observerSaw[0].id, "the original frame (same id)");
    assert.equal(frame.offset, observerSaw[0].offset);
    await observer.send("marker");
    await waitFor("the writer got the marker", () => writerSaw.some((m) => m.content === "marker"));
    await waitFor("the observer got the marker", () => observerSaw.some((m) => m.content === "marker"));
    assert.deepEqual(observerSaw.map((m) => m.content), ["only once", "marker"], "the observer saw it once");
    assert.equal(writerSaw.filter((m) => m.content === "only once").length, 1, "the writer emits it once");
    assert.ok(proxy.accepted >= 2);
  });
}
