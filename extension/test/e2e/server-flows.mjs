// The browsers against Apache httpd and nginx configured as DoD CAC sites are, over the card:
// CAC Bridge's module registered as `cacbridge-host install` registers it, the PIN typed once in
// CAC Bridge's window, every later handshake signed on the card with the PIN the host holds
// (docs/pkcs11.md, "PIN caching"), and each page showing the CN the server saw.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TESTBED, insertCard, launch, startDisplay } from "./stack.mjs";
import { isCacBridgeWindow, typePinWithKeys } from "./mtls-flows.mjs";
import { choose, dialog, screenshot } from "./walk.mjs";
import { startApache, startNginx } from "./web-servers.mjs";

export function webServerSuite(which) {
  let card;
  let apache;
  let nginx;
  let stack;
  let display;
  let caDir;
  before(async () => {
    card = await insertCard("doe");
    // The sites accept certificates of the test PKI's ID CA, as a DoD site names DoD's ID CAs.
    caDir = mkdtempSync(join(tmpdir(), "cacbridge-site-ca-"));
    const caFile = join(caDir, "ca.pem");
    const pki = join(TESTBED, "golden/pki");
    writeFileSync(caFile, ["root.pem", "id-ca.pem"].map((f) => readFileSync(join(pki, f), "utf8")).join(""));
    apache = await startApache(caFile);
    nginx = await startNginx(caFile);
    // Firefox blocks its automation channel while a handshake waits for the PIN: windows on a
    // virtual display, the PIN typed with key presses (mtls-flows.mjs).
    if (which === "firefox") display = await startDisplay();
    const origins = [...Object.values(apache.origins), ...Object.values(nginx.origins)];
    stack = await launch(which, {
      clientCertificateFor: { origins, cn: card.info.cn, issuer: "CACBRIDGE TEST ID CA-1" },
      display: display?.display,
    });
  });
  after(async () => {
    await stack?.close();
    display?.stop();
    await apache?.stop();
    await nginx?.stop();
    await card?.remove();
    if (caDir) rmSync(caDir, { recursive: true, force: true });
  });

  /** CAC Bridge windows open now (Firefox: on the display; Chromium: extension pages). */
  const windowsOpen = async () =>
    display ? display.windows().filter((w) => isCacBridgeWindow(w.name)).length : (await stack.browser.pages()).filter((p) => p.url().includes("/ui/dialog.html")).length;

  /**
   * Open `url` in a new tab; with `pin`, CAC Bridge's window is expected and the PIN typed in it.
   * Returns the page, its HTTP status, and whether the card signed (GENERAL AUTHENTICATE) meanwhile.
   */
  async function visit(url, { pin } = {}) {
    const page = await stack.browser.newPage();
    const apdusBefore = card.apdus();
    const windowsBefore = await windowsOpen();
    const navigation = page.goto(url, { timeout: 60000 });
    navigation.catch(() => {});
    if (pin && display) {
      await typePinWithKeys(display, await display.waitForWindow(isCacBridgeWindow), pin);
    } else if (pin) {
      await choose(await dialog(stack.browser, 30000), pin);
    }
    const response = await navigation;
    if (!pin) assert.equal(await windowsOpen(), windowsBefore, "no CAC Bridge window: the host holds the PIN for later handshakes");
    const signed = card.apduHeaders().slice(apdusBefore).some((h) => h.startsWith("0087"));
    return { page, status: response?.status(), signed };
  }

  /** The CN and protocol the server saw, as its page shows them. */
  const seen = async (/** @type {import("puppeteer-core").Page} */ page) =>
    Promise.all([page.$eval("#cn", (el) => el.textContent), page.$eval("#protocol", (el) => el.textContent)]);

  test(`${which}: Apache, client certificate asked under /cac only, TLS 1.2: the renegotiation is signed on the card after the PIN in CAC Bridge's window`, async () => {
    const origin = apache.origins.locationTls12;
    // The site's front page asks for no certificate.
    const front = await visit(`${origin}/`);
    assert.deepEqual(await seen(front.page), ["(none)", "TLSv1.2"]); // SSI's word for an unset variable
    assert.equal(front.signed, false);
    await front.page.close();
    // Under /cac Apache renegotiates and asks for it.
    const cac = await visit(`${origin}/cac/`, { pin: card.info.pin });
    assert.equal(cac.status, 200, apache.log().slice(-3000));
    assert.deepEqual(await seen(cac.page), [card.info.cn, "TLSv1.2"]);
    assert.ok(cac.signed, "the card signed the handshake");
    await screenshot(cac.page, which, "apache-location-tls12");
    await cac.page.close();
  });

  for (const [name, protocol] of [["siteTls12", "TLSv1.2"], ["siteTls13", "TLSv1.3"]]) {
    test(`${which}: Apache, client certificate for the whole site, ${protocol}: signed on the card with the PIN the host holds`, async () => {
      const { page, status, signed } = await visit(`${apache.origins[name]}/`);
      assert.equal(status, 200, apache.log().slice(-3000));
      assert.deepEqual(await seen(page), [card.info.cn, protocol]);
      assert.ok(signed, "the card signed the handshake");
      await page.close();
    });
  }

  for (const [name, setting] of [["verifyOn", "on"], ["optionalNoCa", "optional_no_ca"]]) {
    test(`${which}: nginx, ssl_verify_client ${setting}: signed on the card, the page shows the CN nginx saw`, async () => {
      const { page, status, signed } = await visit(`${nginx.origins[name]}/`);
      assert.equal(status, 200, nginx.log().slice(-3000));
      assert.deepEqual(await seen(page), [card.info.cn, "TLSv1.3"]);
      // on: nginx checked the chain against the ID CA; optional_no_ca: it did not try (nothing
      // to check against), and leaves it to the application.
      const verify = await page.$eval("#verify", (el) => el.textContent);
      if (setting === "on") assert.equal(verify, "SUCCESS");
      else assert.match(verify, /^(SUCCESS|FAILED:)/);
      assert.ok(signed, "the card signed the handshake");
      await screenshot(page, which, `nginx-${setting}`);
      await page.close();
    });
  }

  test(`${which}: Apache, client certificate asked under /cac only, TLS 1.3: the browser sends no post-handshake auth and Apache answers 403 (what docs/install.md tells sites)`, async () => {
    const logBefore = apache.log().length;
    const { page, status, signed } = await visit(`${apache.origins.locationTls13}/cac/`);
    assert.equal(status, 403);
    assert.equal(signed, false);
    assert.match(apache.log().slice(logBefore), /AH10158|post-handshake/, apache.log().slice(logBefore));
    await page.close();
  });
}
