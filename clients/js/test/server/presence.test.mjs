// Presence and typing through the library against a real presenced (docs/protocol.md, "Presence").
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { PresenceClient } from "../../dist/index.js";
import { startPresenced } from "../support/presenced.mjs";
import { joined, next, waitFor } from "../support/wait.mjs";
import { WebSocket } from "../support/ws.mjs";

let server;
const clients = [];
before(async () => { server = await startPresenced(); });
after(async () => {
  for (const c of clients) c.close();
  await server.stop();
});

function connect(user, claims) {
  const client = new PresenceClient({ url: server.url, token: server.tokens(user, claims), WebSocket, reconnect: { minDelay: 50, maxDelay: 500 } });
  clients.push(client);
  return client;
}

const online = (ch) => [...ch.members].filter(([, m]) => m.online).map(([u]) => u).sort().join(",");

test("two users, two tabs: each sees the others; a user stays online until the last tab goes", { timeout: 20000 }, async () => {
  const aliceTab1Client = connect("alice");
  const aliceTab1 = aliceTab1Client.channel("family-1");
  await joined(aliceTab1);
  assert.equal(online(aliceTab1), "alice", "the joiner's own presence is in the snapshot");
  const bob = connect("bob").channel("family-1");
  const bobJoined = await joined(bob);
  assert.equal(typeof bobJoined.offset, "number");
  assert.equal(online(bob), "alice,bob");
  await waitFor("alice's first tab sees bob", () => online(aliceTab1) === "alice,bob");
  const aliceTab2Client = connect("alice");
  const aliceTab2 = aliceTab2Client.channel("family-1");
  await joined(aliceTab2);
  assert.equal(online(aliceTab2), "alice,bob");
  // Closing one of alice's two tabs is not alice going offline.
  const bobEvents = [];
  bob.on("presence", (m) => bobEvents.push(m.get("alice")?.online));
  aliceTab1Client.close();
  await new Promise((r) => setTimeout(r, 600)); // longer than PRESENCE_GRACE (200 ms): an online:false would have come
  assert.deepEqual(bobEvents, [], "no presence change while alice's second tab is open");
  assert.equal(online(bob), "alice,bob");
  aliceTab2Client.close();
  const seen = await next(bob, "presence", (m) => m.get("alice")?.online === false);
  assert.equal(seen.get("alice").online, false);
  assert.equal(online(bob), "bob");
});

test("presence carries the token's name, and last_seen when offline", { timeout: 20000 }, async () => {
  const carolClient = connect("carol", { name: "Carol C." });
  await joined(carolClient.channel("family-2"));
  const dan = connect("dan", { name: "Dan" }).channel("family-2");
  await joined(dan);
  assert.deepEqual(dan.members.get("carol"), { online: true, name: "Carol C." });
  assert.deepEqual(dan.members.get("dan"), { online: true, name: "Dan" });
  carolClient.close();
  const seen = await next(dan, "presence", (m) => m.get("carol")?.online === false);
  assert.equal(seen.get("carol").name, "Carol C.");
  assert.match(seen.get("carol").lastSeen ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
});

test("typing on and off reaches the other user, not the typist's own tabs", { timeout: 20000 }, async () => {
  const erin = connect("erin").channel("family-3");
  const erinTab2 = connect("erin").channel("family-3");
  const frank = connect("frank").channel("family-3");
  await Promise.all([joined(erin), joined(erinTab2), joined(frank)]);
  const erinSaw = [];
  erinTab2.on("typing", (s) => erinSaw.push([...s]));
  erin.typing(true);
  const on = await next(frank, "typing", (s) => s.has("erin"));
  assert.deepEqual([...on], ["erin"]);
  erin.typing(false);
  const off = await next(frank, "typing", (s) => !s.has("erin"));
  assert.equal(off.size, 0);
  frank.typing(true);
  await next(erin, "typing", (s) => s.has("frank"));
  // send() ends typing: frank's message arrives and frank is no longer typing for erin.
  const sent = await frank.send("dinner is ready");
  assert.equal(sent.content, "dinner is ready");
  await waitFor("erin sees frank stop typing", () => !erin.typingUsers.has("frank"));
  assert.ok(erinSaw.every((s) => !s.includes("erin")), "erin's own tabs never see erin typing");
});
