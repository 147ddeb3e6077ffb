// A person's first day (tests/harness/first-day runs it, as root, after `apt install` of the
// packages and `useradd` of a fresh account): each browser runs as that person with a new
// profile and the extension the packages installed (no --load-extension, no test manifest).
// CAC Bridge is there; its popup asks for the DoD roots and for one restart; after them it is
// all green; the portal guide registers the CAC. Skipped unless CACBRIDGE_E2E_PERSON is set.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { insertCard, launch, startPortal } from "./stack.mjs";
import { choose, clickRegister, dialog, screenshot } from "./walk.mjs";

const PERSON = process.env.CACBRIDGE_E2E_PERSON;

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

for (const which of ["chromium", "firefox"]) {
  describe(`${which}: a person's first day`, { skip: !PERSON && "CACBRIDGE_E2E_PERSON names no person" }, () => {
    let card;
    let portal;
    let stack;
    before(async () => {
      card = await insertCard("doe");
      portal = await startPortal();
    });
    after(async () => {
      await stack?.close();
      await portal?.stop();
      await card?.remove();
    });

    test(`${which}: CAC Bridge is there, the popup sets the browser up, the guide registers the CAC`, async () => {
      stack = await launch(which);
      let popup = await openPopup(stack, which);
      let items = await checklist(popup);
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
      stack = await launch(which, { reuseProfile: profile });
      popup = await openPopup(stack, which);
      items = await checklist(popup);
      for (const id of ["host", "reader", "card", "certificates", "roots", ...(which === "chromium" ? ["module"] : [])]) {
        assert.equal(items[id], true, `${id} after the restart: ${JSON.stringify(items)}`);
      }
      await screenshot(popup, which, "first-day-popup-after");
      await popup.close();

      // The portal guide: My Account -> CAC/Certificate Registration -> Register, the PIN in
      // CAC Bridge's window, the confirmation to print.
      const page = await stack.browser.newPage();
      await clickRegister(page);
      const win = await dialog(stack.browser);
      await Promise.all([page.waitForNavigation({ timeout: 30000 }), choose(win, card.info.pin)]);
      await page.waitForSelector("#confirmation-edipi", { timeout: 20000 });
      assert.equal(await page.$eval("#confirmation-edipi", (el) => el.textContent), card.info.edipi);
      assert.ok(await page.$("#print"), "the confirmation's Print button");
      await screenshot(page, which, "first-day-confirmation");
      await page.close();
    });
  });
}
