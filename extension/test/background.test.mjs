import { test } from "node:test";
import assert from "node:assert/strict";
import { Flows } from "../src/background/flows.js";
import { senderOrigin, pageRequest } from "../src/background/page-requests.js";
// Loading these must call no browser API: they are only imported here.
import "../src/background/content-scripts.js";
import "../src/background/dialog-flow.js";
import "../src/background/readiness.js";

/** Flows over fake windows and a fake clock. */
function fakeFlows() {
  const opened = [];
  const closed = [];
  let clock = 1_000_000;
  const timers = [];
  const flows = new Flows({
    openWindow: async (flowId) => {
      opened.push(flowId);
      return 100 + opened.length;
    },
    closeWindow: (windowId) => closed.push(windowId),
    userTimeout: 120_000,
    cancelCooldown: 5_000,
    now: () => clock,
    setTimer: (fn, ms) => {
      timers.push({ fn, ms });
      return timers.length;
    },
    clearTimer: () => {},
  });
  return { flows, opened, closed, timers, advance: (ms) => (clock += ms) };
}

const details = (tabId) => ({ tabId, origin: "https://portal.example.mil", action: "authenticate", request: {} });
const tick = () => new Promise((resolve) => setImmediate(resolve));

test("one window a tab: a second request while one is open is action-pending", async () => {
  const { flows, opened } = fakeFlows();
  const first = flows.run(details(7));
  await tick();
  await assert.rejects(flows.run(details(7)), { code: "action-pending" });
  assert.equal(opened.length, 1);
  flows.finish(flows.get(opened[0]), null, { token: 1 });
  assert.deepEqual(await first, { token: 1 });
});

test("after a cancel the tab waits, then may ask again", async () => {
  const { flows, opened, closed, advance } = fakeFlows();
  const first = flows.run(details(7));
  await tick();
  flows.cancel(flows.get(opened[0]));
  await assert.rejects(first, { code: "user-cancelled" });
  assert.deepEqual(closed, [101], "its window closed");
  await assert.rejects(flows.run(details(7)), (err) => err.code === "action-throttled" && err.retryAfterMs === 5_000);
  const other = flows.run(details(8));
  await tick();
  assert.equal(opened.length, 2, "another tab is not held up");
  flows.finish(flows.get(opened[1]), null, {});
  await other;
  advance(5_000);
  const again = flows.run(details(7));
  await tick();
  assert.equal(opened.length, 3);
  flows.finish(flows.get(opened[2]), null, {});
  await again;
});

test("closing the window by hand cancels; the person's time runs out", async () => {
  const { flows, opened, timers } = fakeFlows();
  const closedByHand = flows.run(details(1));
  await tick();
  flows.windowRemoved(101);
  await assert.rejects(closedByHand, { code: "user-cancelled" });
  const slow = flows.run(details(2));
  await tick();
  assert.equal(timers.at(-1).ms, 120_000);
  timers.at(-1).fn();
  await assert.rejects(slow, { code: "user-timeout" });
  assert.equal(flows.get(opened[1]), undefined, "forgotten");
});

test("the origin is the browser's record, and an opaque one stays opaque", () => {
  assert.equal(senderOrigin({ origin: "https://a.mil", url: "https://a.mil/x" }, {}), "https://a.mil");
  assert.equal(senderOrigin({ origin: "null", url: "https://a.mil/upload" }, {}), "null");
  assert.equal(senderOrigin({ url: "https://a.mil/upload" }, { documentOrigin: "null" }), "null");
  assert.equal(senderOrigin({ url: "https://a.mil/x" }, { documentOrigin: "https://a.mil" }), "https://a.mil");
  assert.equal(senderOrigin({ url: "https://a.mil/x" }, { documentOrigin: "https://b.mil" }), "null");
  assert.equal(senderOrigin({ url: "not a url" }, {}), "null");
});

