// CAC Bridge background: the only part that talks to cacbridge-host. Pages reach it through
// the content script; the chooser and PIN window, the popup and the options page are
// extension pages. The origin sent to the host always comes from the browser's record of the
// sender, never from the page.

import { effectiveAllowList, matchPatterns, originAllowed } from "./lib/origins.js";
import { BUILT_IN_ORIGINS } from "./lib/build-config.js";
import { pageView } from "./lib/page-view.js";
import { NativePort, HOST_NAME, hostError } from "./lib/port.js";
import { chooserEntries } from "./lib/certificates.js";
import { messageFor } from "./lib/errors.js";
import { invalidPageRequest } from "./lib/page-request.js";

const api = /** @type {typeof chrome} */ (globalThis.browser ?? globalThis.chrome);
const CARD_TIMEOUT = 60_000;
const USER_TIMEOUT = 120_000;
/** After a cancel, the same tab waits this long before it may open the window again. */
const CANCEL_COOLDOWN = 5_000;
const CONTENT_SCRIPT_ID = "cacbridge-portal";
const DIALOG = api.runtime.getURL("ui/dialog.html");
const EXTENSION_BASE = api.runtime.getURL("");
/** Firefox's match patterns cannot carry a port. */
const PATTERNS_WITH_PORTS = typeof (/** @type {any} */ (api.runtime).getBrowserInfo) !== "function";

const host = new NativePort({
  connect: () => api.runtime.connectNative(HOST_NAME),
  disconnectReason: (port) => port?.error?.message ?? api.runtime.lastError?.message,
  onEvent: (event, data) => broadcast({ type: "card-event", event, data }),
});

/** @param {object} message */
function broadcast(message) {
  api.runtime.sendMessage(message).catch(() => {}); // no dialog open: nobody listens
}

// ---- allow-list and content scripts ------------------------------------------------------

async function allowList() {
  let managed = null;
  try {
    managed = (await api.storage.managed.get("allowList"))?.allowList ?? null;
  } catch {
    managed = null; // no policy, or a browser without managed storage
  }
  const user = (await api.storage.local.get("allowList"))?.allowList ?? null;
  return effectiveAllowList({ managed, user, builtIn: BUILT_IN_ORIGINS });
}

/** Content scripts run on allow-listed portals only, never on every site. */
async function syncContentScripts() {
  const { origins } = await allowList();
  const registered = await api.scripting.getRegisteredContentScripts({ ids: [CONTENT_SCRIPT_ID] });
  if (registered.length) await api.scripting.unregisterContentScripts({ ids: [CONTENT_SCRIPT_ID] });
  if (!origins.length) return;
  await api.scripting.registerContentScripts([
    {
      id: CONTENT_SCRIPT_ID,
      matches: matchPatterns(origins, { ports: PATTERNS_WITH_PORTS }),
      js: ["content.js"],
      // Early, so a request a page posts while loading is queued rather than lost.
      runAt: "document_start",
    },
  ]);
}

/**
 * Tabs already open on an allow-listed portal when the extension arrives (installed, updated
 * or enabled) get the content script now, without a reload. The script ignores a second run.
 */
async function injectIntoOpenTabs() {
  const { origins } = await allowList();
  if (!origins.length) return;
  const tabs = await api.tabs.query({ url: matchPatterns(origins, { ports: PATTERNS_WITH_PORTS }) });
  await Promise.all(
    tabs
      .filter((tab) => tab.id !== undefined && originAllowed(new URL(tab.url ?? "about:blank").origin, origins))
      .map((tab) =>
        api.scripting
          .executeScript({ target: { tabId: /** @type {number} */ (tab.id) }, files: ["content.js"] })
          .catch((/** @type {any} */ e) => console.warn("inject", tab.url, e)),
      ),
  );
}

api.runtime.onInstalled.addListener(() =>
  syncContentScripts()
    .then(injectIntoOpenTabs)
    .catch((e) => console.error(e)),
);
api.runtime.onStartup?.addListener(() => syncContentScripts().catch((e) => console.error(e)));
api.storage.onChanged.addListener((changes) => {
  if ("allowList" in changes) syncContentScripts().catch((e) => console.error(e));
});

// ---- user-facing requests: one per tab ----------------------------------------------------

/** @type {Map<string, any>} requestId -> pending flow */
const flows = new Map();
/** @type {Set<number>} tabs with a flow in progress */
const busyTabs = new Set();
/** @type {Map<number, number>} tab -> when its last window was cancelled */
const cancelledAt = new Map();
let nextFlow = 1;

/**
 * Open the extension's own window for the chooser and PIN; resolve with the host's answer.
 * @param {{tabId: number, origin: string, action: string, request: any}} details
 */
