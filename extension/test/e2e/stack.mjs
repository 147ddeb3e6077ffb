// The real stack for end-to-end tests: a virtual CAC in pcscd's virtual reader, the
// reference portal on https://localhost:8443, the built host, and a real browser with the
// extension loaded. Run by scripts/test after tests/harness/testbed-setup.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

export const ROOT = new URL("../../../", import.meta.url).pathname;
export const EXTENSION = new URL("../../", import.meta.url).pathname;
export const IDS = JSON.parse(readFileSync(join(EXTENSION, "ids.json"), "utf8"));
export const PORTAL_ORIGIN = "https://localhost:8443";
/** Firefox gives each add-on a random internal UUID; tests fix it to open extension pages. */
export const FIREFOX_UUID = "5f0c5d3e-6a0b-4c4e-9d9e-0cac0b41d9e1";
export const TESTBED = process.env.CACBRIDGE_TESTBED ?? join(ROOT, "target/testbed");
/** The host, portal and verifier builds to use (scripts/run points this at target/release). */
const BIN = process.env.CACBRIDGE_BIN ?? join(ROOT, "target/debug");
const VIRTUAL_PIV = join(ROOT, "target/debug/virtual-piv");

/**
 * CACBRIDGE_E2E_PACKAGED: the extension is the one the Debian packages installed for every user
 * (Chromium's external-extension file, Firefox's policy), found as a person's browser finds it:
 * no installExtension, no --load-extension. Its Chrome-family id is the package's.
 */
const PACKAGED = Boolean(process.env.CACBRIDGE_E2E_PACKAGED);
const PACKAGED_RELEASE = "/usr/share/cacbridge/extension/release.json";
/**
 * CACBRIDGE_E2E_PERSON: a user account the browsers run as, with that person's own home
 * (tests/harness/first-day): their NSS database, their state directory, no test home.
 */
const PERSON = process.env.CACBRIDGE_E2E_PERSON;
const PERSON_HOME = PERSON ? spawnSync("getent", ["passwd", PERSON], { encoding: "utf8" }).stdout.split(":")[5] : undefined;

const CACHE_HOME = mkdtempSync(join(tmpdir(), "cacbridge-e2e-cache-"));

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function cardPresent() {
  const out = spawnSync("opensc-tool", ["-l"], { encoding: "utf8" }).stdout ?? "";
  return out.split("\n").some((line) => line.includes("Virtual PCD 00 00") && / Yes /.test(line));
}

