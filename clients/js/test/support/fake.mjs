// Injected time and sockets for the unit suites: FakeTimers runs timers only when told to
// advance, FakeSocket records what the client sends and lets the test play the server.

/** A manual clock: `advance(ms)` runs every timer due by then, in order, letting promises settle between. */
export class FakeTimers {
  time = 0;
  nextId = 1;
  pending = new Map(); // id → { at, callback, delay }
  /** Every delay passed to setTimeout, in order. */
  scheduled = [];
  now = () => this.time;
  setTimeout = (callback, ms) => {
    const id = this.nextId++;
    this.pending.set(id, { at: this.time + ms, callback, delay: ms });
    this.scheduled.push(ms);
    return id;
  };
  clearTimeout = (id) => { this.pending.delete(id); };

  async advance(ms) {
    const end = this.time + ms;
    for (;;) {
      await settle();
      let due = null;
      for (const [id, t] of this.pending) if (t.at <= end && (!due || t.at < due[1].at || (t.at === due[1].at && id < due[0]))) due = [id, t];
      if (!due) break;
      this.pending.delete(due[0]);
      this.time = due[1].at;
      due[1].callback();
    }
    this.time = end;
    await settle();
  }

  /** Delays of the timers pending now. */
  get pendingDelays() { return [...this.pending.values()].map((t) => t.delay); }
}

/** Lets queued promise callbacks (an awaited token function, …) run. */
export async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** A WebSocket stand-in: every instance is kept in `FakeSocket.all`; the test opens, answers and closes it. */
export class FakeSocket {
  static all = [];
  /** Answer every ping with a pong (as a live server does). */
  static autoPong = true;
  static get last() { return FakeSocket.all[FakeSocket.all.length - 1]; }
  onopen = null; onmessage = null; onclose = null; onerror = null;
  sent = [];
  closedByClient = null;

  constructor(url) {
    this.url = url;
    FakeSocket.all.push(this);
  }

  send(data) {
    const frame = JSON.parse(data);
    this.sent.push(frame);
    if (frame.type === "ping" && FakeSocket.autoPong) queueMicrotask(() => this.receive({ type: "pong" }));
  }
  close(code) { this.closedByClient = code ?? 1005; }

  /** The server accepted the upgrade. */
  open() { this.onopen?.({}); }
  /** A frame from the server. */
  receive(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
  /** The server closed (or the network dropped: 1006). */
  serverClose(code) { this.onclose?.({ code }); }
  /** Frames the client sent of `type`. */
  frames(type) { return this.sent.filter((f) => f.type === type); }
}
