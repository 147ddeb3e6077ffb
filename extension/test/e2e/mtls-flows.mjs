// A mutual-TLS portal, as the portal guide is walked on one: the browser presents the card's
// certificate in the TLS handshake through CAC Bridge's PKCS#11 module (registered by
// `cacbridge-host install`), and the PIN is typed in CAC Bridge's window.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PORTAL_ORIGIN, ROOT, insertCard, launch, sleep, startDisplay, startPortal } from "./stack.mjs";
import { WRONG_PIN, choose, dialog, login, screenshot } from "./walk.mjs";

export const MTLS_ORIGIN = "https://localhost:8444";

/**
 * The document with every shadow root, closed ones included, as the browser's inspector sees it
 * (Chromium's CDP).
 * @param {import("puppeteer-core").Page} page
 */
async function piercedDocument(page) {
  const cdp = await page.createCDPSession();
  const { root } = await cdp.send("DOM.getDocument", { depth: -1, pierce: true });
  await cdp.detach();
  return root;
}

/** @param {any} node @param {(node: any) => void} visit */
function walkNodes(node, visit) {
  visit(node);
  for (const child of [...(node.children ?? []), ...(node.shadowRoots ?? [])]) walkNodes(child, visit);
}

/** The `data-missing` items of CAC Bridge's readiness note. @param {import("puppeteer-core").Page} page */
async function shadowMissing(page) {
  const found = [];
  walkNodes(await piercedDocument(page), (node) => {
    const attributes = node.attributes ?? [];
    for (let i = 0; i < attributes.length; i += 2) if (attributes[i] === "data-missing") found.push(attributes[i + 1]);
  });
  return found;
}

/**
 * After the handshake: the CAC host shows the card the browser presented, under TLS 1.3 and
 * signed on the card (GENERAL AUTHENTICATE in its APDU log since `before`); the password
 * registers it, and the confirmation names the holder (saved as screenshot `shot`).
 */
export async function registerPresented(page, card, before, which, shot) {
  await page.waitForSelector("#mtls-presented", { timeout: 20000 });
  assert.equal(await page.$eval("#mtls-presented", (el) => el.textContent), card.info.cn);
  assert.equal(await page.$eval("#mtls-protocol", (el) => el.textContent), "TLS 1.3");
  assert.ok(card.apduHeaders().slice(before).some((h) => h.startsWith("0087")), "the card signed the handshake");
  await page.type("#password", "demo-password");
  await Promise.all([page.waitForNavigation({ timeout: 30000 }), page.click("#mtls-register-button")]);
  await page.waitForSelector("#confirmation-holder", { timeout: 20000 });
  assert.equal(await page.$eval("#confirmation-holder", (el) => el.textContent), card.info.cn);
  await screenshot(page, which, shot);
}

/** The text inside the readiness note's closed shadow root. @param {import("puppeteer-core").Page} page */
async function shadowText(page) {
  let note = null;
  walkNodes(await piercedDocument(page), (node) => {
    const attributes = node.attributes ?? [];
    for (let i = 0; i < attributes.length; i += 2) {
      if (attributes[i] === "id" && attributes[i + 1] === "cacbridge-mtls-readiness") note = node;
    }
  });
  let text = "";
  if (note) walkNodes(note, (node) => node.nodeType === 3 && (text += node.nodeValue));
  return text;
}

/** CAC Bridge's window on a display, by its name (the portal's own windows are not it). */
export const isCacBridgeWindow = (/** @type {string} */ name) => /CAC Bridge/.test(name) && !/Portal/.test(name);

/**
 * In CAC Bridge's window `win` on `display`, with key presses as a person's: Continue (the PIV
 * Authentication certificate is preselected), then the PIN and Enter (OK). For Firefox, whose
 * automation channel the waiting handshake blocks.
 */
export async function typePinWithKeys(display, win, pin) {
  await sleep(1000); // its list shown and Continue focused
  display.enter(win.id);
  await sleep(500);
  display.typeInto(win.id, pin);
}

