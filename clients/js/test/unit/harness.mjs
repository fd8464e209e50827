// A client wired to FakeTimers and FakeSocket, for the unit suites.
import { PresenceClient } from "../../dist/index.js";
import { FakeSocket, FakeTimers, settle } from "../support/fake.mjs";

/** A client on fake time and sockets; `states` records every state event, `wake()` fires the wake signal. */
export async function fakeClient(options = {}) {
  FakeSocket.all = [];
  FakeSocket.autoPong = options.autoPong ?? true;
  const timers = new FakeTimers();
  const states = [];
  const errors = [];
  let wake = () => {};
  const token = options.token ?? (() => "token-" + ++token.calls);
  token.calls = 0;
  const client = new PresenceClient({
    url: "ws://presenced.test/ws",
    token,
    WebSocket: FakeSocket,
    timers,
    random: options.random ?? (() => 0.5),
    wakeSignals: (w) => { wake = w; return () => { wake = () => {}; }; },
    ...options.extra,
  });
  client.on("state", (s) => states.push(s));
  client.on("error", (e) => errors.push(e));
  await settle();
  return { client, timers, states, errors, token, wake: () => wake(), get socket() { return FakeSocket.last; } };
}

/** Opens the latest socket and answers the channel's join with `joined` (and `presence` frames before it). */
export async function openAndJoin(h, channel, { offset = 0, epoch = "e1", recovered, presence = [] } = {}) {
  h.socket.open();
  await settle();
  for (const user of presence) h.socket.receive({ type: "presence", user_id: user, online: true, channel });
  const joined = { type: "joined", channel, offset, epoch };
  if (recovered !== undefined) joined.recovered = recovered;
  h.socket.receive(joined);
  await settle();
}

export { FakeSocket, settle };
