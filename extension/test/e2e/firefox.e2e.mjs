// End to end in real headless Firefox ESR (WebDriver BiDi) with the extension, the host, a
// virtual CAC and the reference portal. node --test test/e2e/firefox.e2e.mjs
import { describe } from "node:test";
import { extensionSuite, fastChooserSuite, lateInstallSuite, linkSuite, missingHostSuite } from "./flows.mjs";
import { mtlsSuite } from "./mtls-flows.mjs";
import { webServerSuite } from "./server-flows.mjs";

describe("firefox", () => extensionSuite("firefox"));
describe("firefox without the host", () => missingHostSuite("firefox"));
describe("firefox, installed while a portal tab is open", () => lateInstallSuite("firefox"));
describe("firefox, linking an unregistered card", () => linkSuite("firefox"));
describe("firefox, a card as slow as a real CAC", () => fastChooserSuite("firefox"));
// The mutual-TLS walk, with windows on a virtual display: the PIN is typed into CAC Bridge's
// window with key presses (mtls-flows.mjs, mtlsSuite).
describe("firefox, a mutual-TLS portal", () => mtlsSuite("firefox", { full: false }));
describe("firefox, Apache httpd and nginx asking for the CAC", () => webServerSuite("firefox"));
