#!/usr/bin/env python3
"""Checks that a server speaks presenced's external WebSocket protocol (docs/protocol.md),
byte for byte where presenced fixes the bytes. Run it against presenced, peer-go and peer-node:

    check_peer.py ws://127.0.0.1:PORT/ws SECRET [--audience presenced] [--grace 2] [--rate N]

SECRET is the server's WS_TOKEN_SECRET (tokens are minted here, HS256, stdlib only). --grace is
the server's PRESENCE_GRACE in seconds (default 2, the contract default); --rate N also checks
the token bucket when the server runs with MESSAGE_RATE=N. The server must use the default
ALLOWED_ORIGINS. Needs `pip install websockets`. Takes about 15 s (presence grace, typing auto-stop).
Exits 1 on any mismatch; the last line is `N passed, N failed`.
"""
import argparse
import asyncio
import base64
import calendar
import hashlib
import hmac
import json
import os
import re
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

RESULTS = {"passed": 0, "failed": 0}
NOTES = []


def ok(name):
    RESULTS["passed"] += 1
    print(f"  ok    {name}")


def bad(name, detail):
    RESULTS["failed"] += 1
    print(f"  FAIL  {name}: {detail}")


def check(name, condition, detail=""):
    if condition:
        ok(name)
    else:
        bad(name, detail)
    return condition


# ---------------------------------------------------------------------------------------------
# Tokens and presenced's exact JSON.

def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(secret, sub, *, ttl=60, aud=None, alg="HS256", drop=(), **extra):
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + ttl, "jti": b64url(os.urandom(12)), "aud": aud}
    claims.update(extra)
    for k in drop:
        claims.pop(k, None)
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}"
    if alg == "none":
        return signing_input + "."
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def q(s: str) -> str:
    """A JSON string exactly as presenced writes it: only '"', '\\' and controls are escaped."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif c < 0x20:
            out.append({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(c, "\\u%04x" % c))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def presence(user, online, channel):
    return '{"type":"presence","user_id":%s,"online":%s,"channel":%s}' % (q(user), "true" if online else "false", q(channel))


def typing(user, channel, value):
    return '{"type":"typing","user_id":%s,"channel":%s,"typing":%s}' % (q(user), q(channel), "true" if value else "false")


def error(code, message):
    return '{"type":"error","code":%s,"message":%s}' % (q(code), q(message))


PONG = '{"type":"pong"}'
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ---------------------------------------------------------------------------------------------
# Clients.

class Client:
    def __init__(self, name, ws):
        self.name, self.ws = name, ws

    async def send(self, obj_or_text):
        await self.ws.send(obj_or_text if isinstance(obj_or_text, (str, bytes)) else json.dumps(obj_or_text))

    async def recv(self, timeout=3.0):
        try:
            return await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            return None
        except ConnectionClosed as e:
            return f"<closed {e.rcvd.code if e.rcvd else 1006}>"

    async def expect(self, name, expected, timeout=3.0):
        got = await self.recv(timeout)
        return check(f"{self.name}: {name}", got == expected, f"expected {expected!r}, got {got!r}")

    async def expect_error(self, name, code, message=None):
        got = await self.recv()
        try:
            obj = json.loads(got)
            keys = [k for k, _ in json.loads(got, object_pairs_hook=lambda p: p)]
        except Exception:
            return bad(f"{self.name}: {name}", f"not JSON: {got!r}")
        if message is not None:
            return check(f"{self.name}: {name}", got == error(code, message), f"expected {error(code, message)!r}, got {got!r}")
        return check(f"{self.name}: {name}", keys == ["type", "code", "message"] and obj["type"] == "error"
                     and obj["code"] == code and isinstance(obj["message"], str), f"expected error {code}, got {got!r}")

    async def expect_nothing(self, name):
        """Nothing else is queued for this client: a ping's pong is the next message."""
        await self.send({"type": "ping"})
        got = await self.recv()
        return check(f"{self.name}: {name}", got == PONG, f"expected nothing before the pong, got {got!r}")

    async def close(self, code=1000):
        await self.ws.close(code)


