// Headless Chromium over the DevTools protocol (no driver): a private profile, browser contexts
// with their own cookie jars, pages, and Runtime.evaluate.
import { spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocket } from "./ws.mjs";

/** Debian's chromium, or the binary named by CHROMIUM; null when there is none. */
export function findChromium() {
  for (const candidate of [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch { /* next */ }
  }
  return null;
}

/** One DevTools WebSocket session: `call(method, params)` → result; events are ignored. */
class DevToolsSession {
  static async open(url) {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    return new DevToolsSession(ws);
  }

  constructor(ws) {
    this.ws = ws;
    this.nextId = 0;
    this.waiting = new Map();
    ws.onmessage = (event) => {
      const reply = JSON.parse(event.data);
      const waiter = this.waiting.get(reply.id);
      if (!waiter) return;
      this.waiting.delete(reply.id);
      if (reply.error) waiter.reject(new Error(`DevTools: ${JSON.stringify(reply.error)}`));
      else waiter.resolve(reply.result);
    };
    ws.onclose = () => { for (const w of this.waiting.values()) w.reject(new Error("DevTools connection closed")); };
  }

  call(method, params = {}) {
    const id = ++this.nextId;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  close() { this.ws.close(); }
}

/** A tab: `evaluate(expression)` returns the value (promises awaited); throws what the page threw. */
export class Page {
  constructor(session, targetId) {
    this.session = session;
    this.targetId = targetId;
  }

  async evaluate(expression) {
    const result = await this.session.call("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    if (result.exceptionDetails) throw new Error("page threw: " + JSON.stringify(result.exceptionDetails.exception?.description ?? result.exceptionDetails));
    return result.result.value;
  }

  /** Polls `expression` until it is true. */
  async waitFor(what, expression, ms = 10000) {
    const deadline = Date.now() + ms;
    let last;
    while (Date.now() < deadline) {
      last = await this.evaluate(expression);
      if (last === true) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out after ${ms} ms waiting until ${what} (last value: ${JSON.stringify(last)})`);
  }
}

/** Starts headless Chromium; `close()` kills it and removes its profile. */
export async function startChromium(binary) {
  const profile = mkdtempSync(join(tmpdir(), "presence-client-chromium-"));
  const child = spawn(binary, [
    "--headless=new", "--no-sandbox", "--remote-debugging-port=0", `--user-data-dir=${profile}`, "--no-first-run",
    "--no-default-browser-check", "--disable-gpu", "--disable-extensions", "--disable-background-networking",
    "--disable-sync", "--disable-dev-shm-usage", "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows", "--mute-audio", "about:blank",
  ], { stdio: "ignore", detached: true }); // its own process group: close() ends its helpers too
  const deadline = Date.now() + 30000;
  let port = null;
  while (port === null) {
    try {
      port = Number(readFileSync(join(profile, "DevToolsActivePort"), "utf8").split("\n")[0]) || null;
    } catch { /* not yet */ }
    if (port === null) {
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill("SIGKILL");
        rmSync(profile, { recursive: true, force: true });
        throw new Error("chromium did not open its DevTools port within 30 s");
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const version = await (await fetch(`http://127.0.0.1:${port}/json/version`)).json();
  const browser = await DevToolsSession.open(version.webSocketDebuggerUrl);
  const sessions = [];
  return {
    /** A new tab at `url` in a browser context of its own (its own cookies). */
    async openIsolated(url) {
      const { browserContextId } = await browser.call("Target.createBrowserContext");
      const { targetId } = await browser.call("Target.createTarget", { url: "about:blank", browserContextId });
      const session = await DevToolsSession.open(`ws://127.0.0.1:${port}/devtools/page/${targetId}`);
      sessions.push(session);
      await session.call("Page.enable");
      await session.call("Runtime.enable");
      await session.call("Page.navigate", { url });
      const page = new Page(session, targetId);
      await page.waitFor("the page loaded", `document.readyState === "complete"`);
      return page;
    },
    /** Closes a tab (its page unloads, its WebSockets close). */
    async closePage(page) {
      await browser.call("Target.closeTarget", { targetId: page.targetId });
    },
    async close() {
      for (const s of sessions) s.close();
      browser.close();
      const exited = new Promise((r) => child.once("exit", r));
      process.kill(-child.pid, "SIGKILL");
      await exited;
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    },
  };
}
