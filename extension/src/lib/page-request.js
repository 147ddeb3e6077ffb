// What a page may ask, checked with the host's own rules (lib/wire.js, generated from the
// host) before anything else happens, so a bad request never opens a window or costs a PIN.
// Pure functions, unit-tested with Node.

import { HASH_FUNCTIONS, NONCE } from "./wire.js";

/** Page requests: what each action needs. */
export const ACTIONS = ["status", "list-certificates", "authenticate", "sign"];

/**
 * Bytes in a strict base64 string (standard alphabet, padded), or null when it is not one.
 * @param {string} text
 */
function base64Length(text) {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  return (text.length / 4) * 3 - padding;
}

/**
 * @typedef {{code: "invalid-request", argument: string, reason: string, message: string}} InvalidRequest
 */

/**
 * Check a request from a page. Returns null, or what is wrong with which argument.
 * @param {any} request
 * @returns {InvalidRequest | null}
 */
export function invalidPageRequest(request) {
  /** @param {string} argument @param {string} reason @param {string} message */
  const bad = (argument, reason, message) => ({ code: /** @type {const} */ ("invalid-request"), argument, reason, message });
  if (!request || typeof request !== "object") return bad("request", "type", "a request is an object");
  if (typeof request.id !== "string" && typeof request.id !== "number") return bad("id", "type", "id must be a string or a number");
  if (!ACTIONS.includes(request.action)) return bad("action", "unknown", `action is one of ${ACTIONS.join(", ")}`);
  if (request.action === "authenticate") {
    const nonce = request.challengeNonce;
    if (typeof nonce !== "string") return bad("challengeNonce", "missing", "challengeNonce is required");
    if (nonce.length < NONCE.min || nonce.length > NONCE.max) {
      return bad("challengeNonce", "length", `challengeNonce is ${NONCE.min} to ${NONCE.max} characters`);
    }
    if (!NONCE.pattern.test(nonce)) return bad("challengeNonce", "alphabet", "challengeNonce must be base64");
  }
  if (request.action === "sign") {
    const length = HASH_FUNCTIONS[/** @type {keyof typeof HASH_FUNCTIONS} */ (request.hashFunction)];
    if (!length) return bad("hashFunction", "unsupported", "hashFunction is SHA-256, SHA-384 or SHA-512");
    if (typeof request.hash !== "string") return bad("hash", "missing", "hash is required");
    const bytes = base64Length(request.hash);
    if (bytes === null) return bad("hash", "base64", "hash must be base64");
    if (bytes !== length) return bad("hash", "length", `a ${request.hashFunction} hash is ${length} bytes`);
  }
  return null;
}
