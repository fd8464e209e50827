'use strict';
// The Node.js peer of presenced for the benchmark comparison (issue 4): the same external
// protocol (docs/protocol.md: GET /ws?token=JWT, HS256 single-use tokens, join/leave/message/
// typing/ping, presence snapshots, first/last-connection announcements), written the way a
// Node team would write it with `ws`:
//
//   - one http.Server; its 'upgrade' event checks the token and hands the socket to a
//     WebSocketServer({ noServer: true }) — perMessageDeflate off (presenced does not compress),
//     maxPayload = MAX_MESSAGE_BYTES (above it ws closes with 1009);
//   - channels are a Map of Sets of sockets; fan-out iterates the Set;
//   - every broadcast is JSON.stringify'd once into one Buffer and that same Buffer is sent to
//     every member (ws frames it with a 2–4 byte header and writes the payload as is).
//
// Run: NODE_PATH=/usr/share/nodejs WS_TOKEN_SECRET=<at least 32 bytes> PORT=8082 node Benchmarks/peers/node/server.js

const http = require('http');
const crypto = require('crypto');
const { performance } = require('perf_hooks');
const { WebSocketServer, WebSocket } = require('ws');

// ---------------------------------------------------------------------------------------------
// Configuration (docs/operations.md, "Configuration"): the subset that matters to the realtime
// path.

function fail(variable, problem) {
  process.stderr.write(`peer-node: invalid ${variable}: ${problem}\n`);
  process.exit(78); // EX_CONFIG, like presenced
}

function envInt(name, def, min, max) {
  const v = process.env[name];
  if (v === undefined) return def;
  if (!/^-?\d+$/.test(v) || +v < min || +v > max) fail(name, `"${v}" is not a whole number in ${min}...${max}`);
  return +v;
}

/** `500ms`, `30s`, `2m`, `1h` or plain seconds, in milliseconds. */
function envDuration(name, defMillis, minMillis) {
  const v = process.env[name];
  if (v === undefined) return defMillis;
  const m = /^(\d+)(ms|s|m|h)?$/.exec(v);
  if (!m) fail(name, `"${v}" is not a duration like 500ms, 30s, 2m or plain seconds`);
  const ms = +m[1] * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] || 's'];
  if (ms < minMillis) fail(name, `must be at least ${minMillis} ms`);
  return ms;
}

const secrets = [];
for (const name of ['WS_TOKEN_SECRET', 'WS_TOKEN_SECRET_PREVIOUS']) {
  const s = process.env[name];
  if (!s) {
    if (name === 'WS_TOKEN_SECRET') fail(name, 'required');
    continue;
  }
  if (Buffer.byteLength(s) < 32) fail(name, 'must be at least 32 bytes');
  secrets.push(Buffer.from(s));
}
if (process.env.WS_TOKEN_AUDIENCE === '') fail('WS_TOKEN_AUDIENCE', 'must not be empty');

const config = {
  bind: process.env.BIND || '127.0.0.1',
  port: envInt('PORT', 8082, 0, 65535),
  audience: process.env.WS_TOKEN_AUDIENCE || 'presenced',
  messageRate: envInt('MESSAGE_RATE', 20, 0, 1000000),
  presenceGraceMillis: envDuration('PRESENCE_GRACE', 2000, 0),
  pingIntervalMillis: envDuration('PING_INTERVAL', 25000, 100),
  maxMessageBytes: envInt('MAX_MESSAGE_BYTES', 65536, 125, 2 ** 30),
  maxOutboundBytes: envInt('MAX_OUTBOUND_BYTES', 2 ** 20, 4096, 2 ** 30),
  maxConnections: envInt('MAX_CONNECTIONS', 100000, 1, 100000000),
  origins: originPolicy(process.env.ALLOWED_ORIGINS ?? 'https://casa.devarno.cloud,http://localhost:3000'),
};

