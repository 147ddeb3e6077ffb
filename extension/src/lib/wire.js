// Generated from the host's protocol module (host/src/contract.rs): do not edit.
// CACBRIDGE_WRITE_WIRE=1 cargo test -p cacbridge-host --test wire_contract rewrites it.

export const HOST_NAME = "org.cacbridge.host";
export const PROTOCOL = 1;

/** Every error code the host answers with (docs/protocol.md). */
export const HOST_ERROR_CODES = Object.freeze([
  "invalid-json",
  "invalid-request",
  "unknown-command",
  "invalid-argument",
  "message-too-large",
  "internal",
  "no-reader",
  "no-card",
  "card-removed",
  "card-in-use",
  "card-reset",
  "pin-interrupted",
  "pcsc-unavailable",
  "pcsc-error",
  "unsupported-card",
  "pin-incorrect",
  "pin-blocked",
  "pin-format",
  "card-error",
  "card-timeout",
  "certificate-not-found",
  "key-not-usable",
  "module-error",
  "window-unavailable",
  "window-cancelled",
  "window-timeout",
  "browser-setup-failed",
  "origin-not-allowed",
  "policy-error",
  "caller-not-allowed",
]);

/** The codes the extension itself answers a page with (docs/page-api.md). */
export const PAGE_ERROR_CODES = Object.freeze([
  "extension-unavailable",
  "extension-restarted",
  "native-unavailable",
  "native-too-old",
  "origin-not-allowed",
  "invalid-request",
  "user-activation-required",
  "action-pending",
  "action-throttled",
  "user-cancelled",
  "user-timeout",
  "host-timeout",
  "pin-blocked",
]);

/** `challengeNonce`: length and characters. */
export const NONCE = Object.freeze({ min: 44, max: 128, pattern: /^[A-Za-z0-9+/=_-]+$/ });

/** A PIN: digits only. */
export const PIN = Object.freeze({ min: 6, max: 8 });

/** `hashFunction` and the length of its hash in bytes. */
export const HASH_FUNCTIONS = Object.freeze({ "SHA-256": 32, "SHA-384": 48, "SHA-512": 64 });

/** The longest origin the host accepts. */
export const ORIGIN_MAX = 255;

/** The commands the host answers (docs/protocol.md). */
export const COMMANDS = Object.freeze({
  version: "version",
  quit: "quit",
  status: "status",
  listCertificates: "list-certificates",
  subscribe: "subscribe",
  authenticate: "authenticate",
  sign: "sign",
  tlsPin: "tls-pin",
  tlsCancel: "tls-cancel",
  browserSetup: "browser-setup",
  dodRoots: "dod-roots",
  trustDodRoots: "trust-dod-roots",
});

/** The events the host sends. */
export const EVENTS = Object.freeze({
  readerAdded: "reader-added",
  readerRemoved: "reader-removed",
  cardInserted: "card-inserted",
  cardRemoved: "card-removed",
  pinRequest: "pin-request",
});

/** How long the person has in CAC Bridge's window (the host's TLS requests wait as long). */
export const WINDOW_TIMEOUT_MS = 120000;
