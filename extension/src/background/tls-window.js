// The PIN for a TLS login: a portal asked the browser for a client certificate, CAC Bridge's
// PKCS#11 module in this browser asked the host for the signature, and the host asks for this
// extension's window (docs/protocol.md, `pin-request`). The PIN goes from the window to the
// host (`tls-pin`), which verifies it on the card and signs.

import { COMMANDS } from "../lib/wire.js";

let nextTlsFlow = -1;

/**
 * The site being loaded when the module asked, if the browser lets us know and there is only
 * one; otherwise null (the window then says it cannot tell).
 * @param {any} api
 * @returns {Promise<string | null>}
 */
async function loadingSite(api) {
  /** @type {any[]} */
  const tabs = await api.tabs.query({ status: "loading" }).catch(() => []);
  const origins = new Set();
  for (const tab of tabs) {
    // The URL being loaded; a loading tab's `url` is still the page it leaves, which would name
    // the wrong site. Without permission for that site the browser does not say: unknown.
    if (!tab.pendingUrl) continue;
    try {
      const url = new URL(tab.pendingUrl);
      if (url.protocol === "https:") origins.add(url.origin);
    } catch {
      // not a web page
    }
  }
  return origins.size === 1 ? [...origins][0] : null;
}

/**
 * Open the window for a `pin-request`; a window closed or cancelled tells the host so.
 * @param {any} api
 * @param {{request: (command: string, args: object, timeout: number) => Promise<any>}} host
 * @param {import("./flows.js").Flows} flows
 * @param {{requestId: string, certificateId: string, reader: string}} request
 */
export async function openTlsWindow(api, host, flows, request) {
  const origin = await loadingSite(api);
  // Each request has a flow of its own: a TLS login belongs to no tab.
  const tabId = nextTlsFlow--;
  flows.run({ tabId, origin: origin ?? "", action: "tls", request }).catch(() =>
    host.request(COMMANDS.tlsCancel, { requestId: request.requestId }, 10_000).catch(() => {}),
  );
}
