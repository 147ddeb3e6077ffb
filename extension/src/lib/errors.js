// Error codes the page sees, and what a person reads. Host codes pass through unchanged.

export const PAGE_ERRORS = {
  "extension-unavailable": "The CAC Bridge extension did not answer.",
  "native-unavailable":
    "The CAC Bridge app is not installed on this computer. Install it from your portal's help page, then reload this page.",
  "native-too-old": "The CAC Bridge app on this computer is too old. Install the current version, then reload this page.",
  "action-pending": "A CAC request is already in progress in this tab.",
  "user-cancelled": "You cancelled.",
  "user-timeout": "The request timed out waiting for you.",
  "host-timeout": "The card did not answer in time. Check the card and the reader, then try again.",
  "origin-not-allowed": "This site is not on CAC Bridge's list of portals.",
  "invalid-request": "The page sent a request CAC Bridge does not understand.",
  "no-reader": "No smart card reader was found. Connect your reader.",
  "no-card": "No card is inserted. Insert your CAC.",
  "card-removed": "The card was removed.",
  "pin-blocked": "Your PIN is blocked. A DoD ID card office (RAPIDS) must unblock it.",
  "pcsc-unavailable": "The smart card service is not running on this computer.",
  "user-activation-required": "CAC Bridge acts only when you click or press a key on the page. Try again from the page's button.",
  "action-throttled": "You just cancelled a CAC request on this page. Wait a few seconds before trying again.",
  "pin-interrupted": "The card was interrupted while it checked your PIN. Your PIN was not sent again: enter it once more.",
};

/**
 * @param {string} code
 * @param {string} [fallback]
 */
export function messageFor(code, fallback) {
  return PAGE_ERRORS[/** @type {keyof typeof PAGE_ERRORS} */ (code)] ?? fallback ?? "Something went wrong with the card.";
}

/** Page requests: what each action needs. */
export const ACTIONS = ["status", "list-certificates", "authenticate", "sign"];
/** The host's rules (docs/protocol.md), checked here so a bad request never opens a window. */
const NONCE_MIN = 44;
const NONCE_MAX = 128;
const NONCE_ALPHABET = /^[A-Za-z0-9+/=_-]+$/;
const HASH_LENGTHS = { "SHA-256": 32, "SHA-384": 48, "SHA-512": 64 };

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
    if (nonce.length < NONCE_MIN || nonce.length > NONCE_MAX) {
      return bad("challengeNonce", "length", `challengeNonce is ${NONCE_MIN} to ${NONCE_MAX} characters`);
    }
    if (!NONCE_ALPHABET.test(nonce)) return bad("challengeNonce", "alphabet", "challengeNonce must be base64");
  }
  if (request.action === "sign") {
    const length = HASH_LENGTHS[/** @type {keyof typeof HASH_LENGTHS} */ (request.hashFunction)];
    if (!length) return bad("hashFunction", "unsupported", "hashFunction is SHA-256, SHA-384 or SHA-512");
    if (typeof request.hash !== "string") return bad("hash", "missing", "hash is required");
    const bytes = base64Length(request.hash);
    if (bytes === null) return bad("hash", "base64", "hash must be base64");
    if (bytes !== length) return bad("hash", "length", `a ${request.hashFunction} hash is ${length} bytes`);
  }
  return null;
}
