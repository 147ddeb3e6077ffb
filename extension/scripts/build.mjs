// Builds the loadable extension folders and their zips from the one source tree:
//   dist/chromium/  dist/cacbridge-chromium.zip   (Chrome, Chromium, Edge, Brave)
//   dist/firefox/   dist/cacbridge-firefox.zip    (Firefox)
// and the development builds the demo and the end-to-end tests load, which also trust the
// test portal (--dev-origin, default https://localhost:8443 and its CAC host :8444; repeatable):
//   dist/dev-chromium/  dist/dev-firefox/
// The store builds trust no portal of their own. Zips are reproducible: sorted entries, fixed
// timestamps.
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { deflateRawSync } from "node:zlib";
import { PAGE_ERRORS } from "../src/lib/errors.js";

const root = new URL("..", import.meta.url).pathname;
const src = join(root, "src");
const dist = join(root, "dist");
const ids = JSON.parse(readFileSync(join(root, "ids.json"), "utf8"));
// The version is stamped from one place, the workspace's Cargo.toml (the host, the module
// and the packages carry the same one).
const workspaceVersion = readFileSync(join(root, "..", "Cargo.toml"), "utf8").match(/^version = "([^"]+)"/m)?.[1];
if (!workspaceVersion) throw new Error("no version in ../Cargo.toml");
const base = { ...JSON.parse(readFileSync(join(src, "manifest.json"), "utf8")), version: workspaceVersion };
const args = process.argv.slice(2);
const devOrigins = args.flatMap((arg, i) => (arg === "--dev-origin" ? [args[i + 1]] : []));
// The reference portal, and its mutual-TLS CAC host (whose loading tab names the site in the
// TLS PIN window: the browser shows an extension the URL of an allowed site only).
if (!devOrigins.length) devOrigins.push("https://localhost:8443", "https://localhost:8444");

/**
 * A site's own store build (CACBRIDGE_SITE names a JSON file, docs/install.md): the portals it
 * trusts out of the box, with the host permissions they need (an administrator's allow-list
 * policy cannot grant those), and their mutual-TLS profiles.
 * @type {{portals: string[], mtlsProfiles: {page: string, link: string}[]} | null}
 */
const site = process.env.CACBRIDGE_SITE ? JSON.parse(readFileSync(process.env.CACBRIDGE_SITE, "utf8")) : null;
if (site && !(Array.isArray(site.portals) && site.portals.every((o) => new URL(o).origin === o))) {
  throw new Error(`${process.env.CACBRIDGE_SITE}: "portals" must list origins`);
}

const manifests = {
  chromium: {
    ...base,
    key: ids.chromiumKey,
    background: { service_worker: "background.js", type: "module" },
    storage: { managed_schema: "schema.json" },
  },
  firefox: {
    ...base,
    // Firefox only: load CAC Bridge's PKCS#11 module for mutual-TLS portals (pkcs11-module.js).
    permissions: [...base.permissions, "pkcs11"],
    // Firefox's match patterns cannot name a port: the background checks the exact origin.
    background: { scripts: ["background.js"], type: "module" },
    browser_specific_settings: {
      gecko: {
        id: ids.firefoxId,
        strict_min_version: "128.0",
        data_collection_permissions: { required: ["none"] },
      },
    },
  },
};

