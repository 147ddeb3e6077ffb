// CAC Bridge page API, promise style. A portal includes this file (or copies it) and calls
//   await CACBridge.status()
//   await CACBridge.listCertificates()
//   await CACBridge.authenticate({ challengeNonce })
//   await CACBridge.sign({ hash, hashFunction })
// Errors reject with an Error whose `code` is stable (docs/page-api.md).
// Calls wait until the extension says it is ready (the cacbridge:ready event, or
// data-cacbridge="ready" on <html>), so nothing is posted into the void.
(() => {
  const READY_TIMEOUT = 2000;
  const ACK_TIMEOUT = 2000;
  const RESPONSE_TIMEOUT = 180000;
  let next = 1;

  /** Resolves when the content script is ready, or after READY_TIMEOUT (then the ack decides). */
  function ready() {
    if (document.documentElement.dataset.cacbridge === "ready") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        window.removeEventListener("cacbridge:ready", done);
        resolve(undefined);
      };
      const timer = setTimeout(done, READY_TIMEOUT);
      window.addEventListener("cacbridge:ready", done);
    });
  }

  /** @param {string} action @param {object} params */
  async function call(action, params = {}) {
    await ready();
    const id = `cb-${Date.now()}-${next++}`;
    return new Promise((resolve, reject) => {
      let acked = false;
      const fail = (/** @type {string} */ code, /** @type {string} */ message) => {
        cleanup();
        reject(Object.assign(new Error(message), { code }));
      };
      const ackTimer = setTimeout(() => {
        if (!acked) fail("extension-unavailable", "The CAC Bridge extension is not installed or not enabled for this site.");
      }, ACK_TIMEOUT);
      const responseTimer = setTimeout(() => fail("user-timeout", "No answer from CAC Bridge."), RESPONSE_TIMEOUT);
      const listener = (/** @type {MessageEvent} */ event) => {
        if (event.source !== window || !event.data || event.data.id !== id) return;
        if (event.data.type === "cacbridge:ack") {
          acked = true;
        } else if (event.data.type === "cacbridge:response") {
          cleanup();
          if (event.data.ok) resolve(event.data.result);
          else {
            const error = event.data.error ?? {};
            reject(Object.assign(new Error(error.message ?? "CAC Bridge failed"), error));
          }
        }
      };
      function cleanup() {
        clearTimeout(ackTimer);
        clearTimeout(responseTimer);
        window.removeEventListener("message", listener);
      }
      window.addEventListener("message", listener);
      window.postMessage({ type: "cacbridge:request", id, action, ...params }, window.location.origin);
    });
  }

  /** @type {any} */ (window).CACBridge = Object.freeze({
    status: () => call("status"),
    listCertificates: () => call("list-certificates"),
    authenticate: (/** @type {{challengeNonce: string}} */ p) => call("authenticate", { challengeNonce: p.challengeNonce }),
    sign: (/** @type {{hash: string, hashFunction: string}} */ p) => call("sign", { hash: p.hash, hashFunction: p.hashFunction }),
  });
})();