const MAX_TOKEN_LIFETIME = 300; // seconds, exp - iat
const CLOCK_LEEWAY = 5; // seconds on exp, nbf and a future iat
const MAX_TOKEN_BYTES = 4096;
const MAX_JTI_BYTES = 128;
const MAX_CONTENT_BYTES = 4096;
const MAX_CHANNELS_PER_CONNECTION = 64;
const TYPING_TIMEOUT_MILLIS = 5000;

/** The ALLOWED_ORIGINS allow-list: exact origins, `scheme://*.domain`, or `*`. */
function originPolicy(list) {
  let all = false;
  const exact = new Set();
  const wildcards = [];
  for (const raw of list.split(',')) {
    const e = raw.trim().toLowerCase();
    if (e === '') continue;
    if (e === '*') { all = true; continue; }
    const star = e.indexOf('*');
    const scheme = e.slice(0, star), suffix = e.slice(star + 1);
    if (star >= 0 && scheme.endsWith('://') && suffix.startsWith('.') && suffix.length > 1 && !suffix.includes('*')) {
      wildcards.push([scheme, suffix]);
    } else {
      exact.add(e.endsWith('/') ? e.slice(0, -1) : e);
    }
  }
  return (origin) => {
    if (origin === undefined || all) return true; // no Origin: not a browser
    const o = origin.toLowerCase();
    if (exact.has(o)) return true;
    for (const [scheme, suffix] of wildcards) {
      if (!o.startsWith(scheme)) continue;
      const host = o.slice(scheme.length);
      const hostOnly = host.split(':', 1)[0];
      if (hostOnly.endsWith(suffix) && hostOnly.length > suffix.length && !host.includes('/')) return true;
    }
    return false;
  };
}

// ---------------------------------------------------------------------------------------------
// Ephemeral tokens (docs/protocol.md, "How a token is checked"): HS256 only, constant-time
// signature check, single-use jti.

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** The bytes of canonical unpadded base64url, or null. */
function b64decode(s) {
  if (!BASE64URL.test(s) || s.length % 4 === 1) return null;
  const buf = Buffer.from(s, 'base64url');
  return buf.toString('base64url') === s ? buf : null; // canonical: no stray trailing bits
}

function parseObject(buf) {
  try {
    const v = JSON.parse(buf.toString());
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

const isInteger = (v) => typeof v === 'number' && Number.isInteger(v) && Math.abs(v) <= 2 ** 53;
const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

/** `{ claims }` or `{ reason }` (presenced's rejection labels). */
function verifyToken(token, now) {
  if (!token) return { reason: 'missing' };
  if (token.length > MAX_TOKEN_BYTES) return { reason: 'malformed' };
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] === '' || parts[1] === '') return { reason: 'malformed' };
  const headerBytes = b64decode(parts[0]), payloadBytes = b64decode(parts[1]), signature = b64decode(parts[2]);
  if (!headerBytes || !payloadBytes || !signature) return { reason: 'malformed' };
  const header = parseObject(headerBytes);
  if (!header) return { reason: 'malformed' };
  if (has(header, 'typ') && (typeof header.typ !== 'string' || header.typ.toLowerCase() !== 'jwt')) return { reason: 'malformed' };
  if (has(header, 'crit')) return { reason: 'malformed' };
  if (header.alg !== 'HS256') return { reason: 'algorithm' };

  const signingInput = token.slice(0, parts[0].length + 1 + parts[1].length);
  let matched = false;
  for (const key of secrets) {
    const expected = crypto.createHmac('sha256', key).update(signingInput).digest();
    if (signature.length === expected.length && crypto.timingSafeEqual(signature, expected)) {
      matched = true;
      break;
    }
  }
  if (!matched) return { reason: 'signature' };

  const c = parseObject(payloadBytes);
  if (!c) return { reason: 'malformed' };
  if (typeof c.sub !== 'string' || c.sub === '' || !isInteger(c.exp) || !isInteger(c.iat) ||
      typeof c.jti !== 'string' || c.jti === '' || Buffer.byteLength(c.jti) > MAX_JTI_BYTES) {
    return { reason: 'claims' };
  }
  if (has(c, 'nbf') && !isInteger(c.nbf)) return { reason: 'claims' };
  if (has(c, 'sid') && typeof c.sid !== 'string') return { reason: 'claims' };
  if (has(c, 'name') && typeof c.name !== 'string') return { reason: 'claims' };
  if (has(c, 'role') && !['admin', 'member', 'child'].includes(c.role)) return { reason: 'claims' };
  let channels = null;
  if (has(c, 'channels')) {
    if (!Array.isArray(c.channels) || !c.channels.every((id) => typeof id === 'string' && validChannel(id))) {
      return { reason: 'claims' };
    }
    channels = new Set(c.channels);
  }
  const audienceOK = typeof c.aud === 'string' ? c.aud === config.audience
    : Array.isArray(c.aud) && c.aud.includes(config.audience);
  if (!audienceOK) return { reason: 'audience' };
  const lifetime = c.exp - c.iat;
  if (lifetime <= 0 || lifetime > MAX_TOKEN_LIFETIME) return { reason: 'lifetime' };
  if (c.iat > now + CLOCK_LEEWAY) return { reason: 'issued_in_future' };
  if (has(c, 'nbf') && c.nbf > now + CLOCK_LEEWAY) return { reason: 'not_yet_valid' };
  if (c.exp < now - CLOCK_LEEWAY) return { reason: 'expired' };
  return { claims: { sub: c.sub, jti: c.jti, exp: c.exp, channels } };
}

