import { test } from "node:test";
import assert from "node:assert/strict";
import { invalidPageRequest, messageFor } from "../src/lib/errors.js";

test("page requests are checked before anything else happens", () => {
  const nonce = "A".repeat(44);
  assert.equal(invalidPageRequest({ id: 1, action: "status" }), null);
  assert.equal(invalidPageRequest({ id: "x", action: "authenticate", challengeNonce: nonce }), null);
  assert.equal(invalidPageRequest({ id: "x", action: "authenticate", challengeNonce: "short" }), "invalid-request");
  assert.equal(invalidPageRequest({ id: "x", action: "format-card" }), "invalid-request");
  assert.equal(invalidPageRequest({ action: "status" }), "invalid-request");
  assert.equal(invalidPageRequest(null), "invalid-request");
  assert.equal(invalidPageRequest({ id: 2, action: "sign", hash: "abc" }), "invalid-request");
});

test("errors read as plain words", () => {
  assert.match(messageFor("native-unavailable"), /not installed/);
  assert.match(messageFor("pin-blocked"), /ID card office/);
  assert.equal(messageFor("unknown-thing", "as given"), "as given");
});
