#!/usr/bin/env bash
# Compares presenced (io_uring and epoll backends) with the uWebSockets, Go/gorilla and Node/ws peers of
# Benchmarks/peers/ under the same presence-bench scenarios: one server at a time, a fresh server
# process for every run, servers alternated within each round, median per server over --rounds.
#
#   Benchmarks/compare.sh [--rounds N] [--scenarios fanout,rate,idle,connect] [--out DIR] ...
#   Benchmarks/compare.sh --quick          # CI smoke test: small sizes, asserts clean runs, no speeds
#
# Binaries: PRESENCED=path BENCH=path (default: built with `swift build -c release --product …`),
# PEER_GO=path (default: built with `go build` in GOPATH mode from the Debian gorilla package),
# PEER_UWS=path (default: .build-peers/peer-uws, from Benchmarks/peers/uws/build.sh; skipped if absent),
# NODE=node and PEER_NODE_PATH=/usr/share/nodejs (where `ws` is). See Benchmarks/README.md.
set -euo pipefail
caller_pwd=$PWD
cd "$(dirname "$0")/.."
# Paths given relative to the caller's directory (PRESENCED, BENCH, PEER_GO, NODE, --out).
abspath() { case "$1" in ""|/*) echo "$1" ;; */*|.*) echo "$caller_pwd/$1" ;; *) echo "$1" ;; esac; }

