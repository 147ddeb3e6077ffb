// The end-to-end flows, shared by the Chromium and Firefox runs.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { IDS, PORTAL_ORIGIN, ROOT, insertCard, launch, sleep, startPortal } from "./stack.mjs";
import { WRONG_PIN, cardPortalBrowser, choose, clickClosing, clickRegister, dialog, login, screenshot, seenDialogs } from "./walk.mjs";

export function extensionSuite(which) {
  const env = cardPortalBrowser(which);

  test(`${which}: the extension has its fixed id`, () => {
    assert.equal(env.stack.id, which === "chromium" ? IDS.chromiumId : IDS.firefoxId);
  });

  test(`${which}: register the CAC as the guide says, then log out and log in with it`, async () => {
    const page = await env.stack.browser.newPage();
    await login(page);
    assert.match(await page.content(), /Signed in as <strong>demo<\/strong>/);
    // My Account -> CAC/Certificate Registration
    await page.click("nav.menu summary");
    await Promise.all([page.waitForNavigation(), page.click("#menu-cac-registration")]);
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
    await page.type("#password", "demo-password");
    await page.click("#cacbridge-register-button");

    const win = await dialog(env.stack.browser);
    await screenshot(win, which, "chooser");
    const chosen = await win.$eval("input[name=certificate]:checked", (el) => el.closest("li").textContent);
    assert.match(chosen, /John A\. Doe \(DoD ID 1234567890\)/);
    assert.match(chosen, /PIV Authentication/);
    // A wrong PIN first: the window says how many tries are left.
    await choose(win, WRONG_PIN);
    await win.waitForSelector("#pin-error:not([hidden])");
    assert.match(await win.$eval("#pin-error", (el) => el.textContent), /2 tries left/);
    await screenshot(win, which, "pin-wrong");
    // The PIN is in none of the extension's storage, not even while its window is open.
    const extensionStorage = await win.evaluate(async () => {
      const api = globalThis.browser ?? globalThis.chrome;
      const local = await api.storage.local.get(null);
      const session = api.storage.session ? await api.storage.session.get(null).catch(() => ({})) : {};
      return JSON.stringify({ local, session, page: { ...localStorage }, pageSession: { ...sessionStorage } });
    });
    assert.ok(!extensionStorage.includes(WRONG_PIN), `PIN in the extension's storage: ${extensionStorage}`);
    await win.type("#pin-input", env.card.info.pin);
    await Promise.all([page.waitForNavigation({ timeout: 30000 }), win.click("#ok")]);

    await page.waitForSelector("#confirmation-edipi");
    assert.equal(await page.$eval("#confirmation-edipi", (el) => el.textContent), "1234567890");
    assert.ok(await page.$("#print"), "a Print button");
    await screenshot(page, which, "confirmation");

    // Log out, then log in with the env.card.
    await Promise.all([page.waitForNavigation(), page.click("header form button")]);
    assert.ok(page.url().endsWith("/login"));
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready");
    await page.click("#cacbridge-login-button");
    const again = await dialog(env.stack.browser);
    await Promise.all([page.waitForNavigation({ timeout: 30000 }), choose(again, env.card.info.pin)]);
    assert.ok(page.url().endsWith("/account"), page.url());
    assert.match(await page.content(), /Signed in as <strong>demo<\/strong>/);

    // The PIN is in no page, no DOM, no web storage and no log.
    const pageState = await page.evaluate(() =>
      JSON.stringify({ dom: document.documentElement.outerHTML, local: { ...localStorage }, session: { ...sessionStorage }, cookies: document.cookie }),
    );
    for (const pin of [env.card.info.pin, WRONG_PIN]) {
      assert.ok(!pageState.includes(pin), "PIN in the page");
    }
    const log = env.stack.hostLog();
    assert.match(log, /authenticate/, "the host logged the requests");
    for (const pin of [env.card.info.pin, WRONG_PIN]) {
      assert.ok(!new RegExp(`\\b${pin}\\b`).test(log), `PIN ${pin} in the host log`);
    }
    await page.close();
  });

  test(`${which}: a page that claims another origin gets a token bound to its real one`, async () => {
    const page = await env.stack.browser.newPage();
    await login(page);
    await page.goto(`${PORTAL_ORIGIN}/account/cac`);
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready");
    const challenge = await page.$eval('meta[name="cacbridge-challenge"]', (el) => el.getAttribute("content"));
    const answer = page.evaluate(
      (nonce) =>
        new Promise((resolve) => {
          window.addEventListener("message", (event) => {
            if (event.data?.type === "cacbridge:response" && event.data.id === "claim") resolve(event.data);
          });
          window.postMessage(
            { type: "cacbridge:request", id: "claim", action: "authenticate", challengeNonce: nonce, origin: "https://evil.example" },
            location.origin,
          );
        }),
      challenge,
    );
    const win = await dialog(env.stack.browser);
    assert.match(await win.$eval("#purpose", (el) => el.textContent), /https:\/\/localhost:8443 asks/);
    await choose(win, env.card.info.pin);
    const response = await answer;
    assert.equal(response.ok, true, JSON.stringify(response));
    const tokenFile = join(env.stack.profile, "token.json");
    writeFileSync(tokenFile, JSON.stringify(response.result));
    const verify = (origin) =>
      spawnSync(join(ROOT, "target/debug/cacbridge-verify"), ["--token", tokenFile, "--origin", origin, "--nonce", challenge, "--trust", env.portal.trust, ...env.portal.revocationArgs], { encoding: "utf8" });
    assert.equal(verify(PORTAL_ORIGIN).status, 0, "bound to the page's real origin");
    const claimed = verify("https://evil.example");
    assert.equal(claimed.status, 1);
    assert.match(claimed.stdout, /bad-signature/, "a portal at the claimed origin rejects it");
    await page.close();
  });

  /** Post a page API request from the page (puppeteer's evaluate counts as a user gesture). */
  const postFromPage = (page, request) =>
    page.evaluate(
      (request) =>
        new Promise((resolve) => {
          const seen = { acked: false };
          window.addEventListener("message", (event) => {
            if (event.data?.id !== request.id) return;
            if (event.data.type === "cacbridge:ack") seen.acked = true;
            if (event.data.type === "cacbridge:response") resolve({ ...event.data, acked: seen.acked });
          });
          window.postMessage({ type: "cacbridge:request", ...request }, location.origin);
          setTimeout(() => resolve({ timeout: true, acked: seen.acked }), 8000);
        }),
      request,
    );

  /** No CAC Bridge window opens within `ms`. */
  async function noDialogWithin(ms) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      for (const page of await env.stack.browser.pages()) {
        if (seenDialogs.has(page)) continue;
        // Firefox's BiDi reports extension windows as about:blank: ask the page, but never wait on
      // one that is busy (a page mid-handshake does not answer until the handshake ends).
      const asked = page.evaluate(() => location.href).catch(() => "");
      const href = page.url().includes("/ui/dialog.html") ? page.url() : await Promise.race([asked, sleep(1000).then(() => "")]);
        assert.ok(!href.includes("/ui/dialog.html"), "a CAC Bridge window opened");
      }
      await sleep(200);
    }
  }

  test(`${which}: requests a page posts while loading are queued, and without a click nothing opens`, async () => {
    const page = await env.stack.browser.newPage();
    // Posted while the page is still being parsed (before the extension can have said it is
    // ready), and without any user activation.
    await page.evaluateOnNewDocument(() => {
      const answers = {};
      window.__cacbridgeAnswers = answers;
      window.addEventListener("message", (event) => {
        if (event.data?.type === "cacbridge:response") answers[event.data.id] = event.data;
      });
      const post = () => {
        window.__cacbridgeReadyWhenPosted = document.documentElement.dataset.cacbridge ?? null;
        window.postMessage({ type: "cacbridge:request", id: "early-status", action: "status" }, location.origin);
        window.postMessage({ type: "cacbridge:request", id: "early-auth", action: "authenticate", challengeNonce: "A".repeat(44) }, location.origin);
      };
      document.addEventListener("readystatechange", post, { once: true });
    });
    await page.goto(`${PORTAL_ORIGIN}/login`);
    await page.waitForFunction(() => Object.keys(window.__cacbridgeAnswers ?? {}).length === 2, { timeout: 20000 });
    const answers = await page.evaluate(() => window.__cacbridgeAnswers);
    console.log(`# posted while the extension was ${await page.evaluate(() => window.__cacbridgeReadyWhenPosted) ?? "not yet ready"}`);
    assert.equal(answers["early-status"].ok, true, JSON.stringify(answers));
    assert.equal(answers["early-auth"].ok, false);
    assert.equal(answers["early-auth"].error.code, "user-activation-required");
    await noDialogWithin(1500);
    await page.close();
  });

  test(`${which}: a page learns whether a usable card is there, never who holds it`, async () => {
    const page = await env.stack.browser.newPage();
    await page.goto(`${PORTAL_ORIGIN}/login`);
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
    const status = await postFromPage(page, { id: "s", action: "status" });
    assert.equal(status.ok, true, JSON.stringify(status));
    assert.deepEqual(status.result.readers.find((r) => r.cardPresent), { cardPresent: true, cardType: "PIV" });
    const list = await postFromPage(page, { id: "l", action: "list-certificates" });
    assert.equal(list.ok, true, JSON.stringify(list));
    assert.ok(list.result.certificates.some((c) => c.usableFor.includes("authenticate") && !c.expired));
    const text = JSON.stringify([status, list]);
    for (const secret of [env.card.info.edipi, env.card.info.upn, env.card.info.email, "DOE", "Virtual PCD", "MII"]) {
      assert.ok(!text.includes(secret), `${secret} reached the page: ${text}`);
    }
    await page.close();
  });

  test(`${which}: bad parameters are answered at once, and no window opens`, async () => {
    const page = await env.stack.browser.newPage();
    await page.goto(`${PORTAL_ORIGIN}/login`);
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
    const cases = [
      [{ id: "n1", action: "authenticate", challengeNonce: "short" }, "challengeNonce", "length"],
      [{ id: "n2", action: "authenticate", challengeNonce: `${"A".repeat(43)}<` }, "challengeNonce", "alphabet"],
      [{ id: "h1", action: "sign", hash: "not base64!", hashFunction: "SHA-256" }, "hash", "base64"],
      [{ id: "h2", action: "sign", hash: Buffer.alloc(20).toString("base64"), hashFunction: "SHA-256" }, "hash", "length"],
      [{ id: "h3", action: "sign", hash: Buffer.alloc(16).toString("base64"), hashFunction: "MD5" }, "hashFunction", "unsupported"],
    ];
    for (const [request, argument, reason] of cases) {
      const answer = await postFromPage(page, request);
      assert.equal(answer.ok, false, JSON.stringify(answer));
      assert.deepEqual([answer.error.code, answer.error.argument, answer.error.reason], ["invalid-request", argument, reason]);
    }
    await noDialogWithin(1000);
    await page.close();
  });

  test(`${which}: a document signature shows the site and the hash, and says it is not a login`, async () => {
    const page = await env.stack.browser.newPage();
    await page.goto(`${PORTAL_ORIGIN}/login`);
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
    const hash = Buffer.alloc(32, 0xab);
    const answer = postFromPage(page, { id: "doc", action: "sign", hash: hash.toString("base64"), hashFunction: "SHA-256" });
    const win = await dialog(env.stack.browser);
    assert.equal(await win.$eval("#document-signature", (el) => el.hidden), false);
    assert.match(await win.$eval("#document-signature", (el) => el.textContent), /document signature, not a login/);
    assert.equal(await win.$eval("#sign-origin", (el) => el.textContent), PORTAL_ORIGIN);
    assert.equal(await win.$eval("#sign-hash", (el) => el.textContent), "ABABABAB ".repeat(8).trim());
    const chosen = await win.$eval("input[name=certificate]:checked", (el) => el.closest("li").textContent);
    assert.match(chosen, /Digital Signature/);
    assert.ok(!/PIV Authentication/.test(await win.$eval("#certificates", (el) => el.textContent)), "the login certificate is not offered");
    await screenshot(win, which, "document-signature");
    await choose(win, env.card.info.pin);
    const result = await answer;
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.result.algorithm, "ES256");
    await page.close();
  });

  test(`${which}: after a cancel, the same tab cannot reopen the window at once`, async () => {
    const page = await env.stack.browser.newPage();
    await page.goto(`${PORTAL_ORIGIN}/login`);
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
    const nonce = Buffer.alloc(32, 1).toString("base64");
    const first = postFromPage(page, { id: "c1", action: "authenticate", challengeNonce: nonce });
    const win = await dialog(env.stack.browser);
    await clickClosing(win, "#cancel-choose");
    assert.equal((await first).error.code, "user-cancelled");
    const again = await postFromPage(page, { id: "c2", action: "authenticate", challengeNonce: nonce });
    assert.equal(again.error?.code, "action-throttled", JSON.stringify(again));
    await noDialogWithin(1000);
    await page.close();
  });

  test(`${which}: a sandboxed document on the portal (opaque origin) gets nothing`, async () => {
    // What a portal does with content it does not trust (an uploaded file, say): serve it
    // with a CSP sandbox. Its origin is "null" and must not be mapped back to the portal's.
    const page = await env.stack.browser.newPage();
    await page.setRequestInterception(true);
    page.on("request", (request) => {
      if (request.url() === `${PORTAL_ORIGIN}/uploads/hostile.html`) {
        request.respond({
          status: 200,
          contentType: "text/html",
          headers: { "Content-Security-Policy": "sandbox allow-scripts" },
          // Hostile content dressed as the portal's CAC login form.
          body:
            '<!DOCTYPE html><title>upload</title><meta name="cacbridge-page" content="cac-login">' +
            `<meta name="cacbridge-challenge" content="${"A".repeat(44)}">` +
            '<form id="cacbridge-login" method="post" action="/login/cac"><input type="hidden" name="cacbridge_token">' +
            '<button id="go">Log in with CAC</button></form>',
        });
      } else {
        request.continue();
      }
    });
    await page.goto(`${PORTAL_ORIGIN}/uploads/hostile.html`);
    assert.equal(await page.evaluate(() => self.origin), "null", "the document is sandboxed");
    await sleep(1500);
    assert.equal(await page.evaluate(() => document.documentElement.dataset.cacbridge ?? null), null, "not ready");
    assert.equal(await page.$("#cacbridge-status"), null, "the form was not taken over");
    // Its own window's origin is "null": it can only post with "*".
    const acked = await page.evaluate(
      () =>
        new Promise((resolve) => {
          window.addEventListener("message", (event) => {
            if (event.data?.type === "cacbridge:ack") resolve(true);
          });
          window.postMessage({ type: "cacbridge:request", id: "sandboxed", action: "authenticate", challengeNonce: "A".repeat(44) }, "*");
          setTimeout(() => resolve(false), 2000);
        }),
    );
    assert.equal(acked, false, "no acknowledgement: as if not installed");
    await page.click("#go").catch(() => {});
    await noDialogWithin(1500);
    await page.close();
  });

  test(`${which}: a site not on the allow-list gets nothing`, async () => {
    const page = await env.stack.browser.newPage();
    // The same portal under another origin: not on the list.
    await page.goto("https://127.0.0.1:8443/login");
    await sleep(1500);
    assert.equal(await page.evaluate(() => document.documentElement.dataset.cacbridge ?? null), null, "no content script");
    const acked = await page.evaluate(
      () =>
        new Promise((resolve) => {
          window.addEventListener("message", (event) => {
            if (event.data?.type === "cacbridge:ack") resolve(true);
          });
          window.postMessage({ type: "cacbridge:request", id: 1, action: "status" }, location.origin);
          setTimeout(() => resolve(false), 1500);
        }),
    );
    assert.equal(acked, false, "no host access");
    await page.close();
  });

  test(`${which}: cancelling, and a card pulled out and put back while the window is open`, async () => {
    const page = await env.stack.browser.newPage();
    await clickRegister(page);
    const win = await dialog(env.stack.browser);
    await env.card.remove();
    await win.waitForFunction(() => /card was removed/.test(document.getElementById("card-state")?.textContent ?? ""), { timeout: 15000 });
    env.card = await insertCard("doe");
    await win.waitForFunction(() => /Card inserted/.test(document.getElementById("card-state")?.textContent ?? ""), { timeout: 15000 });
    await win.waitForSelector("input[name=certificate]:checked", { timeout: 15000 });
    await clickClosing(win, "#cancel-choose");
    await page.waitForFunction(() => /You cancelled/.test(document.getElementById("cacbridge-status")?.textContent ?? ""), { timeout: 15000 });
    assert.ok(page.url().endsWith("/account/cac"), "the form was not submitted");
    await page.close();
  });

  if (which === "chromium") {
    test("chromium: works after Chrome stops and restarts the service worker", async () => {
      const page = await env.stack.browser.newPage();
      await page.goto(`${env.stack.base}/ui/popup.html`);
      const session = await page.createCDPSession();
      await session.send("ServiceWorker.enable");
      const worker = () => env.stack.browser.targets().some((t) => t.type() === "service_worker" && t.url().includes(env.stack.id));
      assert.ok(worker(), "the service worker runs");
      await session.send("ServiceWorker.stopAllWorkers");
      for (let i = 0; i < 50 && worker(); i++) await sleep(100);
      assert.ok(!worker(), "the service worker was stopped");
      await clickRegister(page);
      const win = await dialog(env.stack.browser);
      await Promise.all([page.waitForNavigation({ timeout: 30000 }), choose(win, env.card.info.pin)]);
      // Registered already by the first test: the portal says so.
      assert.match(await page.content(), /already registered to your account|confirmation-edipi/);
      await page.close();
    });
  }

  if (which === "firefox") {
    test("firefox: an allowed portal page loads the CAC Bridge security device into NSS", async () => {
      const page = await env.stack.browser.newPage();
      await page.goto(`${PORTAL_ORIGIN}/login`);
      await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
      // Firefox's module database, as NSS writes it when the pkcs11 API installs a module.
      const database = join(env.stack.profile, "firefox", "pkcs11.txt");
      let modules = "";
      for (let i = 0; i < 100 && !modules.includes("libcacbridge_pkcs11_browser.so"); i++) {
        await sleep(100);
        modules = existsSync(database) ? readFileSync(database, "utf8") : "";
      }
      // Under the browsers' name: the PIN for a TLS login goes to CAC Bridge's window.
      assert.match(modules, /library=.*libcacbridge_pkcs11_browser\.so/);
      assert.match(modules, /name=CAC Bridge/);
      await page.close();
    });
  }

  // Last but one: it blocks the card's PIN.
  test(`${which}: a blocked PIN is explained, in the window and on the page`, async () => {
    const page = await env.stack.browser.newPage();
    await clickRegister(page);
    const win = await dialog(env.stack.browser);
    await choose(win, WRONG_PIN);
    await win.waitForFunction(() => /2 tries left/.test(document.getElementById("pin-error")?.textContent ?? ""));
    await win.type("#pin-input", WRONG_PIN);
    await win.click("#ok");
    await win.waitForFunction(() => /1 try left/.test(document.getElementById("pin-error")?.textContent ?? ""));
    await win.type("#pin-input", WRONG_PIN);
    await win.click("#ok");
    await win.waitForSelector("#blocked:not([hidden])");
    assert.match(await win.$eval("#blocked", (el) => el.textContent), /DoD ID card office/);
    await screenshot(win, which, "pin-blocked");
    await page.waitForFunction(() => /PIN is blocked/.test(document.getElementById("cacbridge-status")?.textContent ?? ""), { timeout: 15000 });
    await clickClosing(win, "#close-blocked");
    await page.close();
  });

  // WebDriver BiDi refuses to navigate to moz-extension pages: the popup is driven in Chromium.
  test(`${which}: the popup shows the readiness checklist`, { skip: which === "firefox" && "BiDi cannot open extension pages" }, async () => {
    const page = await env.stack.browser.newPage();
    await page.setViewport({ width: 460, height: 420 });
    await page.goto(`${env.stack.base}/ui/popup.html`);
    await page.waitForSelector("#checklist li[data-check=portal]", { timeout: 20000 });
    const checks = await page.$$eval("#checklist li", (items) => items.map((li) => [li.dataset.check, li.dataset.ok]));
    assert.deepEqual(Object.fromEntries(checks).host, "true");
    assert.deepEqual(Object.fromEntries(checks).card, "true");
    assert.deepEqual(Object.fromEntries(checks).certificates, "true");
    await screenshot(page, which, "popup");
    await page.close();
  });
}

