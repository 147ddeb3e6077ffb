// Firefox only: load CAC Bridge's PKCS#11 module into Firefox's NSS through the `pkcs11`
// WebExtension API, so that portals asking for a TLS client certificate see the card.
// `cacbridge-host install` writes the PKCS#11 manifest this names (docs/install.md).
// Chromium has no such API: there, `install` registers the module in the NSS database.

export const MODULE_NAME = "cacbridge";
/** NSS's PUBLIC_MECH_FRIENDLY_FLAG: certificates are public, so listing them needs no login. */
const FRIENDLY = 0x10000000;

/**
 * Load the module unless it is loaded already. Resolves with what the readiness checklist
 * shows; never rejects.
 * @param {any} api the browser namespace
 * @returns {Promise<{supported: boolean, loaded: boolean, detail: string}>}
 */
export async function ensureModuleLoaded(api) {
  if (!api.pkcs11) return { supported: false, loaded: false, detail: "this browser loads the module from its NSS database" };
  try {
    if (!(await api.pkcs11.isModuleInstalled(MODULE_NAME))) await api.pkcs11.installModule(MODULE_NAME, FRIENDLY);
    return { supported: true, loaded: true, detail: "CAC Bridge security device loaded" };
  } catch (error) {
    // No manifest (the module was never registered) or a library that does not load.
    return {
      supported: true,
      loaded: false,
      detail: `the CAC Bridge security device is not available (${String(/** @type {any} */ (error)?.message ?? error)}): run cacbridge-host install`,
    };
  }
}
