// Error codes the page sees, and what a person reads. Host codes pass through unchanged.

export const PAGE_ERRORS = {
  "extension-unavailable": "The CAC Bridge extension did not answer.",
  "extension-restarted": "CAC Bridge restarted while it was working on your request. Nothing was sent to this site: try again.",
  "native-unavailable":
    "The CAC Bridge app is not installed on this computer. Install it from your portal's help page, then reload this page.",
  "native-too-old": "The CAC Bridge app on this computer is too old. Install the current version, then reload this page.",
  "action-pending": "A CAC request is already in progress in this tab.",
  "user-cancelled": "You cancelled.",
  "user-timeout": "The request timed out waiting for you.",
  "host-timeout": "The card did not answer in time. Check the card and the reader, then try again.",
  "card-timeout": "The card did not answer in time. Take it out, insert it again, and try once more.",
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

/** The app was running and went away in the middle of a request (it crashed, or was stopped). */
const STOPPED =
  "The CAC Bridge app stopped while it was working. Try again; if it keeps stopping, run `cacbridge-host doctor --report report.txt` and send the file to your help desk.";

/**
 * @param {string} code
 * @param {string} [fallback]
 */
export function messageFor(code, fallback) {
  return PAGE_ERRORS[/** @type {keyof typeof PAGE_ERRORS} */ (code)] ?? fallback ?? "Something went wrong with the card.";
}

/**
 * Any error as the page and the windows see it: a code and a message for people.
 * @param {any} error
 */
export function normalizeError(error) {
  if (error?.code === "native-unavailable" && error.stopped) {
    return { ...error, message: STOPPED };
  }
  if (error && typeof error.code === "string") {
    return { ...error, message: messageFor(error.code, error.message) };
  }
  return { code: "internal", message: String(error) };
}
