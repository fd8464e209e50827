#!/usr/bin/env bash
# The whole test suite under AddressSanitizer and/or ThreadSanitizer, each in its own scratch
# directory (.build-address, .build-thread); the daemons the tests start are the sanitized ones.
#
#   Benchmarks/sanitizers.sh [address] [thread]      (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(address thread)
for kind in "${kinds[@]}"; do
  case "$kind" in address|thread) ;; *) echo "sanitizers.sh: unknown sanitizer $kind (address, thread)" >&2; exit 2 ;; esac
  echo "sanitizers.sh: $kind" >&2
  flags=()
  tsan=halt_on_error=1:second_deadlock_stack=1
  if [ "$kind" = thread ]; then
    # Synchronization.Mutex locks with futexes TSan cannot see: TSan builds use pthread mutexes
    # instead (Sources/PresenceLoop/Lock.swift).
    flags=(-Xswiftc -DPRESENCED_TSAN)
    # The daemons the tests start write stderr to /dev/null: every process reports to a file.
    logs="$PWD/.build-thread/tsan-reports"
    rm -rf "$logs" && mkdir -p "$logs"
    tsan="$tsan:log_path=$logs/report"
  fi
  swift build --build-tests --sanitize="$kind" --scratch-path ".build-$kind" ${flags[@]+"${flags[@]}"}
  # halt_on_error: a report fails the run; detect_leaks off (Swift's runtime keeps caches on purpose).
  status=0
  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 TSAN_OPTIONS="$tsan" \
    swift test --skip-build --sanitize="$kind" --scratch-path ".build-$kind" ${flags[@]+"${flags[@]}"} \
      --disable-swift-testing || status=$?
  if [ "$kind" = thread ] && [ -n "$(ls -A "$logs")" ]; then
    cat "$logs"/* >&2
    echo "sanitizers.sh: thread: ThreadSanitizer reports above (files in $logs)" >&2
    status=1
  fi
  [ "$status" -eq 0 ] || exit "$status"
done
