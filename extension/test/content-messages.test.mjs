// The content script's messages come from lib/errors.js, put in by the build (a content script
// cannot import): the built scripts carry exactly PAGE_ERRORS, the source only the marker.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { PAGE_ERRORS } from "../src/lib/errors.js";

const root = new URL("..", import.meta.url).pathname;

test("the built content scripts carry lib/errors.js's messages, the source none of its own", () => {
  const source = readFileSync(`${root}src/content.js`, "utf8");
  assert.match(source, /\/\* PAGE_ERRORS from lib\/errors\.js \*\/ \{\}/);
  for (const message of Object.values(PAGE_ERRORS)) assert.ok(!source.includes(message), message);
  for (const build of ["chromium", "firefox", "dev-chromium", "dev-firefox"]) {
    const built = readFileSync(`${root}dist/${build}/content.js`, "utf8");
    const inlined = built.match(/const MESSAGES = (\{.*\});/)?.[1];
    assert.ok(inlined, build);
    assert.deepEqual(JSON.parse(inlined), PAGE_ERRORS, build);
  }
});