/** Single-use jti: remembered until the token has expired (plus the leeway). */
const seenJTIs = new Map();
let nextSweep = 0, sweepAtCount = 1024;
function firstUse(jti, exp, now) {
  if (now >= nextSweep || seenJTIs.size >= sweepAtCount) {
    for (const [k, until] of seenJTIs) if (until < now) seenJTIs.delete(k);
    nextSweep = now + 10;
    sweepAtCount = Math.max(1024, seenJTIs.size * 2);
  }
  const until = seenJTIs.get(jti);
  if (until !== undefined && until >= now) return false;
  seenJTIs.set(jti, exp + CLOCK_LEEWAY);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Wire messages (docs/protocol.md, "Server messages"). Object literals keep presenced's key order
// in JSON.stringify.

/** One message encoded once; the same Buffer goes to every recipient. */
const encode = (obj) => Buffer.from(JSON.stringify(obj));
const PONG = encode({ type: 'pong' });
const presenceMessage = (user, online, channel) => encode({ type: 'presence', user_id: user, online, channel });
const SEND_TEXT = { binary: false };

/** 1–128 bytes of [A-Za-z0-9_.:-]. */
const CHANNEL = /^[A-Za-z0-9_.:-]{1,128}$/;
const validChannel = (s) => CHANNEL.test(s);

/** Client input cut to at most 64 bytes on a character boundary, for error messages. */
function echo(s) {
  const b = Buffer.from(s);
  if (b.length <= 64) return s;
  let end = 64;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.subarray(0, end).toString() + '…';
}

const ALLOWED_FIELDS = {
  join: ['channel'], leave: ['channel'], message: ['channel', 'content'], typing: ['channel', 'typing'], ping: [],
};
const KNOWN_FIELDS = new Set(['type', 'channel', 'content', 'typing']);
const describe = (v) => v === null ? 'null' : Array.isArray(v) ? 'an array'
  : typeof v === 'boolean' ? 'a boolean' : typeof v === 'number' ? 'a number' : typeof v === 'string' ? 'a string' : 'an object';

/** `{ msg }` or `{ code, message }`, with presenced's order of checks. */
function parseClientMessage(text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch (e) {
    return { code: 'bad_json', message: `invalid JSON: ${e.message}` };
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return { code: 'bad_json', message: 'expected a JSON object' };
  if (!has(m, 'type')) return { code: 'bad_json', message: "missing field 'type'" };
  if (typeof m.type !== 'string') return { code: 'bad_json', message: `'type' must be a string, not ${describe(m.type)}` };
  const allowed = has(ALLOWED_FIELDS, m.type) ? ALLOWED_FIELDS[m.type] : undefined;
  if (!allowed) return { code: 'unknown_type', message: `unknown type '${echo(m.type)}'` };
  for (const k in m) {
    if (!KNOWN_FIELDS.has(k)) return { code: 'bad_json', message: `unknown field '${echo(k)}'` };
  }
  for (const f of ['channel', 'content', 'typing']) {
    const present = has(m, f), ok = allowed.includes(f);
    if (!present && ok) return { code: 'bad_json', message: `missing field '${f}'` };
    if (present && !ok) return { code: 'bad_json', message: `unexpected field '${f}' for type '${m.type}'` };
  }
  if (m.type === 'ping') return { msg: m };
  if (typeof m.channel !== 'string') return { code: 'bad_json', message: `'channel' must be a string, not ${describe(m.channel)}` };
  if (m.type === 'typing' && typeof m.typing !== 'boolean') {
    return { code: 'bad_json', message: `'typing' must be a boolean, not ${describe(m.typing)}` };
  }
  if (m.type === 'message' && typeof m.content !== 'string') {
    return { code: 'bad_json', message: `'content' must be a string, not ${describe(m.content)}` };
  }
  if (!validChannel(m.channel)) return { code: 'invalid_channel', message: 'channel must be 1-128 bytes of [A-Za-z0-9_.:-]' };
  if (m.type === 'message') {
    if (m.content.length === 0) return { code: 'bad_json', message: 'content is empty' };
    if (Buffer.byteLength(m.content) > MAX_CONTENT_BYTES) {
      return { code: 'too_large', message: `content is over ${MAX_CONTENT_BYTES} bytes` };
    }
  }
  return { msg: m };
}

// ---------------------------------------------------------------------------------------------
// Message ids: UUIDv7 (48 bits of Unix ms, a 12-bit counter for order within a millisecond, random).

const randomPool = Buffer.alloc(8192);
let randomAt = randomPool.length;
function randomBytes8() {
  if (randomAt + 8 > randomPool.length) {
    crypto.randomFillSync(randomPool);
    randomAt = 0;
  }
  randomAt += 8;
  return randomPool.subarray(randomAt - 8, randomAt);
}

let lastMillis = 0, counter = 0;
const idBytes = Buffer.alloc(16);
function nextMessageID() {
  let ms = Date.now();
  if (ms <= lastMillis) {
    ms = lastMillis;
    counter++;
    if (counter > 0x0fff) { ms++; counter = 0; }
  } else {
    counter = randomBytes8().readUInt16BE(0) & 0x01ff;
  }
  lastMillis = ms;
  idBytes.writeUIntBE(ms, 0, 6);
  idBytes.writeUInt16BE(0x7000 | counter, 6);
  randomBytes8().copy(idBytes, 8);
  idBytes[8] = (idBytes[8] & 0x3f) | 0x80;
  const h = idBytes.toString('hex');
  return { id: `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`, ms };
}

// ---------------------------------------------------------------------------------------------
// Rate limit: a token bucket of rate/s with a burst of twice that (0 = no limit).

const monoMillis = () => Math.floor(performance.now());

function allowMessage(ws, now) {
  const rate = config.messageRate;
  if (rate <= 0) return true;
  const capacity = rate * 2000;
  if (now > ws.lastRefill) {
    ws.milliTokens = Math.min(capacity, ws.milliTokens + (now - ws.lastRefill) * rate);
    ws.lastRefill = now;
  }
  if (ws.milliTokens < 1000) return false;
  ws.milliTokens -= 1000;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Channels and presence: channel -> { conns: Set<ws>, users: Map<user, { conns, inGrace, timer }> }.

const rooms = new Map();

/** Sends a close frame; a peer that does not answer within 2 s is dropped (ws itself waits 30 s). */
function closeAndDrop(ws, code, reason) {
  ws.close(code, reason);
  setTimeout(() => ws.terminate(), 2000).unref();
}

/** Queues `buf` on `ws`; over the outbound cap the connection is closed as a slow consumer (4008),
 *  and droppable messages (typing) are skipped while it is over half. */
function deliver(ws, buf, droppable) {
  if (ws.readyState !== WebSocket.OPEN) return;
  const backlog = ws.bufferedAmount;
  if (droppable && backlog > config.maxOutboundBytes / 2) return;
  if (backlog > config.maxOutboundBytes) {
    closeAndDrop(ws, 4008, 'slow consumer');
    return;
  }
  ws.send(buf, SEND_TEXT);
}

function broadcast(channel, buf, exceptUser, droppable) {
  const room = rooms.get(channel);
  if (!room) return;
  for (const member of room.conns) {
    if (exceptUser !== undefined && member.user === exceptUser) continue;
    deliver(member, buf, droppable);
  }
}

function join(ws, channel) {
  let room = rooms.get(channel);
  if (!room) {
    room = { conns: new Set(), users: new Map() };
    rooms.set(channel, room);
  }
  room.conns.add(ws);
  let p = room.users.get(ws.user);
  if (!p) {
    p = { conns: 0, inGrace: false, timer: null };
    room.users.set(ws.user, p);
  }
  const first = p.conns === 0 && !p.inGrace; // back within the grace period: the others never saw it leave
  p.conns++;
  if (p.inGrace) {
    clearTimeout(p.timer);
    p.inGrace = false;
    p.timer = null;
  }
  for (const user of [...room.users.keys()].sort()) deliver(ws, presenceMessage(user, true, channel), false);
  if (first) {
    const buf = presenceMessage(ws.user, true, channel);
    for (const member of room.conns) if (member !== ws) deliver(member, buf, false);
  }
}

function leave(ws, channel) {
  const room = rooms.get(channel);
  if (!room) return;
  room.conns.delete(ws);
  const user = ws.user;
  const p = room.users.get(user);
  if (!p || p.conns === 0) return;
  if (--p.conns > 0) return;
  const goOffline = () => {
    room.users.delete(user);
    if (room.conns.size === 0 && room.users.size === 0) rooms.delete(channel);
    else broadcast(channel, presenceMessage(user, false, channel), undefined, false);
  };
  if (config.presenceGraceMillis === 0) return goOffline();
  p.inGrace = true;
  p.timer = setTimeout(goOffline, config.presenceGraceMillis);
}

function startTyping(ws, channel) {
  const previous = ws.typing.get(channel);
  if (previous) clearTimeout(previous); // still typing: only the auto-stop moves
  ws.typing.set(channel, setTimeout(() => stopTyping(ws, channel), TYPING_TIMEOUT_MILLIS));
  if (!previous) announceTyping(ws, channel, true);
}

function stopTyping(ws, channel) {
  const timer = ws.typing.get(channel);
  if (timer === undefined) return;
  clearTimeout(timer);
  ws.typing.delete(channel);
  announceTyping(ws, channel, false);
}

function announceTyping(ws, channel, typing) {
  // To the other users' connections only, and droppable under backpressure.
  broadcast(channel, encode({ type: 'typing', user_id: ws.user, channel, typing }), ws.user, true);
}

function sendError(ws, code, message) {
  deliver(ws, encode({ type: 'error', code, message }), false);
}

// ---------------------------------------------------------------------------------------------
// Connections.

let connections = 0;

function onMessage(ws, data, isBinary) {
  if (ws.readyState !== WebSocket.OPEN) return; // closing: input is no longer served
  if (!allowMessage(ws, monoMillis())) {
    ws.strikes++;
    if (ws.strikes > 4 * Math.max(1, config.messageRate)) {
      closeAndDrop(ws, 1008, 'message rate');
    } else {
      sendError(ws, 'rate_limited', `more than ${config.messageRate} messages per second`);
    }
    return;
  }
  ws.strikes = 0;
  if (isBinary) return sendError(ws, 'bad_json', 'binary frames are not accepted');
  const parsed = parseClientMessage(data.toString()); // ws has checked UTF-8 (1007 otherwise)
  if (parsed.code) return sendError(ws, parsed.code, parsed.message);
  const m = parsed.msg;
  const channel = m.channel;
  switch (m.type) {
    case 'ping':
      deliver(ws, PONG, false);
      break;
    case 'join':
      if (ws.allowed && !ws.allowed.has(channel)) return sendError(ws, 'forbidden_channel', 'the token does not allow this channel');
      if (ws.joined.has(channel)) return deliver(ws, presenceMessage(ws.user, true, channel), false); // confirm, count once
      if (ws.joined.size >= MAX_CHANNELS_PER_CONNECTION) {
        return sendError(ws, 'too_large', `at most ${MAX_CHANNELS_PER_CONNECTION} channels per connection`);
      }
      ws.joined.add(channel);
      join(ws, channel);
      break;
    case 'leave':
      if (!ws.joined.has(channel)) return sendError(ws, 'not_joined', 'not a member of this channel');
      stopTyping(ws, channel);
      ws.joined.delete(channel);
      leave(ws, channel);
      break;
    case 'message': {
      if (!ws.joined.has(channel)) return sendError(ws, 'not_joined', 'join the channel before sending to it');
      const { id, ms } = nextMessageID();
      const buf = encode({ type: 'message', id, sender: ws.user, content: m.content, channel, timestamp: new Date(ms).toISOString() });
      broadcast(channel, buf, undefined, false); // encoded once, the same bytes to every member
      break;
    }
    case 'typing':
      if (!ws.joined.has(channel)) return sendError(ws, 'not_joined', 'join the channel before typing in it');
      if (m.typing) startTyping(ws, channel);
      else stopTyping(ws, channel);
      break;
  }
}

function onClose(ws) {
  connections--;
  for (const channel of [...ws.typing.keys()]) stopTyping(ws, channel);
  for (const channel of ws.joined) leave(ws, channel);
  ws.joined.clear();
}

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false, // presenced does not compress
  maxPayload: config.maxMessageBytes, // above it ws closes with 1009
  clientTracking: true,
});

wss.on('headers', (headers, req) => headers.push(`X-Request-ID: ${req.requestID}`));

wss.on('connection', (ws, req, claims) => {
  ws.user = claims.sub;
  ws.allowed = claims.channels;
  ws.joined = new Set();
  ws.typing = new Map();
  ws.milliTokens = config.messageRate * 2000;
  ws.lastRefill = monoMillis();
  ws.strikes = 0;
  ws.missedPongs = 0;
  ws.on('message', (data, isBinary) => {
    ws.missedPongs = 0;
    onMessage(ws, data, isBinary);
  });
  ws.on('pong', () => { ws.missedPongs = 0; });
  ws.on('close', () => onClose(ws));
  ws.on('error', () => {}); // protocol errors: ws closes with the right code itself
});

// Server pings every PING_INTERVAL; two missed pongs close the connection (ws's heartbeat idiom).
setInterval(() => {
  for (const ws of wss.clients) {
    if (ws.missedPongs >= 2) {
      closeAndDrop(ws, 1008, 'no pong');
      continue;
    }
    ws.missedPongs++;
    ws.ping();
  }
}, config.pingIntervalMillis).unref();

// ---------------------------------------------------------------------------------------------
// HTTP: /ws upgrade, /healthz, /readyz.

function requestID(req) {
  const given = req.headers['x-request-id'];
  if (given && given.length <= 128 && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(given)) return given;
  return crypto.randomBytes(16).toString('hex');
}

const errorBody = (code, message) => JSON.stringify({ error: message, code });

/** A JSON error on a socket that has not been upgraded. */
function refuse(socket, req, status, code, message, extraHeaders = '') {
  const body = errorBody(code, message);
  socket.once('finish', socket.destroy);
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
    'Content-Type: application/json\r\nCache-Control: no-store\r\n' +
    `X-Request-ID: ${req.requestID}\r\n${extraHeaders}` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

const hasToken = (value, token) => typeof value === 'string' &&
  value.split(',').some((t) => t.trim().toLowerCase() === token);

function pathAndQuery(req) {
  const q = req.url.indexOf('?');
  return q < 0 ? [req.url, ''] : [req.url.slice(0, q), req.url.slice(q + 1)];
}

const server = http.createServer((req, res) => {
  req.requestID = requestID(req);
  const json = (status, body, headers = {}) => {
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Request-ID': req.requestID, ...headers });
    res.end(body);
  };
  const [path] = pathAndQuery(req);
  if (path === '/healthz' || path === '/readyz') {
    if (req.method !== 'GET') return json(405, errorBody('method_not_allowed', 'use GET'), { Allow: 'GET' });
    return json(200, path === '/healthz' ? '{"status":"ok"}' : '{"status":"ready"}');
  }
  if (path === '/ws') {
    // Not an upgrade (Node sends those to 'upgrade'): presenced's handshake checks say why.
    const [status, code, message, headers] = handshakeProblem(req) || [400, 'bad_upgrade', 'missing Connection: Upgrade', {}];
    return json(status, errorBody(code, message), { Connection: 'close', ...headers });
  }
  json(404, errorBody('not_found', 'no such endpoint'));
});

/** The handshake checks in presenced's order (400 for a bad upgrade, 426 for the version), or null. */
function handshakeProblem(req) {
  if (req.method !== 'GET') return [400, 'bad_upgrade', `WebSocket upgrade requires method GET, got ${req.method}`, {}];
  if (!hasToken(req.headers.upgrade, 'websocket')) return [400, 'bad_upgrade', 'missing Upgrade: websocket', {}];
  if (!hasToken(req.headers.connection, 'upgrade')) return [400, 'bad_upgrade', 'missing Connection: Upgrade', {}];
  if (req.headers['sec-websocket-version'] !== '13') {
    return [426, 'upgrade_required', 'unsupported WebSocket version; only 13 is supported', { 'Sec-WebSocket-Version': '13' }];
  }
  return null;
}

server.on('upgrade', (req, socket, head) => {
  req.requestID = requestID(req);
  const [path, query] = pathAndQuery(req);
  if (path !== '/ws') return refuse(socket, req, 404, 'not_found', 'no such endpoint');
  const problem = handshakeProblem(req);
  if (problem) {
    const [status, code, message, headers] = problem;
    return refuse(socket, req, status, code, message, Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join(''));
  }
  if (!config.origins(req.headers.origin)) return refuse(socket, req, 403, 'forbidden_origin', 'origin not allowed');
  const now = Math.floor(Date.now() / 1000);
  const { claims, reason } = verifyToken(new URLSearchParams(query).get('token'), now);
  if (!claims) return refuse(socket, req, 401, 'invalid_token', `token ${reason}`);
  // Capacity before the token is spent: a refused client may retry with the same token.
  if (connections >= config.maxConnections) return refuse(socket, req, 503, 'at_capacity', 'server at capacity');
  if (!firstUse(claims.jti, claims.exp, now)) return refuse(socket, req, 401, 'invalid_token', 'token replayed');
  wss.handleUpgrade(req, socket, head, (ws) => {
    connections++;
    wss.emit('connection', ws, req, claims);
  });
});

server.listen(config.port, config.bind, () => {
  const { address, port } = server.address();
  process.stdout.write(JSON.stringify({ level: 'info', msg: 'peer-node listening', addr: `${address}:${port}`, message_rate: config.messageRate }) + '\n');
});