/** An unregistered card logs in: the password and a fresh proof from the same card link it. */
export function linkSuite(which) {
  const env = cardPortalBrowser(which);

  test(`${which}: an unregistered card is linked with the password and a second PIN, and the confirmation names its holder`, async () => {
    const page = await env.stack.browser.newPage();
    await page.goto(`${PORTAL_ORIGIN}/login`);
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
    await page.click("#cacbridge-login-button");
    const first = await dialog(env.stack.browser);
    await Promise.all([page.waitForNavigation({ timeout: 30000 }), choose(first, env.card.info.pin)]);
    assert.match(await page.content(), /is not registered to an account yet/);
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
    await page.type("#username", "demo");
    await page.type("#password", "demo-password");
    await page.click("#cacbridge-link-button");
    const second = await dialog(env.stack.browser);
    await Promise.all([page.waitForNavigation({ timeout: 30000 }), choose(second, env.card.info.pin)]);
    await page.waitForSelector("#confirmation-holder");
    assert.equal(await page.$eval("#confirmation-holder", (el) => el.textContent), "DOE.JOHN.A.1234567890");
    assert.equal(await page.$eval("#confirmation-account", (el) => el.textContent), "demo");
    await page.close();
  });
}

/** Installed while a portal tab is open: that tab gets CAC Bridge without a reload. */
export function lateInstallSuite(which) {
  let portal;
  let stack;
  before(async () => {
    portal = await startPortal();
    stack = await launch(which, { installNow: false });
  });
  after(async () => {
    await stack?.close();
    await portal?.stop();
  });

  test(`${which}: a portal tab open before the install gets the content script without a reload`, async () => {
    const page = await stack.browser.newPage();
    await page.goto(`${PORTAL_ORIGIN}/login`);
    await page.evaluate(() => {
      window.__loadedOnce = true;
    });
    assert.equal(await page.evaluate(() => document.documentElement.dataset.cacbridge ?? null), null);
    await stack.install();
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
    assert.equal(await page.evaluate(() => window.__loadedOnce), true, "the page was not reloaded");
    // The CAC login form is taken over too (its status line is the content script's).
    assert.notEqual(await page.$("#cacbridge-status"), null, "the CAC form is enhanced");
    await page.close();
  });
}

