// The committed build and the console's embedded copy are what the source builds to, and the
// minified module stays under 12 KiB.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { assetPath, builtPath } from "../scripts/embed.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));

test("dist/ is a fresh build of src/ (tsc), and the console's embedded copy is dist/index.js", () => {
  const out = mkdtempSync(join(tmpdir(), "presence-client-build-"));
  try {
    execFileSync("tsc", ["-p", join(root, "tsconfig.json"), "--outDir", out], { stdio: "pipe" });
    for (const file of ["index.js", "index.d.ts"]) {
      assert.equal(readFileSync(join(root, "dist", file), "utf8"), readFileSync(join(out, file), "utf8"),
        `dist/${file} differs from a fresh build: run clients/js/scripts/build.sh and commit`);
    }
    assert.ok(readFileSync(assetPath).equals(readFileSync(join(out, "index.js"))),
      "Sources/PresenceRealtime/Console/assets/presence-client.js differs from a fresh build: run clients/js/scripts/build.sh and commit");
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("the built module minified (esbuild --minify) is under 12 KiB", (t) => {
  const minified = execFileSync("esbuild", [builtPath, "--minify", "--format=esm", "--log-level=error"]);
  t.diagnostic(`clients/js minified: ${minified.length} bytes (${(minified.length / 1024).toFixed(1)} KiB)`);
  assert.ok(minified.length < 12 * 1024, `${minified.length} bytes`);
});

test("the library has no imports (no runtime dependencies)", () => {
  const built = readFileSync(builtPath, "utf8");
  assert.doesNotMatch(built, /^\s*import\s/m);
  assert.doesNotMatch(built, /\brequire\(/);
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  assert.deepEqual(pkg.dependencies ?? {}, {});
});
