// A real presenced process for the server-facing suites: the release binary on a free loopback
// port, with a test token secret; tokens are minted here per docs/protocol.md, "Token format" (HS256 with node:crypto).
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repository = fileURLToPath(new URL("../../../../", import.meta.url));
/** The binary under test: PRESENCED_BIN, else the release build of this repository. */
export const binary = process.env.PRESENCED_BIN || join(repository, ".build/release/presenced");
export const secret = "js-client-test-secret-0123456789abcdef";

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const base64url = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** An HS256 token for `user` (sub, iat, exp, jti, aud) plus `claims` (name, channels, …). */
export function mintToken(user, claims = {}, key = secret) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { sub: user, iat: now, exp: now + 60, jti: randomBytes(12).toString("hex"), aud: "presenced", ...claims };
  const signed = base64url({ alg: "HS256", typ: "JWT" }) + "." + base64url(payload);
  return signed + "." + createHmac("sha256", key).update(signed).digest("base64url");
}

/**
 * Starts presenced with `environment` added to a test configuration and waits until /readyz
 * answers 200. `stop()` ends it (SIGKILL) and removes its state directory.
 */
export async function startPresenced(environment = {}) {
  const port = environment.PORT ? Number(environment.PORT) : await freePort();
  const state = mkdtempSync(join(tmpdir(), "presenced-js-"));
  const env = {
    PATH: "/usr/bin:/bin", PORT: String(port), BIND: "127.0.0.1", WS_TOKEN_SECRET: secret, STATE_DIRECTORY: state,
    LOG_LEVEL: "warn", PRESENCE_GRACE: "200ms", THREADS: "2", ...environment,
  };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(binary, [], { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => { stderr += chunk; });
  let exited = null;
  child.on("exit", (code, signal) => { exited = { code, signal }; });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10000;
  for (;;) {
    if (exited) throw new Error(`presenced exited at start (${JSON.stringify(exited)}): ${stderr}`);
    try {
      if ((await fetch(origin + "/readyz")).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error("presenced did not become ready within 10 s: " + stderr);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    port,
    origin,
    url: `ws://127.0.0.1:${port}/ws`,
    /** A token function for `new PresenceClient({token})` that counts its calls. */
    tokens(user, claims) {
      const source = () => { source.calls++; return mintToken(user, claims); };
      source.calls = 0;
      return source;
    },
    get stderr() { return stderr; },
    async stop() {
      if (!exited) {
        const done = new Promise((r) => child.once("exit", r));
        child.kill("SIGKILL");
        await done;
      }
      rmSync(state, { recursive: true, force: true });
    },
  };
}