/** The host missing: the popup and the page say how to fix it. */
export function missingHostSuite(which) {
  let portal;
  let stack;
  before(async () => {
    portal = await startPortal();
    stack = await launch(which, { withHost: false });
  });
  after(async () => {
    await stack?.close();
    await portal?.stop();
  });

  test(`${which}: without the host, the page and the popup say how to fix it`, async () => {
    const page = await stack.browser.newPage();
    await clickRegister(page);
    await page.waitForFunction(() => /not installed/.test(document.getElementById("cacbridge-status")?.textContent ?? ""), { timeout: 20000 });
    if (which === "chromium") {
      await page.goto(`chrome-extension://${stack.id}/ui/popup.html`);
      await page.waitForSelector("#checklist li[data-check=host]");
      const text = await page.$eval("#checklist li[data-check=host]", (li) => li.textContent);
      assert.match(text, /Install the CAC Bridge app/);
      assert.equal(await page.$eval("#checklist li[data-check=host]", (li) => li.dataset.ok), "false");
    }
    await page.close();
  });
}

/**
 * From the Register click to the PIN field, on a card answering each APDU after 30 ms as a
 * real CAC does (docs/PERFORMANCE.md): counted in APDUs the card answered, not in time.
 */
export function fastChooserSuite(which) {
  let portal;
  let card;
  before(async () => {
    portal = await startPortal();
  });
  after(async () => {
    await portal?.stop();
    await card?.remove();
  });

  /** Open CAC/Certificate Registration; returns once the host has read what it prefetches. */
  async function openPortal(stack) {
    const page = await stack.browser.newPage();
    await login(page);
    await page.goto(`${PORTAL_ORIGIN}/account/cac`);
    await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
    return page;
  }

  /** Register, the chooser, Continue: the APDUs the card answered until the PIN field shows. */
  async function apdusToThePinField(stack, page) {
    const before = await card.settledApdus();
    await page.type("#password", "demo-password");
    await page.click("#cacbridge-register-button");
    const win = await dialog(stack.browser);
    await win.click("#continue");
    await win.waitForSelector("#pin-input", { visible: true });
    const spent = card.apdus() - before;
    await clickClosing(win, "#cancel-pin");
    await page.close();
    return spent;
  }

  test(`${which}: a card inserted while the portal is open reaches the PIN field in 5 APDUs or fewer`, async (t) => {
    const stack = await launch(which);
    try {
      const page = await openPortal(stack);
      card = await insertCard("doe", { delayMs: 30 });
      const prefetched = await card.settledApdus();
      assert.ok(prefetched >= 2, `the host read the card on insertion (${prefetched} APDUs)`);
      const spent = await apdusToThePinField(stack, page);
      t.diagnostic(`prefetched on insertion: ${prefetched} APDUs; Register to PIN field: ${spent}`);
      assert.ok(spent <= 5, `${spent} APDUs from the Register click to the PIN field`);
    } finally {
      await stack.close();
    }
  });

  test(`${which}: a new browser and host, the card never removed: 2 APDUs or fewer`, async (t) => {
    const stack = await launch(which);
    try {
      const page = await openPortal(stack);
      const spent = await apdusToThePinField(stack, page);
      t.diagnostic(`Register to PIN field: ${spent} APDUs`);
      assert.ok(spent <= 2, `${spent} APDUs from the Register click to the PIN field`);
    } finally {
      await stack.close();
    }
  });
}

