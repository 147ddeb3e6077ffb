// What every end-to-end suite does as a person would: sign in, click Register, find CAC Bridge's
// window, choose and type the PIN, and save screenshots; the card, portal and browser a suite
// sets up. Shared by flows.mjs and mtls-flows.mjs.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PORTAL_ORIGIN, insertCard, launch, sleep, startPortal } from "./stack.mjs";

export const WRONG_PIN = "97531864";

/** With CACBRIDGE_SCREENSHOTS=<dir>, save what a person sees at each step (docs/screenshots). */
export async function screenshot(page, which, name) {
  const dir = process.env.CACBRIDGE_SCREENSHOTS;
  if (dir) await page.screenshot({ path: join(dir, `${which}-${name}.png`) });
}

/** The windows already handed to a test: the next one sought is a new one. */
export const seenDialogs = new WeakSet();

/**
 * The extension's chooser and PIN window that opens next, once its list is shown. Found by
 * asking each new page where it is: Firefox's BiDi reports extension windows as about:blank.
 */
export async function dialog(browser, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const page of await browser.pages()) {
      if (seenDialogs.has(page)) continue;
      // Firefox's BiDi reports extension windows as about:blank: ask the page, but never wait on
      // one that is busy (a page mid-handshake does not answer until the handshake ends).
      const asked = page.evaluate(() => location.href).catch(() => "");
      const href = page.url().includes("/ui/dialog.html") ? page.url() : await Promise.race([asked, sleep(1000).then(() => "")]);
      if (!href.includes("/ui/dialog.html")) continue;
      seenDialogs.add(page);
      await page.waitForSelector("input[name=certificate]:checked", { timeout: 20000 });
      await page.waitForSelector("#continue:not([disabled])", { timeout: 20000 });
      return page;
    }
    await sleep(100);
  }
  throw new Error("the CAC Bridge window did not open");
}

/** Choose the preselected certificate and enter a PIN. */
export async function choose(dialogPage, pin) {
  await dialogPage.click("#continue");
  await dialogPage.waitForSelector("#pin-input", { visible: true });
  await dialogPage.type("#pin-input", pin);
  await dialogPage.click("#ok");
}

/**
 * Click a button that closes its own window, and wait until it has. A mouse click races
 * the close (the protocol's mouse-up answer can arrive from a target already gone), so the
 * click is queued in the page. Firefox's BiDi keeps listing a closed extension window: it
 * is gone once it can no longer run a script.
 */
export async function clickClosing(win, selector) {
  await win.$eval(selector, (button) => setTimeout(() => button.click(), 0));
  const deadline = Date.now() + 15000;
  const open = () => win.evaluate(() => true).catch(() => false);
  while (!win.isClosed() && (await open())) {
    if (Date.now() > deadline) assert.fail(`${selector} did not close the window`);
    await sleep(100);
  }
}

export async function login(page) {
  await page.goto(`${PORTAL_ORIGIN}/login`);
  if (page.url().endsWith("/account")) return; // this browser is signed in already
  await page.type("#username", "demo");
  await page.type("#password", "demo-password");
  await Promise.all([page.waitForNavigation(), page.click("#password-login button[type=submit]")]);
}

/** Signed in, on CAC/Certificate Registration with the password typed: click Register. */
export async function clickRegister(page) {
  await login(page);
  await page.goto(`${PORTAL_ORIGIN}/account/cac`);
  await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
  await page.type("#password", "demo-password");
  await page.click("#cacbridge-register-button");
}

/**
 * For one suite: the card "doe" in reader 0, the reference portal and `which` with the
 * extension and host (`options` as `launch` takes them), all stopped after the suite. The
 * suite's tests read them from the returned object once its `before` has run.
 */
export function cardPortalBrowser(which, options) {
  const env = {};
  before(async () => {
    env.card = await insertCard("doe");
    env.portal = await startPortal();
    env.stack = await launch(which, options);
  });
  after(async () => {
    await env.stack?.close();
    await env.portal?.stop();
    await env.card?.remove();
  });
  return env;
}
