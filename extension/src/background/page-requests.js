// Requests from web pages, through the content script: whose they are (the browser's record
// of the sender, never the page's word), whether that site may ask, and what it gets.

import { originAllowed } from "../lib/origins.js";
import { pageView } from "../lib/page-view.js";
import { hostError } from "../lib/port.js";
import { messageFor } from "../lib/errors.js";
import { invalidPageRequest } from "../lib/page-request.js";
import { CARD_TIMEOUT } from "./dialog-flow.js";
import { mtlsProfileFor } from "../lib/mtls-profiles.js";
import { mtlsReadiness } from "./readiness.js";
import { COMMANDS } from "../lib/wire.js";

/**
 * The origin of the page that sent a message, from the browser's own record. An opaque origin
 * (a sandboxed document: `sender.origin`, or the document's own `origin` as the content
 * script reads it, is "null") stays "null": it is never mapped back to the URL's origin,
 * which would lend a sandboxed document the portal's identity.
 * @param {{origin?: string, url?: string}} sender
 * @param {any} message
 */
export function senderOrigin(sender, message) {
  if (sender.origin === "null" || message?.documentOrigin === "null") return "null";
  if (sender.origin) return sender.origin;
  try {
    const origin = new URL(sender.url ?? "").origin;
    // The content script reports its document's origin; a mismatch is refused, not guessed.
    return message?.documentOrigin === undefined || message.documentOrigin === origin ? origin : "null";
  } catch {
    return "null";
  }
}

/**
 * @param {{host: any, flows: import("./flows.js").Flows, allowList: () => Promise<{origins: string[]}>, loadModule?: () => Promise<any>, mtlsProfiles?: () => Promise<unknown>}} deps
 * @param {any} message
 * @param {{tab?: {id?: number}, origin?: string, url?: string}} sender
 */
export async function pageRequest({ host, flows, allowList, loadModule, mtlsProfiles }, message, sender) {
  const tabId = sender.tab?.id;
  if (tabId === undefined) throw hostError("invalid-request", "not a page request");
  const origin = senderOrigin(sender, message);
  const { origins } = await allowList();
  const allowed = originAllowed(origin, origins);
  if (message?.type === "page-allowed") {
    // A portal page opened: start the host and ask for card events now, so that the host reads
    // the card's authentication certificate before the person clicks (docs/PERFORMANCE.md).
    if (allowed) {
      host.subscribe().catch(() => {});
      // Firefox: the module for mutual-TLS portals, loaded before any handshake needs it.
      loadModule?.()?.catch(() => {});
    }
    // A page that leads to a mutual-TLS CAC host: the element the content script checks
    // readiness at (lib/mtls-profiles.js).
    const profile = allowed && origin !== "null" ? mtlsProfileFor(sender.url ?? "", await mtlsProfiles?.()) : null;
    return { allowed, mtlsLink: profile?.link ?? null };
  }
  if (message?.type === "mtls-readiness") {
    if (!allowed) throw hostError("origin-not-allowed", messageFor("origin-not-allowed"));
    return mtlsReadiness(host, await loadModule?.());
  }
  if (message?.type !== "page-request") throw hostError("invalid-request", "not a page request");
  if (!allowed) throw hostError("origin-not-allowed", messageFor("origin-not-allowed"));
  const request = message.request;
  const invalid = invalidPageRequest(request);
  if (invalid) throw hostError(invalid.code, invalid.message, { argument: invalid.argument, reason: invalid.reason });

  switch (request.action) {
    // Pages learn only what they need to decide; names, DoD IDs, UPNs and e-mail addresses
    // stay in the extension's own window (docs/page-api.md).
    case "status": {
      const version = await host.ensureConnected();
      const status = await host.request(COMMANDS.status, {}, CARD_TIMEOUT);
      return pageView.status(version, status);
    }
    case "list-certificates":
      return pageView.certificates(await host.request(COMMANDS.listCertificates, {}, CARD_TIMEOUT), new Date());
    case "authenticate":
    case "sign": {
      // The content script answers user-activation-required itself; this is the second line.
      if (message.userActivation !== true) throw hostError("user-activation-required", messageFor("user-activation-required"));
      await host.ensureConnected();
      host.subscribe().catch(() => {});
      return flows.run({ tabId, origin, action: request.action, request });
    }
    default:
      throw hostError("invalid-request", messageFor("invalid-request"));
  }
}
