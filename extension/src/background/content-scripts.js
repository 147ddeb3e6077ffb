// Where the content script runs: allow-listed portals only, never every site. Browser APIs
// come in as arguments, so nothing runs when the module loads.

import { effectiveAllowList, matchPatterns, originAllowed } from "../lib/origins.js";
import { BUILT_IN_ORIGINS } from "../lib/build-config.js";

const CONTENT_SCRIPT_ID = "cacbridge-portal";

/**
 * The allow-list in force: an administrator's managed list, the person's own, or the build's.
 * @param {typeof chrome} api
 */
export async function allowList(api) {
  let managed = null;
  try {
    managed = (await api.storage.managed.get("allowList"))?.allowList ?? null;
  } catch {
    managed = null; // no policy, or a browser without managed storage
  }
  const user = (await api.storage.local.get("allowList"))?.allowList ?? null;
  return effectiveAllowList({ managed, user, builtIn: BUILT_IN_ORIGINS });
}

/**
 * Register the content script for the allow-listed origins (and only them).
 * @param {typeof chrome} api
 * @param {boolean} withPorts whether match patterns may carry a port (not in Firefox)
 */
export async function syncContentScripts(api, withPorts) {
  const { origins } = await allowList(api);
  const registered = await api.scripting.getRegisteredContentScripts({ ids: [CONTENT_SCRIPT_ID] });
  if (registered.length) await api.scripting.unregisterContentScripts({ ids: [CONTENT_SCRIPT_ID] });
  if (!origins.length) return;
  await api.scripting.registerContentScripts([
    {
      id: CONTENT_SCRIPT_ID,
      matches: matchPatterns(origins, { ports: withPorts }),
      js: ["content.js"],
      // Early, so a request a page posts while loading is queued rather than lost.
      runAt: "document_start",
    },
  ]);
}

/**
 * Tabs already open on an allow-listed portal when the extension arrives (installed, updated
 * or enabled) get the content script now, without a reload. The script ignores a second run.
 * @param {typeof chrome} api
 * @param {boolean} withPorts
 */
export async function injectIntoOpenTabs(api, withPorts) {
  const { origins } = await allowList(api);
  if (!origins.length) return;
  const tabs = await api.tabs.query({ url: matchPatterns(origins, { ports: withPorts }) });
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
