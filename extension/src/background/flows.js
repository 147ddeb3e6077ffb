// The person-facing requests (authenticate, sign): one window a flow, one flow a tab, a
// timeout, and a pause after a cancel. Pure logic: opening and closing windows and the timers
// come in as functions, so Node tests drive it without a browser.

import { hostError } from "../lib/port.js";
import { messageFor } from "../lib/errors.js";

/**
 * @typedef {object} FlowDeps
 * @property {(flowId: string) => Promise<number | null>} openWindow opens the chooser and PIN window; its id
 * @property {(windowId: number) => void} closeWindow
 * @property {number} userTimeout ms the person has to finish
 * @property {number} cancelCooldown ms a tab waits after a cancel
 * @property {() => number} [now]
 * @property {(fn: () => void, ms: number) => any} [setTimer]
 * @property {(timer: any) => void} [clearTimer]
 */

export class Flows {
  /** @param {FlowDeps} deps */
  constructor(deps) {
    // Wrapped: browsers refuse setTimeout called as a method of another object.
    this.deps = {
      now: () => Date.now(),
      setTimer: (/** @type {() => void} */ fn, /** @type {number} */ ms) => setTimeout(fn, ms),
      clearTimer: (/** @type {any} */ timer) => clearTimeout(timer),
      ...deps,
    };
    /** @type {Map<string, any>} */
    this.flows = new Map();
    /** @type {Set<number>} tabs with a flow in progress */
    this.busyTabs = new Set();
    /** @type {Map<number, number>} tab -> when its last window was cancelled */
    this.cancelledAt = new Map();
    this.nextFlow = 1;
  }

  /** @param {string} id */
  get(id) {
    return this.flows.get(id);
  }

  /**
   * Open a window for the person and resolve with the host's answer (or reject). A tab may
   * have one flow at a time, and none for a while after the person cancelled one.
   * @param {{tabId: number, origin: string, action: string, request: any}} details
   */
  async run(details) {
    const { tabId } = details;
    if (this.busyTabs.has(tabId)) throw hostError("action-pending", messageFor("action-pending"));
    const cancelled = this.cancelledAt.get(tabId);
    const since = cancelled === undefined ? Infinity : this.deps.now() - cancelled;
    if (since < this.deps.cancelCooldown) {
      throw hostError("action-throttled", messageFor("action-throttled"), { retryAfterMs: this.deps.cancelCooldown - since });
    }
    this.busyTabs.add(tabId);
    try {
      return await this.open(details);
    } finally {
      this.busyTabs.delete(tabId);
    }
  }

  /** @param {{tabId: number, origin: string, action: string, request: any}} details */
  open(details) {
    return new Promise((resolve, reject) => {
      const id = `f${this.nextFlow++}`;
      /** @type {any} */
      const flow = { id, ...details, resolve, reject, windowId: null, timer: null, settled: false };
      this.flows.set(id, flow);
      flow.timer = this.deps.setTimer(() => this.finish(flow, hostError("user-timeout", messageFor("user-timeout"))), this.deps.userTimeout);
      this.deps
        .openWindow(id)
        .then((windowId) => {
          flow.windowId = windowId;
          if (flow.settled && windowId !== null) this.deps.closeWindow(windowId);
        })
        .catch((err) => this.finish(flow, hostError("internal", String(err))));
    });
  }

  /**
   * End a flow with an error or a result, and close its window.
   * @param {any} flow
   * @param {any} error
   * @param {any} [result]
   */
  finish(flow, error, result) {
    if (!this.settle(flow, error, result)) return;
    if (flow.windowId !== null) this.deps.closeWindow(flow.windowId);
  }

  /**
   * Answer the page but leave the window open (it explains a blocked PIN).
   * @param {any} flow
   * @param {any} error
   */
  settleKeepingWindow(flow, error) {
    this.settle(flow, error);
  }

  /** @param {any} flow @param {any} error @param {any} [result] */
  settle(flow, error, result) {
    if (flow.settled) return false;
    flow.settled = true;
    this.deps.clearTimer(flow.timer);
    this.flows.delete(flow.id);
    if (error) flow.reject(error);
    else flow.resolve(result);
    return true;
  }

  /** The person said no: this tab may not reopen the window for a moment. @param {any} flow */
  cancel(flow) {
    this.cancelledAt.set(flow.tabId, this.deps.now());
    this.finish(flow, hostError("user-cancelled", messageFor("user-cancelled")));
  }

  /** A window was closed by hand: its flow is cancelled. @param {number} windowId */
  windowRemoved(windowId) {
    for (const flow of this.flows.values()) {
      if (flow.windowId === windowId) this.cancel(flow);
    }
  }

  /** @param {number} tabId */
  tabRemoved(tabId) {
    this.cancelledAt.delete(tabId);
  }
}
