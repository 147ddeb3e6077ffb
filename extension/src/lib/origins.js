// Which sites may use CAC Bridge. Pure functions, unit-tested with Node.

/**
 * Normalize what a person or an administrator typed into an origin, or null when it is not
 * one: `https://host[:port]` (or http for localhost and 127.0.0.1), lower case, no path.
 * @param {string} text
 * @returns {string | null}
 */
export function normalizeOrigin(text) {
  let url;
  try {
    url = new URL(String(text).trim());
  } catch {
    return null;
  }
  const local = url.hostname === "localhost" || url.hostname === "127.0.0.1";
  if (url.protocol !== "https:" && !(url.protocol === "http:" && local)) return null;
  if (url.username || url.password) return null;
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash) return null;
  return url.origin;
}

/**
 * The list in force: an administrator's managed list, when set, is the list, and the user
 * cannot widen it (their own entries count only where the managed list has them too).
 * Without either, the build's own origins (none in the store build; the test portal in a
 * development build).
 * @param {{managed?: string[] | null, user?: string[] | null, builtIn?: string[]}} lists
 * @returns {{origins: string[], managed: boolean}}
 */
export function effectiveAllowList({ managed, user, builtIn = [] }) {
  const clean = (/** @type {unknown} */ list) =>
    Array.isArray(list) ? [...new Set(list.map(normalizeOrigin).filter((o) => o !== null))] : null;
  const managedList = clean(managed);
  const userList = clean(user);
  if (managedList) {
    const origins = userList ? userList.filter((o) => managedList.includes(o)) : managedList;
    return { origins: /** @type {string[]} */ (origins), managed: true };
  }
  return { origins: /** @type {string[]} */ (userList ?? clean(builtIn) ?? []), managed: false };
}

/**
 * @param {string} origin
 * @param {string[]} allowList
 */
export function originAllowed(origin, allowList) {
  const normalized = normalizeOrigin(origin);
  return normalized !== null && allowList.includes(normalized);
}

/**
 * Match patterns for content script registration and host permissions. Firefox's patterns
 * cannot name a port (a pattern with one matches nothing), so there the pattern covers every
 * port of the host and the content script asks the background before it does anything.
 * @param {string[]} origins
 * @param {{ports?: boolean}} [options]
 */
export function matchPatterns(origins, { ports = true } = {}) {
  const patterns = origins.map((origin) => {
    if (ports) return `${origin}/*`;
    const url = new URL(origin);
    return `${url.protocol}//${url.hostname}/*`;
  });
  return [...new Set(patterns)];
}
