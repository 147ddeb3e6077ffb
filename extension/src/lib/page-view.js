// What a web page may learn without opening the extension's window. Pure functions,
// unit-tested with Node.
//
// The host's answers carry names, DoD ID numbers (EDIPI), UPNs, e-mail addresses, reader
// names (some carry a serial number) and the certificates themselves. Any allow-listed page
// could ask for them silently, so a page gets only what it needs to decide what to offer:
// whether a card is present, of which type, and whether it holds a usable certificate. The
// person sees the rest, and chooses, in the extension's window; a page learns a certificate
// only from the token or signature the person approved.

export const pageView = {
  /**
   * @param {{version: string, protocol: number}} host
   * @param {{readers?: any[]}} status
   */
  status(host, status) {
    return {
      host: { version: host.version, protocol: host.protocol },
      readers: (status.readers ?? []).map((/** @type {any} */ reader) =>
        reader.cardPresent ? { cardPresent: true, cardType: reader.cardType ?? "unknown" } : { cardPresent: false },
      ),
    };
  },

  /**
   * @param {{certificates?: any[]}} list
   * @param {Date} now
   */
  certificates(list, now) {
    return {
      certificates: (list.certificates ?? []).map((/** @type {any} */ certificate) => ({
        usableFor: Array.isArray(certificate.usableFor) ? [...certificate.usableFor] : [],
        keyAlgorithm: certificate.keyAlgorithm,
        expired: new Date(certificate.notAfter).getTime() <= now.getTime(),
      })),
    };
  },
};
