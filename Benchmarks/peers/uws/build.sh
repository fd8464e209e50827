#!/usr/bin/env bash
# Builds peer-uws (Benchmarks/peers/uws/server.cpp) against a uWebSockets and a uSockets checkout
# that you give: no package ships uWebSockets, and this repository keeps none of its code.
#
#   Benchmarks/peers/uws/build.sh UWS_DIR USOCKETS_DIR [OUT]
#
# UWS_DIR is a uWebSockets checkout (its src/App.h), USOCKETS_DIR a uSockets checkout (its
# src/libusockets.h). OUT defaults to .build-peers/peer-uws in the repository (ignored by git),
# where compare.sh looks for it. uSockets is built with its default Linux backend (epoll), no
# TLS (LIBUS_NO_SSL), no io_uring; uWS without zlib (UWS_NO_ZLIB: the peer never compresses).
# Needs g++ (C++20) and libssl-dev (HMAC for the HS256 tokens):
#   apt-get install -y g++ libssl-dev
# Measured with uWebSockets 66dcff3 (v20.79.0-17) and uSockets 86097c4.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 UWS_DIR USOCKETS_DIR [OUT]" >&2; exit 2; }
uws=$(cd "$1" && pwd)
usockets=$(cd "$2" && pwd)
out=${3:-$repo/.build-peers/peer-uws}
[ -f "$uws/src/App.h" ] || { echo "build: $uws/src/App.h not found (is $1 a uWebSockets checkout?)" >&2; exit 1; }
[ -f "$usockets/src/libusockets.h" ] || { echo "build: $usockets/src/libusockets.h not found (is $2 a uSockets checkout?)" >&2; exit 1; }
CC=${CC:-gcc} CXX=${CXX:-g++}
mkdir -p "$(dirname "$out")"
obj=$(mktemp -d /tmp/peer-uws-build.XXXXXX)
trap 'rm -rf "$obj"' EXIT
flags=(-O3 -DNDEBUG -DLIBUS_NO_SSL)
for c in "$usockets"/src/*.c "$usockets"/src/eventing/epoll_kqueue.c; do
  "$CC" "${flags[@]}" -std=c11 -I"$usockets/src" -c "$c" -o "$obj/$(basename "$c" .c).o"
done
"$CXX" "${flags[@]}" -std=c++20 -DUWS_NO_ZLIB -I"$uws/src" -I"$usockets/src" \
  -c "$here/server.cpp" -o "$obj/server.o"
"$CXX" -O3 -o "$out" "$obj"/*.o -lcrypto
printf 'built %s (uWebSockets %s, uSockets %s)\n' "$out" \
  "$(git -C "$uws" rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "$(git -C "$usockets" rev-parse --short HEAD 2>/dev/null || echo '?')"
