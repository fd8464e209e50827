#!/usr/bin/env bash
# RFC 6455 conformance: runs Autobahn|Testsuite (cases 1–10) against `presenced --echo` on each
# backend and fails if any case fails. Usage: Benchmarks/autobahn.sh [uring|epoll ...]
# Needs ../shared/tools/autobahn-check (it builds its own Python 2.7 environment on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
check=${AUTOBAHN_CHECK:-../shared/tools/autobahn-check}
[ -x "$check" ] || { echo "autobahn.sh: $check not found"; exit 2; }
backends=("$@"); [ ${#backends[@]} -gt 0 ] || backends=(uring epoll)

swift build -c release --product presenced >/dev/null
bin=$(swift build -c release --show-bin-path)/presenced
status=0
for io in "${backends[@]}"; do
  port=$((20000 + RANDOM % 20000))
  "$bin" --echo --io="$io" --port "$port" > "/tmp/presenced-autobahn-$io.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  out=$(mktemp -d /tmp/autobahn-$io.XXXXXX)
  echo "== autobahn against presenced --echo --io=$io (report: $out)"
  if ! "$check" "ws://127.0.0.1:$port/" "$out"; then status=1; fi
  kill "$pid"; wait "$pid" || true
  # Non-strict and informational cases, with the server's reason, for the closing note.
  python3 - "$out/reports/servers/index.json" <<'PY' || true
import json, sys
data = json.load(open(sys.argv[1]))
for agent, cases in data.items():
    for case, r in sorted(cases.items(), key=lambda kv: [int(x) for x in kv[0].split('.')]):
        if r.get("behavior") not in ("OK",) or r.get("behaviorClose") not in ("OK",):
            print(f"   {case}: behavior={r.get('behavior')} close={r.get('behaviorClose')}")
PY
done
exit $status
