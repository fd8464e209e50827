#!/usr/bin/env bash
# Soak: presenced (Redis mode, forwarding to a chat-service stand-in) under a steady fan-out load
# with connection churn — every minute all --connections connect, join, publish at a fixed rate for
# most of the minute and disconnect. A third of the way in Redis is restarted (between two minutes
# of load), two thirds of the way in chat-service is down (503) for a minute of load. Every minute prints RSS (and its anonymous part), the C heap in use and free in it, open descriptors,
# latency and loss; at the end it checks:
#   - RSS after the last minute is within 10 % of RSS after the warm-up minutes (--settle-minutes,
#     default 6: the bench's tokens live 300 s and presenced remembers every used jti until its
#     exp + 5 s, so the replay memory grows for the first five minutes of churn, then holds);
#   - no delivery was lost (the bench's loss) in any minute;
#   - every chat message presenced accepted reached chat-service (distinct ids), none is left queued.
#
#   Benchmarks/soak.sh [--minutes M] [--connections N] [--settle-minutes K] [--quick]
# --quick: 2 minutes, 500 connections (a smoke test of the script itself).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=30 connections=5000 settle=6
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --settle-minutes) settle=$2; shift 2 ;;
    --quick) minutes=2 connections=500 settle=1; shift ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$settle" -lt "$minutes" ] || settle=$((minutes - 1))
channels=$((connections / 10)) publishers=$((connections / 50))
[ "$publishers" -ge 1 ] || publishers=1
PRESENCED=${PRESENCED:-} BENCH=${BENCH:-}
if [ -z "$PRESENCED" ]; then swift build -c release --product presenced >&2; PRESENCED=.build/release/presenced; fi
if [ -z "$BENCH" ]; then swift build -c release --scratch-path .build-bench --product presence-bench >&2; BENCH=.build-bench/release/presence-bench; fi
ulimit -n "$(ulimit -Hn)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tmp=$(mktemp -d /tmp/presenced-soak.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

redis_port=$(free_port)
start_redis() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly yes --dir "$tmp" --daemonize no >"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  pids+=($redis_pid)
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "soak.sh: redis-server did not start" >&2; exit 1
}
start_redis

# chat-service stand-in: records every message id it is sent; answers 503 while $tmp/down exists.
service_port=$(free_port)
python3 - "$service_port" "$tmp" <<'EOF' &
import http.server, json, os, socketserver, sys, threading
port, tmp = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
ids = open(f"{tmp}/ids.txt", "a")
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response (flushed after each request): headers and body written apart meet
    # Nagle and the client's delayed ACK, 40 ms a response.
    wbufsize = 65536
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = 503 if os.path.exists(f"{tmp}/down") else 201
        if status == 201:
            with lock:
                ids.write(json.loads(body)["id"] + "\n"); ids.flush()
        self.send_response(status); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args): pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
Server(("127.0.0.1", port), Handler).serve_forever()
EOF
pids+=($!)

export WS_TOKEN_SECRET=${WS_TOKEN_SECRET:-soak-secret-0123456789abcdefghijklmnopqrstuv}
port=$(free_port)
env LOG_LEVEL=warn MESSAGE_RATE=0 REDIS_URL="redis://127.0.0.1:$redis_port" CHAT_SERVICE_URL="http://127.0.0.1:$service_port" \
  STATE_DIRECTORY="$tmp/state" MAX_CONNECTIONS=$((connections * 2)) "$PRESENCED" --port "$port" >"$tmp/presenced.log" 2>&1 &
server=$!
pids+=($server)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$server/status"; }
# The anonymous part of RSS (heap, stacks, mappings of our own); the rest is file-backed pages.
anon_kib() { awk '/^RssAnon/ { print $2 }' "/proc/$server/status"; }
fds() { ls "/proc/$server/fd" | wc -l; }

