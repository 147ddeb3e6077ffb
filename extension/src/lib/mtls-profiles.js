// Mutual-TLS portal profiles: the page of a portal that leads to its CAC host (the host that
// asks the browser for the card's certificate), and the element there that does. CAC Bridge
// checks readiness on that page, before the click: once the browser is asking for the
// certificate, it is too late to say that the card or the security device is missing.
// Profiles come from an administrator's policy (`mtlsPortals`) or from the build.

/** @typedef {{page: string, link: string}} MtlsProfile */

/**
 * The profile for the page at `url`, if any: same origin, and the profile's path or a path
 * under it. Malformed entries (a policy is input too) are skipped.
 * @param {string} url
 * @param {unknown} profiles
 * @returns {MtlsProfile | null}
 */
export function mtlsProfileFor(url, profiles) {
  if (!Array.isArray(profiles)) return null;
  let page;
  try {
    page = new URL(url);
  } catch {
    return null;
  }
  for (const profile of profiles) {
    if (typeof profile?.page !== "string" || typeof profile?.link !== "string" || !profile.link) continue;
    let wanted;
    try {
      wanted = new URL(profile.page);
    } catch {
      continue;
    }
    if (wanted.protocol !== "https:" || wanted.origin !== page.origin) continue;
    const path = wanted.pathname.replace(/\/$/, "");
    if (page.pathname === wanted.pathname || page.pathname === path || page.pathname.startsWith(`${path}/`)) {
      return { page: profile.page, link: profile.link };
    }
  }
  return null;
}