/** @param {string} dir @returns {string[]} */
function files(dir) {
  return readdirSync(dir)
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? files(path) : [path];
    })
    .sort();
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 as zip wants it (node:zlib's crc32 is too new for Node 18). @param {Buffer} data */
function crc32(data) {
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A minimal deflate zip writer (the format browsers and stores accept). */
function zip(dir, out) {
  const entries = [];
  const chunks = [];
  let offset = 0;
  const time = 0x0000, date = 0x0021; // 1980-01-01 00:00
  for (const path of files(dir)) {
    const name = Buffer.from(relative(dir, path).split("\\").join("/"));
    const data = readFileSync(path);
    const packed = deflateRawSync(data, { level: 9 });
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0, 6);
    local.writeUInt16LE(8, 8);
    local.writeUInt16LE(time, 10);
    local.writeUInt16LE(date, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    chunks.push(local, name, packed);
    entries.push({ name, crc, packed: packed.length, size: data.length, offset });
    offset += local.length + name.length + packed.length;
  }
  const central = [];
  for (const e of entries) {
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE(20, 4);
    header.writeUInt16LE(20, 6);
    header.writeUInt16LE(0, 8);
    header.writeUInt16LE(8, 10);
    header.writeUInt16LE(time, 12);
    header.writeUInt16LE(date, 14);
    header.writeUInt32LE(e.crc, 16);
    header.writeUInt32LE(e.packed, 20);
    header.writeUInt32LE(e.size, 24);
    header.writeUInt16LE(e.name.length, 28);
    header.writeUInt32LE(e.offset, 42);
    central.push(header, e.name);
  }
  const centralSize = central.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  writeFileSync(out, Buffer.concat([...chunks, ...central, end]));
}

/** The marker in content.js that the build replaces with lib/errors.js's messages. */
const PAGE_ERRORS_MARKER = "/* PAGE_ERRORS from lib/errors.js */ {}";

/**
 * content.js with the page's error messages put in from lib/errors.js, their one place (a
 * content script cannot import a module).
 * @param {string} text
 */
function withPageErrors(text) {
  if (!text.includes(PAGE_ERRORS_MARKER)) throw new Error("content.js lost its PAGE_ERRORS marker");
  return text.replace(PAGE_ERRORS_MARKER, JSON.stringify(PAGE_ERRORS));
}

/**
 * The store build's Chrome-family key: the release's public key when scripts/package signs the
 * CRX with its own key (CACBRIDGE_CHROMIUM_KEY, base64 DER), so that the packed and the
 * unpacked extension have the same id; the development key otherwise.
 * @param {string} browser
 */
const releaseKey = (browser) =>
  browser === "chromium" && process.env.CACBRIDGE_CHROMIUM_KEY ? { key: process.env.CACBRIDGE_CHROMIUM_KEY } : {};

/** Host permissions for origins, as each browser's match patterns allow. */
const patterns = (/** @type {string} */ browser, /** @type {string[]} */ origins) => [
  ...new Set(origins.map((o) => (browser === "firefox" ? `${new URL(o).protocol}//${new URL(o).hostname}/*` : `${o}/*`))),
];

rmSync(dist, { recursive: true, force: true });
for (const [browser, manifest] of Object.entries(manifests)) {
  for (const dev of [false, true]) {
    const out = join(dist, dev ? `dev-${browser}` : browser);
    mkdirSync(out, { recursive: true });
    cpSync(src, out, { recursive: true, filter: (path) => !path.endsWith(`${src}/manifest.json`) });
    writeFileSync(join(out, "content.js"), withPageErrors(readFileSync(join(src, "content.js"), "utf8")));
    if (browser === "firefox") rmSync(join(out, "schema.json"));
    const built = dev
      ? { ...manifest, name: `${manifest.name} (development)`, host_permissions: patterns(browser, devOrigins) }
      : { ...manifest, ...releaseKey(browser), ...(site ? { host_permissions: patterns(browser, site.portals) } : {}) };
    writeFileSync(join(out, "manifest.json"), `${JSON.stringify(built, null, 2)}\n`);
    if (dev) {
      writeFileSync(
        join(out, "lib/build-config.js"),
        `// Development build: trusts the test portal. Written by scripts/build.mjs.\nexport const BUILT_IN_ORIGINS = ${JSON.stringify(devOrigins)};\n` +
          // The reference portal's way to its mutual-TLS CAC host.
          `export const BUILT_IN_MTLS_PROFILES = ${JSON.stringify([{ page: `${devOrigins[0]}/account/cac`, link: "#mtls-register-link" }])};\n`,
      );
      console.log(`built ${relative(root, out)} (trusts ${devOrigins.join(", ")})`);
    } else {
      if (site) {
        writeFileSync(
          join(out, "lib/build-config.js"),
          `// A site's build (CACBRIDGE_SITE): trusts its portals. Written by scripts/build.mjs.\nexport const BUILT_IN_ORIGINS = ${JSON.stringify(site.portals)};\n` +
            `export const BUILT_IN_MTLS_PROFILES = ${JSON.stringify(site.mtlsProfiles ?? [])};\n`,
        );
      }
      zip(out, join(dist, `cacbridge-${browser}.zip`));
      console.log(`built ${relative(root, out)} and dist/cacbridge-${browser}.zip`);
    }
  }
}