function openDialog(details) {
  return new Promise((resolve, reject) => {
    const id = `f${nextFlow++}`;
    /** @type {any} */
    const flow = { id, ...details, resolve, reject, windowId: null, timer: null, settled: false };
    flows.set(id, flow);
    flow.timer = setTimeout(() => finish(flow, hostError("user-timeout", messageFor("user-timeout"))), USER_TIMEOUT);
    api.windows
      .create({ url: `${DIALOG}?flow=${id}`, type: "popup", width: 520, height: 600 })
      .then((win) => {
        flow.windowId = win?.id ?? null;
      })
      .catch((err) => finish(flow, hostError("internal", String(err))));
  });
}

/**
 * @param {any} flow
 * @param {any} error
 * @param {any} [result]
 */
function finish(flow, error, result) {
  if (flow.settled) return;
  flow.settled = true;
  clearTimeout(flow.timer);
  flows.delete(flow.id);
  if (error) flow.reject(error);
  else flow.resolve(result);
  if (flow.windowId !== null) api.windows.remove(flow.windowId).catch(() => {});
}

/** The person said no: this tab may not reopen the window for a moment. @param {any} flow */
function cancel(flow) {
  cancelledAt.set(flow.tabId, Date.now());
  finish(flow, hostError("user-cancelled", messageFor("user-cancelled")));
}

api.windows.onRemoved.addListener((windowId) => {
  for (const flow of flows.values()) {
    if (flow.windowId === windowId) cancel(flow);
  }
});
api.tabs.onRemoved.addListener((tabId) => cancelledAt.delete(tabId));

// ---- messages -----------------------------------------------------------------------------

/**
 * The origin of the page that sent a message, from the browser's own record. An opaque origin
 * (a sandboxed document: `sender.origin`, or the document's own `origin` as the content
 * script reads it, is "null") stays "null": it is never mapped back to the URL's origin,
 * which would lend a sandboxed document the portal's identity.
 * @param {chrome.runtime.MessageSender} sender
 * @param {any} message
 */
function senderOrigin(sender, message) {
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

api.runtime.onMessage.addListener((message, sender, sendResponse) => {
  const fromExtensionPage = sender.id === api.runtime.id && (sender.url ?? "").startsWith(EXTENSION_BASE);
  const handle = fromExtensionPage ? extensionPageMessage(message) : pageRequest(message, sender);
  handle.then(
    (result) => sendResponse({ ok: true, result }),
    (error) => sendResponse({ ok: false, error: normalizeError(error) }),
  );
  return true; // answered asynchronously
});

/** @param {any} error */
function normalizeError(error) {
  if (error && typeof error.code === "string") {
    return { ...error, message: messageFor(error.code, error.message) };
  }
  return { code: "internal", message: String(error) };
}

/**
 * A request from a web page, through the content script.
 * @param {any} message
 * @param {chrome.runtime.MessageSender} sender
 */
async function pageRequest(message, sender) {
  if (!sender.tab?.id) throw hostError("invalid-request", "not a page request");
  const origin = senderOrigin(sender, message);
  const { origins } = await allowList();
  const allowed = originAllowed(origin, origins);
  if (message?.type === "page-allowed") return { allowed };
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
      const status = await host.request("status", {}, CARD_TIMEOUT);
      return pageView.status(version, status);
    }
    case "list-certificates":
      return pageView.certificates(await host.request("list-certificates", {}, CARD_TIMEOUT), new Date());
    case "authenticate":
    case "sign": {
      const tabId = sender.tab.id;
      // The content script answers user-activation-required itself; this is the second line.
      if (message.userActivation !== true) throw hostError("user-activation-required", messageFor("user-activation-required"));
      if (busyTabs.has(tabId)) throw hostError("action-pending", messageFor("action-pending"));
      const cancelled = cancelledAt.get(tabId);
      if (cancelled !== undefined && Date.now() - cancelled < CANCEL_COOLDOWN) {
        throw hostError("action-throttled", messageFor("action-throttled"), {
          retryAfterMs: CANCEL_COOLDOWN - (Date.now() - cancelled),
        });
      }
      busyTabs.add(tabId);
      try {
        await host.ensureConnected();
        host.subscribe().catch(() => {});
        return await openDialog({ tabId, origin, action: request.action, request });
      } finally {
        busyTabs.delete(tabId);
      }
    }
    default:
      throw hostError("invalid-request", messageFor("invalid-request"));
  }
}

/**
 * Messages from the dialog, popup and options pages.
 * @param {any} message
 */
async function extensionPageMessage(message) {
  switch (message?.type) {
    case "dialog:get":
      return dialogDetails(flows.get(message.flow));
    case "dialog:submit":
      return dialogSubmit(flows.get(message.flow), message.certificateId, message.pin);
    case "dialog:cancel": {
      const flow = flows.get(message.flow);
      if (flow) cancel(flow);
      return {};
    }
    case "popup:status":
      return readiness(message.origin);
    case "popup:clear-site-data":
      return clearSiteData(message.origin);
    case "options:get":
      return allowList();
    default:
      throw hostError("invalid-request", "unknown message");
  }
}