usage() {
  cat <<'EOF'
usage: Benchmarks/compare.sh [options]

  --quick                 CI smoke test: small sizes, every server once, each run must exit 0 with
                          zero loss; never asserts a speed (fails if Go or Node is missing)
  --rounds N              repeat every scenario N times, servers alternated (default 1); the
                          tables show the median per server
  --scenarios LIST        comma-separated subset of fanout,rate,idle,connect (default: all)
  --servers LIST          comma-separated subset of uring,epoll,uws,gorilla,node (default: all;
                          uws only when built: PEER_UWS or .build-peers/peer-uws)
  --duration D            fanout/rate measured period (bench default 10s; quick 2s)
  --warmup D              fanout/rate warm-up (bench default 2s; quick 1s)
  --hold D                idle hold for the CPU reading (bench default 10s; quick 1s)
  --connections-idle N    idle connections (default 19000, quick 500; needs ulimit -n > N + 200)
  --channels-idle C       idle: channels (default the bench's N/10; issue 19 uses 1000)
  --connections-connect N connect: connections (default 5000, quick 300; issue 19 uses 19000)
  --channels-connect C    connect: channels (default the bench's N/10; issue 19 uses 1000)
  --connect-generator G   connect: swift (presence-bench, default) or c (Benchmarks/ConnectStorm's
                          connect-storm, built into .build-bench when missing or older than its source)
  --out DIR               results directory (default: a new mktemp -d)
  -h, --help              this text

Environment: PRESENCED, BENCH, PEER_GO (prebuilt binaries; built when not given), PEER_UWS (prebuilt
peer-uws; default .build-peers/peer-uws, never built here: see Benchmarks/peers/uws/build.sh), NODE (default
node), PEER_NODE_PATH (NODE_PATH for the Node peer, default /usr/share/nodejs), WS_TOKEN_SECRET
(shared by all servers and the bench; a fixed 40-byte default).
EOF
}

log() { echo "compare: $*" >&2; }
die() { echo "compare: $*" >&2; exit 1; }

quick=0 rounds=1 scenarios="fanout,rate,idle,connect" servers="uring,epoll,uws,gorilla,node"
duration="" warmup="" hold="" idle_conns="" connect_conns="" connect_channels="" idle_channels="" out=""
connect_generator=swift
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift ;;
    --scenarios) scenarios=${2:?--scenarios needs a value}; shift ;;
    --servers) servers=${2:?--servers needs a value}; shift ;;
    --duration) duration=${2:?--duration needs a value}; shift ;;
    --warmup) warmup=${2:?--warmup needs a value}; shift ;;
    --hold) hold=${2:?--hold needs a value}; shift ;;
    --connections-idle) idle_conns=${2:?--connections-idle needs a value}; shift ;;
    --connections-connect) connect_conns=${2:?--connections-connect needs a value}; shift ;;
    --channels-idle) idle_channels=${2:?--channels-idle needs a value}; shift ;;
    --channels-connect) connect_channels=${2:?--channels-connect needs a value}; shift ;;
    --connect-generator) connect_generator=${2:?--connect-generator needs a value}; shift ;;
    --out) out=$(abspath "${2:?--out needs a value}"); [[ "$out" == /* ]] || out=$caller_pwd/$out; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "compare: --rounds $rounds: expected a positive integer" >&2; exit 2; }
[[ "${idle_conns:-1}" =~ ^[1-9][0-9]*$ ]] || { echo "compare: --connections-idle $idle_conns: expected a positive integer" >&2; exit 2; }
[[ "${connect_conns:-1}" =~ ^[1-9][0-9]*$ ]] || { echo "compare: --connections-connect $connect_conns: expected a positive integer" >&2; exit 2; }
[[ "${connect_channels:-1}" =~ ^[1-9][0-9]*$ ]] || { echo "compare: --channels-connect $connect_channels: expected a positive integer" >&2; exit 2; }
[[ "$connect_generator" =~ ^(c|swift)$ ]] || { echo "compare: --connect-generator $connect_generator: expected c or swift" >&2; exit 2; }
IFS=, read -r -a scenario_list <<< "$scenarios"
IFS=, read -r -a server_list <<< "$servers"
for s in "${scenario_list[@]}"; do
  case "$s" in fanout|rate|idle|connect) ;; *) echo "compare: unknown scenario '$s' (fanout, rate, idle, connect)" >&2; exit 2 ;; esac
done
for s in "${server_list[@]}"; do
  case "$s" in uring|epoll|uws|gorilla|node) ;; *) echo "compare: unknown server '$s' (uring, epoll, uws, gorilla, node)" >&2; exit 2 ;; esac
done
command -v python3 >/dev/null || die "python3 is needed to read the bench's JSON"

if [ $quick = 1 ]; then
  rounds=1
  [ -n "$duration" ] || duration=2s
  [ -n "$warmup" ] || warmup=1s
  [ -n "$hold" ] || hold=1s
  [ -n "$idle_conns" ] || idle_conns=500
fi
[ -n "$idle_conns" ] || idle_conns=19000

# Bench arguments per scenario: the README's full-size runs, or the smoke-test sizes.
timing=()
[ -n "$duration" ] && timing+=(--duration "$duration")
[ -n "$warmup" ] && timing+=(--warmup "$warmup")
if [ $quick = 1 ]; then
  args_fanout=(fanout --connections 200 --channels 10 --publishers 10 --window 4 "${timing[@]}")
  args_rate=(fanout --connections 200 --channels 10 --publishers 10 --rate 10 "${timing[@]}")
  args_idle=(idle --connections "$idle_conns" --settle 1s --hold "$hold")
  args_connect=(connect --connections "${connect_conns:-300}")
else
  args_fanout=(fanout --connections 2000 --channels 20 --publishers 20 --window 16 "${timing[@]}")
  args_rate=(fanout --connections 2000 --channels 20 --publishers 20 --rate 50 "${timing[@]}")
  args_idle=(idle --connections "$idle_conns")
  [ -n "$hold" ] && args_idle+=(--hold "$hold")
  args_connect=(connect --connections "${connect_conns:-5000}")
fi
[ -n "$connect_channels" ] && args_connect+=(--channels "$connect_channels")
[ -n "$idle_channels" ] && args_idle+=(--channels "$idle_channels")

# File descriptors: the bench and each server hold one per connection (plus a few).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ " ${scenario_list[*]} " == *" idle "* ]] || [ -n "$connect_conns" ]; then
  need=$(( (idle_conns > ${connect_conns:-0} ? idle_conns : ${connect_conns:-0}) + 200 ))
  have=$(ulimit -n)
  if [ "$have" != unlimited ] && [ "$have" -lt "$need" ]; then
    die "idle with $idle_conns connections needs ulimit -n >= $need (soft limit raised to the hard limit: $have); pass a smaller --connections-idle"
  fi
fi

export WS_TOKEN_SECRET=${WS_TOKEN_SECRET:-compare-secret-0123456789abcdefghijklmnop}
[ ${#WS_TOKEN_SECRET} -ge 32 ] || die "WS_TOKEN_SECRET must be at least 32 bytes"

tmp=$(mktemp -d /tmp/presenced-compare-work.XXXXXX)
if [ -n "$out" ]; then mkdir -p "$out"; else out=$(mktemp -d /tmp/presenced-compare.XXXXXX); fi
out=$(cd "$out" && pwd)

server_pid="" bench_pid=""
stop_server() {
  local pid=$server_pid
  [ -n "$pid" ] || return 0
  server_pid=""
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  if [ -n "$bench_pid" ]; then kill -TERM "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; fi
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "compare: interrupted (partial results in $out)" >&2; exit 130' INT TERM

# --- Binaries ------------------------------------------------------------------------------------

swift_product() { # product → path of its release binary, building it unless given
  local product=$1 given=$2
  if [ -n "$given" ]; then
    command -v "$given" || die "$given (given for $product) is not an executable"
    return
  fi
  log "building $product (swift build -c release --product $product)"
  swift build -c release --product "$product" > "$tmp/build-$product.log" 2>&1 \
    || { tail -20 "$tmp/build-$product.log" >&2; die "swift build of $product failed"; }
  echo "$(swift build -c release --show-bin-path)/$product"
}

missing_peer() { # name, reason: quick mode fails, a full run goes on without that server
  if [ $quick = 1 ]; then die "FAIL $1: $2 (CI installs golang-go golang-github-gorilla-websocket-dev nodejs node-ws)"; fi
  log "skipping $1: $2"
  local kept=() s
  for s in "${server_list[@]}"; do [ "$s" = "$3" ] || kept+=("$s"); done
  server_list=("${kept[@]}")
}

want() { [[ " ${server_list[*]} " == *" $1 "* ]]; }

bench=$(swift_product presence-bench "$(abspath "${BENCH:-}")")
if [ "$connect_generator" = c ] && [[ " ${scenario_list[*]} " == *" connect "* ]]; then
  storm=.build-bench/connect-storm
  if [ ! -x "$storm" ] || [ Benchmarks/ConnectStorm/connect-storm.c -nt "$storm" ]; then
    log "building connect-storm (Benchmarks/ConnectStorm/build.sh)"
    Benchmarks/ConnectStorm/build.sh > "$tmp/build-connect-storm.log" 2>&1 \
      || { cat "$tmp/build-connect-storm.log" >&2; die "build of connect-storm failed"; }
  fi
  storm=$PWD/$storm
fi
if want uring || want epoll; then presenced=$(swift_product presenced "$(abspath "${PRESENCED:-}")"); fi
if want gorilla; then
  if [ -n "${PEER_GO:-}" ]; then
    peer_go=$(abspath "$PEER_GO")
    [ -x "$peer_go" ] || die "PEER_GO=$PEER_GO is not an executable"
  elif ! command -v go >/dev/null; then
    missing_peer gorilla "go not found" gorilla
  else
    log "building the Go peer (GO111MODULE=off GOPATH=/usr/share/gocode go build)"
    peer_go=$tmp/peer-go
    [ -n "${HOME:-}" ] || export GOCACHE=$tmp/gocache
    if ! GO111MODULE=off GOPATH=/usr/share/gocode go build -o "$peer_go" Benchmarks/peers/go/main.go > "$tmp/build-go.log" 2>&1; then
      cat "$tmp/build-go.log" >&2
      missing_peer gorilla "go build of Benchmarks/peers/go/main.go failed (gorilla/websocket missing?)" gorilla
    fi
  fi
fi
if want uws; then
  # uWebSockets is not packaged: the peer is built by hand (Benchmarks/peers/uws/build.sh UWS_DIR
  # USOCKETS_DIR), never here; without it the row is left out, in CI's quick run too.
  peer_uws=$(abspath "${PEER_UWS:-.build-peers/peer-uws}")
  if [ ! -x "$peer_uws" ]; then
    log "skipping uws: $peer_uws not built (Benchmarks/peers/uws/build.sh UWS_DIR USOCKETS_DIR)"
    kept=()
    for s in "${server_list[@]}"; do [ "$s" = uws ] || kept+=("$s"); done
    server_list=("${kept[@]}")
  fi
fi
node=$(abspath "${NODE:-node}")
node_path=$(abspath "${PEER_NODE_PATH:-/usr/share/nodejs}")
if want node; then
  if ! command -v "$node" >/dev/null; then
    missing_peer node "$node not found" node
  elif ! NODE_PATH=$node_path "$node" -e "require('ws')" 2>/dev/null; then
    missing_peer node "the ws module is not under $node_path" node
  fi
fi
[ ${#server_list[@]} -gt 0 ] || die "no server left to run"

# --- Servers -------------------------------------------------------------------------------------

# Each server gets the same clean environment: the shared secret, MESSAGE_RATE=0, its port, and
# nothing else from the caller's environment (no GOMAXPROCS, GOGC, NODE_OPTIONS, REDIS_URL…).
base_env=(env -i "PATH=$PATH" "HOME=${HOME:-/tmp}" "WS_TOKEN_SECRET=$WS_TOKEN_SECRET" MESSAGE_RATE=0)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

label() {
  case "$1" in
    uring) echo "presenced uring" ;; epoll) echo "presenced epoll" ;;
    uws) echo "uws" ;; gorilla) echo "go/gorilla" ;; node) echo "node/ws" ;;
  esac
}

# start_server NAME PORT LOG: starts a fresh server process, waits until the port accepts.
start_server() {
  local name=$1 port=$2 logfile=$3
  case "$name" in
    uring|epoll)
      "${base_env[@]}" IO_BACKEND="$name" LOG_LEVEL=warn PORT="$port" "$presenced" --port "$port" > "$logfile" 2>&1 & ;;
    uws)
      "${base_env[@]}" PORT="$port" "$peer_uws" > "$logfile" 2>&1 & ;;
    gorilla)
      "${base_env[@]}" PORT="$port" "$peer_go" > "$logfile" 2>&1 & ;;
    node)
      "${base_env[@]}" PORT="$port" NODE_PATH="$node_path" "$node" Benchmarks/peers/node/server.js > "$logfile" 2>&1 & ;;
  esac
  server_pid=$!
  for _ in $(seq 100); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      wait "$server_pid" 2>/dev/null || true; server_pid=""
      tail -5 "$logfile" >&2
      return 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      sleep 0.5 # let start-up allocations settle before the bench's baseline readings
      return 0
    fi
    sleep 0.1
  done
  tail -5 "$logfile" >&2
  stop_server
  return 1
}

# --- Per-run check and one progress line (python3 reads the bench's JSON) -------------------------

cat > "$tmp/check.py" <<'PY'
import json, sys
path, rc = sys.argv[1], int(sys.argv[2])
problems, notes = [], []
try:
    d = json.load(open(path))
except Exception as e:
    d = {}
    problems.append(f"no JSON from the bench ({e.__class__.__name__})")
if "error" in d:
    problems.append(d["error"])
if rc != 0:
    problems.insert(0, f"bench exit {rc}")
for key in ("loss", "failed", "setup_failed", "lost_connections", "lost_during_hold", "unparsable_messages"):
    if d.get(key):
        problems.append(f"{key} {d[key]}")
for key in ("failures", "server_errors", "close_codes"):
    if d.get(key):
        problems.append(f"{key} " + ", ".join(f"{k} ×{v}" for k, v in d[key].items()))
if d.get("teardown_unanswered"):
    notes.append(f"teardown_unanswered {d['teardown_unanswered']}")
s = d.get("scenario")
def n(x, f="{:,.0f}"):
    return "?" if x is None else f.format(x)
if s == "fanout" and d.get("mode") == "rate":
    lat = d.get("latency") or {}
    fig = f"p50 {n(lat.get('p50_us'))} µs, p99 {n(lat.get('p99_us'))} µs, server CPU {n(d.get('server_cpu_pct'), '{:.1f}')} %"
elif s == "fanout":
    fig = f"{n(d.get('deliveries_per_s'))} deliveries/s, {n(d.get('deliveries_per_server_cpu_s'))} per server CPU-s"
elif s == "idle":
    fig = f"{n(d.get('rss_per_connection_kib'), '{:.2f}')} KiB/conn, server CPU {n(d.get('server_cpu_pct'), '{:.1f}')} %"
elif s == "connect":
    fig = (f"{n(d.get('connects_per_s'))} connects/s, server {n(d.get('server_cpu_us_per_connection'), '{:.1f}')} µs/conn"
           f" (user {n(d.get('server_user_us_per_connection'), '{:.1f}')} + sys {n(d.get('server_system_us_per_connection'), '{:.1f}')})")
else:
    fig = ""
if s == "fanout":
    fig += f", loss {d.get('loss', '?')}"
print(fig + ("; " + "; ".join(notes) if notes else ""))
if problems:
    print("; ".join(str(p) for p in problems))
    sys.exit(1)
PY

# --- Runs ----------------------------------------------------------------------------------------

manifest=$out/runs.tsv
printf 'scenario\tserver\tround\trc\tclean\tjson\n' > "$manifest"
{
  echo "# compare.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) CPUs; quick=$quick rounds=$rounds"
  echo "# bench: $bench"
  if [ -n "${storm:-}" ]; then echo "# connect generator: $storm"; fi
  if [ -n "${presenced:-}" ]; then
    echo "# presenced: $presenced (git $(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet HEAD -- Sources 2>/dev/null || echo ', Sources modified'))"
  fi
  if [ -n "${peer_go:-}" ]; then echo "# peer-go: $peer_go ($(go version 2>/dev/null || echo 'go ?'))"; fi
  if want uws; then echo "# peer-uws: $peer_uws"; fi
  if want node; then echo "# peer-node: $node $("$node" --version) NODE_PATH=$node_path"; fi
} > "$out/commands.txt"

failures=()
total_runs=$(( ${#scenario_list[@]} * rounds * ${#server_list[@]} ))
run_no=0
started=$SECONDS
log "results in $out"
for scenario in "${scenario_list[@]}"; do
  declare -n args="args_$scenario"
  for round in $(seq "$rounds"); do
    # Alternate: each round starts one server further along, so none always runs first.
    count=${#server_list[@]}
    for i in $(seq 0 $((count - 1))); do
      name=${server_list[$(( (i + round - 1) % count ))]}
      run_no=$((run_no + 1))
      base=$out/$scenario.$name.r$round
      port=$(free_port)
      if ! start_server "$name" "$port" "$base.server.log"; then
        failures+=("$(label "$name") $scenario: the server did not start (log: $base.server.log)")
        log "[$run_no/$total_runs] $scenario r$round $(label "$name"): FAILED to start"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$name" "$round" start 0 "" >> "$manifest"
        continue
      fi
      cmd=("$bench" "${args[@]}" --url "ws://127.0.0.1:$port/ws" --pid "$server_pid" --json --quiet)
      # connect-storm takes the same options, without the scenario word.
      if [ "$scenario" = connect ] && [ -n "${storm:-}" ]; then cmd=("$storm" "${args[@]:1}" --url "ws://127.0.0.1:$port/ws" --pid "$server_pid" --json --quiet); fi
      echo "$scenario r$round $name: ${cmd[*]}" >> "$out/commands.txt"
      rc=0
      "${cmd[@]}" > "$base.json" 2> "$base.stderr" &   # waited for with `wait`, which a signal interrupts
      bench_pid=$!
      wait "$bench_pid" || rc=$?
      bench_pid=""
      stop_server
      clean=1
      summary=$(python3 "$tmp/check.py" "$base.json" "$rc") || clean=0
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$name" "$round" "$rc" "$clean" "$base.json" >> "$manifest"
      if [ $clean = 1 ]; then
        log "[$run_no/$total_runs] $scenario r$round $(label "$name"): $summary"
      else
        problem=$(sed -n 2p <<< "$summary")
        log "[$run_no/$total_runs] $scenario r$round $(label "$name"): $(sed -n 1p <<< "$summary") — PROBLEM: $problem"
        failures+=("$(label "$name") $scenario (round $round): $problem (see $base.json, $base.stderr)")
      fi
    done
  done
  unset -n args
done
log "runs done in $((SECONDS - started)) s"

# --- Tables --------------------------------------------------------------------------------------

python3 - "$manifest" "$out" "$quick" "${server_list[@]}" <<'PY' | tee "$out/summary.txt"
import csv, json, statistics, sys
manifest, out, quick, servers = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
labels = {"uring": "presenced uring", "epoll": "presenced epoll", "uws": "uws", "gorilla": "go/gorilla", "node": "node/ws"}

# column: (header, scenario, extractor, higher is better)
columns = [
    ("deliv/s", "fanout", lambda d: d.get("deliveries_per_s"), True),
    ("deliv/CPU-s", "fanout", lambda d: d.get("deliveries_per_server_cpu_s"), True),
    ("rate p50 µs", "rate", lambda d: (d.get("latency") or {}).get("p50_us"), False),
    ("rate p99 µs", "rate", lambda d: (d.get("latency") or {}).get("p99_us"), False),
    ("rate CPU %", "rate", lambda d: d.get("server_cpu_pct"), False),
    ("idle KiB/conn", "idle", lambda d: d.get("rss_per_connection_kib"), False),
    ("idle CPU %", "idle", lambda d: d.get("server_cpu_pct"), False),
    ("connects/s", "connect", lambda d: d.get("connects_per_s"), True),
    # Server CPU per connection over the set-up window (/proc/PID/stat), and its user/system split.
    ("server µs/conn", "connect", lambda d: d.get("server_cpu_us_per_connection"), False),
    ("user µs", "connect", lambda d: d.get("server_user_us_per_connection"), False),
    ("sys µs", "connect", lambda d: d.get("server_system_us_per_connection"), False),
]

values = {}   # (server, column index) -> [values]
unclean = 0
noisy = []
with open(manifest) as f:
    for row in csv.DictReader(f, delimiter="\t"):
        if row["clean"] != "1":
            unclean += 1
            continue
        try:
            d = json.load(open(row["json"]))
        except Exception:
            continue
        if "error" in d:
            continue
        measured = d.get("duration_s") or d.get("hold_s")
        other = d.get("other_processes_cpu_s")
        if measured and other and other > 0.1 * measured:
            noisy.append(f"{row['scenario']} r{row['round']} {labels[row['server']]}: other processes used {other:.2f} CPU-s in {measured:g} s")
        for i, (_, scenario, get, _) in enumerate(columns):
            if scenario == row["scenario"] and get(d) is not None:
                values.setdefault((row["server"], i), []).append(float(get(d)))

present = [i for i in range(len(columns)) if any((s, i) in values for s in servers)]
med = {k: statistics.median(v) for k, v in values.items()}

def num(x):
    if x is None:
        return "—"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"

def ratio(a, b):
    if a is None or b is None:
        return "—"
    if b == 0:
        return "both 0" if a == 0 else "n/a"
    r = a / b
    if r >= 10:
        return f"{r:.0f}×"
    if r >= 1:
        return f"{r:.1f}×"
    if r >= 0.1:
        return f"{r:.2f}×"
    return f"1/{1 / r:.0f}" if r > 0 else "0×"   # far below 1: "1/670" reads better than "0.0015×"

def table(rows, first_header):
    heads = [first_header] + [columns[i][0] for i in present]
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(heads)]
    line = lambda cells: "  ".join(c.ljust(widths[0]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(cells))
    print(line(heads))
    for r in rows:
        print(line(r))

if not present:
    print("no results to tabulate")
    sys.exit(0)
runs = max(len(v) for v in values.values())
print()
print(f"Median per server ({runs} run(s) each); results in {out}")
print("fanout = closed loop; rate = fixed-rate fanout (latency, server CPU % of one core);"
      " idle = RSS per connection and CPU % while idle; connect = set-ups per second and server CPU µs per set-up (user, sys)")
if unclean:
    print(f"{unclean} run(s) not clean (bench exit ≠ 0, loss or errors) are left out of the medians: see the FAIL lines")
if quick:
    print("(--quick: smoke-test sizes; these figures are not comparable to a full run)")
print()
table([[labels[s]] + [num(med.get((s, i))) for i in present] for s in servers], "server")

peers = [p for p in ("uws", "gorilla", "node") if p in servers]
ours = [s for s in ("uring", "epoll") if s in servers]
if peers and ours:
    print()
    print("Ratios: presenced ÷ peer (higher is better for deliv/s, deliv/CPU-s, connects/s;"
          " lower is better for latency, CPU %, KiB/conn and µs/conn)")
    print()
    rows = []
    for s in ours:
        for p in peers:
            rows.append([f"{labels[s]} ÷ {labels[p]}"] + [ratio(med.get((s, i)), med.get((p, i))) for i in present])
    table(rows, "ratio")

if runs > 1:
    print()
    print("Run-to-run spread (max ÷ min over the rounds)")
    print()
    table([[labels[s]] + [ratio(max(values[(s, i)]), min(values[(s, i)])) if (s, i) in values else "—" for i in present]
           for s in servers], "server")

if noisy:
    print()
    print("Noisy runs (other processes used > 10 % of a core during the measured period; rerun):")
    for line in noisy:
        print("  " + line)

json.dump({labels[s]: {columns[i][0]: med.get((s, i)) for i in present} for s in servers},
          open(f"{out}/summary.json", "w"), indent=2, ensure_ascii=False)
PY

echo >&2
if [ ${#failures[@]} -gt 0 ]; then
  for f in "${failures[@]}"; do echo "compare: FAIL $f" >&2; done
  echo "compare: ${#failures[@]} of $total_runs run(s) not clean; results in $out" >&2
  exit 1
fi
log "all $total_runs run(s) clean; results in $out"
