#!/usr/bin/env bash
# Instructions per delivery, counted by valgrind's callgrind (repeatable on a noisy machine).
#
#   Benchmarks/callgrind.sh [--backend epoll|uring] [--threads N] [--out DIR] [-- presence-bench fanout options…]
#
# Starts presenced under callgrind, runs `presence-bench fanout` against it, zeroes the counters
# when the bench's warm-up ends and dumps them when its measured period ends, then prints
# server instructions per delivery and the top functions by inclusive cost.
set -euo pipefail
cd "$(dirname "$0")/.."

backend=epoll threads=1 out="" bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --) shift; bench_args=("$@"); break ;;
    *) echo "callgrind.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
out="${out:-$(mktemp -d)}"; mkdir -p "$out"
PRESENCED="${PRESENCED:-}" BENCH="${BENCH:-}"
if [ -z "$PRESENCED" ]; then swift build -c release --product presenced >&2; PRESENCED=.build/release/presenced; fi
if [ -z "$BENCH" ]; then swift build -c release --scratch-path .build-bench --product presence-bench >&2; BENCH=.build-bench/release/presence-bench; fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export WS_TOKEN_SECRET="callgrind-secret-0123456789abcdefghijklmnop"
warmup=3 duration=10
MESSAGE_RATE=0 LOG_LEVEL=warn IO_BACKEND="$backend" THREADS="$threads" \
  valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" "$PRESENCED" --port "$port" 2>"$out/valgrind.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done

"$BENCH" fanout --url "ws://127.0.0.1:$port/ws" --pid "$server" --warmup ${warmup}s --duration ${duration}s --json \
  "${bench_args[@]}" >"$out/bench.json" 2>"$out/bench.log" &
bench=$!
until grep -q "load running" "$out/bench.log" 2>/dev/null; do
  kill -0 $bench 2>/dev/null || { cat "$out/bench.log" >&2; exit 1; }
  sleep 0.1
done
sleep $warmup; callgrind_control -z $server >/dev/null
sleep $duration; callgrind_control -d $server >/dev/null
wait $bench || true
kill $server; wait $server 2>/dev/null || true

# The dump taken at the end of the measured period (callgrind.out.PID.1), not the final one.
dump=$(ls "$out"/callgrind.out.*.1 2>/dev/null | head -1 || true)
[ -n "$dump" ] || { echo "callgrind.sh: no dump found in $out" >&2; exit 1; }
python3 - "$out/bench.json" "$dump" "$duration" <<'PY'
import json, re, sys
bench = json.load(open(sys.argv[1]))
ir = None
for line in open(sys.argv[2]):
    m = re.match(r"(summary|totals):\s+(\d+)", line)
    if m: ir = int(m.group(2))
deliveries = bench["deliveries_per_s"] * float(sys.argv[3])
print(f"deliveries in the counted {sys.argv[3]} s: {deliveries:,.0f} ({bench['deliveries_per_s']:,.0f}/s under valgrind), loss {bench.get('loss')}")
print(f"server instructions: {ir:,}  →  {ir / deliveries:,.0f} instructions per delivery")
PY
echo "profile: callgrind_annotate --inclusive=yes $dump | head -60" >&2
