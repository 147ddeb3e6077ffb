import { test } from "node:test";
import assert from "node:assert/strict";
import { takeUpdateWhenIdle } from "../src/background/updates.js";

test("a held-back update is taken at once when nothing is under way", () => {
  let reloads = 0;
  const timers = [];
  takeUpdateWhenIdle({ busy: () => false, reload: () => reloads++, setTimer: (fn) => timers.push(fn) });
  assert.equal(reloads, 1);
  assert.equal(timers.length, 0);
});

test("a held-back update waits for the window and the request under way, then is taken once", () => {
  let reloads = 0;
  let busyChecks = 0;
  const timers = [];
  const busy = () => ++busyChecks <= 3; // a PIN window open for three checks
  takeUpdateWhenIdle({ busy, reload: () => reloads++, setTimer: (fn, ms) => timers.push({ fn, ms }), every: 2000 });
  for (let i = 0; i < 3; i++) {
    assert.equal(reloads, 0, "no reload while a person is in the middle of something");
    assert.equal(timers.length, i + 1);
    assert.equal(timers[i].ms, 2000);
    timers[i].fn();
  }
  assert.equal(reloads, 1);
  assert.equal(timers.length, 3, "and no further checks after it");
});
