#!/usr/bin/env bash
# libFuzzer targets for presenced's parsers (issue 8).
#   Benchmarks/fuzz.sh [seconds] [target...]   run each target for `seconds` (default 60)
#   Benchmarks/fuzz.sh --quick [target...]     a few seconds each (the CI / test command run)
#   Benchmarks/fuzz.sh --runs N [target...]    until each target has run N inputs (issue 8 asks 10,000,000)
#   Benchmarks/fuzz.sh --build-only [target...]
# Targets: http_request frame_decoder client_message jwt resp http_response (default: all).
# Builds each with `swiftc -O -sanitize=fuzzer,address` from the module sources it needs plus
# Fuzz/<target>/main.swift, runs it on a copy of Fuzz/corpus/<target> (the seeds stay untouched),
# prints executions and findings per target, and exits non-zero when any target found something.
# Crash inputs land in .build/fuzz/findings/<target>/. Run it under `nice -n 19` on shared machines.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=60
RUNS=-1
BUILD_ONLY=0
case "${1:-}" in
    --quick) SECONDS_EACH=${FUZZ_QUICK_SECONDS:-3}; shift ;;
    --runs) RUNS=$2; SECONDS_EACH=0; shift 2 ;;
    --build-only) BUILD_ONLY=1; shift ;;
    ''|-*) ;;
    *) [[ $1 =~ ^[0-9]+$ ]] && { SECONDS_EACH=$1; shift; } ;;
esac
ALL=(http_request frame_decoder client_message jwt resp http_response)
TARGETS=("$@"); [ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

OUT=$ROOT/.build/fuzz
mkdir -p "$OUT/modules" "$OUT/bin"
SAN=${FUZZ_SANITIZE:--sanitize=fuzzer,address}
SWIFTC=(swiftc -O -g -parse-as-library -swift-version 6 -package-name presenced $SAN)
CSYS=(-I "$ROOT/Sources/CSystem" -Xcc -D_FILE_OFFSET_BITS=64)
LIBS=(-luring -lhiredis -lssl -lcrypto)

# Instrumented library modules, rebuilt when a source is newer than the module.
module() { # name, sources...
    local name=$1; shift
    local lib=$OUT/modules/lib$name.a
    if [ ! -f "$lib" ] || [ -n "$(find "$@" -newer "$lib" 2>/dev/null | head -1)" ]; then
        echo "fuzz: building module $name"
        "${SWIFTC[@]}" "${CSYS[@]}" -I "$OUT/modules" -module-name "$name" -emit-module \
            -emit-module-path "$OUT/modules/$name.swiftmodule" -emit-library -static -o "$lib" "$@"
    fi
}

# The daemon's files a target needs beyond the library modules it links (WSCore, RedisShim,
# PresenceJSON): the parsers that live inside the PresenceRealtime and PresenceOutbound targets.
REALTIME_JSON="Sources/PresenceRealtime/JSON/JSONReader.swift Sources/PresenceRealtime/JSON/JSONValue.swift Sources/PresenceRealtime/JSON/JSONByteCursor.swift"
sources_for() {
    case $1 in
        http_request|frame_decoder|resp) echo "" ;;
        client_message) echo "$REALTIME_JSON Sources/PresenceRealtime/Realtime/ClientMessage.swift Sources/PresenceRealtime/Realtime/ProtocolError.swift Sources/PresenceRealtime/History/StreamPosition.swift" ;;
        jwt) echo "$REALTIME_JSON Sources/PresenceRealtime/Auth/JWT.swift Sources/PresenceRealtime/Auth/Base64URL.swift Sources/PresenceRealtime/Auth/TokenVerifier.swift Sources/PresenceRealtime/Auth/TokenRole.swift Sources/PresenceRealtime/Auth/TokenMinter.swift Sources/PresenceRealtime/Auth/HMACSHA256Key.swift" ;;
        http_response) echo "Sources/PresenceOutbound/HTTPBodyDecoder.swift Sources/PresenceOutbound/OutboundError.swift" ;;
        *) echo "fuzz: unknown target $1" >&2; exit 2 ;;
    esac
}

build() {
    local t=$1 bin=$OUT/bin/$1
    module WSCore Sources/WSCore/*.swift
    module RedisShim Sources/RedisShim/*.swift
    module PresenceJSON Sources/PresenceJSON/*.swift
    local srcs; srcs=$(sources_for "$t")
    # shellcheck disable=SC2086
    if [ ! -x "$bin" ] || [ -n "$(find Fuzz/$t/main.swift $srcs Sources/WSCore Sources/RedisShim Sources/PresenceJSON -newer "$bin" 2>/dev/null | head -1)" ]; then
        echo "fuzz: building $t"
        "${SWIFTC[@]}" "${CSYS[@]}" -I "$OUT/modules" -L "$OUT/modules" -module-name "Fuzz_$t" \
            Fuzz/$t/main.swift $srcs -lWSCore -lRedisShim -lPresenceJSON "${LIBS[@]}" -o "$bin"
    fi
}

for t in "${TARGETS[@]}"; do build "$t" 2> >(grep -v "Cannot export local symbol" >&2); done
[ $BUILD_ONLY = 1 ] && exit 0

status=0
printf '%-16s %12s %10s %s\n' target executions findings detail
for t in "${TARGETS[@]}"; do
    work=$OUT/run/$t; found=$OUT/findings/$t
    rm -rf "$work"; mkdir -p "$work/corpus" "$found"
    cp Fuzz/corpus/$t/* "$work/corpus/" 2>/dev/null || true
    dict=(); [ -f Fuzz/dict/$t.dict ] && dict=(-dict="$ROOT/Fuzz/dict/$t.dict")
    set +e
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 "$OUT/bin/$t" "$work/corpus" "${dict[@]}" \
        -max_total_time="$SECONDS_EACH" -runs="$RUNS" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 -max_len=8192 \
        -artifact_prefix="$found/" >"$work/log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$' | tail -1)
    artifacts=$(find "$found" -type f -newer "$work/corpus" | wc -l)
    detail=""
    if [ $rc -ne 0 ] || [ "$artifacts" -gt 0 ]; then
        status=1
        detail="rc=$rc $(grep -m1 -E 'ERROR|Fatal error|Assertion|Invariant|deadly signal|leak' "$work/log" || true) → $found (log $work/log)"
    fi
    printf '%-16s %12s %10s %s\n' "$t" "${execs:-?}" "$artifacts" "$detail"
done
exit $status
