// CAC Bridge background: the only part that talks to cacbridge-host. Pages reach it through
// the content script; the chooser and PIN window, the popup and the options page are
// extension pages. This file wires the browser to the modules under background/ and
// dispatches messages; the modules take the browser APIs they need as arguments.

import { NativePort, HOST_NAME, hostError } from "./lib/port.js";
import { normalizeError } from "./lib/errors.js";
import { allowList, injectIntoOpenTabs, syncContentScripts } from "./background/content-scripts.js";
import { Flows } from "./background/flows.js";
import { CARD_TIMEOUT, dialogDetails, dialogSubmit } from "./background/dialog-flow.js";
import { clearSiteData, readiness } from "./background/readiness.js";
import { pageRequest } from "./background/page-requests.js";
import { ensureModuleLoaded } from "./background/pkcs11-module.js";
import { openTlsWindow } from "./background/tls-window.js";
import { takeUpdateWhenIdle } from "./background/updates.js";
import { BUILT_IN_MTLS_PROFILES } from "./lib/build-config.js";
import { COMMANDS, EVENTS, WINDOW_TIMEOUT_MS } from "./lib/wire.js";

const api = /** @type {typeof chrome} */ (globalThis.browser ?? globalThis.chrome);
const DIALOG = api.runtime.getURL("ui/dialog.html");
const EXTENSION_BASE = api.runtime.getURL("");
/** Firefox's match patterns cannot carry a port. */
const PATTERNS_WITH_PORTS = typeof (/** @type {any} */ (api.runtime).getBrowserInfo) !== "function";

const host = new NativePort({
  connect: () => api.runtime.connectNative(HOST_NAME),
  disconnectReason: (port) => port?.error?.message ?? api.runtime.lastError?.message,
  onEvent: (event, data) => {
    // A TLS login needs the PIN: the window for it.
    if (event === EVENTS.pinRequest) return void openTlsWindow(api, host, flows, data);
    // Card events, to the open windows; with none open, nobody listens.
    api.runtime.sendMessage({ type: "card-event", event, data }).catch(() => {});
  },
});

const flows = new Flows({
  openWindow: (flowId) =>
    api.windows.create({ url: `${DIALOG}?flow=${flowId}`, type: "popup", width: 520, height: 600 }).then((win) => win?.id ?? null),
  closeWindow: (windowId) => {
    api.windows.remove(windowId).catch(() => {});
  },
  userTimeout: WINDOW_TIMEOUT_MS,
  cancelCooldown: 5_000,
});

const currentAllowList = () => allowList(api);

// A mutual-TLS site reaches the person's PIN only through a host this extension started: the
// module inside the browser asks that host, which asks for this extension's window
// (docs/pkcs11.md). Most CAC sites are mutual-TLS sites that no page of CAC Bridge's ever
// sees, so the host starts with the browser (with this worker) and its port stays open.
// Firefox's module is loaded now for the same reason.
host.keepOpen().catch(() => {});
void ensureModuleLoaded(api); // never rejects

/** Mutual-TLS portal profiles: an administrator's `mtlsPortals`, else the build's. */
async function mtlsProfiles() {
  try {
    const managed = (await api.storage.managed.get("mtlsPortals"))?.mtlsPortals;
    if (Array.isArray(managed)) return managed;
  } catch {
    // no policy, or a browser without managed storage
  }
  return BUILT_IN_MTLS_PROFILES;
}

api.runtime.onInstalled.addListener(() =>
  syncContentScripts(api, PATTERNS_WITH_PORTS)
    .then(() => injectIntoOpenTabs(api, PATTERNS_WITH_PORTS))
    .catch((e) => console.error(e)),
);
api.runtime.onStartup?.addListener(() => syncContentScripts(api, PATTERNS_WITH_PORTS).catch((e) => console.error(e)));
api.storage.onChanged.addListener((changes) => {
  if ("allowList" in changes) syncContentScripts(api, PATTERNS_WITH_PORTS).catch((e) => console.error(e));
});
// The chooser and PIN window holds a port open to know if this worker stops (ui/dialog.js).
api.runtime.onConnect.addListener((port) => {
  if (port.name !== "dialog" || port.sender?.id !== api.runtime.id) port.disconnect();
});
// A newer version the browser holds back until this worker idles (background/updates.js).
api.runtime.onUpdateAvailable?.addListener(() =>
  takeUpdateWhenIdle({ busy: () => flows.flows.size > 0 || host.pending.size > 0, reload: () => api.runtime.reload() }),
);
api.windows.onRemoved.addListener((windowId) => flows.windowRemoved(windowId));
api.tabs.onRemoved.addListener((tabId) => flows.tabRemoved(tabId));

api.runtime.onMessage.addListener((message, sender, sendResponse) => {
  const fromExtensionPage = sender.id === api.runtime.id && (sender.url ?? "").startsWith(EXTENSION_BASE);
  const handle = fromExtensionPage
    ? extensionPageMessage(message)
    : pageRequest({ host, flows, allowList: currentAllowList, loadModule: () => ensureModuleLoaded(api), mtlsProfiles }, message, sender);
  handle.then(
    (result) => sendResponse({ ok: true, result }),
    (error) => sendResponse({ ok: false, error: normalizeError(error) }),
  );
  return true; // answered asynchronously
});

/**
 * Messages from the dialog, popup and options pages.
 * @param {any} message
 */
async function extensionPageMessage(message) {
  switch (message?.type) {
    case "dialog:get":
      return dialogDetails(host, flows.get(message.flow));
    case "dialog:submit":
      return dialogSubmit(host, flows, flows.get(message.flow), message.certificateId, message.pin);
    case "dialog:cancel": {
      const flow = flows.get(message.flow);
      if (flow) flows.cancel(flow);
      return {};
    }
    case "popup:status":
      return readiness(host, await currentAllowList(), message.origin, await ensureModuleLoaded(api));
    case "popup:clear-site-data":
      return clearSiteData(api, message.origin);
    // The DoD roots: read, or changed once the person confirmed in the popup (ui/popup.js).
    case "popup:dod-roots":
      return host.request(COMMANDS.dodRoots, {}, CARD_TIMEOUT);
    case "popup:trust-dod-roots":
      return host.request(COMMANDS.trustDodRoots, { trust: message.trust === true }, CARD_TIMEOUT);
    case "options:get":
      return currentAllowList();
    default:
      throw hostError("invalid-request", "unknown message");
  }
}