/**
 * The host dies in the middle of an authentication (tests/harness/crashing-host kills it when
 * the request arrives): the person gets one clear error, and the next try works.
 */
export function crashingHostSuite(which) {
  const env = cardPortalBrowser(which, { crashingHost: true });

  test(`${which}: the host crashing mid-request: one clear error in the window, and the next try registers`, async () => {
    const page = await env.stack.browser.newPage();
    await clickRegister(page);
    const win = await dialog(env.stack.browser);
    await choose(win, env.card.info.pin);
    // The window says the app stopped; the request stays open, nothing was registered.
    await win.waitForSelector("#pin-error:not([hidden])", { timeout: 20000 });
    const said = await win.$eval("#pin-error", (el) => el.textContent);
    assert.match(said, /The CAC Bridge app stopped while it was working/, said);
    await screenshot(win, which, "host-crashed");
    assert.ok(page.url().endsWith("/account/cac"), "not registered");
    // The PIN again: the extension starts the host again, and the registration goes through.
    await win.type("#pin-input", env.card.info.pin);
    await Promise.all([page.waitForNavigation({ timeout: 30000 }), win.click("#ok")]);
    await page.waitForSelector("#confirmation-edipi", { timeout: 20000 });
    assert.equal(await page.$eval("#confirmation-edipi", (el) => el.textContent), "1234567890");
    await page.close();
  });
}

