// The server's refusals as the library reports them (docs/protocol.md, "Error codes").
import assert from "node:assert/strict";
import { test } from "node:test";
import { PresenceClient, PresenceError } from "../../dist/index.js";
import { startPresenced } from "../support/presenced.mjs";
import { joined, within } from "../support/wait.mjs";
import { WebSocket } from "../support/ws.mjs";

async function setUp(t, environment) {
  const server = await startPresenced(environment);
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });
  return (user, claims) => {
    const client = new PresenceClient({ url: server.url, token: server.tokens(user, claims), WebSocket, reconnect: { minDelay: 50, maxDelay: 200 } });
    clients.push(client);
    return client;
  };
}

test("a join outside the token's channels claim rejects with forbidden_channel", { timeout: 15000 }, async (t) => {
  const connect = await setUp(t, {});
  const client = connect("kid", { channels: ["family-a"] });
  await joined(client.channel("family-a"));
  const refusal = await within("the refusal", client.channel("family-b").join().then(() => null, (e) => e), 5000);
  assert.ok(refusal instanceof PresenceError, String(refusal));
  assert.equal(refusal.code, "forbidden_channel");
  await assert.rejects(client.channel("family-b").send("x"), (e) => e.code === "not_joined");
});

test("send() rejects with the server's code: rate_limited, too_large", { timeout: 15000 }, async (t) => {
  const connect = await setUp(t, { MESSAGE_RATE: "1" });
  const ch = connect("alice").channel("family-e");
  await joined(ch);
  const outcomes = await within("ten sends settle", Promise.allSettled(Array.from({ length: 10 }, (_, i) => ch.send("burst " + i))), 5000);
  const refused = outcomes.filter((o) => o.status === "rejected");
  assert.ok(refused.length >= 1 && refused.length < 10, `${refused.length} of 10 refused`);
  for (const o of refused) assert.equal(o.reason.code, "rate_limited");
  await new Promise((r) => setTimeout(r, 2100)); // the bucket refills
  await assert.rejects(ch.send("x".repeat(5000)), (e) => e instanceof PresenceError && e.code === "too_large");
});
