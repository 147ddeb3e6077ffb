import { test } from "node:test";
import assert from "node:assert/strict";
import { chooserEntries, commonNameOf, displayName } from "../src/lib/certificates.js";

const USABLE = { "9A": ["authenticate"], "CAC-ID": ["authenticate"], "9C": ["sign"], "CAC-EMAIL-SIGNATURE": ["sign"] };
const cert = (slot, role, notAfter, extra = {}) => ({
  id: `${slot}-${notAfter}`,
  usableFor: USABLE[slot] ?? [],
  slot,
  role,
  commonName: "DOE.JOHN.A.1234567890",
  subject: "C=US, CN=DOE.JOHN.A.1234567890",
  issuer: "C=US, O=U.S. Government, CN=DOD ID CA-70",
  notAfter,
  edipi: "1234567890",
  reader: "Reader 0",
  ...extra,
});

test("names read like names", () => {
  assert.equal(displayName("DOE.JOHN.A.1234567890"), "John A. Doe");
  assert.equal(displayName("SMITH.JANE.1098765432"), "Jane Smith");
  assert.equal(displayName("VAN DER BERG.ANNA-MARIE.QUINN.1000000001"), "Anna-Marie Quinn Van Der Berg");
  assert.equal(displayName("Some Server"), "Some Server");
  assert.equal(commonNameOf("C=US, O=U.S. Government, CN=DOD ID CA-70"), "DOD ID CA-70");
});

test("the chooser offers authentication certificates, PIV Authentication first and preselected", () => {
  const now = new Date("2027-01-01T00:00:00Z");
  const list = [
    cert("9E", "Card Authentication", "2029-01-01T00:00:00Z"),
    cert("9C", "Digital Signature", "2029-01-01T00:00:00Z"),
    cert("CAC-ID", "CAC ID", "2029-01-01T00:00:00Z"),
    cert("9A", "PIV Authentication", "2029-01-01T00:00:00Z"),
  ];
  const { entries, preselected } = chooserEntries(list, "authenticate", now);
  assert.deepEqual(entries.map((e) => e.role), ["PIV Authentication", "CAC ID"]);
  assert.equal(preselected, "9A-2029-01-01T00:00:00Z");
  assert.equal(entries[0].name, "John A. Doe");
  assert.equal(entries[0].issuer, "DOD ID CA-70");
  assert.equal(entries[0].expires, "2029-01-01");
});

test("expired certificates are marked and never preselected", () => {
  const now = new Date("2027-01-01T00:00:00Z");
  const list = [cert("9A", "PIV Authentication", "2026-06-01T00:00:00Z"), cert("9A", "PIV Authentication", "2029-01-01T00:00:00Z")];
  const { entries, preselected } = chooserEntries(list, "authenticate", now);
  assert.equal(entries.find((e) => e.expired)?.selectable, false);
  assert.equal(preselected, "9A-2029-01-01T00:00:00Z");
  const onlyExpired = chooserEntries([list[0]], "authenticate", now);
  assert.equal(onlyExpired.preselected, null);
});

test("signing offers the digital signature certificates", () => {
  const now = new Date("2027-01-01T00:00:00Z");
  const list = [cert("9A", "PIV Authentication", "2029-01-01T00:00:00Z"), cert("9C", "Digital Signature", "2029-01-01T00:00:00Z")];
  assert.deepEqual(chooserEntries(list, "sign", now).entries.map((e) => e.role), ["Digital Signature"]);
});

test("the host's usableFor decides, not the slot: a signing certificate in 9A is never offered for login", () => {
  const now = new Date("2027-01-01T00:00:00Z");
  const list = [
    cert("9A", "PIV Authentication", "2029-01-01T00:00:00Z", { usableFor: [] }),
    cert("9C", "Digital Signature", "2029-01-01T00:00:00Z", { usableFor: [] }),
    cert("9D", "Key Management", "2029-01-01T00:00:00Z", { usableFor: undefined }),
  ];
  assert.deepEqual(chooserEntries(list, "authenticate", now).entries, []);
  assert.deepEqual(chooserEntries(list, "sign", now).entries, []);
});
