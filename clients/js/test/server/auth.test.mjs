// Close 4401 (re-authenticate) and 4403 (revoked) from a real presenced (docs/protocol.md, "Revocation").
import assert from "node:assert/strict";
import { test } from "node:test";
import { PresenceClient } from "../../dist/index.js";
import { startPresenced } from "../support/presenced.mjs";
import { joined, waitFor, within } from "../support/wait.mjs";
import { WebSocket } from "../support/ws.mjs";

const apiToken = "server-api-token-for-js-tests-0123";

async function setUp(t, environment) {
  const server = await startPresenced(environment);
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });
  const connect = (user) => {
    const token = server.tokens(user);
    const client = new PresenceClient({ url: server.url, token, WebSocket, reconnect: { minDelay: 50, maxDelay: 200 } });
    clients.push(client);
    return { client, token };
  };
  return { server, connect };
}

test("4401 (connection too old): a new token at once, the channel re-joined without a gap, messages keep coming", { timeout: 20000 }, async (t) => {
  const { connect } = await setUp(t, { MAX_CONNECTION_AGE: "1s" });
  const { client, token } = connect("alice");
  const states = [];
  client.on("state", (s) => states.push(s));
  const ch = client.channel("family-4401");
  let gaps = 0;
  ch.on("gap", () => gaps++);
  const got = [];
  ch.on("message", (m) => got.push(m.content));
  await joined(ch);
  assert.equal(token.calls, 1);
  await waitFor("the server closed with 4401 and the client came back", () => token.calls >= 2 && client.state === "open", 5000);
  assert.deepEqual(states.slice(0, 3), ["open", "reconnecting", "open"]);
  const { client: other } = connect("bob");
  const bob = other.channel("family-4401");
  await joined(bob);
  await within("bob's send", bob.send("still here"), 5000);
  await waitFor("alice gets bob's message on her new connection", () => got.includes("still here"));
  assert.equal(gaps, 0);
});

test("4403 (revoked by the server API): state revoked, pending work rejected, no retry", { timeout: 20000 }, async (t) => {
  const { server, connect } = await setUp(t, { SERVER_API_TOKEN: apiToken });
  const { client, token } = connect("mallory");
  const ch = client.channel("family-4403");
  await joined(ch);
  const revoked = new Promise((resolve) => client.on("state", (s) => { if (s === "revoked") resolve(); }));
  const response = await fetch(server.origin + "/api/v1/disconnect", {
    method: "POST", headers: { Authorization: "Bearer " + apiToken, "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: "mallory" }),
  });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { disconnected: 1 });
  await within("state revoked", revoked, 5000);
  await assert.rejects(ch.send("after"), (e) => e.code === "revoked");
  await new Promise((r) => setTimeout(r, 1000)); // many backoff periods (50-200 ms): a retry would have happened
  assert.equal(client.state, "revoked");
  assert.equal(token.calls, 1, "no new token, no new connection");
});
