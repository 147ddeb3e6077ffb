// The certificate chooser and PIN window. The PIN goes from this window to the background
// and on to the host; nothing else sees it, and nothing stores it.

import { EVENTS, PIN } from "../lib/wire.js";

const api = /** @type {typeof chrome} */ (globalThis.browser ?? globalThis.chrome);
const flow = new URLSearchParams(location.search).get("flow");
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

// The host's PIN rule, so the window refuses what the host would.
{
  const input = /** @type {HTMLInputElement} */ (document.getElementById("pin-input"));
  input.minLength = PIN.min;
  input.maxLength = PIN.max;
  input.pattern = `[0-9]{${PIN.min},${PIN.max}}`;
}

// A line to the background while this window is open: it breaks only when the background
// stops (its service worker killed), and the request this window served went with it.
const lifeline = api.runtime.connect({ name: "dialog" });
lifeline.onDisconnect.addListener(() => {
  $("failed-message").textContent =
    "CAC Bridge restarted while it was working on this request. Close this window and try again from the page.";
  show("failed");
});

/** @type {any} */
let details = null;
/** @type {string | null} */
let selected = null;

/** @param {string} section */
function show(section) {
  for (const id of ["choose", "pin", "blocked", "failed"]) $(id).hidden = id !== section;
}

/** @param {any} message */
async function send(message) {
  const response = await api.runtime.sendMessage({ ...message, flow });
  if (!response?.ok) throw response?.error ?? { code: "internal", message: "no answer" };
  return response.result;
}

/** Base64 to upper-case hex in groups of four bytes, as a person compares fingerprints. @param {string} base64 */
function hexGroups(base64) {
  const bytes = Array.from(atob(base64), (c) => c.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase());
  const groups = [];
  for (let i = 0; i < bytes.length; i += 4) groups.push(bytes.slice(i, i + 4).join(""));
  return groups.join(" ");
}

function renderChooser() {
  const list = $("certificates");
  list.replaceChildren();
  for (const entry of details.entries) {
    const item = document.createElement("li");
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "certificate";
    radio.value = entry.id;
    radio.disabled = !entry.selectable;
    radio.checked = entry.id === details.preselected;
    radio.addEventListener("change", () => (selected = entry.id));
    const text = document.createElement("span");
    const lines = [
      `${entry.name}${entry.edipi ? ` (DoD ID ${entry.edipi})` : ""}`,
      `${entry.role}, issued by ${entry.issuer}`,
      entry.expired ? `EXPIRED on ${entry.expires}` : `Expires ${entry.expires}`,
    ];
    for (const line of lines) {
      const div = document.createElement("div");
      div.textContent = line;
      if (line.startsWith("EXPIRED")) div.className = "error";
      text.append(div);
    }
    label.append(radio, text);
    item.append(label);
    item.dataset.certificateId = entry.id;
    list.append(item);
  }
  selected = details.preselected;
  $("no-certificates").hidden = details.entries.some((/** @type {any} */ e) => e.selectable);
  /** @type {HTMLButtonElement} */ ($("continue")).disabled = !selected;
}

function triesFor(reader) {
  const status = details.readers.find((/** @type {any} */ r) => r.name === reader);
  return status?.pinRetriesLeft ?? null;
}

async function load() {
  details = await send({ type: "dialog:get" });
  const verb = details.action === "sign" ? "sign a document for" : "sign in to";
  $("purpose").textContent =
    details.action !== "tls"
      ? `${details.origin} asks to use your CAC to ${verb} it.`
      : details.origin
        ? // A guess (the one page loading when the module asked), said as one.
          `This browser asks for your CAC certificate to sign you in to a site, most likely ${details.origin} (the page now loading; the browser does not say for certain).`
        : "This browser asks for your CAC certificate to sign you in to a site. It does not say which: go on only if you just opened a portal that uses your CAC.";
  $("document-signature").hidden = details.action !== "sign";
  if (details.action === "sign") {
    $("sign-origin").textContent = details.origin;
    $("sign-hash-label").textContent = `Document hash (${details.hashFunction})`;
    $("sign-hash").textContent = hexGroups(details.hash);
  }
  if (details.error) {
    $("card-state").hidden = false;
    $("card-state").textContent = details.error.message;
  }
  renderChooser();
  show("choose");
  // The preselected certificate is one Enter away for a keyboard user.
  if (selected) /** @type {HTMLButtonElement} */ ($("continue")).focus();
}

function cancel() {
  send({ type: "dialog:cancel" }).finally(() => window.close());
}

$("cancel-choose").addEventListener("click", cancel);
$("cancel-pin").addEventListener("click", cancel);
$("close-blocked").addEventListener("click", () => window.close());
$("close-failed").addEventListener("click", cancel);

$("continue").addEventListener("click", () => {
  const entry = details.entries.find((/** @type {any} */ e) => e.id === selected);
  if (!entry) return;
  $("pin-for").textContent = `${entry.name}: ${entry.role}`;
  const tries = triesFor(entry.reader);
  $("tries").hidden = tries === null;
  $("tries").textContent = tries === null ? "" : `${tries} ${tries === 1 ? "try" : "tries"} left before the PIN blocks.`;
  show("pin");
  /** @type {HTMLInputElement} */ ($("pin-input")).focus();
});

$("pin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($("pin-input"));
  const ok = /** @type {HTMLButtonElement} */ ($("ok"));
  ok.disabled = true;
  $("pin-error").hidden = true;
  const pin = input.value;
  input.value = ""; // the field never keeps the PIN
  try {
    const result = await send({ type: "dialog:submit", certificateId: selected, pin });
    if (result.done) return; // the background closes this window
    const error = result.error;
    if (error.code === "pin-blocked") return show("blocked");
    if (error.code === "pin-incorrect") {
      const left = error.retriesLeft;
      $("pin-error").textContent = left === null || left === undefined
        ? "Wrong PIN."
        : `Wrong PIN. ${left} ${left === 1 ? "try" : "tries"} left before the PIN blocks.`;
      $("pin-error").hidden = false;
      $("tries").hidden = true;
    } else {
      $("pin-error").textContent = error.message;
      $("pin-error").hidden = false;
    }
  } catch (error) {
    $("failed-message").textContent = /** @type {any} */ (error).message ?? String(error);
    show("failed");
  } finally {
    ok.disabled = false;
    input.focus();
  }
});

// Card removed or inserted while the window is open: say so, and refresh the list.
api.runtime.onMessage.addListener((message) => {
  if (message?.type !== "card-event") return;
  const state = $("card-state");
  if (message.event === EVENTS.cardRemoved) {
    state.hidden = false;
    state.textContent = `The card was removed from ${message.data.reader}. Insert your CAC.`;
  } else if (message.event === EVENTS.cardInserted) {
    state.hidden = false;
    state.textContent = `Card inserted in ${message.data.reader}.`;
    load().catch(() => {});
  }
});

load().catch((error) => {
  $("failed-message").textContent = error?.message ?? String(error);
  show("failed");
});
