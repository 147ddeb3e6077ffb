// The connection to cacbridge-host: a small state machine over a runtime.connectNative port.
// UNINITIALIZED -> CONNECTING -> CONNECTED -> DISCONNECTED (-> CONNECTING on the next request,
// or after a back-off when the port is to stay open or events are wanted). Pure logic: the
// browser API comes in as `connect`, so Node tests drive it with a fake port.

import { COMMANDS, HOST_NAME, PROTOCOL } from "./wire.js";

export { HOST_NAME, PROTOCOL };

/** @typedef {{code: string, message: string, [detail: string]: unknown}} HostError */

/**
 * @typedef {object} PortLike
 * @property {(message: unknown) => void} postMessage
 * @property {() => void} disconnect
 * @property {{addListener: (fn: (message: any) => void) => void}} onMessage
 * @property {{addListener: (fn: (port: any) => void) => void}} onDisconnect
 */

export class NativePort {
  /**
   * @param {object} deps
   * @param {() => PortLike} deps.connect opens the native port
   * @param {(port: any) => string | undefined} [deps.disconnectReason] why it closed
   * @param {(event: string, data: any) => void} [deps.onEvent] host events
   * @param {(state: string) => void} [deps.onState] state changes
   * @param {number} [deps.handshakeTimeout] ms for the version handshake
   * @param {typeof setTimeout} [deps.setTimer]
   * @param {typeof clearTimeout} [deps.clearTimer]
   */
  constructor(deps) {
    this.deps = deps;
    this.state = "uninitialized";
    /** @type {PortLike | null} */
    this.port = null;
    /** @type {Map<string, {resolve: (v: any) => void, reject: (e: HostError) => void, timer: any}>} */
    this.pending = new Map();
    this.nextId = 1;
    /** @type {Promise<{version: string, protocol: number}> | null} */
    this.connecting = null;
    this.hostVersion = null;
    this.wantEvents = false;
    this.stayOpen = false;
    this.backoff = 1000;
    this.reconnectTimer = null;
    // Wrapped: browsers throw "Illegal invocation" when the timer functions get another `this`.
    this.setTimer = deps.setTimer ?? ((/** @type {() => void} */ fn, /** @type {number} */ ms) => setTimeout(fn, ms));
    this.clearTimer = deps.clearTimer ?? ((/** @type {any} */ timer) => clearTimeout(timer));
  }

  /** @param {string} state */
  setState(state) {
    this.state = state;
    this.deps.onState?.(state);
  }

  /** Connect (once) and check the host's protocol. */
  ensureConnected() {
    if (this.state === "connected" && this.port) return Promise.resolve(this.hostVersion);
    if (this.connecting) return this.connecting;
    this.setState("connecting");
    let port;
    try {
      port = this.deps.connect();
    } catch (err) {
      this.setState("disconnected");
      return Promise.reject(hostError("native-unavailable", String(err)));
    }
    this.port = port;
    port.onMessage.addListener((message) => this.receive(message));
    port.onDisconnect.addListener((p) => this.closed(this.deps.disconnectReason?.(p)));
    this.connecting = this.send(COMMANDS.version, {}, this.deps.handshakeTimeout ?? 5000, true)
      .then((version) => {
        if (!version || version.protocol !== PROTOCOL) {
          this.port?.disconnect();
          this.closed("protocol mismatch");
          throw hostError("native-too-old", `the host speaks protocol ${version?.protocol}, this extension ${PROTOCOL}`, {
            hostVersion: version?.version ?? null,
          });
        }
        this.hostVersion = version;
        this.backoff = 1000;
        this.setState("connected");
        if (this.wantEvents) this.send("subscribe", {}, 10000, true).catch(() => {});
        return version;
      })
      .finally(() => {
        this.connecting = null;
      });
    return this.connecting;
  }

  /**
   * One command; resolves with its result or rejects with the host's error object.
   * @param {string} command
   * @param {object} args
   * @param {number} timeout ms
   */
  async request(command, args, timeout) {
    await this.ensureConnected();
    return this.send(command, args, timeout, false);
  }

  /**
   * @param {string} command
   * @param {object} args
   * @param {number} timeout
   * @param {boolean} handshake
   * @returns {Promise<any>}
   */
  send(command, args, timeout, handshake) {
    const id = `r${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = this.setTimer(() => {
        this.pending.delete(id);
        reject(hostError(handshake ? "native-unavailable" : "host-timeout", `no answer to ${command}`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.port?.postMessage({ id, command, arguments: args });
      } catch (err) {
        this.clearTimer(timer);
        this.pending.delete(id);
        reject(hostError("native-unavailable", String(err)));
      }
    });
  }

  /**
   * Connect now and keep the port open: reopen it (after a back-off) whenever the host goes.
   * Asks the host for nothing, so the card is not touched.
   */
  keepOpen() {
    this.stayOpen = true;
    return this.ensureConnected();
  }

  /** Ask for reader and card events, and keep the port open (and reopen it) for them. */
  subscribe() {
    this.wantEvents = true;
    return this.request(COMMANDS.subscribe, {}, 10000);
  }

  /** @param {any} message */
  receive(message) {
    if (message && typeof message.event === "string") {
      this.deps.onEvent?.(message.event, message.data);
      return;
    }
    const entry = message && this.pending.get(message.id);
    if (!entry) return;
    this.pending.delete(message.id);
    this.clearTimer(entry.timer);
    if (message.error) entry.reject(message.error);
    else entry.resolve(message.result);
  }

  /** @param {string | undefined} reason */
  closed(reason) {
    if (this.state === "disconnected" && !this.port) return;
    // An app that had answered and then went away stopped (crashed, was killed); one that
    // never answered is missing. The page's code is the same; what a person reads is not.
    const stopped = this.state === "connected";
    this.port = null;
    this.setState("disconnected");
    // "Specified native messaging host not found.", "No such native application ...",
    // "Native host has exited.": to the page, all mean the app is not usable.
    for (const [id, entry] of this.pending) {
      this.clearTimer(entry.timer);
      entry.reject(hostError("native-unavailable", reason ?? "the CAC Bridge app stopped", stopped ? { stopped: true } : {}));
      this.pending.delete(id);
    }
    if ((this.wantEvents || this.stayOpen) && !this.reconnectTimer) {
      const delay = this.backoff;
      this.backoff = Math.min(this.backoff * 2, 30000);
      this.reconnectTimer = this.setTimer(() => {
        this.reconnectTimer = null;
        this.ensureConnected().catch(() => {});
      }, delay);
    }
  }
}

/**
 * @param {string} code
 * @param {string} message
 * @param {object} [details]
 * @returns {HostError}
 */
export function hostError(code, message, details = {}) {
  return { code, message, ...details };
}
