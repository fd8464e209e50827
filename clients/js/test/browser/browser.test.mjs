// The built library in a real browser: headless Chromium loads presenced's console page (same
// origin, CSP script-src 'self'), imports /presence-client.js (the embedded build) and runs the
// presence/typing/message flow for two users, each in a browser context with its own session
// cookie; tokens come from the library's default, POST /api/v1/ws-token with credentials,
// which presenced answers by asking a stand-in better-auth for the cookie's session.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { findChromium, startChromium } from "../support/chromium.mjs";
import { freePort, startPresenced } from "../support/presenced.mjs";

const chromium = findChromium();

/** better-auth's get-session, answering for its session cookie `better-auth.session_token=<user>`. */
async function startAuthService() {
  const server = createServer((req, res) => {
    const user = /(?:^|;\s*)better-auth\.session_token=([A-Za-z0-9_-]+)/.exec(req.headers.cookie ?? "")?.[1];
    res.setHeader("Content-Type", "application/json");
    if (req.url !== "/api/auth/get-session" || !user) {
      res.statusCode = 401;
      return res.end("null");
    }
    res.end(JSON.stringify({ session: { id: "s-" + user, userId: user }, user: { id: user, name: user[0].toUpperCase() + user.slice(1) } }));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return server;
}

const setUpPage = (user) => `(async () => {
  if (${JSON.stringify(user)}) document.cookie = "better-auth.session_token=${user}; path=/";
  const { PresenceClient } = await import("/presence-client.js");
  const client = new PresenceClient({ url: "ws://" + location.host + "/ws" });
  const ch = client.channel("family-browser");
  const t = window.presenceTest = { client, ch, states: [], messages: [], presence: {}, typing: [] };
  client.on("state", (s) => t.states.push(s));
  ch.on("message", (m) => t.messages.push(m.sender + ": " + m.content));
  ch.on("presence", (members) => { t.presence = Object.fromEntries(members); });
  ch.on("typing", (users) => { t.typing = [...users]; });
  ch.join().then(() => { t.joined = true; }, (e) => { t.joinError = e.code; });
  if (client.state === "connecting") await new Promise((resolve) => client.on("state", resolve));
  return client.state;
})()`;
const joined = `window.presenceTest.joined === true`;

const skip = chromium ? false : "chromium not installed (apt-get install chromium)";
let auth, server, browser;
before(async () => {
  if (!chromium) return;
  auth = await startAuthService();
  const port = await freePort();
  server = await startPresenced({
    PORT: String(port), AUTH_SERVICE_URL: `http://127.0.0.1:${auth.address().port}`, CHANNELS_OPEN: "1",
    ALLOWED_ORIGINS: `http://127.0.0.1:${port}`,
  });
  browser = await startChromium(chromium);
});
after(async () => {
  await browser?.close();
  await server?.stop();
  auth?.close();
});

test("in a page: /presence-client.js imports, the default token comes from /api/v1/ws-token with the session cookie; no session is revoked", { skip, timeout: 30000 }, async () => {
  const erin = await browser.openIsolated(server.origin + "/");
  assert.equal(await erin.evaluate(setUpPage("erin")), "open");
  const nobody = await browser.openIsolated(server.origin + "/");
  assert.equal(await nobody.evaluate(setUpPage("")), "revoked", "ws-token answers 401 without a session");
  await browser.closePage(erin);
  await browser.closePage(nobody);
});

test("two users in two browsers: presence, typing and messages through the built library", { skip, timeout: 60000 }, async () => {
  const alice = await browser.openIsolated(server.origin + "/");
  const bob = await browser.openIsolated(server.origin + "/");
  assert.equal(await alice.evaluate(setUpPage("alice")), "open");
  assert.equal(await bob.evaluate(setUpPage("bob")), "open");
  await alice.waitFor("alice's join completes (joined)", joined, 5000);
  await bob.waitFor("bob's join completes (joined)", joined, 5000);
  const online = (user) => `window.presenceTest.presence[${JSON.stringify(user)}]?.online === true`;
  await alice.waitFor("alice sees bob online", online("bob"));
  await bob.waitFor("bob sees alice online, with her name", `${online("alice")} && window.presenceTest.presence.alice.name === "Alice"`);

  await bob.evaluate(`window.presenceTest.ch.typing(true)`);
  await alice.waitFor("alice sees bob typing", `window.presenceTest.typing.includes("bob")`);
  const sent = await bob.evaluate(`window.presenceTest.ch.send("hello from bob").then((m) => ({ id: m.id, offset: m.offset }))`);
  assert.match(sent.id, /^[0-9a-f-]{36}$/);
  assert.equal(typeof sent.offset, "number");
  await alice.waitFor("alice gets bob's message and bob stopped typing",
    `window.presenceTest.messages.includes("bob: hello from bob") && !window.presenceTest.typing.includes("bob")`);
  await alice.evaluate(`window.presenceTest.ch.send("hi bob")`);
  await bob.waitFor("bob gets alice's message", `window.presenceTest.messages.join("|") === "bob: hello from bob|alice: hi bob"`);

  await browser.closePage(bob);
  await alice.waitFor("alice sees bob go offline when his tab closes", `window.presenceTest.presence.bob?.online === false`);
  assert.deepEqual(await alice.evaluate(`window.presenceTest.states`), ["open"]);
});
