// The connection itself against a real presenced (no channel): tokens, the server's pongs, a
// dead connection found by the client's ping, a TCP reset, a refused upgrade (docs/protocol.md, "Connecting").
import assert from "node:assert/strict";
import { test } from "node:test";
import { PresenceClient } from "../../dist/index.js";
import { mintToken, startPresenced } from "../support/presenced.mjs";
import { startProxy } from "../support/proxy.mjs";
import { waitFor } from "../support/wait.mjs";
import { WebSocket } from "../support/ws.mjs";

async function setUp(t) {
  const server = await startPresenced();
  const proxy = await startProxy(server.port);
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.close();
    await proxy.close();
    await server.stop();
  });
  const connect = (options) => {
    const client = new PresenceClient({ WebSocket, reconnect: { minDelay: 50, maxDelay: 200 }, ...options });
    clients.push(client);
    return client;
  };
  return { server, proxy, connect };
}

test("opens with a token; a TCP reset is followed by a new connection with a fresh token", { timeout: 15000 }, async (t) => {
  const { server, proxy, connect } = await setUp(t);
  const token = server.tokens("alice");
  const client = connect({ url: proxy.url, token });
  const states = [];
  client.on("state", (s) => states.push(s));
  await waitFor("open", () => client.state === "open");
  proxy.reset();
  await waitFor("open again after the reset", () => states.join(" ") === "open reconnecting open");
  assert.equal(proxy.accepted, 2);
  assert.equal(token.calls, 2, "one token per connection (they are single use)");
});

test("the server's pongs keep the connection; a connection that stops answering is replaced", { timeout: 15000 }, async (t) => {
  const { server, proxy, connect } = await setUp(t);
  const client = connect({ url: proxy.url, token: server.tokens("bob"), pingInterval: 100, pongTimeout: 300 });
  const states = [];
  client.on("state", (s) => states.push(s));
  await waitFor("open", () => client.state === "open");
  await new Promise((r) => setTimeout(r, 1000)); // ten pings, each answered well within 300 ms
  assert.deepEqual(states, ["open"]);
  assert.equal(proxy.accepted, 1);
  // The server's frames stop reaching the client (a dead path, no FIN, no RST).
  proxy.blackholeDownstream = true;
  await waitFor("the client gave up on the silent connection", () => states.includes("reconnecting"), 3000);
  proxy.blackholeDownstream = false;
  await waitFor("open again", () => states.at(-1) === "open" && states.length === 3);
  assert.equal(proxy.accepted, 2);
});

test("a refused upgrade (a replayed token: 401) is retried with backoff until a good token comes", { timeout: 15000 }, async (t) => {
  const { server, connect } = await setUp(t);
  const used = mintToken("carol");
  const first = new WebSocket(`${server.url}?token=${used}`);
  await new Promise((resolve, reject) => { first.onopen = resolve; first.onerror = reject; });
  first.close();
  let calls = 0;
  const client = connect({ url: server.url, token: () => (++calls <= 3 ? used : mintToken("carol")) });
  await waitFor("open with the fourth token", () => client.state === "open");
  assert.equal(calls, 4, "three refused attempts, then one that opened");
});

test("close() ends the connection with a close frame (the server counts it and drops the connection)", { timeout: 15000 }, async (t) => {
  const { server, connect } = await setUp(t);
  const metric = async (name) => {
    const text = await (await fetch(`${server.origin}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(name + " "));
    return Number(line?.split(" ")[1]);
  };
  const client = connect({ url: server.url, token: server.tokens("dave") });
  await waitFor("open", () => client.state === "open");
  assert.equal(await metric("presenced_connections"), 1);
  client.close();
  assert.equal(client.state, "closed");
  const deadline = Date.now() + 5000;
  while (await metric('presenced_frames_in_total{opcode="close"}') !== 1 || await metric("presenced_connections") !== 0) {
    assert.ok(Date.now() < deadline, "the server did not see a close frame and the connection end within 5 s");
    await new Promise((r) => setTimeout(r, 20));
  }
});
