#!/usr/bin/env node
// Writes the console's embedded copy of the built library: dist/index.js byte for byte, as
// Sources/PresenceRealtime/Console/assets/presence-client.js, which SwiftPM embeds in presenced at build
// time (Package.swift, `.embedInCode`) and presenced serves at /presence-client.js.
// Usage: node scripts/embed.mjs [built.js] [output.js]   (defaults: dist/index.js, the console's file)
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Where the embedded copy lives in the repository. */
export const assetPath = fileURLToPath(new URL("../../../Sources/PresenceRealtime/Console/assets/presence-client.js", import.meta.url));
/** The built module it is made from. */
export const builtPath = fileURLToPath(new URL("../dist/index.js", import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [input = builtPath, output = assetPath] = process.argv.slice(2);
  writeFileSync(output, readFileSync(input));
}
