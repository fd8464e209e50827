#!/usr/bin/env bash
# Builds connect-storm (Benchmarks/ConnectStorm/connect-storm.c) into .build-bench/connect-storm in
# the repository (ignored by git) and prints its path. Needs a C compiler and libssl-dev (HMAC-SHA256):
#   apt-get install -y gcc libssl-dev
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/.build-bench/connect-storm
mkdir -p "$(dirname "$out")"
"${CC:-cc}" -std=c11 -O2 -Wall -Wextra -o "$out" "$here/connect-storm.c" -lcrypto
echo "$out"
