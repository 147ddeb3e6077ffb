// Facts fixed when the extension is built (scripts/build.mjs rewrites this file for a
// development build). The store build trusts no portal of its own: portals come from an
// administrator's policy or from the person, in the options page.

/** Origins this build trusts before anyone configures it. */
export const BUILT_IN_ORIGINS = [];

/**
 * Mutual-TLS portal profiles this build knows (lib/mtls-profiles.js); an administrator's
 * `mtlsPortals` policy replaces them.
 * @type {import("./mtls-profiles.js").MtlsProfile[]}
 */
export const BUILT_IN_MTLS_PROFILES = [];
