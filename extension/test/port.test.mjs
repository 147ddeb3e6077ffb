import { test } from "node:test";
import assert from "node:assert/strict";
import { NativePort } from "../src/lib/port.js";

/** A fake native port that answers like cacbridge-host. */
function fakeHost({ protocol = 1, answer } = {}) {
  const listeners = { message: [], disconnect: [] };
  const sent = [];
  const port = {
    sent,
    postMessage(message) {
      sent.push(message);
      queueMicrotask(() => {
        if (message.command === "version") return port.reply({ id: message.id, result: { version: "0.1.0", protocol } });
        const reply = answer?.(message);
        if (reply) port.reply({ id: message.id, ...reply });
      });
    },
    disconnect() {},
    onMessage: { addListener: (fn) => listeners.message.push(fn) },
    onDisconnect: { addListener: (fn) => listeners.disconnect.push(fn) },
    reply: (m) => listeners.message.forEach((fn) => fn(m)),
    die: () => listeners.disconnect.forEach((fn) => fn(port)),
  };
  return port;
}

test("connects, checks the protocol and answers requests by id", async () => {
  const port = fakeHost({ answer: (m) => ({ result: { echo: m.command } }) });
  const states = [];
  const host = new NativePort({ connect: () => port, onState: (s) => states.push(s) });
  assert.deepEqual(await host.request("status", {}, 1000), { echo: "status" });
  assert.deepEqual(await host.request("list-certificates", {}, 1000), { echo: "list-certificates" });
  assert.deepEqual(states, ["connecting", "connected"]);
  assert.equal(port.sent.filter((m) => m.command === "version").length, 1, "one handshake");
  assert.notEqual(port.sent[1].id, port.sent[2].id);
});

test("a host speaking another protocol is too old", async () => {
  const host = new NativePort({ connect: () => fakeHost({ protocol: 0 }) });
  await assert.rejects(host.request("status", {}, 1000), { code: "native-too-old" });
});

test("a missing host is native-unavailable", async () => {
  const host = new NativePort({
    connect: () => {
      const port = fakeHost();
      port.postMessage = () => queueMicrotask(() => port.die());
      return port;
    },
    disconnectReason: () => "Specified native messaging host not found.",
  });
  await assert.rejects(host.request("status", {}, 1000), (err) => err.code === "native-unavailable" && /not found/.test(err.message));
  assert.equal(host.state, "disconnected");
});

test("host errors reach the caller unchanged; silence times out", async () => {
  const host = new NativePort({
    connect: () =>
      fakeHost({
        answer: (m) => (m.command === "authenticate" ? { error: { code: "pin-incorrect", message: "wrong", retriesLeft: 2 } } : null),
      }),
  });
  await assert.rejects(host.request("authenticate", {}, 1000), { code: "pin-incorrect", retriesLeft: 2 });
  await assert.rejects(host.request("status", {}, 20), { code: "host-timeout" });
});

test("a port that dies fails its requests, and reconnects with back-off when events are wanted", async () => {
  let connects = 0;
  let current;
  const timers = [];
  const host = new NativePort({
    connect: () => {
      connects += 1;
      current = fakeHost({ answer: (m) => (m.command === "subscribe" ? { result: {} } : null) });
      return current;
    },
    setTimer: (fn, ms) => {
      const timer = setTimeout(fn, ms === 1000 || ms === 2000 ? 1 : ms);
      timers.push(ms);
      return timer;
    },
  });
  await host.subscribe();
  const pending = host.request("status", {}, 5000);
  await new Promise((r) => setTimeout(r, 5));
  current.die();
  await assert.rejects(pending, { code: "native-unavailable" });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(connects, 2, "reconnected");
  assert.ok(timers.includes(1000), "after a back-off");
  assert.equal(host.state, "connected");
});

/** A NativePort over fresh fake hosts, counting connections; back-offs take 1 ms. */
function countedHost() {
  const seen = { count: 0, port: null };
  const host = new NativePort({
    connect: () => {
      seen.count += 1;
      seen.port = fakeHost();
      return seen.port;
    },
    setTimer: (fn, ms) => setTimeout(fn, ms >= 1000 && ms < 5000 ? 1 : ms),
  });
  return { host, connects: () => seen.count, current: () => seen.port };
}

test("a port kept open is reopened when the host goes, and asks the host for nothing but its version", async () => {
  const { host, connects, current } = countedHost();
  await host.keepOpen();
  assert.deepEqual(current().sent.map((m) => m.command), ["version"]);
  current().die();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(connects(), 2, "reopened");
  assert.equal(host.state, "connected");
  assert.deepEqual(current().sent.map((m) => m.command), ["version"], "no subscribe: the card is not read");
});

test("a port not kept open stays closed when the host goes", async () => {
  const { host, connects, current } = countedHost();
  await host.ensureConnected();
  current().die();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(connects(), 1);
  assert.equal(host.state, "disconnected");
});

test("events go to the event handler", async () => {
  const events = [];
  const port = fakeHost();
  const host = new NativePort({ connect: () => port, onEvent: (e, d) => events.push([e, d]) });
  await host.ensureConnected();
  port.reply({ event: "card-removed", data: { reader: "R" } });
  assert.deepEqual(events, [["card-removed", { reader: "R" }]]);
});
