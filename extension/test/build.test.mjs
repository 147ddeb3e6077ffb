import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
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

test("the version comes from the workspace's Cargo.toml, and package.json agrees", () => {
  const cargo = readFileSync(join(root, "..", "Cargo.toml"), "utf8").match(/^version = "([^"]+)"/m)[1];
  for (const browser of ["chromium", "firefox", "dev-chromium", "dev-firefox"]) {
    assert.equal(JSON.parse(readFileSync(join(dist, browser, "manifest.json"), "utf8")).version, cargo, browser);
  }
  assert.equal(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version, cargo);
});

test("the zips are reproducible: two builds, the same bytes", () => {
  const hash = (browser) => createHash("sha256").update(readFileSync(join(dist, `cacbridge-${browser}.zip`))).digest("hex");
  spawnSync(process.execPath, [join(root, "scripts/build.mjs")]);
  const first = ["chromium", "firefox"].map(hash);
  spawnSync(process.execPath, [join(root, "scripts/build.mjs")]);
  assert.deepEqual(["chromium", "firefox"].map(hash), first);
});

/** Width and height of a PNG, from its IHDR chunk. @param {Buffer} png */
const pngSize = (png) => [png.readUInt32BE(16), png.readUInt32BE(20)];

test("store checks: icons at every size, drawn from the SVG; name, summary and permissions as the stores want", async () => {
  const { ICON_SIZES, renderIcon } = await import("../scripts/icons.mjs");
  for (const browser of ["chromium", "firefox"]) {
    const manifest = JSON.parse(readFileSync(join(dist, browser, "manifest.json"), "utf8"));
    // Chrome Web Store: 16, 48 and 128 at least; addons.mozilla.org: 48 and 96.
    for (const size of [16, 32, 48, 96, 128]) {
      const file = manifest.icons[String(size)];
      assert.ok(file, `${browser}: no ${size} px icon`);
      const png = readFileSync(join(dist, browser, file));
      assert.deepEqual(pngSize(png), [size, size], `${browser}: ${file}`);
    }
    assert.ok(manifest.name.length <= 45, "the name fits the store's limit");
    assert.ok(manifest.description.length <= 132, "the summary fits 132 characters");
    assert.match(manifest.version, /^\d+(\.\d+){0,3}$/);
    assert.equal(manifest.content_security_policy, undefined, "the default policy: no remote code");
    // Every permission is explained in the listing text.
    const listing = readFileSync(join(root, "store/LISTING.md"), "utf8");
    for (const permission of manifest.permissions) assert.ok(listing.includes(permission), `${permission} unexplained`);
  }
  // The committed icons are the SVG's rendering.
  for (const size of ICON_SIZES) {
    assert.ok(readFileSync(join(root, "src/icons", `icon-${size}.png`)).equals(renderIcon(size)), `icon-${size}.png drifted from store/icon.svg`);
  }
});
