// A TCP proxy between the client and presenced, to break connections the way networks do:
// `reset()` sends a TCP RST both ways (not a WebSocket close); while `refusing`, new connections
// are reset at once; while `blackholeDownstream`, bytes from the server are dropped.
import { connect, createServer } from "node:net";

/** Starts a proxy on a free loopback port to 127.0.0.1:`targetPort`. */
export async function startProxy(targetPort) {
  const pairs = new Set();
  const proxy = {
    port: 0,
    refusing: false,
    blackholeDownstream: false,
    /** Connections accepted so far. */
    accepted: 0,
    /** Bytes sent from the client to the server so far. */
    upstreamBytes: 0,
    get url() { return `ws://127.0.0.1:${this.port}/ws`; },
    /** Resets every open connection (RST to the client and to the server). */
    reset() {
      for (const { client, server } of pairs) {
        client.resetAndDestroy();
        server.resetAndDestroy();
      }
      pairs.clear();
    },
    close() {
      proxy.reset();
      return new Promise((r) => listener.close(r));
    },
  };
  const listener = createServer((client) => {
    proxy.accepted++;
    if (proxy.refusing) return void client.resetAndDestroy();
    const server = connect(targetPort, "127.0.0.1");
    const pair = { client, server };
    pairs.add(pair);
    client.on("data", (chunk) => { proxy.upstreamBytes += chunk.length; server.write(chunk); });
    server.on("data", (chunk) => { if (!proxy.blackholeDownstream) client.write(chunk); });
    const end = () => { pairs.delete(pair); client.destroy(); server.destroy(); };
    client.on("close", end);
    server.on("close", end);
    client.on("error", end);
    server.on("error", end);
  });
  await new Promise((r) => listener.listen(0, "127.0.0.1", r));
  proxy.port = listener.address().port;
  return proxy;
}
