// End to end in real headless Firefox ESR (WebDriver BiDi) with the extension, the host, a
// virtual CAC and the reference portal. node --test test/e2e/firefox.e2e.mjs
import { describe } from "node:test";
import { extensionSuite, fastChooserSuite, lateInstallSuite, linkSuite, missingHostSuite } from "./flows.mjs";

describe("firefox", () => extensionSuite("firefox"));
describe("firefox without the host", () => missingHostSuite("firefox"));
describe("firefox, installed while a portal tab is open", () => lateInstallSuite("firefox"));
describe("firefox, linking an unregistered card", () => linkSuite("firefox"));
describe("firefox, a card as slow as a real CAC", () => fastChooserSuite("firefox"));
// Not the mutual-TLS walk: Firefox signs the TLS handshake on its socket thread, and the
// WebDriver BiDi connection that drives this test runs over that thread too, so the test
// cannot type in CAC Bridge's window while the handshake waits for it (docs/pkcs11.md).
