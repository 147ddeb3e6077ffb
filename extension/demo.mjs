// The main job's browser half: Chromium with the extension walks the portal guide on the
// reference portal, printing each step and saving a screenshot of each page it passes: first
// on the page-API portal, then on a mutual-TLS portal, where the browser presents the card's
// certificate through CAC Bridge's PKCS#11 module and the PIN is typed in CAC Bridge's window.
// Visible when a display is available, headless otherwise. Run by scripts/run.
//
//   node extension/demo.mjs [--real-card] [--screenshots DIR]
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { PORTAL_ORIGIN, ROOT, insertCard, launch, sleep, startPortal } from "./test/e2e/stack.mjs";

const MTLS_ORIGIN = "https://localhost:8444";

const realCard = process.argv.includes("--real-card");
const shotsArg = process.argv.indexOf("--screenshots");
const shots = shotsArg > 0 ? process.argv[shotsArg + 1] : join(ROOT, ".work/demo/screenshots");
const visible = Boolean(process.env.DISPLAY) && !process.env.CACBRIDGE_HEADLESS;
mkdirSync(shots, { recursive: true });

let n = 0;
const step = (text) => console.log(`\n[${++n}] ${text}`);
const snap = async (page, name) => {
  const path = join(shots, `${String(n).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path });
  console.log(`    screenshot: ${path}`);
};

step(realCard ? "Using your reader and CAC" : "Inserting the virtual CAC of DOE.JOHN.A.1234567890 (PIN 123456)");
const card = realCard ? null : await insertCard("doe");
step(`Starting the reference portal at ${PORTAL_ORIGIN} (demo / demo-password)`);
let portal = await startPortal({ trustDod: realCard });
step(`Starting Chromium with the CAC Bridge extension (${visible ? "visible" : "headless"}); cacbridge-host install registers the PKCS#11 module`);
// With the virtual card, a rule picks its certificate for the CAC host; with yours, Chromium asks.
const clientCertificateFor = { origin: MTLS_ORIGIN, cn: card?.info.cn, issuer: card ? "CACBRIDGE TEST ID CA-1" : undefined };
const stack = await launch("chromium", { visible, clientCertificateFor });
let failed = false;
try {
  const page = await stack.browser.newPage();
  step("Log in to the portal with username and password");
  await page.goto(`${PORTAL_ORIGIN}/login`);
  await page.type("#username", "demo");
  await page.type("#password", "demo-password");
  await snap(page, "login");
  await Promise.all([page.waitForNavigation(), page.click("#password-login button[type=submit]")]);
  step("Open My Account -> CAC/Certificate Registration");
  await page.click("nav.menu summary");
  await snap(page, "my-account-menu");
  await Promise.all([page.waitForNavigation(), page.click("#menu-cac-registration")]);
  await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready", { timeout: 20000 });
  step("Enter the account password and click Register");
  await page.type("#password", "demo-password");
  await snap(page, "registration");
  await page.click("#cacbridge-register-button");
  step("Choose the certificate in the CAC Bridge window");
  const target = await stack.browser.waitForTarget((t) => t.url().includes("/ui/dialog.html"), { timeout: 20000 });
  const win = await target.page();
  await win.waitForSelector("input[name=certificate]:checked", { timeout: 20000 });
  await snap(win, "chooser");
  if (card) {
    await win.click("#continue");
    step("Enter the PIN in the CAC Bridge window (never in the web page)");
    await win.waitForSelector("#pin-input", { visible: true });
    await win.type("#pin-input", card.info.pin);
    await snap(win, "pin");
    await Promise.all([page.waitForNavigation({ timeout: 60000 }), win.click("#ok")]);
  } else {
    step("Choose your certificate and enter your PIN in the CAC Bridge window");
    await page.waitForNavigation({ timeout: 300000 });
  }
  step("The confirmation page: print it as the guide suggests");
  await page.waitForSelector("#confirmation-edipi", { timeout: 30000 });
  console.log(`    registered DoD ID ${await page.$eval("#confirmation-edipi", (el) => el.textContent)}`);
  await snap(page, "confirmation");
  step("Log out, then log in with the CAC");
  await Promise.all([page.waitForNavigation(), page.click("header form button")]);
  await page.waitForFunction(() => document.documentElement.dataset.cacbridge === "ready");
  await page.click("#cacbridge-login-button");
  const again = await stack.browser.waitForTarget((t) => t.url().includes("/ui/dialog.html") && t !== target, { timeout: 20000 });
  const win2 = await again.page();
  await win2.waitForSelector("input[name=certificate]:checked", { timeout: 20000 });
  if (card) {
    await win2.click("#continue");
    await win2.waitForSelector("#pin-input", { visible: true });
    await win2.type("#pin-input", card.info.pin);
    await Promise.all([page.waitForNavigation({ timeout: 60000 }), win2.click("#ok")]);
  } else {
    await page.waitForNavigation({ timeout: 300000 });
  }
  await snap(page, "logged-in-with-cac");
  console.log(`    ${page.url().endsWith("/account") ? "signed in with the CAC" : `ended at ${page.url()}`}`);

  step(`The same guide on a mutual-TLS portal: a fresh portal whose CAC host ${MTLS_ORIGIN} asks the browser for the card's certificate`);
  await portal.stop();
  portal = await startPortal({ trustDod: realCard, mtls: true });
  await page.goto(`${PORTAL_ORIGIN}/login`);
  await page.type("#username", "demo");
  await page.type("#password", "demo-password");
  await Promise.all([page.waitForNavigation(), page.click("#password-login button[type=submit]")]);
  step("Open CAC/Certificate Registration on the CAC host: the browser presents the card's certificate");
  const opening = page.goto(`${MTLS_ORIGIN}/account/cac`, { timeout: 300000 });
  opening.catch(() => {});
  const tls = await stack.browser.waitForTarget((t) => t.url().includes("/ui/dialog.html") && t !== target && t !== again, { timeout: 60000 });
  const win3 = await tls.page();
  await win3.waitForSelector("input[name=certificate]:checked", { timeout: 20000 });
  if (card) {
    step("Enter the PIN in the CAC Bridge window: the card signs the TLS handshake");
    await win3.click("#continue");
    await win3.waitForSelector("#pin-input", { visible: true });
    await win3.type("#pin-input", card.info.pin);
    await snap(win3, "mtls-pin");
    await win3.click("#ok");
  } else {
    step("Enter your PIN in the CAC Bridge window: the card signs the TLS handshake");
  }
  await opening;
  await page.waitForSelector("#mtls-presented", { timeout: 30000 });
  console.log(`    presented ${await page.$eval("#mtls-presented", (el) => el.textContent)} in a ${await page.$eval("#mtls-protocol", (el) => el.textContent)} handshake`);
  step("Enter the account password and click Register");
  await page.type("#password", "demo-password");
  await snap(page, "mtls-registration");
  await Promise.all([page.waitForNavigation({ timeout: 30000 }), page.click("#mtls-register-button")]);
  await page.waitForSelector("#confirmation-holder", { timeout: 30000 });
  console.log(`    registered ${await page.$eval("#confirmation-holder", (el) => el.textContent)}`);
  await snap(page, "mtls-confirmation");
  step("Log out, then log in with the CAC on the CAC host (the card is still verified: no second PIN)");
  await page.goto(`${PORTAL_ORIGIN}/account`);
  await Promise.all([page.waitForNavigation(), page.click("header form button")]);
  await page.goto(`${MTLS_ORIGIN}/login/cac`, { timeout: 300000 });
  await snap(page, "mtls-logged-in-with-cac");
  console.log(`    ${page.url().startsWith(`${PORTAL_ORIGIN}/account`) ? "signed in with the CAC over mutual TLS" : `ended at ${page.url()}`}`);
  if (visible) {
    console.log("\nThe browser stays open: press Ctrl-C to stop.");
    await new Promise(() => {});
  }
} catch (error) {
  failed = true;
  console.error(`\nThe walk-through stopped: ${error.message}`);
} finally {
  await sleep(200);
  await stack.close();
  await portal.stop();
  await card?.remove();
}
console.log(failed ? "" : `\nDone. Screenshots in ${shots}`);
process.exit(failed ? 1 : 0);
