#!/usr/bin/env bash
# Builds clients/js with Debian's TypeScript compiler: src/index.ts → dist/index.js and
# dist/index.d.ts; then the console's embedded copy (Sources/PresenceRealtime/Console/assets/
# presence-client.js) and the minified size (esbuild --minify, what a bundler ships).
set -euo pipefail
cd "$(dirname "$0")/.."
tsc -p tsconfig.json
node scripts/embed.mjs
bytes=$(esbuild dist/index.js --minify --format=esm --log-level=error | wc -c)
gzipped=$(esbuild dist/index.js --minify --format=esm --log-level=error | gzip -9 | wc -c)
echo "clients/js: dist/index.js built; minified $bytes bytes ($(awk "BEGIN{printf \"%.1f\", $bytes/1024}") KiB), $gzipped gzipped"