/**
 * The browser stops the extension's service worker in the middle of a request (as Chromium
 * does to an idle or misbehaving worker, or on an update): the page gets one clear error, the
 * stale window says so, and the next click registers.
 */
export function workerKilledSuite(which) {
  const env = cardPortalBrowser(which);

  /** Stop the extension's service worker, as chrome://serviceworker-internals' Stop does. */
  async function killWorker() {
    const cdp = await env.stack.browser.target().createCDPSession();
    const { targetInfos } = await cdp.send("Target.getTargets");
    const worker = targetInfos.find((t) => t.type === "service_worker" && t.url.startsWith(`chrome-extension://${env.stack.id}/`));
    assert.ok(worker, "the extension's service worker runs");
    await cdp.send("Target.closeTarget", { targetId: worker.targetId });
    const deadline = Date.now() + 10000;
    for (;;) {
      const { targetInfos: now } = await cdp.send("Target.getTargets");
      if (!now.some((t) => t.targetId === worker.targetId)) break;
      assert.ok(Date.now() < deadline, "the service worker did not stop");
      await sleep(100);
    }
    await cdp.detach();
  }

  test(`${which}: the service worker killed mid-request: one clear error, and the next click registers`, async () => {
    const page = await env.stack.browser.newPage();
    await clickRegister(page);
    const win = await dialog(env.stack.browser);
    await win.click("#continue");
    await win.waitForSelector("#pin-input", { visible: true });
    await killWorker();
    // The page: one error that says what happened.
    await page.waitForFunction(() => /restarted/.test(document.getElementById("cacbridge-status")?.textContent ?? ""), { timeout: 20000 });
    const status = await page.$eval("#cacbridge-status", (el) => el.textContent);
    assert.match(status, /CAC Bridge restarted while it was working on your request/, status);
    // The window left from before: it says the request is over, and closes.
    await win.waitForSelector("#failed:not([hidden])", { timeout: 10000 });
    assert.match(await win.$eval("#failed-message", (el) => el.textContent), /restarted/);
    await screenshot(win, which, "worker-restarted");
    await clickClosing(win, "#close-failed");
    assert.ok(page.url().endsWith("/account/cac"), "nothing registered");
    // The next click (the password still typed) wakes a new worker, which starts the host again.
    await page.click("#cacbridge-register-button");
    const again = await dialog(env.stack.browser);
    await again.click("#continue");
    await again.waitForSelector("#pin-input", { visible: true });
    await again.type("#pin-input", env.card.info.pin);
    await Promise.all([page.waitForNavigation({ timeout: 30000 }), again.click("#ok")]);
    await page.waitForSelector("#confirmation-edipi", { timeout: 20000 });
    assert.equal(await page.$eval("#confirmation-edipi", (el) => el.textContent), "1234567890");
    await page.close();
  });
}