async def open_client(url, name, token, origin=None):
    headers = {"Origin": origin} if origin else None
    ws = await connect(f"{url}?token={token}", compression=None, ping_interval=None, max_size=None,
                       additional_headers=headers, proxy=None, open_timeout=5)
    return Client(name, ws)


async def refused(url, token, origin=None):
    """(status, body, content type) of a refused upgrade, or None when it was accepted."""
    try:
        c = await open_client(url, "x", token, origin)
    except InvalidStatus as e:
        return e.response.status_code, e.response.body.decode(errors="replace"), e.response.headers.get("Content-Type", "")
    await c.close()
    return None


def raw_request(host, port, request: bytes, then: bytes = b"", read_until_close=True, timeout=3.0):
    """Sends raw bytes; returns everything the server sent until it closed (or the timeout)."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.sendall(request)
    data = b""
    if then:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.sendall(then)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if not read_until_close:
                break
    except socket.timeout:
        pass
    s.close()
    return data


def masked_frame(opcode, payload: bytes) -> bytes:
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def first_close_code(data: bytes):
    """The close code of the first close frame in server bytes after the 101 head."""
    i = data.find(b"\r\n\r\n")
    if i < 0:
        return None
    buf = data[i + 4:]
    while len(buf) >= 2:
        opcode, n, off = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if n == 126:
            n, off = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            n, off = struct.unpack("!Q", buf[2:10])[0], 10
        payload = buf[off:off + n]
        if opcode == 8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        buf = buf[off + n:]
    return None


def upgrade_head(host, port, path, version="13"):
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n").encode()


# ---------------------------------------------------------------------------------------------
# The checks.

async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="ws://127.0.0.1:PORT/ws")
    ap.add_argument("secret", help="the server's WS_TOKEN_SECRET")
    ap.add_argument("--audience", default="presenced")
    ap.add_argument("--grace", type=float, default=2.0, help="the server's PRESENCE_GRACE in seconds")
    ap.add_argument("--rate", type=int, default=0, help="the server's MESSAGE_RATE, to check the limit (0: skip)")
    args = ap.parse_args()
    url, secret, aud = args.url, args.secret, args.audience
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    tok = lambda sub, **kw: mint(secret, sub, aud=kw.pop("aud", aud), **kw)

    run = os.urandom(3).hex()
    alice, bob, carol = f"alice-{run}", f"bob-{run}", f"carol-{run}"
    room = f"room.{run}:main"

    print(f"checking {url}")
    print("[http]")
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=3) as r:
            check("GET /healthz is 200", r.status == 200, f"status {r.status}")
    except urllib.error.HTTPError as e:
        bad("GET /healthz is 200", f"status {e.code}")

    print("[upgrade refusals]")
    now = int(time.time())
    cases = [
        ("no token", "", "token missing"),
        ("garbage token", "abc.def", "token malformed"),
        ("alg none", tok(alice, alg="none"), "token algorithm"),
        ("alg HS512", tok(alice, alg="HS512"), "token algorithm"),
        ("wrong secret", mint("x" * 40, alice, aud=aud), "token signature"),
        ("expired", tok(alice, iat=now - 100, exp=now - 30), "token expired"),
        ("lifetime over 300 s", tok(alice, ttl=301), "token lifetime"),
        ("wrong audience", tok(alice, aud="someone-else"), "token audience"),
        ("no jti", tok(alice, drop=("jti",)), "token claims"),
        ("iat in the future", tok(alice, iat=now + 60, exp=now + 120), "token issued_in_future"),
        ("nbf in the future", tok(alice, nbf=now + 60), "token not_yet_valid"),
    ]
    for name, token, message in cases:
        got = await refused(url, token)
        expected = '{"error":%s,"code":"invalid_token"}' % q(message)
        check(f"{name} -> 401 {expected}", got is not None and got[0] == 401 and got[1] == expected
              and got[2].startswith("application/json"), f"got {got}")
    once = tok(alice)
    check("fresh token -> 101", await refused(url, once) is None, "refused")
    got = await refused(url, once)
    check("reused token -> 401 token replayed", got is not None and got[0] == 401
          and got[1] == '{"error":"token replayed","code":"invalid_token"}', f"got {got}")
    got = await refused(url, tok(alice), origin="https://evil.example")
    check("foreign Origin -> 403 forbidden_origin", got is not None and got[0] == 403
          and got[1] == '{"error":"origin not allowed","code":"forbidden_origin"}', f"got {got}")
    check("allowed Origin -> 101", await refused(url, tok(alice), origin="http://localhost:3000") is None, "refused")
    data = raw_request(host, port, upgrade_head(host, port, f"/ws?token={tok(alice)}", version="12"))
    check("Sec-WebSocket-Version 12 -> 426 upgrade_required", data.startswith(b"HTTP/1.1 426")
          and b'"code":"upgrade_required"' in data, data[:200])
    data = raw_request(host, port, f"GET /ws?token={tok(alice)} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    check("GET /ws without upgrade -> 400 bad_upgrade", data.startswith(b"HTTP/1.1 400") and b'"code":"bad_upgrade"' in data,
          data[:200])

    print("[join and presence]")
    a = await open_client(url, "alice#1", tok(alice))
    await a.send({"type": "join", "channel": room})
    await a.expect("own presence confirms the join", presence(alice, True, room))
    b = await open_client(url, "bob", tok(bob))
    await b.send({"type": "join", "channel": room})
    await b.expect("snapshot 1/2 (sorted)", presence(alice, True, room))
    await b.expect("snapshot 2/2 (itself)", presence(bob, True, room))
    await a.expect("bob's first connection is announced", presence(bob, True, room))
    a2 = await open_client(url, "alice#2", tok(alice))
    await a2.send({"type": "join", "channel": room})
    await a2.expect("snapshot 1/2", presence(alice, True, room))
    await a2.expect("snapshot 2/2", presence(bob, True, room))
    await a.expect_nothing("alice's second connection is not announced")
    await b.expect_nothing("alice's second connection is not announced")
    await a2.send({"type": "join", "channel": room})
    await a2.expect("joining again confirms again", presence(alice, True, room))
    await a.expect_nothing("a repeated join is not announced")

    print("[messages]")
    content = 'hi <b>&amp;</b> "quoted" back\\slash /path\nnew\ttab\r é ✓ 😀 \x01'
    await b.send({"type": "message", "channel": room, "content": content})
    got = {}
    for c in (a, a2, b):
        got[c.name] = await c.recv()
    text = got["bob"]
    try:
        obj = json.loads(text)
        expected = '{"type":"message","id":%s,"sender":%s,"content":%s,"channel":%s,"timestamp":%s}' % (
            q(obj["id"]), q(bob), q(content), q(room), q(obj["timestamp"]))
        check("message bytes are presenced's (key order, escaping)", text == expected, f"expected {expected!r}, got {text!r}")
        check("id is a UUIDv7", bool(UUID7.match(obj["id"])), obj["id"])
        check("timestamp is UTC with milliseconds", bool(TIMESTAMP.match(obj["timestamp"])), obj["timestamp"])
        ts_ms = calendar.timegm(time.strptime(obj["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) * 1000 \
            + int(obj["timestamp"][20:23])
        check("timestamp is now (±10 s)", abs(ts_ms / 1000 - time.time()) < 10, obj["timestamp"])
        check("id carries the timestamp's milliseconds", int(obj["id"].replace("-", "")[:12], 16) == ts_ms,
              f'{obj["id"]} vs {obj["timestamp"]}')
    except Exception as e:
        bad("message is JSON", f"{text!r}: {e}")
    check("every member, the sender included, gets the same bytes", got["alice#1"] == text and got["alice#2"] == text,
          f"{got}")
    ids = []
    for i in range(3):
        await a.send({"type": "message", "channel": room, "content": f"n{i}"})
    for i in range(3):
        m = await b.recv()
        ids.append(json.loads(m)["id"] if m and m.startswith("{") else m)
    check("ids are time-ordered", ids == sorted(ids) and len(set(ids)) == 3, ids)
    for c in (a, a2):
        for i in range(3):
            await c.recv()
    exotic = "ctl \x08\x0c\x1f sep \u2028\u2029"
    await b.send({"type": "message", "channel": room, "content": exotic})
    m = await b.recv()
    for c in (a, a2):
        await c.recv()
    try:
        check("rare escapes decode to the same content", json.loads(m)["content"] == exotic, m)
        if q(exotic) not in m:
            NOTES.append(f"rare characters are escaped differently from presenced (same JSON value): {m!r}")
    except Exception as e:
        bad("rare escapes decode to the same content", f"{m!r}: {e}")
    big = "é" * 2048  # 4096 bytes, 2048 characters
    await b.send({"type": "message", "channel": room, "content": big})
    m = await b.recv()
    check("content of exactly 4096 bytes is accepted", m is not None and m.startswith('{"type":"message"'), (m or "")[:80])
    for c in (a, a2):
        await c.recv()

    print("[typing]")
    await a.send({"type": "typing", "channel": room, "typing": True})
    await b.expect("alice typing reaches bob", typing(alice, room, True))
    await a2.expect_nothing("alice's own other tab does not get her typing")
    await a.expect_nothing("the typist does not get its own typing")
    await a.send({"type": "typing", "channel": room, "typing": True})
    await b.expect_nothing("typing:true again is not announced again")
    await a.send({"type": "typing", "channel": room, "typing": False})
    await b.expect("typing:false reaches bob", typing(alice, room, False))
    await b.send({"type": "typing", "channel": room, "typing": True})
    await a.expect("bob typing reaches alice#1", typing(bob, room, True))
    await a2.expect("bob typing reaches alice#2", typing(bob, room, True))
    started = time.monotonic()
    await a.expect("typing ends by itself after 5 s", typing(bob, room, False), timeout=8)
    elapsed = time.monotonic() - started
    check("auto-stop came after about 5 s", 4.0 <= elapsed <= 7.5, f"{elapsed:.1f} s")
    await a2.recv()

    print("[errors]")
    e = await open_client(url, "errors", tok(carol))
    await e.send("nope")
    await e.expect_error("not JSON -> bad_json", "bad_json")
    await e.send("[1,2]")
    await e.expect_error("not an object -> bad_json", "bad_json")
    await e.send({"type": "foo"})
    await e.expect_error("unknown type", "unknown_type", "unknown type 'foo'")
    await e.send({"type": "foo", "x": 1})
    await e.expect_error("unknown type before unknown field", "unknown_type", "unknown type 'foo'")
    await e.send({"type": 5})
    await e.expect_error("type not a string -> bad_json", "bad_json")
    await e.send({"type": "ping", "x": 1})
    await e.expect_error("unknown field -> bad_json", "bad_json")
    await e.send({"type": "join"})
    await e.expect_error("missing channel -> bad_json", "bad_json")
    await e.send({"type": "join", "channel": 5})
    await e.expect_error("channel not a string -> bad_json", "bad_json")
    await e.send({"type": "join", "channel": "bad channel!"})
    await e.expect_error("invalid channel", "invalid_channel", "channel must be 1-128 bytes of [A-Za-z0-9_.:-]")
    await e.send({"type": "join", "channel": "x" * 129})
    await e.expect_error("channel of 129 bytes", "invalid_channel", "channel must be 1-128 bytes of [A-Za-z0-9_.:-]")
    await e.send({"type": "message", "channel": room, "content": "x"})
    await e.expect_error("message before join", "not_joined", "join the channel before sending to it")
    await e.send({"type": "typing", "channel": room, "typing": True})
    await e.expect_error("typing before join", "not_joined", "join the channel before typing in it")
    await e.send({"type": "leave", "channel": room})
    await e.expect_error("leave before join", "not_joined", "not a member of this channel")
    await e.send(b"\x01\x02")
    await e.expect_error("binary frame -> bad_json", "bad_json")
    await e.send({"type": "ping"})
    await e.expect("ping -> pong", PONG)
    await e.close()
    e = await open_client(url, "errors#2", tok(carol))
    side = f"side.{run}"
    await e.send({"type": "join", "channel": side})
    await e.expect("join a side channel", presence(carol, True, side))
    await e.send({"type": "message", "channel": side, "content": ""})
    await e.expect_error("empty content -> bad_json", "bad_json")
    await e.send({"type": "message", "channel": side, "content": "a" * 4097})
    await e.expect_error("content over 4096 bytes", "too_large", "content is over 4096 bytes")
    await e.send({"type": "message", "channel": side, "content": "é" * 2049})
    await e.expect_error("4098 bytes in 2049 characters", "too_large", "content is over 4096 bytes")
    await e.send({"type": "typing", "channel": side, "typing": "yes"})
    await e.expect_error("typing not a boolean -> bad_json", "bad_json")
    await e.send({"type": "message", "channel": side, "content": "x", "typing": True})
    await e.expect_error("field not allowed for the type -> bad_json", "bad_json")
    await e.close()
    f = await open_client(url, "limited", tok(carol, channels=[f"ok.{run}"]))
    await f.send({"type": "join", "channel": side})
    await f.expect_error("channel outside the token's channels", "forbidden_channel", "the token does not allow this channel")
    await f.send({"type": "join", "channel": f"ok.{run}"})
    await f.expect("channel inside the token's channels", presence(carol, True, f"ok.{run}"))
    await f.close()

    print("[leave, grace, close]")
    await b.send({"type": "leave", "channel": room})
    await asyncio.sleep(min(0.3, args.grace / 4))
    await b.send({"type": "join", "channel": room})
    await b.expect("rejoin snapshot 1/2", presence(alice, True, room))
    await b.expect("rejoin snapshot 2/2", presence(bob, True, room))
    await asyncio.sleep(args.grace + 0.5)
    await a.expect_nothing("leave + rejoin within the grace period is not announced")
    await a2.send({"type": "leave", "channel": room})
    await a2.expect_nothing("leave is not answered")
    await b.expect_nothing("alice leaving one of two connections is not announced")
    await b.close()
    started = time.monotonic()
    await a.expect("bob's last connection closing -> online:false", presence(bob, False, room), timeout=args.grace + 3)
    elapsed = time.monotonic() - started
    check("online:false waited for the grace period", elapsed >= args.grace * 0.75 - 0.1, f"{elapsed:.2f} s")
    await a2.expect_nothing("a connection that left the channel hears nothing more")
    await a2.close()
    await a.close()

    print("[close codes]")
    c = await open_client(url, "closer", tok(carol))
    await c.ws.close(4000, "bye")
    check("a client close is answered with the same code", c.ws.close_code == 4000, f"got {c.ws.close_code}")
    c = await open_client(url, "big", tok(carol))
    await c.send("x" * 70000)
    got = await c.recv()
    check("a message over 65536 bytes -> close 1009", got == "<closed 1009>", f"got {got!r}")
    data = raw_request(host, port, upgrade_head(host, port, f"/ws?token={tok(carol)}"), then=masked_frame(1, b'{"type":"\xff"}'))
    code = first_close_code(data)
    check("invalid UTF-8 in a text frame -> close 1007", code == 1007, f"got {code}")

    if args.rate:
        print(f"[rate limit {args.rate}/s, burst {2 * args.rate}]")
        r = await open_client(url, "rate", tok(carol))
        n = 2 * args.rate + 5
        for _ in range(n):
            await r.send({"type": "ping"})
        answers = [await r.recv() for _ in range(n)]
        limited = [x for x in answers if x == error("rate_limited", f"more than {args.rate} messages per second")]
        pongs = [x for x in answers if x == PONG]
        check("the burst passes, then rate_limited", len(limited) >= 1 and len(pongs) >= 2 * args.rate
              and len(limited) + len(pongs) == n, f"{len(pongs)} pongs, {len(limited)} limited of {n}: {set(answers)}")
        await r.close()

    for note in NOTES:
        print(f"  note  {note}")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except Exception as e:  # the server broke a step the rest depends on
        bad("unexpected", f"{type(e).__name__}: {e}")
        print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
        sys.exit(1)
