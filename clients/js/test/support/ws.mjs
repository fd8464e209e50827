// Node's WebSocket for the library: Debian's node-ws (NODE_PATH=/usr/share/nodejs).
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let ws;
try {
  ws = require("ws");
} catch {
  ws = require("/usr/share/nodejs/ws");
}
/** The `ws` package's WebSocket class. */
export const WebSocket = ws.WebSocket ?? ws;