/** @param {any} flow */
async function dialogDetails(flow) {
  if (!flow) throw hostError("user-timeout", "this request is no longer waiting");
  const [list, status] = await Promise.all([
    host.request("list-certificates", {}, CARD_TIMEOUT).catch((e) => ({ error: e })),
    host.request("status", {}, CARD_TIMEOUT).catch(() => ({ readers: [] })),
  ]);
  const purpose = flow.action === "sign" ? "sign" : "authenticate";
  const chooser = list.error ? { entries: [], preselected: null } : chooserEntries(list.certificates, purpose, new Date());
  return {
    origin: flow.origin,
    action: flow.action,
    ...(flow.action === "sign" ? { hash: flow.request.hash, hashFunction: flow.request.hashFunction } : {}),
    ...chooser,
    readers: status.readers ?? [],
    error: list.error ? normalizeError(list.error) : null,
  };
}

/**
 * @param {any} flow
 * @param {string} certificateId
 * @param {string} pin
 */
async function dialogSubmit(flow, certificateId, pin) {
  if (!flow) throw hostError("user-timeout", "this request is no longer waiting");
  const args =
    flow.action === "authenticate"
      ? { certificateId, challengeNonce: flow.request.challengeNonce, origin: flow.origin, pin }
      : { certificateId, hash: flow.request.hash, hashFunction: flow.request.hashFunction, origin: flow.origin, pin };
  try {
    const result = await host.request(flow.action, args, CARD_TIMEOUT);
    let answer = result;
    if (flow.action === "sign") {
      // The page asked for this signature and gets the certificate that makes it checkable.
      const list = await host.request("list-certificates", {}, CARD_TIMEOUT);
      const cert = list.certificates.find((/** @type {any} */ c) => c.id === certificateId);
      answer = { ...result, certificate: cert?.certificate ?? null };
    }
    finish(flow, null, answer);
    return { done: true };
  } catch (error) {
    const normalized = normalizeError(error);
    if (normalized.code === "pin-blocked") {
      // The page learns it at once; the window stays open to explain what to do.
      flow.settled = true;
      clearTimeout(flow.timer);
      flows.delete(flow.id);
      flow.reject(normalized);
    }
    return { done: false, error: normalized };
  }
}

/** The guide's readiness checklist, for the popup. @param {string | null} origin */
async function readiness(origin) {
  const items = [];
  const { origins, managed } = await allowList();
  let version = null;
  try {
    version = await host.ensureConnected();
    items.push({ id: "host", ok: true, detail: `CAC Bridge app ${version.version}` });
  } catch (error) {
    const e = normalizeError(error);
    items.push({ id: "host", ok: false, detail: e.message, code: e.code });
  }
  if (version) {
    const status = await host.request("status", {}, CARD_TIMEOUT).catch((e) => ({ error: e }));
    const readers = status.readers ?? [];
    const withCard = readers.filter((/** @type {any} */ r) => r.cardPresent);
    items.push({ id: "reader", ok: readers.length > 0, detail: readers.map((/** @type {any} */ r) => r.name).join(", ") });
    items.push({ id: "card", ok: withCard.length > 0, detail: withCard.map((/** @type {any} */ r) => `${r.cardType} card, ${r.pinBlocked ? "PIN blocked" : `${r.pinRetriesLeft ?? "?"} PIN tries left`}`).join("; ") });
    const list = withCard.length ? await host.request("list-certificates", {}, CARD_TIMEOUT).catch((e) => ({ error: e })) : { certificates: [] };
    const count = list.certificates?.length ?? 0;
    items.push({ id: "certificates", ok: count > 0, detail: list.error ? normalizeError(list.error).message : `${count} certificates` });
  }
  items.push({
    id: "portal",
    ok: origin !== null && originAllowed(origin, origins),
    detail: origin ?? "not a web page",
    managed,
  });
  return { items, origin };
}

/** The guide's fix for 403 errors: clear this portal's cookies and cached data. @param {string} origin */
async function clearSiteData(origin) {
  const isFirefox = typeof (/** @type {any} */ (api.runtime).getBrowserInfo) === "function";
  const what = { cookies: true, localStorage: true, cache: !isFirefox, indexedDB: true, serviceWorkers: true };
  if (isFirefox) {
    await api.browsingData.remove(/** @type {any} */ ({ hostnames: [new URL(origin).hostname] }), what);
  } else {
    await api.browsingData.remove({ origins: [origin] }, what);
  }
  return { cleared: origin };
}
