// Which portal page leads to a mutual-TLS CAC host: lib/mtls-profiles.js.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mtlsProfileFor } from "../src/lib/mtls-profiles.js";

const PROFILES = [{ page: "https://portal.example.mil/account/cac", link: "#register-on-cac-host" }];

test("the profile's page, and pages under it, on the same origin", () => {
  assert.deepEqual(mtlsProfileFor("https://portal.example.mil/account/cac", PROFILES), PROFILES[0]);
  assert.deepEqual(mtlsProfileFor("https://portal.example.mil/account/cac/?x=1#y", PROFILES), PROFILES[0]);
  assert.deepEqual(mtlsProfileFor("https://portal.example.mil/account/cac/step2", PROFILES), PROFILES[0]);
});

test("another path, origin, scheme or port is not the profile's page", () => {
  for (const url of [
    "https://portal.example.mil/account/cacx",
    "https://portal.example.mil/account",
    "https://evil.example/account/cac",
    "http://portal.example.mil/account/cac",
    "https://portal.example.mil:8443/account/cac",
    "not a url",
  ]) {
    assert.equal(mtlsProfileFor(url, PROFILES), null, url);
  }
});

test("a malformed policy matches nothing and breaks nothing", () => {
  const url = "https://portal.example.mil/account/cac";
  for (const profiles of [null, "x", [null], [{ page: 1, link: "#a" }], [{ page: "::", link: "#a" }], [{ page: url, link: "" }], [{ page: url.replace("https", "http"), link: "#a" }]]) {
    assert.equal(mtlsProfileFor(url, profiles), null, JSON.stringify(profiles));
  }
});
