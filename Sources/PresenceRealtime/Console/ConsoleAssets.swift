/// The console page's three files, embedded in the binary (no files to install, no CDN):
/// one HTML document, one style sheet and one JavaScript module. Edit them here. The module
/// imports the client library, `/presence-client.js` (ConsoleClientLibrary, generated).
enum ConsoleAssets {
    static let html = Array(htmlText.utf8)
    static let css = Array(cssText.utf8)
    static let javascript = Array(javascriptText.utf8)

    /// The page (`/`, `/console`): markup only; script and style come from the two files below.
    static let htmlText = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>presenced console</title>
<link rel="stylesheet" href="/console.css">
<script type="module" src="/console.js"></script>
</head>
<body>
<header>
  <h1>presenced <span class="sub">console</span></h1>
  <span id="instance" class="badge"></span>
</header>
<main>
  <section id="try" class="card">
    <h2>Try it</h2>
    <p id="try-off" class="note" hidden>Dev tokens are off on this instance (CONSOLE_DEV_TOKENS): connect with a token from your auth service.</p>
    <form id="join-form" autocomplete="off">
      <label>User <input id="user" name="user" maxlength="64" pattern="[A-Za-z0-9_.\-]{1,64}" required></label>
      <label>Channel <input id="channel" name="channel" maxlength="128" value="lobby" pattern="[A-Za-z0-9_.:\-]{1,128}" required></label>
      <button id="connect" type="submit">Connect</button>
      <span id="status" class="status">not connected</span>
    </form>
    <div class="room">
      <aside>
        <h3>Members</h3>
        <ul id="members"></ul>
      </aside>
      <div class="chat">
        <ol id="messages"></ol>
        <div id="typing" class="typing"></div>
        <form id="send-form" autocomplete="off">
          <input id="text" name="text" maxlength="4096" placeholder="Say something" disabled>
          <button id="send" type="submit" disabled>Send</button>
        </form>
      </div>
    </div>
  </section>
  <section id="instance-view" class="card" hidden>
    <h2>Instance</h2>
    <form id="admin-form" autocomplete="off">
      <label>Admin token <input id="admin-token" type="password"></label>
      <button id="admin-show" type="submit">Show</button>
      <span id="admin-status" class="status"></span>
    </form>
    <div id="stats" hidden>
      <dl class="figures">
        <div><dt>Connections</dt><dd id="s-connections">–</dd></div>
        <div><dt>Mode</dt><dd id="s-mode">–</dd></div>
        <div><dt>I/O</dt><dd id="s-io">–</dd></div>
        <div><dt>Uptime</dt><dd id="s-uptime">–</dd></div>
        <div><dt>Redis</dt><dd id="s-redis">–</dd></div>
        <div><dt>Forwarding</dt><dd id="s-forwarding">–</dd></div>
      </dl>
      <h3>Upgrades/s <span class="key up">■</span> and deliveries/s <span class="key del">■</span>, <span id="chart-span">last 10 minutes</span></h3>
      <svg id="chart" viewBox="0 0 600 140" preserveAspectRatio="none" role="img" aria-label="upgrades and deliveries per second"></svg>
      <div class="tables">
        <table><caption>Loops</caption><thead><tr><th>#</th><th>connections</th><th>events/s</th></tr></thead><tbody id="s-loops"></tbody></table>
        <table><caption>Busiest channels</caption><thead><tr><th>channel</th><th>members</th></tr></thead><tbody id="s-channels"></tbody></table>
      </div>
    </div>
  </section>
</main>
</body>
</html>
"""#

    /// `/console.css`.
    static let cssText = #"""
:root { --bg: #f4f5f7; --card: #fff; --ink: #1d2330; --muted: #6b7280; --line: #e3e6ea; --accent: #2563eb; --ok: #16a34a; --off: #b8bec7; --del: #f59e0b; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
header { display: flex; align-items: center; gap: 12px; padding: 12px 24px; background: var(--ink); color: #fff; }
h1 { margin: 0; font-size: 18px; font-weight: 600; }
h1 .sub { font-weight: 400; opacity: .7; }
h2 { margin: 0 0 12px; font-size: 16px; }
h3 { margin: 12px 0 6px; font-size: 13px; color: var(--muted); font-weight: 600; }
.badge { font: 12px ui-monospace, monospace; background: rgba(255,255,255,.12); padding: 2px 8px; border-radius: 10px; }
main { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; padding: 16px 24px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px; min-width: 0; }
form { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; }
label { display: flex; align-items: center; gap: 6px; color: var(--muted); }
input { font: inherit; padding: 5px 8px; border: 1px solid var(--line); border-radius: 5px; color: var(--ink); }
button { font: inherit; padding: 5px 14px; border: 0; border-radius: 5px; background: var(--accent); color: #fff; cursor: pointer; }
button:disabled, input:disabled { opacity: .5; cursor: default; }
.status { color: var(--muted); font-size: 12px; }
.status.error { color: #dc2626; }
.note { color: var(--muted); }
.room { display: grid; grid-template-columns: 150px 1fr; gap: 12px; margin-top: 12px; }
#members { list-style: none; margin: 0; padding: 0; }
#members li { display: flex; align-items: center; gap: 6px; padding: 2px 0; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: var(--off); flex: none; }
li[data-online="true"] .dot { background: var(--ok); }
li[data-online="false"] { color: var(--muted); }
.chat { display: flex; flex-direction: column; min-width: 0; }
#messages { list-style: none; margin: 0; padding: 8px; height: 300px; overflow-y: auto; border: 1px solid var(--line); border-radius: 6px; background: #fafbfc; }
#messages li { padding: 2px 0; overflow-wrap: anywhere; }
#messages .time { color: var(--muted); font-size: 11px; margin-right: 6px; }
#messages .sender { font-weight: 600; margin-right: 6px; }
#messages li.system { color: var(--muted); font-style: italic; }
.typing { min-height: 20px; font-size: 12px; color: var(--muted); font-style: italic; padding: 2px 0; }
#send-form input { flex: 1; }
.figures { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; margin: 12px 0 0; }
.figures div { border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; }
dt { font-size: 11px; color: var(--muted); }
dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
#chart { width: 100%; height: 140px; border: 1px solid var(--line); border-radius: 6px; background: #fafbfc; }
#chart .grid { stroke: var(--line); stroke-width: 1; }
#chart .up { fill: none; stroke: var(--accent); stroke-width: 2; }
#chart .del { fill: none; stroke: var(--del); stroke-width: 2; }
#chart text { font-size: 10px; fill: var(--muted); }
.key.up { color: var(--accent); }
.key.del { color: var(--del); }
.tables { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
caption { text-align: left; font-weight: 600; color: var(--muted); padding: 8px 0 4px; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); }
[hidden] { display: none !important; }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
"""#

    /// `/console.js`: the page's behaviour, an ES module (no inline script: the CSP forbids it).
    /// "Try it" runs on the JavaScript client library (`clients/js`), served as `/presence-client.js`.
    static let javascriptText = #"""
// presenced console: "Try it" (a dev token, then the JavaScript client library: presence, typing,
// messages, reconnects) and the instance view (GET /api/v1/admin/stats). No other libraries;
// text goes in with textContent only, never as HTML.
import { PresenceClient } from "/presence-client.js";

{
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 2000;
  const ADMIN_KEY = "presenced-admin-token";
  let client = null, room = null, me = "";
  let members = new Map();     // user → { online, name }
  let typing = new Set();      // users typing now

  function setStatus(el, text, error) {
    el.textContent = text;
    el.classList.toggle("error", !!error);
  }

  function renderMembers() {
    const list = $("members");
    list.replaceChildren();
    const users = [...members.keys()].sort((a, b) => (members.get(b).online - members.get(a).online) || a.localeCompare(b));
    for (const user of users) {
      const member = members.get(user);
      const li = document.createElement("li");
      li.dataset.user = user;
      li.dataset.online = String(member.online);
      const dot = document.createElement("span");
      dot.className = "dot";
      const label = document.createElement("span");
      const name = member.name && member.name !== user ? member.name + " (" + user + ")" : user;
      label.textContent = user === me ? name + " (you)" : name;
      li.append(dot, label);
      list.append(li);
    }
  }

  function renderTyping() {
    const names = [...typing].sort();
    const el = $("typing");
    el.textContent = names.length === 0 ? "" : names.join(", ") + (names.length === 1 ? " is typing…" : " are typing…");
    el.dataset.users = names.join(",");
  }

  function addLine(sender, content, timestamp, system) {
    const list = $("messages");
    const li = document.createElement("li");
    if (system) li.className = "system";
    if (timestamp) {
      const t = document.createElement("span");
      t.className = "time";
      t.textContent = timestamp.slice(11, 19);
      li.append(t);
    }
    if (sender) {
      const s = document.createElement("span");
      s.className = "sender";
      s.textContent = sender;
      li.append(s);
      li.dataset.sender = sender;
    }
    li.append(document.createTextNode(content));
    list.append(li);
    while (list.children.length > 500) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight;
  }

  function setWritable(on) {
    $("text").disabled = !on;
    $("send").disabled = !on;
  }

  /** The library's token function: a single-use dev token for `user` per connection attempt. */
  function devToken(user) {
    return async () => {
      const r = await fetch("/api/v1/dev-token", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user_id: user }),
      });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error("no token: " + (body.error || "HTTP " + r.status));
      return body.token;
    };
  }

  const stateText = { connecting: "connecting…", open: "connected", reconnecting: "connection lost, reconnecting…",
    revoked: "signed out by the server", closed: "disconnected" };

  function connect(event) {
    event.preventDefault();
    const user = $("user").value.trim(), channel = $("channel").value.trim();
    if (client) client.close();
    members = new Map(); typing = new Set(); renderMembers(); renderTyping(); setWritable(false);
    me = user;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const mine = client = new PresenceClient({ url: scheme + "//" + location.host + "/ws", token: devToken(user) });
    try {
      room = client.channel(channel);
    } catch (e) {
      client.close();
      return setStatus($("status"), e.message, true);
    }
    setStatus($("status"), stateText.connecting);
    client.on("state", (state) => {
      if (client !== mine) return;
      setStatus($("status"), state === "open" ? "connected, joining " + channel + "…" : stateText[state], state !== "open");
      // While reconnecting, sends wait in the library's queue; revoked and closed are final.
      if (state === "revoked" || state === "closed") setWritable(false);
    });
    client.on("error", (e) => { if (client === mine) setStatus($("status"), "server: " + e.code + (e.message ? " (" + e.message + ")" : ""), true); });
    room.on("presence", (map) => {
      members = map;
      renderMembers();
      if (mine.state === "open" && map.get(me)?.online) setStatus($("status"), "joined " + channel + " as " + me);
    });
    room.on("typing", (users) => { typing = users; renderTyping(); });
    room.on("message", (m) => addLine(m.sender, m.content, m.timestamp, false));
    room.on("gap", () => addLine("", "messages were missed while disconnected: reload the history", "", true));
    room.on("error", (e) => setStatus($("status"), "server: " + e.code + " (" + e.message + ")", true));
    room.join().then(() => {
      addLine("", "joined " + channel + " as " + me, "", true);
      setWritable(true);
    }, (e) => setStatus($("status"), "join refused: " + e.code + " (" + e.message + ")", true));
  }

  function onInput() {
    if (room) room.typing($("text").value !== "");
  }

  function sendMessage(event) {
    event.preventDefault();
    const text = $("text").value;
    if (text.trim() === "" || !room) return;
    $("text").value = "";
    room.send(text).catch((e) => setStatus($("status"), "not sent: " + e.code + " (" + e.message + ")", true));
  }

  // ---- instance view ------------------------------------------------------------------------

  let pollTimer = null;

  function text(id, value) { $(id).textContent = value; }

  function duration(s) {
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function rows(tbody, list) {
    const el = $(tbody);
    el.replaceChildren();
    for (const cells of list) {
      const tr = document.createElement("tr");
      for (const c of cells) {
        const td = document.createElement("td");
        td.textContent = c;
        tr.append(td);
      }
      el.append(tr);
    }
  }

  function svg(name, attrs) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", name);
    for (const k in attrs) el.setAttribute(k, attrs[k]);
    return el;
  }

  function drawChart(samples) {
    const chart = $("chart"), W = 600, H = 140, top = 14, bottom = 6;
    chart.replaceChildren();
    // The x axis spans the history held (at least a minute, at most the ring's 10 minutes).
    const now = samples.length ? samples[samples.length - 1].time : Date.now();
    const span = Math.min(600000, Math.max(60000, samples.length ? now - samples[0].time : 0));
    text("chart-span", span >= 120000 ? "last " + Math.round(span / 60000) + " minutes" : "last minute");
    let max = 1;
    for (const s of samples) max = Math.max(max, s.upgrades_per_second, s.deliveries_per_second);
    for (let i = 0; i <= 2; i++) {
      const y = top + (H - top - bottom) * i / 2;
      chart.append(svg("line", { x1: 0, x2: W, y1: y, y2: y, class: "grid" }));
    }
    const label = svg("text", { x: 4, y: 11 });
    label.textContent = "max " + (Math.round(max * 10) / 10) + "/s";
    chart.append(label);
    const x = (t) => W - (now - t) / span * W;
    const y = (v) => H - bottom - (v / max) * (H - top - bottom);
    for (const [key, cls] of [["upgrades_per_second", "up"], ["deliveries_per_second", "del"]]) {
      const points = samples.filter((s) => now - s.time <= span)
        .map((s) => x(s.time).toFixed(1) + "," + y(s[key]).toFixed(1)).join(" ");
      if (points) chart.append(svg("polyline", { points: points, class: cls }));
    }
    chart.dataset.samples = String(samples.length);
  }

  function showStats(s) {
    $("stats").hidden = false;
    text("instance", s.instance_id + " · " + s.mode + " · " + s.io_backend);
    text("s-connections", String(s.connections));
    text("s-mode", s.mode + (s.draining ? " (draining)" : ""));
    text("s-io", s.io_backend + ", " + s.loops.length + " loops");
    text("s-uptime", duration(s.uptime_seconds));
    const r = s.redis;
    text("s-redis", !r.configured ? "not configured" : (r.reachable ? "reachable" : "UNREACHABLE") +
      (r.rtt_ms === null ? "" : ", " + r.rtt_ms + " ms"));
    const f = s.forwarding;
    text("s-forwarding", f.mode === "off" ? "off" : f.mode + ": " + f.queue_depth + " queued, oldest " +
      f.oldest_age_seconds + " s, " + f.dead_letters + " dead");
    rows("s-loops", s.loops.map((l) => [String(l.index), String(l.connections),
      l.events_per_second === null ? "–" : String(l.events_per_second)]));
    rows("s-channels", s.channels.length ? s.channels.map((c) => [c.channel, String(c.members)]) : [["(none)", ""]]);
    drawChart(s.history.samples);
  }

  async function poll() {
    const token = sessionStorage.getItem(ADMIN_KEY);
    if (!token) return;
    try {
      const r = await fetch("/api/v1/admin/stats", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      if (r.status === 404) { $("instance-view").hidden = true; return; }
      if (r.status === 401) {
        sessionStorage.removeItem(ADMIN_KEY);
        clearInterval(pollTimer); pollTimer = null;
        $("stats").hidden = true;
        return setStatus($("admin-status"), "wrong token", true);
      }
      if (!r.ok) return setStatus($("admin-status"), "HTTP " + r.status, true);
      showStats(await r.json());
      setStatus($("admin-status"), "updated " + new Date().toLocaleTimeString());
    } catch (e) {
      setStatus($("admin-status"), "unreachable: " + e.message, true);
    }
  }

  function startPolling() {
    clearInterval(pollTimer);
    poll();
    pollTimer = setInterval(poll, POLL_MS);
  }

  function adminSubmit(event) {
    event.preventDefault();
    const token = $("admin-token").value.trim();
    if (!token) return;
    sessionStorage.setItem(ADMIN_KEY, token);
    $("admin-token").value = "";
    startPolling();
  }

  async function probe() {
    // Which parts this instance serves: the stats route is 404 without CONSOLE_ADMIN_TOKEN, the
    // dev-token route 404 when CONSOLE_DEV_TOKENS is off.
    try {
      const stats = await fetch("/api/v1/admin/stats", { cache: "no-store" });
      $("instance-view").hidden = stats.status === 404;
      if (stats.status !== 404 && sessionStorage.getItem(ADMIN_KEY)) startPolling();
      const dev = await fetch("/api/v1/dev-token", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
      if (dev.status === 404) {
        $("try-off").hidden = false;
        $("join-form").hidden = true;
      }
    } catch (e) { /* the page still works as far as it can */ }
  }

  $("join-form").addEventListener("submit", connect);
  $("send-form").addEventListener("submit", sendMessage);
  $("text").addEventListener("input", onInput);
  $("admin-form").addEventListener("submit", adminSubmit);
  if (!$("user").value) $("user").value = "guest-" + Math.random().toString(36).slice(2, 6);
  document.body.dataset.ready = "true";
  probe();
}
"""#
}