echo "soak: $minutes min, $connections connections over $channels channels, $publishers publishers at 5 msg/s, pid $server" >&2
printf '%6s %10s %10s %10s %10s %6s %10s %10s %8s  %s\n' minute rss_kib anon_kib heap_kib free_kib fds p50_us p99_us loss event
lost=0 settled_rss=0 troubled=0
for minute in $(seq 1 "$minutes"); do
  event=""
  if [ "$minute" -eq $((minutes / 3 + 1)) ] && [ "$minutes" -ge 3 ]; then
    # Between two minutes of load: a message sent while Redis is down is refused (`unavailable`),
    # which the bench would count as lost deliveries.
    kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; sleep 2; start_redis; event="redis restarted"
    # /readyz says 200 once every loop's Redis connection and the subscriber are back.
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  fi
  if [ "$minute" -eq $((2 * minutes / 3 + 1)) ] && [ "$minutes" -ge 3 ]; then touch "$tmp/down"; event="chat-service down"; fi
  if [ "$minute" -eq $((2 * minutes / 3 + 2)) ]; then rm -f "$tmp/down"; event="chat-service back"; fi
  # Exit 3 is a run with problems (loss, failed set-ups, error frames): reported below, not fatal.
  code=0
  "$BENCH" fanout --url "ws://127.0.0.1:$port/ws" --pid "$server" --connections "$connections" --channels "$channels" \
    --publishers "$publishers" --rate 5 --warmup 2s --duration 45s --json >"$tmp/minute.json" 2>"$tmp/bench.log" || code=$?
  if [ "$code" -ne 0 ] && [ "$code" -ne 3 ]; then
    cat "$tmp/bench.log" >&2; echo "soak.sh: the bench failed in minute $minute (exit $code)" >&2; exit 1
  fi
  # Memory is read 12 s after the minute's load: its connections are gone and presenced has
  # handed their freed pages back (it trims the heap every 10 s), so every minute is read alike.
  sleep 12
  read -r p50 p99 loss problems < <(python3 -c "
import json; d=json.load(open('$tmp/minute.json')); l=d['latency']
p={k: d[k] for k in ('setup_failed','lost_connections','failures','server_errors','close_codes','unparsable_messages') if d.get(k)}
print(int(l['p50_us']), int(l['p99_us']), d['loss'], json.dumps(p, separators=(',', ':')) if p else '-')")
  lost=$((lost + loss))
  [ "$problems" = "-" ] || { event="$event problems: $problems"; troubled=$((troubled + 1)); }
  rss=$(rss_kib)
  [ "$minute" -eq "$settle" ] && settled_rss=$rss
  heap=$(metric presenced_heap_in_use_bytes) free=$(metric presenced_heap_free_bytes)
  printf '%6d %10d %10d %10d %10d %6d %10d %10d %8d  %s\n' "$minute" "$rss" "$(anon_kib)" "$((${heap:-0} / 1024))" \
    "$((${free:-0} / 1024))" "$(fds)" "$p50" "$p99" "$loss" "$event"
done

# The forward queue drains once chat-service is back.
for _ in $(seq 120); do [ "$(metric presenced_forward_queue_depth)" = 0 ] && break; sleep 1; done
accepted=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 ~ /^presenced_messages_in_total/ && $1 ~ /type="message"/ { s += $2 } END { print s + 0 }')
refused=$(metric presenced_forward_refused_total); refused=${refused:-0}
stored=$(sort -u "$tmp/ids.txt" | wc -l) posted=$(wc -l <"$tmp/ids.txt")
final_rss=$(rss_kib)
echo "soak: chat messages accepted $((accepted - refused)) (refused $refused), at chat-service $stored distinct ($posted posts), queue depth $(metric presenced_forward_queue_depth)"
echo "soak: RSS $settled_rss KiB after minute $settle, $final_rss KiB at the end; deliveries lost $lost"
status=0
if [ "$final_rss" -gt $((settled_rss * 110 / 100)) ]; then echo "soak.sh: RSS grew more than 10 %" >&2; status=1; fi
if [ "$lost" -ne 0 ]; then echo "soak.sh: $lost deliveries lost" >&2; status=1; fi
if [ "$troubled" -ne 0 ]; then echo "soak.sh: $troubled minute(s) with problems (see the event column)" >&2; status=1; fi
if [ "$stored" -ne $((accepted - refused)) ]; then echo "soak.sh: chat-service has $stored of $((accepted - refused)) accepted messages" >&2; status=1; fi
exit $status
