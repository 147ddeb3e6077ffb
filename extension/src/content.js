// CAC Bridge content script: runs only on allow-listed portals. It relays the page API
// (window.postMessage) to the extension and completes the portal's CAC forms. It never sees
// a PIN: the chooser and PIN window belong to the extension.
//
// It runs at document_start, so a request a page posts while it loads is queued until the
// extension has said whether this page may use it, never dropped. It may also be injected
// into a tab that was open when the extension arrived; a second run does nothing.
(() => {
  const self_ = /** @type {any} */ (globalThis);
  if (self_.__cacbridgeContent) return;
  self_.__cacbridgeContent = true;
  const api = self_.browser ?? self_.chrome;

  /** Actions that open the extension's window: only on a person's click or key press. */
  const NEEDS_ACTIVATION = ["authenticate", "sign"];
  /** Requests a page may queue before the verdict; more are answered at once. */
  const MAX_QUEUED = 16;
  /**
   * What a person reads for the codes this script answers itself: lib/errors.js's PAGE_ERRORS,
   * put here by scripts/build.mjs (a content script cannot import a module).
   * @type {Record<string, string>}
   */
  const MESSAGES = /* PAGE_ERRORS from lib/errors.js */ {};

  /** @param {object} message */
  const toPage = (message) => window.postMessage(message, window.location.origin);

  /** The page's transient user activation, read in this isolated world the page cannot reach. */
  const activated = () => Boolean(/** @type {any} */ (navigator).userActivation?.isActive);

  /**
   * @param {any} request
   * @param {boolean} userActivation
   */
  const ask = (request, userActivation) =>
    api.runtime
      .sendMessage({ type: "page-request", request, userActivation, documentOrigin: self.origin })
      .catch((/** @type {any} */ err) => {
        // Nobody to receive it: the extension is not running. Anything else: the request
        // reached it, and its background stopped (killed, updated) before answering.
        const unreachable = /Receiving end does not exist|Could not establish connection/i.test(String(err));
        return {
          ok: false,
          error: unreachable
            ? { code: "extension-unavailable", message: MESSAGES["extension-unavailable"] }
            : { code: "extension-restarted", message: MESSAGES["extension-restarted"] },
        };
      });

  /**
   * Answer one page request (after the verdict).
   * @param {any} data
   * @param {boolean} userActivation as it was when the page posted the request
   */
  function handle(data, userActivation) {
    // Only the known fields travel on; in particular no "origin" the page might claim.
    const request = {
      id: data.id,
      action: data.action,
      challengeNonce: data.challengeNonce,
      hash: data.hash,
      hashFunction: data.hashFunction,
    };
    toPage({ type: "cacbridge:ack", id: data.id });
    if (NEEDS_ACTIVATION.includes(data.action) && !userActivation) {
      toPage({
        type: "cacbridge:response",
        id: data.id,
        ok: false,
        error: {
          code: "user-activation-required",
          message: MESSAGES["user-activation-required"],
        },
      });
      return;
    }
    ask(request, userActivation).then((/** @type {any} */ response) => {
      toPage(
        response?.ok
          ? { type: "cacbridge:response", id: data.id, ok: true, result: response.result }
          : { type: "cacbridge:response", id: data.id, ok: false, error: response?.error },
      );
    });
  }

  /** @type {{data: any, userActivation: boolean}[]} requests waiting for the verdict */
  let queue = [];
  /** @type {"waiting" | "allowed" | "refused"} */
  let verdict = "waiting";
  /** @param {MessageEvent} event */
  const onMessage = (event) => {
    if (event.source !== window || event.origin !== window.location.origin) return;
    const data = event.data;
    if (!data || data.type !== "cacbridge:request") return;
    const userActivation = activated();
    if (verdict === "allowed") handle(data, userActivation);
    else if (verdict === "waiting" && queue.length < MAX_QUEUED) queue.push({ data, userActivation });
  };
  window.addEventListener("message", onMessage);

  api.runtime
    .sendMessage({ type: "page-allowed", documentOrigin: self.origin })
    .catch(() => null)
    .then((/** @type {any} */ answer) => {
      const waiting = queue;
      queue = [];
      if (!answer?.ok || !answer.result?.allowed) {
        // Not a portal (or a sandboxed document): stay silent, as if not installed.
        verdict = "refused";
        window.removeEventListener("message", onMessage);
        return;
      }
      verdict = "allowed";
      document.documentElement.dataset.cacbridge = "ready";
      window.dispatchEvent(new CustomEvent("cacbridge:ready"));
      for (const { data, userActivation } of waiting) handle(data, userActivation);
      const enhance = () => {
        enhanceForms();
        if (answer.result.mtlsLink) checkBeforeCacHost(answer.result.mtlsLink);
      };
      if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", enhance, { once: true });
      } else {
        enhance();
      }
    });

  // ---- a portal page that leads to a mutual-TLS CAC host (lib/mtls-profiles.js) -------------
  /** What each readiness item says when it is missing, and what to do. */
  const MISSING = {
    card: "Insert your CAC into the reader.",
    certificates: "Your CAC has no valid PIV Authentication certificate: take it out and insert it again; if it has expired, an ID card office (RAPIDS) updates it.",
    module: "CAC Bridge's security device is not loaded in this browser: run `cacbridge-host install`, then restart the browser.",
    roots: "This browser does not trust the DoD root certificates yet: install them (DISA's InstallRoot), or the CAC host will not load.",
  };

  /**
   * Say, next to the link to the CAC host, whether everything it needs is there. The page can
   * read only whether it is ready (`data-cacbridge-mtls`): what the person is told (what is
   * missing, what to do) is in a closed shadow root, out of reach of the page's scripts, so the
   * portal learns neither the card's state nor anything about its certificate.
   * @param {string} selector the profile's link or button
   */
  function checkBeforeCacHost(selector) {
    let link;
    try {
      link = document.querySelector(selector);
    } catch {
      return; // a malformed selector in a policy
    }
    if (!link) return;
    const holder = document.createElement("div");
    holder.id = "cacbridge-mtls-readiness";
    link.before(holder);
    const banner = document.createElement("div");
    banner.setAttribute("role", "status");
    banner.style.cssText = "border:1px solid #1f3a5f;padding:0.5em 0.75em;margin:0.5em 0;font-weight:600";
    holder.attachShadow({ mode: "closed" }).append(banner);
    const check = async () => {
      const answer = await api.runtime.sendMessage({ type: "mtls-readiness", documentOrigin: self.origin }).catch(() => null);
      const result = answer?.ok ? answer.result : null;
      const missing = result ? result.items.filter((/** @type {any} */ i) => !i.ok) : [];
      banner.replaceChildren();
      if (!result?.host) {
        banner.textContent = "CAC Bridge is not running: install the CAC Bridge app, then reload this page.";
      } else if (!missing.length) {
        banner.textContent = "CAC Bridge: your CAC and this browser are ready for the CAC host.";
      } else {
        banner.append("Before you continue, CAC Bridge found something missing:");
        const list = document.createElement("ul");
        for (const item of missing) {
          const li = document.createElement("li");
          li.dataset.missing = item.id;
          li.textContent = MISSING[/** @type {keyof typeof MISSING} */ (item.id)] ?? item.id;
          list.append(li);
        }
        banner.append(list);
      }
      banner.style.color = result?.host && !missing.length ? "#1f3a5f" : "#a00";
      document.documentElement.dataset.cacbridgeMtls = result?.host && !missing.length ? "ready" : "missing";
    };
    check();
    // Checked again when the person comes back to the page (a card inserted meanwhile).
    window.addEventListener("focus", () => void check());
    document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && void check());
  }

  // ---- the portal's CAC forms (docs/portal-integration.md) ---------------------------------
  function enhanceForms() {
    /** Page kind -> the form CAC Bridge completes with a token. */
    const FORMS = { "cac-registration": "cacbridge-register", "cac-login": "cacbridge-login", "cac-link": "cacbridge-link" };
    const kind = document.querySelector('meta[name="cacbridge-page"]')?.getAttribute("content") ?? "";
    const formId = FORMS[/** @type {keyof typeof FORMS} */ (kind)] ?? null;
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
      // A script's form.submit() fires no submit event; requestSubmit() without a click has
      // no activation and is refused by the background.
      const response = await ask({ id: `form-${Date.now()}`, action: "authenticate", challengeNonce: challenge }, activated());
      busy = false;
      if (!response?.ok) return say(response?.error?.message ?? "CAC Bridge could not complete the request.", true);
      const field = /** @type {HTMLInputElement | null} */ (form.elements.namedItem("cacbridge_token"));
      if (!field) return say("This page's form has no place for the CAC token.", true);
      field.value = JSON.stringify(response.result);
      form.dataset.cacbridgeDone = "1";
      say("Card verified. Sending...", false);
      form.submit();
    });
  }
})();
