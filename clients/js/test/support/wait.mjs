// Waiting on conditions in tests against real processes (never a fixed sleep as an assertion).

/** Resolves once `predicate()` is true (polled every 10 ms); rejects naming `what` after `ms`. */
export async function waitFor(what, predicate, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within(what, promise, ms = 5000) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The next value of `emitter`'s `event` that satisfies `predicate`. */
export function next(emitter, event, predicate = () => true, ms = 5000) {
  let off;
  const seen = new Promise((resolve) => { off = emitter.on(event, (v) => { if (predicate(v)) resolve(v); }); });
  return within(`${event} event`, seen, ms).finally(() => off());
}

/** `channel.join()`, which needs the server's `joined` frame (docs/protocol.md, "Recovery after a reconnect"), within 5 s. */
export function joined(channel, ms = 5000) {
  return within(`the server's joined frame for ${channel.id}`, channel.join(), ms);
}
