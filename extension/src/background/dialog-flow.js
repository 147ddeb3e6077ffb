// What the chooser and PIN window ask of the background: the details to show, and the
// person's choice and PIN, sent on to the host. Pure logic over the host port and the flows.

import { hostError } from "../lib/port.js";
import { normalizeError } from "../lib/errors.js";
import { chooserEntries } from "../lib/certificates.js";
import { COMMANDS } from "../lib/wire.js";

export const CARD_TIMEOUT = 60_000;

/**
 * @param {{request: (command: string, args: object, timeout: number) => Promise<any>}} host
 * @param {any} flow
 */
export async function dialogDetails(host, flow) {
  if (!flow) throw hostError("user-timeout", "this request is no longer waiting");
  // Only the certificates this window can offer: each one read costs a second on a real card.
  // A TLS login (the browser's PKCS#11 module asked) offers the one certificate it is for.
  const wanted = flow.action === "sign" ? "signature" : "authentication";
  const [list, status] = await Promise.all([
    host.request(COMMANDS.listCertificates, { purpose: wanted }, CARD_TIMEOUT).catch((e) => ({ error: e })),
    host.request(COMMANDS.status, {}, CARD_TIMEOUT).catch(() => ({ readers: [] })),
  ]);
  const purpose = flow.action === "sign" ? "sign" : "authenticate";
  const offered = flow.action === "tls" ? (list.certificates ?? []).filter((/** @type {any} */ c) => c.id === flow.request.certificateId) : list.certificates;
  const chooser = list.error ? { entries: [], preselected: null } : chooserEntries(offered, purpose, new Date());
  return {
    origin: flow.origin,
    action: flow.action,
    ...(flow.action === "sign" ? { hash: flow.request.hash, hashFunction: flow.request.hashFunction } : {}),
    ...chooser,
    readers: status.readers ?? [],
    error: list.error ? normalizeError(list.error) : null,
  };
}

/**
 * @param {{request: (command: string, args: object, timeout: number) => Promise<any>}} host
 * @param {import("./flows.js").Flows} flows
 * @param {any} flow
 * @param {string} certificateId
 * @param {string} pin
 */
export async function dialogSubmit(host, flows, flow, certificateId, pin) {
  if (!flow) throw hostError("user-timeout", "this request is no longer waiting");
  const args =
    flow.action === "authenticate"
      ? { certificateId, challengeNonce: flow.request.challengeNonce, origin: flow.origin, pin }
      : { certificateId, hash: flow.request.hash, hashFunction: flow.request.hashFunction, origin: flow.origin, pin };
  try {
    if (flow.action === "tls") {
      // The host verifies the PIN on the card and signs for the browser's TLS handshake.
      await host.request(COMMANDS.tlsPin, { requestId: flow.request.requestId, pin }, CARD_TIMEOUT);
      flows.finish(flow, null, { done: true });
      return { done: true };
    }
    const command = flow.action === "authenticate" ? COMMANDS.authenticate : COMMANDS.sign;
    // `sign`'s result carries the certificate that makes it checkable, as the page gets it.
    const answer = await host.request(command, args, CARD_TIMEOUT);
    flows.finish(flow, null, answer);
    return { done: true };
  } catch (error) {
    const normalized = normalizeError(error);
    // The page learns of a blocked PIN at once; the window stays open to explain what to do.
    if (normalized.code === "pin-blocked") flows.settleKeepingWindow(flow, normalized);
    return { done: false, error: normalized };
  }
}
