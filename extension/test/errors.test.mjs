import { test } from "node:test";
import assert from "node:assert/strict";
import { PAGE_ERRORS, messageFor } from "../src/lib/errors.js";
import { invalidPageRequest } from "../src/lib/page-request.js";
import { HOST_ERROR_CODES, PAGE_ERROR_CODES } from "../src/lib/wire.js";

test("page requests are checked before anything else happens", () => {
  const nonce = "A".repeat(44);
  const hash = Buffer.alloc(32, 7).toString("base64");
  const wrong = (request) => {
    const result = invalidPageRequest(request);
    return result && [result.code, result.argument, result.reason];
  };
  assert.equal(invalidPageRequest({ id: 1, action: "status" }), null);
  assert.equal(invalidPageRequest({ id: "x", action: "authenticate", challengeNonce: nonce }), null);
  assert.equal(invalidPageRequest({ id: "x", action: "sign", hash, hashFunction: "SHA-256" }), null);
  assert.deepEqual(wrong({ id: "x", action: "authenticate", challengeNonce: "short" }), ["invalid-request", "challengeNonce", "length"]);
  assert.deepEqual(wrong({ id: "x", action: "authenticate", challengeNonce: `${"A".repeat(43)}<` }), ["invalid-request", "challengeNonce", "alphabet"]);
  assert.deepEqual(wrong({ id: "x", action: "authenticate" }), ["invalid-request", "challengeNonce", "missing"]);
  assert.deepEqual(wrong({ id: "x", action: "format-card" }), ["invalid-request", "action", "unknown"]);
  assert.deepEqual(wrong({ action: "status" }), ["invalid-request", "id", "type"]);
  assert.deepEqual(wrong(null), ["invalid-request", "request", "type"]);
  assert.deepEqual(wrong({ id: 2, action: "sign", hash: "abc" }), ["invalid-request", "hashFunction", "unsupported"]);
  assert.deepEqual(wrong({ id: 2, action: "sign", hash: "abc", hashFunction: "MD5" }), ["invalid-request", "hashFunction", "unsupported"]);
  assert.deepEqual(wrong({ id: 2, action: "sign", hash: "a$c=", hashFunction: "SHA-256" }), ["invalid-request", "hash", "base64"]);
  assert.deepEqual(wrong({ id: 2, action: "sign", hash: "abc", hashFunction: "SHA-256" }), ["invalid-request", "hash", "base64"]);
  assert.deepEqual(wrong({ id: 2, action: "sign", hash, hashFunction: "SHA-384" }), ["invalid-request", "hash", "length"]);
  assert.deepEqual(wrong({ id: 2, action: "sign", hash: Buffer.alloc(48).toString("base64"), hashFunction: "SHA-384" }), null);
});

test("errors read as plain words", () => {
  assert.match(messageFor("native-unavailable"), /not installed/);
  assert.match(messageFor("pin-blocked"), /ID card office/);
  assert.equal(messageFor("unknown-thing", "as given"), "as given");
});

test("every code given a message is a code of the wire contract", () => {
  const known = new Set([...HOST_ERROR_CODES, ...PAGE_ERROR_CODES]);
  for (const code of Object.keys(PAGE_ERRORS)) assert.ok(known.has(code), `${code} is on neither list`);
  for (const code of PAGE_ERROR_CODES) assert.ok(code in PAGE_ERRORS, `${code} has no message for people`);
});

test("an app that stopped mid-request is not called missing", async () => {
  const { normalizeError } = await import("../src/lib/errors.js");
  const stopped = normalizeError({ code: "native-unavailable", message: "Native host has exited.", stopped: true });
  assert.equal(stopped.code, "native-unavailable", "the page's code is unchanged");
  assert.match(stopped.message, /stopped while it was working/);
  const missing = normalizeError({ code: "native-unavailable", message: "Specified native messaging host not found." });
  assert.match(missing.message, /not installed/);
});
