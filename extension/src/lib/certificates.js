// What the certificate chooser shows. Pure functions, unit-tested with Node.

/**
 * @typedef {{id: string, slot: string, role: string, commonName?: string | null,
 *   subject: string, issuer: string, notAfter: string, edipi?: string | null,
 *   reader: string, keyUsage?: string[], extendedKeyUsage?: string[],
 *   usableFor?: string[]}} Certificate
 */

/** Display order only: which certificate may do what is the host's call (`usableFor`). */
const SLOT_ORDER = ["9A", "CAC-ID", "9C", "CAC-EMAIL-SIGNATURE"];

/** The CN of a distinguished name, or the whole name. @param {string} dn */
export function commonNameOf(dn) {
  const cn = dn.split(", ").find((part) => part.startsWith("CN="));
  return cn ? cn.slice(3) : dn;
}

/**
 * `DOE.JOHN.A.1234567890` -> `John A. Doe`.
 * @param {string} cn
 */
export function displayName(cn) {
  const parts = cn.split(".");
  if (parts.length < 3 || !/^\d{10}$/.test(parts[parts.length - 1])) return cn;
  const cap = (/** @type {string} */ w) =>
    w.toLowerCase().replace(/(^|[\s-])\p{L}/gu, (m) => m.toUpperCase());
  const [last, first, ...rest] = parts.slice(0, -1);
  const middle = rest.map((m) => (m.length === 1 ? `${m}.` : cap(m)));
  return [cap(first), ...middle, cap(last)].join(" ");
}

/**
 * Entries for the chooser: only certificates the host will use for `purpose` (its
 * `usableFor`: a signing certificate never logs in, an authentication one never signs a
 * page's hash), the PIV Authentication certificate first and preselected, expired ones marked
 * and not selectable.
 * @param {Certificate[]} certificates
 * @param {"authenticate" | "sign"} purpose
 * @param {Date} now
 */
export function chooserEntries(certificates, purpose, now) {
  const entries = certificates
    .filter((c) => (c.usableFor ?? []).includes(purpose))
    .map((c) => {
      const cn = c.commonName ?? commonNameOf(c.subject);
      const expired = new Date(c.notAfter).getTime() <= now.getTime();
      return {
        id: c.id,
        name: displayName(cn),
        commonName: cn,
        edipi: c.edipi ?? null,
        role: c.role,
        issuer: commonNameOf(c.issuer),
        expires: c.notAfter.slice(0, 10),
        reader: c.reader,
        expired,
        selectable: !expired,
        rank: SLOT_ORDER.includes(c.slot) ? SLOT_ORDER.indexOf(c.slot) : SLOT_ORDER.length,
      };
    })
    .sort((a, b) => a.rank - b.rank || b.expires.localeCompare(a.expires));
  const preselected = entries.find((e) => e.selectable)?.id ?? null;
  return { entries, preselected };
}
