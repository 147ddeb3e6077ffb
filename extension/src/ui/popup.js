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
  roots: "Without them a DoD portal's CAC host does not load. CAC Bridge can trust them in this browser, for web sites only:",
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
        : item.restart
          ? "Close every window of this browser and start it again (once): it loads CAC Bridge's security device at its start."
          : WHAT_TO_DO[/** @type {keyof WHAT_TO_DO} */ (item.id)];
      li.append(what);
      if (item.id === "roots") {
        const show = document.createElement("button");
        show.type = "button";
        show.id = "roots-show";
        show.textContent = "Show the DoD roots\u2026";
        show.onclick = () => showRoots();
        li.append(show);
      }
    }
    list.append(li);
  }
  await offerRemoval();
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

/** The DoD roots and where they stand in this browser, from the host. */
async function dodRoots() {
  const answer = await api.runtime.sendMessage({ type: "popup:dod-roots" });
  return answer?.ok ? /** @type {{name: string, sha256: string, notAfter: string, trusted: boolean, addedByCacBridge: boolean}[]} */ (answer.result.roots) : null;
}

/** What the person confirms: each root's name, fingerprint and end of validity. */
async function showRoots() {
  const roots = await dodRoots();
  const section = /** @type {HTMLElement} */ (document.getElementById("roots-consent"));
  const body = /** @type {HTMLElement} */ (document.querySelector("#roots-table tbody"));
  body.replaceChildren(
    ...(roots ?? []).map((root) => {
      const row = document.createElement("tr");
      for (const text of [root.name, root.sha256, root.notAfter.slice(0, 10)]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }),
  );
  section.hidden = false;
  /** @type {HTMLButtonElement} */ (document.getElementById("roots-trust")).onclick = () => changeRoots(true);
  /** @type {HTMLButtonElement} */ (document.getElementById("roots-cancel")).onclick = () => {
    section.hidden = true;
  };
  /** @type {HTMLElement} */ (document.getElementById("roots-title")).focus?.();
}

/** Trust (or take out) the DoD roots, then check again. */
async function changeRoots(/** @type {boolean} */ trust) {
  const done = await api.runtime.sendMessage({ type: "popup:trust-dod-roots", trust });
  /** @type {HTMLElement} */ (document.getElementById("roots-consent")).hidden = true;
  const note = /** @type {HTMLElement} */ (document.getElementById("roots-done"));
  note.hidden = false;
  note.textContent = done?.ok
    ? trust
      ? "The DoD root certificates are trusted in this browser, for web sites."
      : "The DoD root certificates CAC Bridge added are removed."
    : `Could not change them: ${done?.error?.message}`;
  await render();
}

/** Roots CAC Bridge added can be taken out again. */
async function offerRemoval() {
  const remove = /** @type {HTMLButtonElement} */ (document.getElementById("roots-remove"));
  const roots = await dodRoots();
  remove.hidden = !roots?.some((root) => root.addedByCacBridge);
  remove.onclick = () => changeRoots(false);
}

render();
