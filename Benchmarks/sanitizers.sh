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
  # TSan builds swap Synchronization.Mutex (raw futexes TSan cannot see) for pthread mutexes and
  # announce cross-thread hand-offs TSan cannot see itself (Sources/PresenceD/Loop/Lock.swift, TSan.swift).
  flags=()
  [ "$kind" = thread ] && flags=(-Xswiftc -DPRESENCED_TSAN)
  swift build --build-tests --sanitize="$kind" --scratch-path ".build-$kind" ${flags[@]+"${flags[@]}"}
  # halt_on_error: a report fails the run; detect_leaks off (Swift's runtime keeps caches on purpose).
  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    swift test --skip-build --sanitize="$kind" --scratch-path ".build-$kind" ${flags[@]+"${flags[@]}"} \
      --disable-swift-testing
done