/**
 * The guide on the page-API portal with the host reading the card through OpenSC's PKCS#11
 * module instead of its own applet code (the policy's `backends`, docs/policy.md).
 */
export function moduleBackendSuite(which) {
  const env = cardPortalBrowser(which, { policy: { backends: ["/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"] } });

  test(`${which}: register the CAC with the host over OpenSC's module`, async () => {
    const page = await env.stack.browser.newPage();
    await clickRegister(page);
    const win = await dialog(env.stack.browser);
    const chosen = await win.$eval("input[name=certificate]:checked", (el) => el.closest("li").textContent);
    assert.match(chosen, /PIV Authentication/);
    // A wrong PIN first: pin-incorrect through the module, the window says so.
    await choose(win, WRONG_PIN);
    await win.waitForSelector("#pin-error:not([hidden])");
    assert.match(await win.$eval("#pin-error", (el) => el.textContent), /Wrong PIN/);
    await win.type("#pin-input", env.card.info.pin);
    await Promise.all([page.waitForNavigation({ timeout: 30000 }), win.click("#ok")]);
    await page.waitForSelector("#confirmation-edipi");
    assert.equal(await page.$eval("#confirmation-edipi", (el) => el.textContent), "1234567890");
    assert.match(env.stack.hostLog(), /backend loaded backend=\/usr\/lib\/x86_64-linux-gnu\/opensc-pkcs11\.so/, "the host served from the module");
    assert.doesNotMatch(env.stack.hostLog(), /backend loaded backend=pcsc/);
    await page.close();
  });
}

/**
 * The portal guide on the reference portal's mutual-TLS CAC host: the browser presents the
 * card's certificate through CAC Bridge's PKCS#11 module, and the card signs the handshake
 * after the PIN is typed in CAC Bridge's window. `cardName` "doe" is an RSA card (TLS 1.3:
 * RSA-PSS), "smith" an ECC P-384 card; `full` walks the wrong PIN, CAC login and a pulled card.
 */
