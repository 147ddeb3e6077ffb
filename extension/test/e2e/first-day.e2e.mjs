// A person's first day (tests/harness/first-day runs it, as root, after `apt install` of the
// packages and `useradd` of a fresh account): each browser runs as that person with a new
// profile and the extension the packages installed (no --load-extension, no test manifest),
// with windows on a virtual display, where the browser's own certificate chooser is answered
// with a key press as a person answers it. CAC Bridge is there; its popup asks for the DoD
// roots and for one restart; after them it is all green; the portal guide registers the CAC
// on the page-API portal and on the mutual-TLS portal.
// CACBRIDGE_E2E_DAY=upgraded: the same profiles after the newer packages went in: the newer
// extension, nothing to set up again, and the person logs in with the CAC on both portals.
// Skipped unless CACBRIDGE_E2E_PERSON is set.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PORTAL_ORIGIN, insertCard, launch, sleep, startDisplay, startPortal } from "./stack.mjs";
import { MTLS_ORIGIN, isCacBridgeWindow, registerPresented, typePinWithKeys } from "./mtls-flows.mjs";
import { choose, clickRegister, dialog, login, screenshot } from "./walk.mjs";

const PERSON = process.env.CACBRIDGE_E2E_PERSON;
const DAY = process.env.CACBRIDGE_E2E_DAY ?? "first";
/** Where the first day leaves each browser's profile and portal records for the upgraded day. */
const KEPT = process.env.CACBRIDGE_E2E_KEPT;
const RELEASE = "/usr/share/cacbridge/extension/release.json";

/** The popup's checklist, as {id: ok}, once it has checked. */
async function checklist(popup) {
  await popup.waitForSelector('li[data-check="card"]', { timeout: 30000 });
  return Object.fromEntries(await popup.$$eval("#checklist li", (items) => items.map((li) => [li.dataset.check, li.dataset.ok === "true"])));
}

async function openPopup(stack, which) {
  const popup = await stack.browser.newPage();
  // Firefox's BiDi never reports an add-on page's navigation as done: the checklist says when
  // the page is there.
  const going = popup.goto(`${stack.base}/ui/popup.html`, { timeout: 60000 }).catch(() => {});
  if (which === "chromium") await going;
  await popup.waitForSelector("#checklist", { timeout: 30000 });
  return popup;
}

/** Every item of the popup green (the module is Chromium's item alone). */
async function assertAllGreen(stack, which, when) {
  const popup = await openPopup(stack, which);
  const items = await checklist(popup);
  for (const id of ["host", "reader", "card", "certificates", "roots", ...(which === "chromium" ? ["module"] : [])]) {
    assert.equal(items[id], true, `${id} ${when}: ${JSON.stringify(items)}`);
  }
  return popup;
}

/**
 * The mutual-TLS portal's guide: CAC/Certificate Registration links to the CAC host; the
 * browser asks which certificate to present (its own dialog), CAC Bridge's window asks for the
 * PIN, the card signs the handshake, the password confirms the registration.
 */
async function registerOnCacHost(stack, which, card, display) {
  const page = await stack.browser.newPage();
  await login(page);
  await page.goto(`${PORTAL_ORIGIN}/account/cac`);
  await page.waitForFunction(() => document.documentElement.dataset.cacbridgeMtls === "ready", { timeout: 20000 });
  const before = card.apdus();
  const navigation = Promise.all([page.waitForNavigation({ timeout: 90000 }), page.click("#mtls-register-link")]);
  navigation.catch(() => {});
  await presentCard(stack, which, card, display);
  await navigation;
  await registerPresented(page, card, before, which, "first-day-mtls-confirmation");
  await page.close();
}

/**
 * The browser asks which certificate to present (its own dialog): Enter takes the one offered,
 * as a person takes it. Then CAC Bridge's window asks for the PIN. Firefox signs the handshake
 * on the thread that also carries the test's connection to it: there the PIN is typed with key
 * presses, as a person types. The chooser is drawn a moment after the click and shows nothing
 * the test can wait for, so Enter is pressed again if CAC Bridge's window did not follow.
 */
async function presentCard(stack, which, card, display) {
  const browserWindow = await display.waitForWindow((name) => (which === "chromium" ? /Chromium$/ : /Mozilla Firefox$/).test(name));
  let pinWindow = null;
  for (let tries = 1; !pinWindow; tries++) {
    await sleep(1500);
    display.enter(browserWindow.id);
    pinWindow = await (which === "chromium" ? dialog(stack.browser, 8000) : display.waitForWindow(isCacBridgeWindow, 8000)).catch((error) => {
      if (tries === 3) throw error;
      return null;
    });
  }
  if (which === "chromium") return choose(pinWindow, card.info.pin);
  await typePinWithKeys(display, pinWindow, card.info.pin);
}

