// The popup's readiness checklist (the guide's "before you start") and its fix for 403s.

import { originAllowed } from "../lib/origins.js";
import { normalizeError } from "../lib/errors.js";
import { CARD_TIMEOUT } from "./dialog-flow.js";
import { COMMANDS } from "../lib/wire.js";

/**
 * @param {any} host the native port
 * @param {{origins: string[], managed: boolean}} list the allow-list in force
 * @param {string | null} origin the active tab's
 * @param {{supported: boolean, loaded: boolean, detail: string}} [module] the PKCS#11 module in this browser
 */
export async function readiness(host, list, origin, module) {
  return { items: await readinessItems(host, list, origin, module), origin };
}

/**
 * @param {any} host
 * @param {{origins: string[], managed: boolean}} list
 * @param {string | null} origin
 * @param {{supported: boolean, loaded: boolean, detail: string}} [module]
 */
async function readinessItems(host, list, origin, module) {
  const items = [];
  let version = null;
  try {
    version = await host.ensureConnected();
    items.push({ id: "host", ok: true, detail: `CAC Bridge app ${version.version}` });
  } catch (error) {
    const e = normalizeError(error);
    items.push({ id: "host", ok: false, detail: e.message, code: e.code });
  }
  if (version) items.push(...(await cardItems(host)));
  items.push(...(await browserItems(version ? host : null, module)));
  items.push({
    id: "portal",
    ok: origin !== null && originAllowed(origin, list.origins),
    detail: origin ?? "not a web page",
    managed: list.managed,
  });
  return items;
}

/**
 * The reader, the card and its PIV Authentication certificate.
 * @param {any} host
 */
async function cardItems(host) {
  const items = [];
  const status = await host.request(COMMANDS.status, {}, CARD_TIMEOUT).catch((/** @type {any} */ e) => ({ error: e }));
  const readers = status.readers ?? [];
  const withCard = readers.filter((/** @type {any} */ r) => r.cardPresent);
  items.push({ id: "reader", ok: readers.length > 0, detail: readers.map((/** @type {any} */ r) => r.name).join(", ") });
  items.push({ id: "card", ok: withCard.length > 0, detail: withCard.map((/** @type {any} */ r) => `${r.cardType} card, ${r.pinBlocked ? "PIN blocked" : `${r.pinRetriesLeft ?? "?"} PIN tries left`}`).join("; ") });
  // What a login needs: a PIV Authentication (or CAC ID) certificate, not expired.
  const listed = withCard.length
    ? await host.request(COMMANDS.listCertificates, { purpose: "authentication" }, CARD_TIMEOUT).catch((/** @type {any} */ e) => ({ error: e }))
    : { certificates: [] };
  const now = Date.now();
  const valid = (listed.certificates ?? []).filter((/** @type {any} */ c) => Date.parse(c.notAfter) > now);
  const expired = (listed.certificates ?? []).length - valid.length;
  items.push({
    id: "certificates",
    ok: valid.length > 0,
    detail: listed.error
      ? normalizeError(listed.error).message
      : valid.length
        ? `PIV Authentication certificate valid until ${valid[0].notAfter.slice(0, 10)}`
        : expired
          ? "the PIV Authentication certificate has expired: a DoD ID card office (RAPIDS) issues new ones"
          : "no PIV Authentication certificate on the card",
  });
  // Renewal takes an appointment: say so a month ahead.
  const soon = valid.find((/** @type {any} */ c) => Date.parse(c.notAfter) - now < EXPIRY_WARNING_MS);
  if (soon) {
    const days = Math.max(0, Math.floor((Date.parse(soon.notAfter) - now) / 86_400_000));
    items.push({ id: "expiry", ok: false, warning: true, detail: `expires ${soon.notAfter.slice(0, 10)}, in ${days} day${days === 1 ? "" : "s"}` });
  }
  return items;
}

/** How long before the PIV Authentication certificate expires CAC Bridge starts saying so. */
export const EXPIRY_WARNING_MS = 30 * 86_400_000;

/**
 * What a mutual-TLS portal needs of the browser: CAC Bridge's security device (PKCS#11
 * module) and the DoD roots. Firefox answers for the module itself; for the Chrome family the
 * host reads the browser's NSS database (`browser-setup`). Items nobody can check are left out.
 * @param {any} host null when the host is not running
 * @param {{supported: boolean, loaded: boolean, detail: string}} [module]
 */
async function browserItems(host, module) {
  const items = [];
  const setup = host ? await host.request(COMMANDS.browserSetup, {}, CARD_TIMEOUT).catch(() => null) : null;
  if (module?.supported) items.push({ id: "module", ok: module.loaded, detail: module.detail });
  else if (typeof setup?.tlsModule === "boolean") {
    // Registered at this person's first start: the browser loads it at its next start.
    const restart = setup.tlsModule && setup.moduleNeedsRestart === true;
    items.push({
      id: "module",
      ok: setup.tlsModule && !restart,
      ...(restart ? { restart: true } : {}),
      detail: restart
        ? "set up just now: restart the browser once to use it"
        : setup.tlsModule
          ? "registered in this browser's certificate database"
          : "not registered in this browser's certificate database",
    });
  }
  if (typeof setup?.dodRoots === "boolean") {
    items.push({
      id: "roots",
      ok: setup.dodRoots,
      detail: setup.dodRoots ? "DoD root certificates trusted" : "no DoD root certificate trusted in this browser",
    });
  }
  return items;
}

/**
 * Before the click that leads to a mutual-TLS CAC host: what is missing. Said on the portal's
 * page, so it names no one: no holder, no dates, only what to fix.
 * @param {any} host
 * @param {{supported: boolean, loaded: boolean, detail: string}} [module]
 */
export async function mtlsReadiness(host, module) {
  let connected = true;
  await host.ensureConnected().catch(() => (connected = false));
  const items = connected ? [...(await cardItems(host)), ...(await browserItems(host, module))] : [];
  // A warning (the certificate expires soon) is not something missing, and the page that
  // shows this note must not learn it.
  return {
    items: items.filter((item) => item.id !== "reader" && !(/** @type {any} */ (item).warning)).map(({ id, ok }) => ({ id, ok })),
    host: connected,
  };
}

/**
 * The guide's fix for 403 errors: clear this portal's cookies and cached data.
 * @param {typeof chrome} api
 * @param {string} origin
 */
export async function clearSiteData(api, origin) {
  const isFirefox = typeof (/** @type {any} */ (api.runtime).getBrowserInfo) === "function";
  const what = { cookies: true, localStorage: true, cache: !isFirefox, indexedDB: true, serviceWorkers: true };
  if (isFirefox) {
    await api.browsingData.remove(/** @type {any} */ ({ hostnames: [new URL(origin).hostname] }), what);
  } else {
    await api.browsingData.remove({ origins: [origin] }, what);
  }
  return { cleared: origin };
}
