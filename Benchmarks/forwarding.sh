#!/usr/bin/env bash
# Does forwarding slow fan-out? The bench's fan-out scenario against presenced without
# forwarding and with CHAT_SERVICE_URL pointing at a slow chat-service stand-in (every POST
# answered after --delay, 1 s), alternating, --rounds times each; prints every run and the
# medians of deliveries/s and deliveries per server CPU-second, and their ratio.
#
#   Benchmarks/forwarding.sh [--rounds N] [--delay S] [--io uring|epoll] [--quick] [-- presence-bench fanout options…]
#
# --quick (CI): one short round each on a small load; asserts clean runs and no loss, no speed.
# The forward queue's bounds are raised for the run (a 1 s chat-service falls behind at once:
# every message stays queued), and its state directory is a fresh temporary one.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5 delay=1 io=auto quick=0 bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --delay) delay=$2; shift 2 ;;
    --io) io=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --) shift; bench_args=("$@"); break ;;
    *) echo "forwarding.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ $quick = 1 ]; then
  rounds=1
  [ ${#bench_args[@]} -gt 0 ] || bench_args=(--connections 200 --channels 10 --publishers 10 --window 4 --warmup 1s --duration 2s)
fi
PRESENCED=${PRESENCED:-} BENCH=${BENCH:-}
if [ -z "$PRESENCED" ]; then swift build -c release --product presenced >&2; PRESENCED=.build/release/presenced; fi
if [ -z "$BENCH" ]; then swift build -c release --scratch-path .build-bench --product presence-bench >&2; BENCH=.build-bench/release/presence-bench; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tmp=$(mktemp -d /tmp/presenced-forwarding.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# The slow chat-service: threaded, keep-alive, answers 201 after the delay.
service_port=$(free_port)
python3 - "$service_port" "$delay" <<'EOF' &
import http.server, socketserver, sys, time
delay = float(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response (flushed after each request): headers and body written apart meet
    # Nagle and the client's delayed ACK, 40 ms a response.
    wbufsize = 65536
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        time.sleep(delay)
        self.send_response(201); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args): pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF
pids+=($!)

export WS_TOKEN_SECRET=${WS_TOKEN_SECRET:-forwarding-secret-0123456789abcdefghijklmnop}
# run MODE → one JSON result line in $tmp/MODE.jsonl
run() {
  local mode=$1 port state extra=()
  port=$(free_port)
  if [ "$mode" = forwarding ]; then
    state=$(mktemp -d "$tmp/state.XXXXXX")
    extra=(CHAT_SERVICE_URL=http://127.0.0.1:$service_port STATE_DIRECTORY=$state
           FORWARD_QUEUE_MAX=100000000 FORWARD_QUEUE_MAX_BYTES=100000000000)
  fi
  env MESSAGE_RATE=0 LOG_LEVEL=warn IO_BACKEND="$io" "${extra[@]}" "$PRESENCED" --port "$port" >"$tmp/server.log" 2>&1 &
  local server=$!
  pids+=($server)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  "$BENCH" fanout --url "ws://127.0.0.1:$port/ws" --pid "$server" --json "${bench_args[@]}" >"$tmp/run.json" 2>"$tmp/bench.log" \
    || { cat "$tmp/bench.log" >&2; exit 1; }
  kill "$server"; wait "$server" 2>/dev/null || true
  [ "$mode" = forwarding ] && rm -rf "$state"
  tr -d '\n' <"$tmp/run.json" >>"$tmp/$mode.jsonl"; echo >>"$tmp/$mode.jsonl"
}
for _ in $(seq "$rounds"); do run plain; run forwarding; done

python3 - "$tmp" "$quick" <<'EOF'
import json, statistics, sys
tmp, quick = sys.argv[1], sys.argv[2] == "1"
runs = {m: [json.loads(l) for l in open(f"{tmp}/{m}.jsonl")] for m in ("plain", "forwarding")}
bad = 0
for mode, rs in runs.items():
    for r in rs:
        print(f"{mode:>10}: {r['deliveries_per_s']:>12,.0f} deliveries/s  {r['deliveries_per_server_cpu_s']:>12,.0f} per server CPU-s"
              f"  loss {r['loss']}  (other processes {r['other_processes_cpu_s']} CPU-s)")
        bad += r["loss"] != 0
med = {m: (statistics.median(r["deliveries_per_s"] for r in rs), statistics.median(r["deliveries_per_server_cpu_s"] for r in rs))
       for m, rs in runs.items()}
print(f"medians: plain {med['plain'][0]:,.0f}/s, {med['plain'][1]:,.0f}/CPU-s; "
      f"forwarding {med['forwarding'][0]:,.0f}/s, {med['forwarding'][1]:,.0f}/CPU-s")
print(f"forwarding / plain: deliveries/s {med['forwarding'][0] / med['plain'][0]:.3f}, "
      f"per server CPU-s {med['forwarding'][1] / med['plain'][1]:.3f}")
if bad:
    print(f"forwarding.sh: {bad} run(s) lost deliveries", file=sys.stderr); sys.exit(1)
EOF
