// Facts fixed when the extension is built (scripts/build.mjs rewrites this file for a
// development build). The store build trusts no portal of its own: portals come from an
// administrator's policy or from the person, in the options page.

/** Origins this build trusts before anyone configures it. */
export const BUILT_IN_ORIGINS = [];
