// End to end in real headless Chromium with the extension, the host, a virtual CAC and the
// reference portal. node --test test/e2e/chromium.e2e.mjs (after tests/harness/testbed-setup).
import { describe } from "node:test";
import { crashingHostSuite, extensionSuite, fastChooserSuite, lateInstallSuite, linkSuite, missingHostSuite, moduleBackendSuite, workerKilledSuite } from "./flows.mjs";
import { mtlsSuite } from "./mtls-flows.mjs";
import { webServerSuite } from "./server-flows.mjs";

describe("chromium", () => extensionSuite("chromium"));
describe("chromium without the host", () => missingHostSuite("chromium"));
describe("chromium, installed while a portal tab is open", () => lateInstallSuite("chromium"));
describe("chromium, linking an unregistered card", () => linkSuite("chromium"));
describe("chromium, a card as slow as a real CAC", () => fastChooserSuite("chromium"));
describe("chromium, the host over OpenSC's PKCS#11 module", () => moduleBackendSuite("chromium"));
describe("chromium, the host crashing mid-request", () => crashingHostSuite("chromium"));
describe("chromium, the extension's service worker killed mid-request", () => workerKilledSuite("chromium"));
describe("chromium, a mutual-TLS portal", () => mtlsSuite("chromium"));
describe("chromium, a mutual-TLS portal with an ECC card", () => mtlsSuite("chromium", { cardName: "smith", full: false }));
describe("chromium, Apache httpd and nginx asking for the CAC", () => webServerSuite("chromium"));
