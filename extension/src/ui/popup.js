// The toolbar popup: the portal guide's readiness checklist, each failed item with what to do,
// and the guide's fix for 403 errors (clear the portal's site data).

export {};

const api = /** @type {typeof chrome} */ (globalThis.browser ?? globalThis.chrome);

const LABELS = {
  host: "CAC Bridge app installed",
  reader: "Smart card reader found",
  card: "CAC inserted",
  certificates: "PIV Authentication certificate valid",
  module: "Security device loaded (portals that ask for a certificate)",
  roots: "DoD root certificates trusted",
  expiry: "PIV Authentication certificate expires soon",
  portal: "This portal is allowed",
};
const WHAT_TO_DO = {
  host: "Install the CAC Bridge app for your computer (see the portal's help page), then reopen this window.",
  reader: "Connect your smart card reader. If it is connected, unplug it and plug it in again.",
  card: "Insert your CAC into the reader, chip first and face up.",
  certificates: "Take the card out and insert it again. If it still fails, or the certificate has expired, the card needs updating at an ID card office (RAPIDS).",
  module: "Run `cacbridge-host install` (or reinstall CAC Bridge), then restart the browser.",
  roots: "Install the DoD root certificates in this browser (DISA's InstallRoot); without them a DoD portal's CAC host does not load.",
  expiry: "Renew before it expires: certificate updates at ID Card Office Online (idco.dmdc.osd.mil), or a new card at a RAPIDS ID card office (appointments at idco.dmdc.osd.mil).",
  portal: "CAC Bridge only works on portals on its list. Add this portal under Allowed portals, or ask your administrator.",
};

async function activeOrigin() {
  const [tab] = await api.tabs.query({ active: true, currentWindow: true });
  try {
    const url = new URL(tab?.url ?? "");
    return url.protocol === "https:" || url.protocol === "http:" ? url.origin : null;
  } catch {
    return null;
  }
}

async function render() {
  const origin = await activeOrigin();
  const response = await api.runtime.sendMessage({ type: "popup:status", origin });
  const list = /** @type {HTMLElement} */ (document.getElementById("checklist"));
  list.replaceChildren();
  if (!response?.ok) {
    list.textContent = response?.error?.message ?? "CAC Bridge could not check.";
    return;
  }
  for (const item of response.result.items) {
    const li = document.createElement("li");
    li.dataset.check = item.id;
    li.dataset.ok = String(item.ok);
    const head = document.createElement("div");
    const mark = item.ok ? "\u2714" : item.warning ? "\u26A0" : "\u2718";
    head.textContent = `${mark} ${LABELS[/** @type {keyof LABELS} */ (item.id)]}${item.detail ? `: ${item.detail}` : ""}`;
    head.className = item.ok ? "ok" : item.warning ? "warning" : "error";
    li.append(head);
    if (!item.ok) {
      const what = document.createElement("div");
      what.className = "what";
      what.textContent = item.code === "native-too-old"
        ? "Update the CAC Bridge app: this version is too old for the extension."
        : WHAT_TO_DO[/** @type {keyof WHAT_TO_DO} */ (item.id)];
      li.append(what);
    }
    list.append(li);
  }
  const clear = /** @type {HTMLButtonElement} */ (document.getElementById("clear"));
  if (origin) {
    clear.hidden = false;
    clear.onclick = async () => {
      const done = await api.runtime.sendMessage({ type: "popup:clear-site-data", origin });
      const note = /** @type {HTMLElement} */ (document.getElementById("cleared"));
      note.hidden = false;
      note.textContent = done?.ok
        ? `Cleared ${origin}. Now close all browser windows and open the portal again.`
        : `Could not clear: ${done?.error?.message}`;
    };
  }
}

render();
