import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const dist = join(root, "dist");

test("the store builds trust no portal of their own; the development builds trust the test portal", () => {
  const built = spawnSync(process.execPath, [join(root, "scripts/build.mjs")], { encoding: "utf8" });
  assert.equal(built.status, 0, built.stderr);
  for (const browser of ["chromium", "firefox"]) {
    const store = JSON.parse(readFileSync(join(dist, browser, "manifest.json"), "utf8"));
    assert.deepEqual(store.host_permissions, [], `${browser}: no host permission in the store build`);
    const config = readFileSync(join(dist, browser, "lib/build-config.js"), "utf8");
    assert.match(config, /BUILT_IN_ORIGINS = \[\];/);
    assert.ok(!config.includes("localhost"), `${browser}: the store build names localhost`);

    const dev = JSON.parse(readFileSync(join(dist, `dev-${browser}`, "manifest.json"), "utf8"));
    // The reference portal and its mutual-TLS CAC host (Firefox's patterns carry no port).
    assert.deepEqual(dev.host_permissions, browser === "firefox" ? ["https://localhost/*"] : ["https://localhost:8443/*", "https://localhost:8444/*"]);
    const devConfig = readFileSync(join(dist, `dev-${browser}`, "lib/build-config.js"), "utf8");
    assert.match(devConfig, /BUILT_IN_ORIGINS = \["https:\/\/localhost:8443","https:\/\/localhost:8444"\]/);
    assert.match(devConfig, /BUILT_IN_MTLS_PROFILES = \[\{"page":"https:\/\/localhost:8443\/account\/cac","link":"#mtls-register-link"\}\]/);
    assert.match(config, /BUILT_IN_MTLS_PROFILES = \[\];/);
  }
});