export function mtlsSuite(which, { cardName = "doe", full = true } = {}) {
  let portal;
  let card;
  let stack;
  // Firefox signs the handshake on its socket thread, which also carries the WebDriver BiDi
  // connection: while the handshake waits for the PIN, the test cannot drive the browser. So
  // Firefox runs with windows on a virtual display, and the PIN is typed into CAC Bridge's
  // window with key presses from outside the browser, as a person types.
  let display;
  before(async () => {
    card = await insertCard(cardName);
    portal = await startPortal({ mtls: true });
    if (which === "firefox") display = await startDisplay();
    const clientCertificateFor = { origins: [MTLS_ORIGIN], cn: card.info.cn, issuer: "CACBRIDGE TEST ID CA-1" };
    stack = await launch(which, { clientCertificateFor, display: display?.display });
  });
  after(async () => {
    await stack?.close();
    display?.stop();
    await portal?.stop();
    await card?.remove();
  });

  if (which === "firefox") {
    test(`firefox, ${cardName}: register on a mutual-TLS portal: the card signs the handshake after the PIN typed in CAC Bridge's window`, async () => {
      const page = await stack.browser.newPage();
      await login(page);
      const before = card.apdus();
      const navigation = page.goto(`${MTLS_ORIGIN}/account/cac`, { timeout: 90000 });
      navigation.catch(() => {});
      await typePinWithKeys(display, await display.waitForWindow(isCacBridgeWindow), card.info.pin);
      await navigation;
      await registerPresented(page, card, before, which, "mtls-confirmation");
      await page.close();
    });
    return;
  }

  if (full) {
    test(`${which}: before the click to the CAC host, the portal page says what is missing`, async () => {
      const page = await stack.browser.newPage();
      await login(page);
      // CAC/Certificate Registration on the main host links to the CAC host: the profile.
      await page.goto(`${PORTAL_ORIGIN}/account/cac`);
      await page.waitForFunction(() => document.documentElement.dataset.cacbridgeMtls, { timeout: 20000 });
      // The test PKI's portal: card, certificate and module are there, DoD roots are not.
      assert.equal(await page.evaluate(() => document.documentElement.dataset.cacbridgeMtls), "missing");
      // What the person reads is out of the page's reach (a closed shadow root): the page's
      // own scripts see an empty element; the browser's inspector (CDP) shows what is there.
      assert.deepEqual(
        await page.$eval("#cacbridge-mtls-readiness", (el) => [el.shadowRoot, el.textContent, el.innerText, el.children.length]),
        [null, "", "", 0],
      );
      assert.deepEqual(await shadowMissing(page), ["roots"]);
      await screenshot(page, which, "mtls-readiness-missing");
      // The person trusts the DoD roots from CAC Bridge's popup, having seen what they are.
      const popup = await stack.browser.newPage();
      await popup.goto(`${stack.base}/ui/popup.html`);
      await popup.waitForSelector("#roots-show");
      await screenshot(popup, which, "popup-roots-missing");
      await popup.click("#roots-show");
      await popup.waitForFunction(() => document.querySelectorAll("#roots-table tbody tr").length === 4);
      const shown = await popup.$$eval("#roots-table tbody tr", (rows) => rows.map((row) => [...row.cells].map((cell) => cell.textContent)));
      const bundle = readFileSync(join(ROOT, "cert/data/dod-ca-bundle-v5.14.pem"), "utf8");
      const fingerprints = new Map(
        bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g).map((pem) => {
          const out = spawnSync("openssl", ["x509", "-noout", "-subject", "-fingerprint", "-sha256"], { input: pem, encoding: "utf8" }).stdout;
          return [out.match(/CN ?= ?([^\n,]+)/)[1].trim(), out.match(/Fingerprint=(.+)/)[1].trim()];
        }),
      );
      assert.deepEqual(shown.map(([name]) => name), ["DoD Root CA 3", "DoD Root CA 4", "DoD Root CA 5", "DoD Root CA 6"]);
      for (const [name, sha256] of shown) assert.equal(sha256, fingerprints.get(name), `${name}'s fingerprint as openssl reads it`);
      await screenshot(popup, which, "popup-roots-consent");
      await popup.click("#roots-trust");
      await popup.waitForFunction(() => document.querySelector('li[data-check="roots"]')?.dataset.ok === "true", { timeout: 20000 });
      await popup.waitForSelector("#roots-remove:not([hidden])", { timeout: 10000 }); // removable
      await screenshot(popup, which, "popup-roots-trusted");
      // Trusted for web sites only, as NSS's own tool lists them.
      const database = `sql:${join(stack.home, ".pki/nssdb")}`;
      const listing = spawnSync("certutil", ["-L", "-d", database], { encoding: "utf8" }).stdout;
      for (const name of fingerprints.keys()) {
        if (!/^DoD Root CA/.test(name)) continue;
        assert.match(listing, new RegExp(`${name}\\s+C,,\\s*$`, "m"), listing);
      }
      await page.bringToFront();
      await page.reload();
      await page.waitForFunction(() => document.documentElement.dataset.cacbridgeMtls, { timeout: 20000 });
      assert.equal(await page.evaluate(() => document.documentElement.dataset.cacbridgeMtls), "ready");
      assert.match(await shadowText(page), /ready for the CAC host/);
      await screenshot(page, which, "mtls-readiness");
      // And removable: what CAC Bridge added goes again.
      await popup.bringToFront();
      await popup.click("#roots-remove");
      await popup.waitForFunction(() => document.querySelector('li[data-check="roots"]')?.dataset.ok === "false", { timeout: 20000 });
      assert.doesNotMatch(spawnSync("certutil", ["-L", "-d", database], { encoding: "utf8" }).stdout, /DoD Root CA/);
      await popup.close();
      await page.close();
    });
  }

  test(`${which}, ${cardName}: register on a mutual-TLS portal: the card signs the handshake after the PIN in CAC Bridge's window`, async () => {
    const page = await stack.browser.newPage();
    // Signed in on the portal, whose allow-listed page starts CAC Bridge in this browser.
    await login(page);
    const before = card.apdus();
    // My Account -> CAC/Certificate Registration, then on to the portal's CAC host.
    await page.goto(`${PORTAL_ORIGIN}/account/cac`);
    // CAC Bridge's readiness note appears above the link first (and moves it down).
    await page.waitForFunction(() => document.documentElement.dataset.cacbridgeMtls, { timeout: 20000 });
    const navigation = Promise.all([page.waitForNavigation({ timeout: 60000 }), page.click("#mtls-register-link")]);
    navigation.catch(() => {});
    const win = await dialog(stack.browser).catch(async (error) => {
      // What the host saw, to tell a module that never asked from a window that never opened.
      console.log(stack.hostLog().split("\n").filter((l) => /local|tls|TLS|window/.test(l)).slice(-30).join("\n"));
      for (const p of await stack.browser.pages()) {
        console.log("PAGE", p.url(), await p.evaluate(() => document.body?.innerText?.slice(0, 400)).catch((e) => String(e)));
      }
      throw error;
    });
    // The site is a guess (the tab loading the CAC host, an allowed origin), said as one; the
    // program that asked is this browser (the host answers nothing else).
    assert.equal(
      await win.$eval("#purpose", (el) => el.textContent),
      `This browser asks for your CAC certificate to sign you in to a site, most likely ${MTLS_ORIGIN} (the page now loading; the browser does not say for certain).`,
    );
    await screenshot(win, which, cardName === "doe" ? "mtls-pin" : `mtls-pin-${cardName}`);
    if (full) {
      // A wrong PIN: the window says how many tries are left, and the handshake still waits.
      await choose(win, WRONG_PIN);
      await win.waitForFunction(() => /2 tries left/.test(document.getElementById("pin-error")?.textContent ?? ""), { timeout: 20000 });
      await screenshot(win, which, "mtls-pin-wrong");
      await win.$eval("#pin-input", (el) => (el.value = ""));
      await win.type("#pin-input", card.info.pin);
      await win.click("#ok");
    } else {
      await choose(win, card.info.pin);
    }
    await navigation;
    await registerPresented(page, card, before, which, cardName === "doe" ? "mtls-confirmation" : `mtls-confirmation-${cardName}`);
    await page.close();
  });

  if (!full) return;

  test(`${which}: log in with the CAC on the mutual-TLS host, within the card's TLS login (no second PIN)`, async () => {
    const page = await stack.browser.newPage();
    await page.goto(`${PORTAL_ORIGIN}/account`);
    // Log out of the portal, then CAC login on its CAC host.
    await Promise.all([page.waitForNavigation(), page.click("header form button")]);
    assert.ok(page.url().endsWith("/login"), page.url());
    const windowsBefore = (await stack.browser.pages()).length;
    await page.goto(`${MTLS_ORIGIN}/login/cac`, { timeout: 60000 });
    // The GET shows the card the handshake presented; the person's click logs in (a POST with
    // the page's CSRF token: another site cannot log anyone in).
    await Promise.all([page.waitForNavigation({ timeout: 60000 }), page.click("#mtls-login-button")]);
    assert.ok(page.url().startsWith(`${PORTAL_ORIGIN}/account`), page.url());
    assert.match(await page.content(), /Signed in as <strong>demo<\/strong>/);
    assert.equal((await stack.browser.pages()).length, windowsBefore, "no PIN window: the card is still verified");
    await page.close();
  });

  test(`${which}: a pulled card: the next handshake brings no certificate, and the guide's 403 page says what to do`, async () => {
    await card.remove();
    // A fresh browsing context: no connection or TLS session that the card already proved.
    const context = await stack.browser.createBrowserContext();
    const page = await context.newPage();
    await page.goto(`${MTLS_ORIGIN}/login/cac`, { timeout: 60000 });
    await page.waitForSelector("#forbidden", { timeout: 20000 });
    assert.equal(await page.$eval("#forbidden", (el) => el.textContent), "403: Access Forbidden");
    assert.match(await page.$eval("#forbidden-reason", (el) => el.textContent), /presented no certificate/);
    assert.match(await page.content(), /Close all open browser windows/);
    await screenshot(page, which, "mtls-403");
    await context.close();
  });
}
