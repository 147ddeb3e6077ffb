// Editing the allow-list. An administrator's managed list cannot be widened here.

import { effectiveAllowList, matchPatterns, normalizeOrigin } from "../lib/origins.js";

const api = /** @type {typeof chrome} */ (globalThis.browser ?? globalThis.chrome);
const area = /** @type {HTMLTextAreaElement} */ (document.getElementById("origins"));
const saved = /** @type {HTMLElement} */ (document.getElementById("saved"));

async function load() {
  const response = await api.runtime.sendMessage({ type: "options:get" });
  const { origins, managed } = response.result;
  area.value = origins.join("\n");
  /** @type {HTMLElement} */ (document.getElementById("managed")).hidden = !managed;
}

document.getElementById("save")?.addEventListener("click", async () => {
  const lines = area.value.split("\n").map((l) => l.trim()).filter(Boolean);
  const bad = lines.filter((l) => normalizeOrigin(l) === null);
  if (bad.length) {
    saved.textContent = `Not an origin: ${bad.join(", ")}`;
    return;
  }
  const origins = lines.map((l) => /** @type {string} */ (normalizeOrigin(l)));
  // Host access is asked for here, on the click, as browsers require.
  const granted = await api.permissions.request({ origins: matchPatterns(origins) }).catch(() => false);
  if (!granted) {
    saved.textContent = "The browser did not grant access to these sites.";
    return;
  }
  let managed = null;
  try {
    managed = (await api.storage.managed.get("allowList"))?.allowList ?? null;
  } catch {
    managed = null;
  }
  const { origins: effective } = effectiveAllowList({ managed, user: origins });
  await api.storage.local.set({ allowList: effective });
  saved.textContent = `Saved ${effective.length} portals.`;
  area.value = effective.join("\n");
});

load();
