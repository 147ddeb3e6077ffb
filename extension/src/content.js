// CAC Bridge content script: runs only on allow-listed portals. It relays the page API
// (window.postMessage) to the extension and completes the portal's CAC forms. It never sees
// a PIN: the chooser and PIN window belong to the extension.
(async () => {
  const api = globalThis.browser ?? globalThis.chrome;
  if (document.documentElement.dataset.cacbridge) return;
  document.documentElement.dataset.cacbridge = "starting";
  // The browser ran this script because the host is on the allow-list; where patterns cannot
  // name a port (Firefox) the background still decides, by the exact origin.
  const verdict = await api.runtime.sendMessage({ type: "page-allowed" }).catch(() => null);
  if (!verdict?.ok || !verdict.result?.allowed) {
    delete document.documentElement.dataset.cacbridge;
    return;
  }
  document.documentElement.dataset.cacbridge = "ready";

  /** @param {object} message */
  const toPage = (message) => window.postMessage(message, window.location.origin);

  /** @param {any} request */
  const ask = (request) =>
    api.runtime.sendMessage({ type: "page-request", request }).catch((/** @type {any} */ err) => ({
      ok: false,
      error: { code: "extension-unavailable", message: String(err) },
    }));

  // ---- page API ---------------------------------------------------------------------------
  window.addEventListener("message", (event) => {
    if (event.source !== window || event.origin !== window.location.origin) return;
    const data = event.data;
    if (!data || data.type !== "cacbridge:request") return;
    // Only the known fields travel on; in particular no "origin" the page might claim.
    const request = {
      id: data.id,
      action: data.action,
      challengeNonce: data.challengeNonce,
      hash: data.hash,
      hashFunction: data.hashFunction,
    };
    toPage({ type: "cacbridge:ack", id: data.id });
    ask(request).then((/** @type {any} */ response) => {
      toPage(
        response?.ok
          ? { type: "cacbridge:response", id: data.id, ok: true, result: response.result }
          : { type: "cacbridge:response", id: data.id, ok: false, error: response?.error },
      );
    });
  });
  window.dispatchEvent(new CustomEvent("cacbridge:ready"));

  // ---- the portal's CAC forms (docs/portal-integration.md) ---------------------------------
  const kind = document.querySelector('meta[name="cacbridge-page"]')?.getAttribute("content");
  const formId = kind === "cac-registration" ? "cacbridge-register" : kind === "cac-login" ? "cacbridge-login" : null;
  const form = formId ? /** @type {HTMLFormElement | null} */ (document.getElementById(formId)) : null;
  if (!form) return;

  const banner = document.createElement("p");
  banner.id = "cacbridge-status";
  banner.setAttribute("role", "status");
  banner.hidden = true;
  form.append(banner);
  /** @param {string} text @param {boolean} error */
  const say = (text, error) => {
    banner.hidden = false;
    banner.textContent = text;
    banner.style.color = error ? "#a00" : "#1f3a5f";
    banner.style.fontWeight = "600";
  };

  let busy = false;
  form.addEventListener("submit", async (event) => {
    if (form.dataset.cacbridgeDone) return;
    event.preventDefault();
    if (busy || !form.reportValidity()) return;
    const challenge = document.querySelector('meta[name="cacbridge-challenge"]')?.getAttribute("content");
    if (!challenge) return say("This page has no CAC challenge. Reload it.", true);
    busy = true;
    say("Continue in the CAC Bridge window: choose your certificate and enter your PIN there.", false);
    const response = await ask({ id: `form-${Date.now()}`, action: "authenticate", challengeNonce: challenge });
    busy = false;
    if (!response?.ok) return say(response?.error?.message ?? "CAC Bridge could not complete the request.", true);
    const field = /** @type {HTMLInputElement | null} */ (form.elements.namedItem("cacbridge_token"));
    if (!field) return say("This page's form has no place for the CAC token.", true);
    field.value = JSON.stringify(response.result);
    form.dataset.cacbridgeDone = "1";
    say("Card verified. Sending...", false);
    form.submit();
  });
})();
