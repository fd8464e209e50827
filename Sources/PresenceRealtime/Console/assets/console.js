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