test("a page request without a click never reaches the host", async () => {
  const host = {
    ensureConnected: async () => assert.fail("the host was asked"),
    request: async () => assert.fail("the host was asked"),
    subscribe: async () => {},
  };
  const { flows, opened } = fakeFlows();
  const deps = { host, flows, allowList: async () => ({ origins: ["https://a.mil"] }) };
  const sender = { tab: { id: 3 }, origin: "https://a.mil" };
  const request = { id: 1, action: "authenticate", challengeNonce: "A".repeat(44) };
  await assert.rejects(pageRequest(deps, { type: "page-request", request, userActivation: false }, sender), { code: "user-activation-required" });
  await assert.rejects(pageRequest(deps, { type: "page-request", request, userActivation: true }, { ...sender, origin: "https://b.mil" }), { code: "origin-not-allowed" });
  assert.equal(opened.length, 0);
});

test("the checklist warns a month before the PIV Authentication certificate expires", async () => {
  const { readiness } = await import("../src/background/readiness.js");
  const day = 86_400_000;
  const hostWith = (notAfter) => ({
    ensureConnected: async () => ({ version: "0.1.0" }),
    request: async (command) => {
      if (command === "status") return { readers: [{ name: "R", cardPresent: true, cardType: "PIV", pinRetriesLeft: 3, pinBlocked: false }] };
      if (command === "list-certificates") return { certificates: [{ notAfter: new Date(Date.now() + notAfter).toISOString() }] };
      return { tlsModule: true, dodRoots: true };
    },
  });
  const list = { origins: ["https://portal.example.mil"], managed: false };
  const soon = await readiness(hostWith(12 * day + 3600_000), list, "https://portal.example.mil");
  const expiry = soon.items.find((i) => i.id === "expiry");
  assert.equal(expiry.ok, false);
  assert.equal(expiry.warning, true);
  assert.match(expiry.detail, /in 12 days/);
  assert.equal(soon.items.find((i) => i.id === "certificates").ok, true, "still valid");
  const later = await readiness(hostWith(45 * day), list, "https://portal.example.mil");
  assert.equal(later.items.find((i) => i.id === "expiry"), undefined);
});

test("what a portal page's readiness note learns is ready or not: no expiry warning", async () => {
  const { mtlsReadiness } = await import("../src/background/readiness.js");
  const day = 86_400_000;
  const host = {
    ensureConnected: async () => ({ version: "0.1.0" }),
    request: async (/** @type {string} */ command) => {
      if (command === "status") return { readers: [{ name: "R", cardPresent: true, cardType: "PIV", pinRetriesLeft: 3, pinBlocked: false }] };
      if (command === "list-certificates") return { certificates: [{ notAfter: new Date(Date.now() + 3 * day).toISOString() }] };
      return { tlsModule: true, dodRoots: true };
    },
  };
  const answer = await mtlsReadiness(host);
  assert.deepEqual(answer, {
    host: true,
    items: [
      { id: "card", ok: true },
      { id: "certificates", ok: true },
      { id: "module", ok: true },
      { id: "roots", ok: true },
    ],
  });
});

test("a module registered after the browser started asks for one restart", async () => {
  const { mtlsReadiness, readiness } = await import("../src/background/readiness.js");
  const host = (setup) => ({
    ensureConnected: async () => ({ version: "0.1.0" }),
    request: async (/** @type {string} */ command) => {
      if (command === "status") return { readers: [{ name: "R", cardPresent: true, cardType: "PIV", pinRetriesLeft: 3, pinBlocked: false }] };
      if (command === "list-certificates") return { certificates: [{ notAfter: new Date(Date.now() + 400 * 86_400_000).toISOString() }] };
      return setup;
    },
  });
  const list = { origins: ["https://portal.example.mil"], managed: false };
  const fresh = await readiness(host({ tlsModule: true, dodRoots: true, moduleNeedsRestart: true }), list, "https://portal.example.mil");
  const item = fresh.items.find((i) => i.id === "module");
  assert.equal(item.ok, false);
  assert.match(item.detail, /restart the browser once/);
  const note = await mtlsReadiness(host({ tlsModule: true, dodRoots: true, moduleNeedsRestart: true }));
  assert.deepEqual(note.items.find((i) => i.id === "module"), { id: "module", ok: false });
  const loaded = await readiness(host({ tlsModule: true, dodRoots: true, moduleNeedsRestart: false }), list, "https://portal.example.mil");
  assert.equal(loaded.items.find((i) => i.id === "module").ok, true);
});