/** A fresh copy of a golden card in reader 0; `delayMs` before each answer, as a real card's. */
export async function insertCard(name = "doe", { delayMs = 0 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "cacbridge-card-"));
  const golden = join(TESTBED, "golden/cards", name);
  for (const file of ["internal.bin", "external.bin"]) cpSync(join(golden, "state", file), join(dir, file));
  const info = JSON.parse(readFileSync(join(golden, "card.json"), "utf8"));
  const apduLog = join(dir, "apdus.log");
  const args = ["--port", "35963", "--state", dir, "--apdu-log", apduLog, "--delay-ms", String(delayMs)];
  const process_ = spawn(VIRTUAL_PIV, args, { stdio: "ignore" });
  for (let i = 0; i < 100 && !cardPresent(); i++) await sleep(100);
  if (!cardPresent()) throw new Error("the virtual card did not appear");
  return {
    info,
    /** APDUs the card has answered so far. */
    apdus() {
      return this.apduHeaders().length;
    },
    /** The CLA INS P1 P2 (hex) of every APDU the card has answered, in order. */
    apduHeaders() {
      return existsSync(apduLog) ? readFileSync(apduLog, "utf8").split("\n").filter(Boolean).map((line) => line.split(" ")[0]) : [];
    },
    /** The APDU count once it stops moving (a background read is done). */
    async settledApdus() {
      let last = this.apdus();
      for (;;) {
        await sleep(400);
        const now = this.apdus();
        if (now === last) return now;
        last = now;
      }
    },
    async remove() {
      process_.kill();
      for (let i = 0; i < 100 && cardPresent(); i++) await sleep(50);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A virtual X display (Xvfb) for a browser that must run with windows: where the test types
 * into CAC Bridge's window as a person would, with key presses from outside the browser
 * (xdotool), because the browser's automation channel is blocked meanwhile.
 */
export async function startDisplay(number = 97) {
  const display = `:${number}`;
  const server = spawn("Xvfb", [display, "-screen", "0", "1280x1024x24", "-nolisten", "tcp"], { stdio: "ignore" });
  const socket = `/tmp/.X11-unix/X${number}`;
  for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(100);
  if (!existsSync(socket)) throw new Error("Xvfb did not start");
  const xdotool = (...args) => spawnSync("xdotool", args, { env: { ...process.env, DISPLAY: display }, encoding: "utf8" });
  return {
    display,
    /** Names of the display's visible windows, by id. */
    windows() {
      const ids = xdotool("search", "--onlyvisible", "--name", ".").stdout.split("\n").filter(Boolean);
      return ids.map((id) => ({ id, name: xdotool("getwindowname", id).stdout.trim() }));
    },
    /** Focus window `id` and type `text` into it, then Enter: key presses, as from a keyboard. */
    typeInto(id, text) {
      xdotool("windowfocus", "--sync", id);
      if (text) xdotool("type", "--delay", "60", text);
      xdotool("key", "Return");
    },
    /** Press Enter in window `id`. */
    enter(id) {
      xdotool("windowfocus", "--sync", id);
      xdotool("key", "Return");
    },
    /** The first visible window whose name `matches`, once it is there. */
    async waitForWindow(/** @type {(name: string) => boolean} */ matches, timeoutMs = 30000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const found = this.windows().find((w) => matches(w.name));
        if (found) return found;
        await sleep(200);
      }
      throw new Error(`no such window on the display: ${JSON.stringify(this.windows())}`);
    },
    stop() {
      server.kill();
    },
  };
}

/** The test PKI's OCSP responder (tests/harness/ocsp-responder) on a free port. */
async function startOcspResponder() {
  const port = 18890;
  const child = spawn(join(ROOT, "tests/harness/ocsp-responder"), [String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    let seen = "";
    child.stdout.on("data", (chunk) => {
      seen += chunk;
      if (seen.includes("waiting for OCSP client connections")) resolve(undefined);
    });
    child.once("exit", (code) => reject(new Error(`the OCSP responder exited ${code} (port ${port} busy?)`)));
  });
  child.stdout.resume();
  const url = `http://127.0.0.1:${port}/`;
  return {
    portalArgs: ["--ocsp-responder", url, "--revocation-sources", "ocsp"],
    stop: () => child.kill(),
  };
}

/**
 * The reference portal with the demo account, trusting the test PKI (or, for a real CAC, the
 * DoD PKI shipped with cacbridge-verify).
 */
export async function startPortal({ trustDod = false, mtls = false, dataDir } = {}) {
  // dataDir: a portal's records kept from an earlier run (its registrations), left in place.
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), "cacbridge-portal-"));
  mkdirSync(dir, { recursive: true });
  // Revocation is checked (the portal's default policy, require) against the test PKI's OCSP
  // responder, as a DoD portal is pointed at DISA's.
  const responder = trustDod ? null : await startOcspResponder();
  const pki = join(TESTBED, "golden/pki");
  const trust = join(dir, "trust.pem");
  writeFileSync(trust, ["root.pem", "id-ca.pem", "email-ca.pem"].map((f) => readFileSync(join(pki, f), "utf8")).join(""));
  const portal = spawn(
    join(BIN, "cacbridge-portal"),
    [
      "--data-dir", dir, "serve", "--listen", "127.0.0.1:8443", "--demo-account",
      ...(trustDod ? [] : ["--trust-bundle", trust, ...responder.portalArgs]),
      // The reference portal's mutual-TLS CAC host.
      ...(mtls ? ["--mtls-listen", "127.0.0.1:8444"] : []),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise((resolve, reject) => {
    portal.stdout.once("data", resolve);
    portal.once("exit", (code) => reject(new Error(`portal exited ${code} (port 8443 busy?)`)));
  });
  portal.stdout.resume();
  return {
    trust,
    revocationArgs: responder?.portalArgs ?? [],
    async stop() {
      portal.kill();
      responder?.stop();
      await sleep(100);
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Write the host manifest where a browser profile finds it. With CACBRIDGE_E2E_INSTALLED_HOST
 * none is written: the browser finds the host the Debian package installed, through the
 * package's system manifest (scripts/test's packaging step).
 */
function hostManifest(browser, dir, withHost, hostPath) {
  if (!withHost || process.env.CACBRIDGE_E2E_INSTALLED_HOST) return;
  const manifest = JSON.parse(readFileSync(join(ROOT, "manifests", browser, `${IDS.host}.json`), "utf8"));
  manifest.path = hostPath ?? join(BIN, "cacbridge-host");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${IDS.host}.json`), JSON.stringify(manifest, null, 2));
}

/**
 * The extension the packages installed, once the browser has it running: Chromium starts its
 * service worker; Firefox lists the add-on active in the profile's extensions.json (WebDriver
 * BiDi may not open extension pages itself).
 */
async function packagedExtension(browser, which, profileDir) {
  if (which === "chromium") {
    const { chromiumId } = JSON.parse(readFileSync(PACKAGED_RELEASE, "utf8"));
    const worker = `chrome-extension://${chromiumId}/background.js`;
    await browser.waitForTarget((target) => target.url() === worker, { timeout: 30000 });
    return chromiumId;
  }
  const listing = join(profileDir, "extensions.json");
  for (let tries = 0; ; tries++) {
    const addons = existsSync(listing) ? JSON.parse(readFileSync(listing, "utf8")).addons : [];
    if (addons.some((addon) => addon.id === IDS.firefoxId && addon.active)) return IDS.firefoxId;
    if (tries > 60) throw new Error("Firefox did not install the packaged add-on");
    await sleep(500);
  }
}

/**
 * A headless browser with the built extension installed.
 * @param {"chromium" | "firefox"} which
 * @param {{withHost?: boolean, visible?: boolean, installNow?: boolean, clientCertificateFor?: {origins: string[], cn?: string, issuer?: string}, display?: string}} options
 *   installNow: false leaves the extension to `install()`, to test what it does on arrival;
 *   clientCertificateFor (Chromium): `cacbridge-host install` registers the PKCS#11 module in
 *   a home of the browser's own, and an auto-select rule presents that certificate on those origins
 *   (Firefox: it presents the matching certificate without asking);
 *   display: run with windows on this X display instead of headless (where a person's key
 *   presses answer the browser's own dialogs);
 *   policy: the host's policy file (docs/policy.md), e.g. its backends;
 *   crashingHost: the host dies at its first authenticate, as a crash mid-request would
 */
export async function launch(which, { withHost = true, visible = false, installNow = true, clientCertificateFor, display, policy, crashingHost = false, reuseProfile } = {}) {
  // reuseProfile: the profile a closed browser left (close({ keepProfile: true })), as the
  // same person's browser starts again.
  const profile = reuseProfile ?? mkdtempSync(join(tmpdir(), `cacbridge-${which}-`));
  const logs = join(profile, "host-logs");
  mkdirSync(logs, { recursive: true });
  // One certificate cache for every browser of this run, as one person's would be; a runtime
  // directory of its own for the host's local channel.
  const runtime = join(profile, "run");
  mkdirSync(runtime, { mode: 0o700, recursive: true });
  const env = { ...process.env, CACBRIDGE_LOG_DIR: logs, CACBRIDGE_LOG: "trace", XDG_CACHE_HOME: CACHE_HOME, XDG_RUNTIME_DIR: runtime };
  // A host that dies at its first authenticate (tests/harness/crashing-host), then works.
  const hostPath = crashingHost ? join(ROOT, "tests/harness/crashing-host") : undefined;
  if (crashingHost) {
    env.CACBRIDGE_REAL_HOST = join(BIN, "cacbridge-host");
    env.CACBRIDGE_CRASH_MARKER = join(profile, "host-crashed");
  }
  if (policy) {
    // A debug host reads the policy this variable names (release builds ignore it).
    env.CACBRIDGE_SYSTEM_POLICY = join(profile, "policy.json");
    writeFileSync(env.CACBRIDGE_SYSTEM_POLICY, JSON.stringify(policy));
  }
  if (PERSON) {
    // The person's own home, with their cache, state and log where a person's are; the browser
    // runs as them (as-person).
    env.HOME = PERSON_HOME;
    for (const name of ["XDG_CACHE_HOME", "XDG_STATE_HOME", "CACBRIDGE_LOG_DIR", "CACBRIDGE_LOG"]) delete env[name];
    env.CACBRIDGE_PERSON = PERSON;
    // Lets WebDriver BiDi open the add-on's own pages (the popup) in Firefox.
    env.MOZ_REMOTE_ALLOW_SYSTEM_ACCESS = "1";
  } else if (which === "chromium") {
    // A home of the browser's own, as a person's: Chromium reads $HOME/.pki/nssdb, where the
    // host registers CAC Bridge's module at its first start.
    env.HOME = join(profile, "home");
    mkdirSync(env.HOME, { recursive: true });
    delete env.XDG_STATE_HOME;
  }
  /** The browser's program: as the person, through the launcher that drops to them. */
  const program = (/** @type {string} */ path) => {
    if (!PERSON) return path;
    env.CACBRIDGE_REAL_BROWSER = path;
    return join(ROOT, "tests/harness/as-person");
  };
  if (display) env.DISPLAY = display;
  if (clientCertificateFor && which === "chromium") {
    const installed = spawnSync(join(BIN, "cacbridge-host"), ["install"], { env, encoding: "utf8" });
    if (installed.status !== 0 || !/registered for Chrome/.test(installed.stdout)) throw new Error(`cacbridge-host install: ${installed.stdout}${installed.stderr}`);
    // Chromium's AutoSelectCertificateForUrls, as a profile content setting (no root needed);
    // without a name, Chromium's own chooser asks.
    const { origins, cn, issuer } = clientCertificateFor;
    if (cn) {
      mkdirSync(join(profile, "Default"));
      const setting = { setting: { filters: [{ SUBJECT: { CN: cn }, ISSUER: { CN: issuer } }] } };
      const rule = Object.fromEntries(origins.map((origin) => [`${origin},*`, setting]));
      writeFileSync(join(profile, "Default", "Preferences"), JSON.stringify({ profile: { content_settings: { exceptions: { auto_select_certificate: rule } } } }));
    }
  }
  // The person's browser and host write their logs, runtime directory and cache here.
  if (PERSON) spawnSync("chown", ["-R", `${PERSON}:`, profile]);
  let browser;
  if (which === "chromium") {
    hostManifest("chromium", join(profile, "NativeMessagingHosts"), withHost, hostPath);
    browser = await puppeteer.launch({
      executablePath: program("/usr/lib/chromium/chromium"),
      headless: !visible && !display,
      defaultViewport: visible ? null : undefined,
      pipe: true,
      enableExtensions: true,
      userDataDir: profile,
      acceptInsecureCerts: true,
      env,
      // Chromium reads no external-extension file under --disable-default-apps (one of
      // puppeteer's defaults): a person's browser has no such switch.
      ...(PACKAGED ? { ignoreDefaultArgs: ["--disable-default-apps"] } : {}),
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  } else {
    const home = PERSON_HOME ?? join(profile, "home");
    hostManifest("firefox", join(home, ".mozilla/native-messaging-hosts"), withHost, hostPath);
    mkdirSync(join(profile, "firefox"), { recursive: true });
    if (!PERSON) {
      // What `cacbridge-host install` writes for the extension to load the PKCS#11 module (a
      // person's comes from the package: /usr/lib/mozilla/pkcs11-modules).
      const modules = join(home, ".mozilla/pkcs11-modules");
      mkdirSync(modules, { recursive: true });
      // The browsers' name for the module (a link `cacbridge-host install` makes beside it).
      const browserModule = join(BIN, "libcacbridge_pkcs11_browser.so");
      if (!existsSync(browserModule)) symlinkSync(join(BIN, "libcacbridge_pkcs11.so"), browserModule);
      writeFileSync(
        join(modules, "cacbridge.json"),
        JSON.stringify({ name: "cacbridge", description: "CAC Bridge", path: browserModule, type: "pkcs11", allowed_extensions: [IDS.firefoxId] }),
      );
    }
    browser = await puppeteer.launch({
      browser: "firefox",
      dumpio: Boolean(process.env.CACBRIDGE_E2E_DEBUG),
      executablePath: program("/usr/bin/firefox-esr"),
      headless: !display,
      userDataDir: join(profile, "firefox"),
      acceptInsecureCerts: true,
      env: { ...env, HOME: home },
      extraPrefsFirefox: {
        // Firefox's form of an auto-select rule: present the one matching certificate.
        ...(clientCertificateFor ? { "security.default_personal_cert": "Select Automatically" } : {}),
        "extensions.webextensions.uuids": JSON.stringify({ [IDS.firefoxId]: FIREFOX_UUID }),
        // What a person confirms in the install prompt: the manifest's host permissions.
        "extensions.originControls.grantByDefault": true,

        ...(process.env.CACBRIDGE_E2E_DEBUG ? { "devtools.console.stdout.chrome": true, "devtools.console.stdout.content": true, "browser.dom.window.dump.enabled": true } : {}),
      },
    });
  }
  // The development build: it trusts the test portal, which the store build does not.
  const install = PACKAGED
    ? () => packagedExtension(browser, which, join(profile, "firefox"))
    : () => browser.installExtension(join(EXTENSION, "dist", `dev-${which}`));
  const id = installNow ? await install() : null;
  return {
    browser,
    id,
    install,
    /** Where the extension's own pages live. */
    base: which === "chromium" ? `chrome-extension://${id}` : `moz-extension://${FIREFOX_UUID}`,
    profile,
    /** The home the browser runs with (its NSS database in .pki/nssdb, for Chromium). */
    home: env.HOME,
    logs,
    /** The runtime directory the host's local channel lives in. */
    runtime,
    /** Everything the host logged. */
    hostLog() {
      return existsSync(logs) ? readdirSync(logs).map((f) => readFileSync(join(logs, f), "utf8")).join("") : "";
    },
    /** keepProfile: leave the profile for a later launch({ reuseProfile }). */
    async close({ keepProfile = false } = {}) {
      await browser.close();
      if (!keepProfile) rmSync(profile, { recursive: true, force: true });
    },
  };
}