for (const which of ["chromium", "firefox"]) {
  describe(`${which}: a person's ${DAY} day`, { skip: !PERSON && "CACBRIDGE_E2E_PERSON names no person" }, () => {
    let card;
    let display;
    let portal;
    let stack;
    before(async () => {
      card = await insertCard("doe");
      display = await startDisplay();
    });
    after(async () => {
      // The first day's profile stays for the upgraded day (when there is one to come).
      await stack?.close({ keepProfile: DAY === "first" && Boolean(KEPT) });
      await portal?.stop();
      display?.stop();
      await card?.remove();
    });

    if (DAY === "first") {
      test(`${which}: CAC Bridge is there, the popup sets the browser up, the guide registers the CAC on both portals`, async () => {
        stack = await launch(which, { display: display.display });
        const popup = await openPopup(stack, which);
        const items = await checklist(popup);
        assert.equal(items.host, true, "the packaged host answers");
        assert.equal(items.card, true);
        assert.equal(items.roots, false, "a new profile trusts no DoD root");
        if (which === "chromium") {
          // The host's first start registered the module; this browser started before it.
          assert.equal(items.module, false);
          assert.match(await popup.$eval('li[data-check="module"]', (li) => li.textContent), /restart the browser once|Close every window/);
        }
        await screenshot(popup, which, "first-day-popup-before");
        await popup.click("#roots-show");
        await popup.waitForFunction(() => document.querySelectorAll("#roots-table tbody tr").length === 4);
        await popup.click("#roots-trust");
        await popup.waitForFunction(() => document.querySelector('li[data-check="roots"]')?.dataset.ok === "true", { timeout: 20000 });

        // One restart, as the popup asked: the same profile, a new browser.
        const profile = stack.profile;
        await stack.close({ keepProfile: true });
        stack = await launch(which, { reuseProfile: profile, display: display.display });
        const green = await assertAllGreen(stack, which, "after the restart");
        await screenshot(green, which, "first-day-popup-after");
        await green.close();

        // The page-API portal's guide: My Account -> CAC/Certificate Registration -> Register,
        // the PIN in CAC Bridge's window, the confirmation to print.
        portal = await startPortal();
        const page = await stack.browser.newPage();
        await clickRegister(page);
        await Promise.all([page.waitForNavigation({ timeout: 30000 }), choose(await dialog(stack.browser), card.info.pin)]);
        await page.waitForSelector("#confirmation-edipi", { timeout: 20000 });
        assert.equal(await page.$eval("#confirmation-edipi", (el) => el.textContent), card.info.edipi);
        assert.ok(await page.$("#print"), "the confirmation's Print button");
        await screenshot(page, which, "first-day-confirmation");
        await page.close();
        await portal.stop();

        // The mutual-TLS portal's guide; its records are kept for the upgraded day's login.
        const records = `${profile}-portal`;
        portal = await startPortal({ mtls: true, dataDir: records });
        await registerOnCacHost(stack, which, card, display);
        if (KEPT) {
          const kept = existsSync(KEPT) ? JSON.parse(readFileSync(KEPT, "utf8")) : {};
          writeFileSync(KEPT, JSON.stringify({ ...kept, [which]: { profile, records } }));
        }
      });
    } else {
      test(`${which}: after the upgrade: the newer extension, nothing to set up again, the CAC logs in on both portals`, async () => {
        const { profile, records } = JSON.parse(readFileSync(KEPT, "utf8"))[which];
        const { version } = JSON.parse(readFileSync(RELEASE, "utf8"));
        stack = await launch(which, { reuseProfile: profile, display: display.display });
        // The browser finds the newer extension at its start and replaces the running one.
        for (let started = Date.now(); ; ) {
          const popup = await openPopup(stack, which);
          const running = await popup.evaluate(() => (globalThis.browser ?? globalThis.chrome).runtime.getManifest().version).catch(() => null);
          await popup.close().catch(() => {});
          if (running === version) break;
          console.log("running", running, Date.now() - started);
          assert.ok(Date.now() - started < 60000, `the extension is ${running}, not the packages' ${version}`);
          await sleep(1000);
        }
        const popup = await assertAllGreen(stack, which, "after the upgrade");
        if (which === "firefox") {
          // The policy's module, loaded once (Chromium's database is checked by first-day).
          const modules = readFileSync(join(profile, "firefox", "pkcs11.txt"), "utf8").match(/^name=CAC Bridge$/gm) ?? [];
          assert.equal(modules.length, 1, "CAC Bridge's module in the profile once");
        }
        await screenshot(popup, which, "upgraded-popup");
        await popup.close();

        portal = await startPortal({ mtls: true, dataDir: records });
        // Log in with the CAC on the page-API portal: the card the first day registered.
        const page = await stack.browser.newPage();
        await page.goto(`${PORTAL_ORIGIN}/login`);
        await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
        await page.click("#cacbridge-login-button");
        await Promise.all([page.waitForNavigation({ timeout: 30000 }), choose(await dialog(stack.browser), card.info.pin)]);
        assert.ok(page.url().endsWith("/account"), page.url());
        assert.match(await page.content(), /Signed in as <strong>demo<\/strong>/);
        // Log out; log in on the CAC host: the browser presents the card in the handshake.
        await Promise.all([page.waitForNavigation(), page.click("header form button")]);
        const navigation = page.goto(`${MTLS_ORIGIN}/login/cac`, { timeout: 90000 });
        navigation.catch(() => {});
        await presentCard(stack, which, card, display);
        await navigation;
        await Promise.all([page.waitForNavigation({ timeout: 60000 }), page.click("#mtls-login-button")]);
        assert.ok(page.url().startsWith(`${PORTAL_ORIGIN}/account`), page.url());
        assert.match(await page.content(), /Signed in as <strong>demo<\/strong>/);
        await screenshot(page, which, "upgraded-mtls-login");
        await page.close();
      });
    }
  });
}
