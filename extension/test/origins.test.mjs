import { test } from "node:test";
import assert from "node:assert/strict";
import { effectiveAllowList, matchPatterns, normalizeOrigin, originAllowed } from "../src/lib/origins.js";

test("origins are normalized or refused", () => {
  assert.equal(normalizeOrigin("https://Portal.Example.mil"), "https://portal.example.mil");
  assert.equal(normalizeOrigin(" https://portal.example.mil:443/ "), "https://portal.example.mil");
  assert.equal(normalizeOrigin("https://portal.example.mil:8443"), "https://portal.example.mil:8443");
  assert.equal(normalizeOrigin("http://localhost:8080"), "http://localhost:8080");
  for (const bad of ["http://portal.example.mil", "https://portal.example.mil/login", "https://a@b.mil", "ftp://x", "not a url", "https://x.mil?q=1", "https://x.mil/#top"]) {
    assert.equal(normalizeOrigin(bad), null, bad);
  }
});

test("a managed list cannot be widened by the user", () => {
  const managed = ["https://a.mil", "https://b.mil"];
  assert.deepEqual(effectiveAllowList({ managed, user: null }), { origins: managed, managed: true });
  assert.deepEqual(effectiveAllowList({ managed, user: ["https://b.mil", "https://evil.example"] }), {
    origins: ["https://b.mil"],
    managed: true,
  });
  assert.deepEqual(effectiveAllowList({ managed: null, user: ["https://c.mil"] }), { origins: ["https://c.mil"], managed: false });
  // The store build trusts no portal of its own; a development build brings its test portal.
  assert.deepEqual(effectiveAllowList({}), { origins: [], managed: false });
  assert.deepEqual(effectiveAllowList({ builtIn: ["https://localhost:8443"] }), { origins: ["https://localhost:8443"], managed: false });
  assert.deepEqual(effectiveAllowList({ user: ["https://c.mil"], builtIn: ["https://localhost:8443"] }), { origins: ["https://c.mil"], managed: false });
});

test("only listed origins are allowed, exactly", () => {
  const list = ["https://portal.example.mil"];
  assert.ok(originAllowed("https://portal.example.mil", list));
  assert.ok(!originAllowed("https://portal.example.mil:8443", list));
  assert.ok(!originAllowed("https://evil.portal.example.mil", list));
  assert.ok(!originAllowed("null", list));
  assert.deepEqual(matchPatterns(list), ["https://portal.example.mil/*"]);
  assert.deepEqual(matchPatterns(["https://localhost:8443", "https://localhost:9443"], { ports: false }), ["https://localhost/*"]);
  assert.deepEqual(matchPatterns(["https://localhost:8443"]), ["https://localhost:8443/*"]);
});
