import { test } from "node:test";
import assert from "node:assert/strict";
import { pageView } from "../src/lib/page-view.js";

const now = new Date("2027-01-01T00:00:00Z");
const certificate = {
  id: "ab".repeat(32),
  reader: "Identiv uTrust 3700 F (55041804209181) 00 00",
  slot: "9A",
  role: "PIV Authentication",
  certificate: "MIIB...",
  subject: "C=US, O=U.S. Government, CN=DOE.JOHN.A.1234567890",
  issuer: "CN=DOD ID CA-80",
  commonName: "DOE.JOHN.A.1234567890",
  edipi: "1234567890",
  upn: "1234567890123456@mil",
  email: "john.a.doe.mil@mail.mil",
  serialNumber: "0A1B",
  keyAlgorithm: "RSA-2048",
  notAfter: "2029-01-01T00:00:00Z",
  usableFor: ["authenticate"],
};

test("a page learns whether a usable certificate is there, and nothing that names the person", () => {
  const view = pageView.certificates({ certificates: [certificate, { ...certificate, notAfter: "2026-01-01T00:00:00Z", usableFor: ["sign"] }] }, now);
  assert.deepEqual(view, {
    certificates: [
      { usableFor: ["authenticate"], keyAlgorithm: "RSA-2048", expired: false },
      { usableFor: ["sign"], keyAlgorithm: "RSA-2048", expired: true },
    ],
  });
  const text = JSON.stringify(view);
  for (const secret of ["1234567890", "DOE", "mail.mil", "@mil", "55041804209181", "MIIB", "0A1B", "ab".repeat(32)]) {
    assert.ok(!text.includes(secret), `${secret} reached the page`);
  }
});

test("status says whether a card is in, not which reader or whose", () => {
  const status = {
    readers: [
      { name: "Identiv uTrust 3700 F (55041804209181) 00 00", cardPresent: true, cardType: "PIV", atr: "3B95", pinRetriesLeft: 3, pinBlocked: false },
      { name: "Virtual PCD 00 01", cardPresent: false },
    ],
  };
  assert.deepEqual(pageView.status({ version: "0.1.0", protocol: 1 }, status), {
    host: { version: "0.1.0", protocol: 1 },
    readers: [{ cardPresent: true, cardType: "PIV" }, { cardPresent: false }],
  });
});
