#!/usr/bin/env bash
# Two builds of presenced side by side under one presence-bench scenario: a fresh server process
# per run, the builds alternated within each round, medians per build and their ratio — how a
# change is measured against the build before it (issue 16/17: fan-out per server CPU-second, join
# latency with a warm channel-access cache).
#
#   Benchmarks/versus.sh OLD_BINARY NEW_BINARY [--rounds N] [--redis] [--scenario fanout|rate|join]
#                        [--new-env K=V]… [--quick]
#
# fanout: the closed-loop fan-out (2000 connections, 20 channels, 20 publishers, window 16, 10 s);
# rate: the fixed 100,000 deliveries/s (latency); join: leave+join churn between two channels per
# connection (200 connections), so each (user, channel) pair repeats and a channel-access cache is
# warm after the first round — give the new build CHANNEL_AUTH_URL with --new-env to measure the
# warm-cache join (a local stand-in that admits everyone is started for it: CHANNEL_AUTH_URL=stand-in).
# --redis runs both builds in Redis mode on a fresh redis-server per run. BENCH=path picks the
# generator (built from this checkout by default). --quick: one short round (CI smoke test).
set -euo pipefail
caller_pwd=$PWD
cd "$(dirname "$0")/.."
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$caller_pwd/$1" ;; esac; }

[ $# -ge 2 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
old=$(abspath "$1") new=$(abspath "$2"); shift 2
rounds=3 redis=0 scenario=fanout quick=0 new_env=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --redis) redis=1; shift ;;
    --scenario) scenario=$2; shift 2 ;;
    --new-env) new_env+=("$2"); shift 2 ;;
    --quick) quick=1; rounds=1; shift ;;
    *) echo "versus.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$scenario" in
  fanout) args=(fanout) ;;
  rate) args=(fanout --rate 50 --connections 2000 --channels 20) ;;
  join) args=(presence --connections 200 --channels 2) ;;
  *) echo "versus.sh: unknown scenario $scenario" >&2; exit 2 ;;
esac
[ $quick = 1 ] && args+=(--warmup 1s --duration 2s) || true
BENCH=${BENCH:-}
if [ -z "$BENCH" ]; then swift build -c release --scratch-path .build-bench --product presence-bench >&2; BENCH=.build-bench/release/presence-bench; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tmp=$(mktemp -d /tmp/presenced-versus.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# A channel-access stand-in that admits everyone (for --new-env CHANNEL_AUTH_URL=stand-in).
access_port=$(free_port)
python3 - "$access_port" <<'EOF' &
import http.server, socketserver, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b'{"allowed":true}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF
pids+=($!)

export WS_TOKEN_SECRET=${WS_TOKEN_SECRET:-versus-secret-0123456789abcdefghijklmnopq}
# run NAME BINARY [ENV…] → one JSON line in $tmp/NAME.jsonl
run() {
  local name=$1 binary=$2; shift 2
  local port extra=("$@") redis_pid=""
  port=$(free_port)
  for i in "${!extra[@]}"; do
    [ "${extra[$i]}" = "CHANNEL_AUTH_URL=stand-in" ] && extra[$i]="CHANNEL_AUTH_URL=http://127.0.0.1:$access_port/access"
  done
  if [ $redis = 1 ]; then
    local redis_port; redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
    redis_pid=$!; pids+=($redis_pid)
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    extra+=("REDIS_URL=redis://127.0.0.1:$redis_port")
  fi
  env MESSAGE_RATE=0 LOG_LEVEL=warn PRESENCE_GRACE=0 "${extra[@]}" "$binary" --port "$port" >"$tmp/server.log" 2>&1 &
  local server=$!
  pids+=($server)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  "$BENCH" "${args[@]}" --url "ws://127.0.0.1:$port/ws" --pid "$server" --json >"$tmp/run.json" 2>"$tmp/bench.log" \
    || { cat "$tmp/bench.log" "$tmp/server.log" >&2; exit 1; }
  kill "$server"; wait "$server" 2>/dev/null || true
  [ -n "$redis_pid" ] && { kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; }
  tr -d '\n' <"$tmp/run.json" >>"$tmp/$name.jsonl"; echo >>"$tmp/$name.jsonl"
}
for _ in $(seq "$rounds"); do run old "$old"; run new "$new" "${new_env[@]}"; done

python3 - "$tmp" "$scenario" <<'EOF'
import json, statistics, sys
tmp, scenario = sys.argv[1], sys.argv[2]
runs = {n: [json.loads(l) for l in open(f"{tmp}/{n}.jsonl")] for n in ("old", "new")}
def figures(r):
    if scenario == "join":
        lat = r["join_latency"]
        return {"ops/s": r["operations_per_s"], "server µs/op": r["server_cpu_us_per_operation"],
                "p50 ms": lat["p50_us"] / 1000, "p99 ms": lat["p99_us"] / 1000, "loss": 0}
    lat = r["latency"]
    return {"deliveries/s": r["deliveries_per_s"], "per server CPU-s": r["deliveries_per_server_cpu_s"],
            "p50 ms": lat["p50_us"] / 1000, "p99 ms": lat["p99_us"] / 1000, "loss": r["loss"]}
bad = 0
for name, rs in runs.items():
    for r in rs:
        f = figures(r)
        print(f"{name:>4}: " + "  ".join(f"{k} {v:,.2f}" for k, v in f.items() if k != "loss")
              + f"  loss {f['loss']}"
              + f"  (load {r.get('loadavg_1m_before', '?')})")
        bad += f.get("loss", 0) != 0
keys = [k for k in figures(runs["old"][0]) if k != "loss"]
for k in keys:
    o = statistics.median(figures(r)[k] for r in runs["old"]); n = statistics.median(figures(r)[k] for r in runs["new"])
    print(f"median {k}: old {o:,.2f}  new {n:,.2f}  new/old {n / o:.3f}")
if bad:
    print(f"versus.sh: {bad} run(s) lost deliveries", file=sys.stderr); sys.exit(1)
EOF
